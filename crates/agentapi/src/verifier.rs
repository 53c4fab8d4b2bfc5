//! The rustls verifier that enforces the [`Pin`] (SPEC §3). Only the real client needs it, so
//! it lives behind the `client` feature with the rest of the TLS stack.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, OtherError, SignatureScheme};

use crate::Pin;

/// Carried inside the rustls error so that the client can report which certificate the agent
/// actually presented; an operator who re-keyed the agent needs exactly that value.
#[derive(Debug, thiserror::Error)]
#[error("certificate pin mismatch: expected {expected}, the agent presented {actual}")]
pub(crate) struct PinMismatch {
    pub(crate) expected: Pin,
    pub(crate) actual: Pin,
}

/// Accepts exactly the leaf whose digest is the pin; verifies handshake signatures with the
/// ring provider's algorithms.
#[derive(Debug)]
pub(crate) struct PinVerifier {
    pin: Pin,
    algorithms: WebPkiSupportedAlgorithms,
}

impl PinVerifier {
    pub(crate) fn new(pin: Pin, algorithms: WebPkiSupportedAlgorithms) -> PinVerifier {
        PinVerifier { pin, algorithms }
    }
}

impl ServerCertVerifier for PinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let actual = Pin::of_der(end_entity.as_ref());
        if self.pin.matches(&actual) {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                OtherError(Arc::new(PinMismatch {
                    expected: self.pin,
                    actual,
                })),
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
