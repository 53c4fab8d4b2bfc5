//! The agent's TLS identity: a generated self-signed certificate or one loaded from PEM files,
//! and its pin (what the controller is configured with instead of a CA).

use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};

use crate::error::DevAgentError;

/// The served certificate chain and key, ready for a TLS acceptor.
pub(crate) struct TlsIdentity {
    pub(crate) server_config: Arc<rustls::ServerConfig>,
    pub(crate) pin: String,
    pub(crate) leaf_der: CertificateDer<'static>,
}

impl TlsIdentity {
    pub(crate) fn generate() -> Result<Self, DevAgentError> {
        let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        let certified = rcgen::generate_simple_self_signed(names).map_err(|e| {
            DevAgentError::Tls(format!("generating a self-signed certificate: {e}"))
        })?;
        let key =
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der()));
        Self::from_parts(vec![certified.cert.der().clone()], key)
    }

    pub(crate) fn load(cert_path: &Path, key_path: &Path) -> Result<Self, DevAgentError> {
        let tls_file = |path: &Path, reason: String| DevAgentError::TlsFile {
            path: path.to_owned(),
            reason,
        };
        let mut reader =
            BufReader::new(File::open(cert_path).map_err(|e| tls_file(cert_path, e.to_string()))?);
        let chain = rustls_pemfile::certs(&mut reader)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| tls_file(cert_path, format!("reading PEM: {e}")))?;
        if chain.is_empty() {
            return Err(tls_file(cert_path, "no CERTIFICATE block found".into()));
        }
        let mut reader =
            BufReader::new(File::open(key_path).map_err(|e| tls_file(key_path, e.to_string()))?);
        let key = rustls_pemfile::private_key(&mut reader)
            .map_err(|e| tls_file(key_path, format!("reading PEM: {e}")))?
            .ok_or_else(|| tls_file(key_path, "no PRIVATE KEY block found".into()))?;
        Self::from_parts(chain, key)
    }

    fn from_parts(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Self, DevAgentError> {
        let leaf_der = chain
            .first()
            .cloned()
            .ok_or_else(|| DevAgentError::Tls("empty certificate chain".into()))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| DevAgentError::Tls(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| DevAgentError::Tls(format!("certificate and key: {e}")))?;
        // Only HTTP/1.1 is served; saying so keeps clients that offer h2 (curl) from trying it.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsIdentity {
            server_config: Arc::new(config),
            pin: pin_of(&leaf_der),
            leaf_der,
        })
    }

    pub(crate) fn leaf_pem(&self) -> String {
        use std::fmt::Write;
        let b64 = base64_encode(&self.leaf_der);
        let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
        for line in b64.as_bytes().chunks(64) {
            // The chunks are ASCII, so this cannot fail; writing to a String never fails.
            let _ = writeln!(pem, "{}", String::from_utf8_lossy(line));
        }
        pem.push_str("-----END CERTIFICATE-----\n");
        pem
    }
}

/// SHA-256 of the certificate's DER, lowercase hex pairs joined by colons.
fn pin_of(der: &[u8]) -> String {
    let digest = Sha256::digest(der);
    digest
        .iter()
        .map(|b| hex::encode([*b]))
        .collect::<Vec<_>>()
        .join(":")
}

// A PEM body is plain base64; the few lines here spare a dependency.
fn base64_encode(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let sextets = [(n >> 18) & 63, (n >> 12) & 63, (n >> 6) & 63, n & 63];
        for (i, s) in sextets.iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[*s as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_reference_vectors() {
        // RFC 4648 §10.
        for (input, expected) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64_encode(input.as_bytes()), expected, "input {input:?}");
        }
    }

    #[test]
    fn pin_is_colon_separated_lowercase_sha256() {
        // sha256("abc") from FIPS 180-2.
        assert_eq!(
            pin_of(b"abc"),
            "ba:78:16:bf:8f:01:cf:ea:41:41:40:de:5d:ae:22:23:b0:03:61:a3:96:17:7a:9c:b4:10:ff:61:f2:00:15:ad"
        );
    }

    #[test]
    fn generated_pem_parses_back_to_the_same_certificate() {
        let id = TlsIdentity::generate().expect("generate a certificate");
        let pem = id.leaf_pem();
        let parsed = rustls_pemfile::certs(&mut pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .expect("own PEM parses");
        assert_eq!(parsed, vec![id.leaf_der.clone()]);
    }
}
