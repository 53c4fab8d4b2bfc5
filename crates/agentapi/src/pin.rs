//! The agent's certificate pin (SPEC §3); the `verifier` module enforces it in the TLS handshake.
//!
//! The agent presents a self-signed leaf, so there is no chain to trust and no name to check:
//! the SHA-256 of the leaf's DER is the whole identity. The handshake signature is still
//! verified, otherwise anyone who has seen the (public) certificate could impersonate the agent.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

use crate::ConfigError;

/// The SHA-256 of the agent's leaf certificate (DER), the only identity the client accepts.
///
/// Parsed from 64 hex digits; colons, case and surrounding whitespace are ignored, so both
/// `5F3A…` and `5f:3a:…` work. Displayed as lowercase colon-separated hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pin([u8; 32]);

impl Pin {
    /// Parses a pin; the error says what is wrong (length or a non-hex character).
    pub fn parse(text: &str) -> Result<Pin, ConfigError> {
        let digits: Vec<(usize, char)> = text
            .trim()
            .chars()
            .enumerate()
            .filter(|(_, c)| *c != ':')
            .collect();
        if let Some((position, c)) = digits.iter().find(|(_, c)| !c.is_ascii_hexdigit()) {
            return Err(ConfigError::InvalidPin {
                reason: format!(
                    "character {c:?} at position {} is not a hex digit",
                    position + 1
                ),
            });
        }
        if digits.len() != 64 {
            return Err(ConfigError::InvalidPin {
                reason: format!("expected 64 hex digits (a SHA-256), found {}", digits.len()),
            });
        }
        let hex: String = digits.into_iter().map(|(_, c)| c).collect();
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(&hex, &mut bytes).map_err(|e| ConfigError::InvalidPin {
            reason: e.to_string(),
        })?;
        Ok(Pin(bytes))
    }

    /// The pin of a certificate: the SHA-256 of its DER encoding.
    pub fn of_der(der: &[u8]) -> Pin {
        Pin(Sha256::digest(der).into())
    }

    /// The 32 bytes of the digest.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Compares without an early exit, so the time taken does not reveal how many leading
    /// bytes of a forged certificate's digest matched.
    #[cfg_attr(not(feature = "client"), allow(dead_code))]
    pub(crate) fn matches(&self, other: &Pin) -> bool {
        self.0
            .iter()
            .zip(other.0.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

impl FromStr for Pin {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Pin::parse(s)
    }
}

impl fmt::Display for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, byte) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pin({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "5f3a00112233445566778899aabbccddeeff00112233445566778899aabbccdd";

    #[test]
    fn parses_plain_colons_and_upper_case_alike() {
        let plain = Pin::parse(HEX).expect("plain hex parses");
        let colons = HEX
            .as_bytes()
            .chunks(2)
            .map(|pair| std::str::from_utf8(pair).expect("ascii"))
            .collect::<Vec<_>>()
            .join(":");
        assert_eq!(Pin::parse(&colons.to_uppercase()).expect("colons"), plain);
        assert_eq!(
            Pin::parse(&format!("  {HEX}\n")).expect("whitespace"),
            plain
        );
        assert_eq!(plain.to_string(), colons);
        assert_eq!(Pin::parse(&plain.to_string()).expect("round trip"), plain);
        assert_eq!(plain.as_bytes()[0], 0x5f);
    }

    #[test]
    fn rejects_wrong_length_and_names_it() {
        let err = Pin::parse(&HEX[..62]).expect_err("62 digits is too short");
        assert!(err.to_string().contains("expected 64 hex digits"), "{err}");
        assert!(err.to_string().contains("found 62"), "{err}");
        let err = Pin::parse(&format!("{HEX}00")).expect_err("66 digits is too long");
        assert!(err.to_string().contains("found 66"), "{err}");
        assert!(Pin::parse("").is_err());
    }

    #[test]
    fn rejects_non_hex_and_names_the_character() {
        let bad = format!("{}g{}", &HEX[..10], &HEX[11..]);
        let err = Pin::parse(&bad).expect_err("g is not hex");
        assert!(err.to_string().contains("'g' at position 11"), "{err}");
    }

    #[test]
    fn of_der_is_the_sha256_of_the_bytes() {
        // SHA-256("abc"), FIPS 180-2 test vector.
        let pin = Pin::of_der(b"abc");
        assert_eq!(
            pin,
            Pin::parse("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
                .expect("vector parses")
        );
        assert_ne!(Pin::of_der(b"abd"), pin);
    }

    #[test]
    fn matches_is_equality() {
        let a = Pin::of_der(b"a");
        let b = Pin::of_der(b"b");
        assert!(a.matches(&a));
        assert!(!a.matches(&b));
    }
}
