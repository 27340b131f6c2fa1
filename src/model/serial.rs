use std::fmt;
use std::str::FromStr;

use super::time_ordered::time_ordered;

/// A certificate serial number: the millisecond it was made, then 80 bits from the OS CSPRNG.
///
/// The top bit is cleared and the next one set, so the DER INTEGER is positive, needs no
/// leading zero and is always exactly these 16 bytes: the store, the CRL and
/// `x509-parser`'s `raw_serial()` all see the same value. The next 46 bits are the Unix time
/// in milliseconds and the last 80 are random, more than the 64 unpredictable bits the
/// CA/Browser Forum asks of a serial. Time first, so that serials key the store's indexes in
/// order (`time_ordered.rs` says why).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Serial([u8; 16]);

/// The error for bytes or text that are not a latchkey serial.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a serial is 16 bytes (32 lowercase hex digits)")]
pub struct SerialError;

impl Serial {
    /// A fresh serial: now, to the millisecond, and 80 random bits.
    pub fn generate() -> Self {
        Self(((1 << 126) | time_ordered(126, 46)).to_be_bytes())
    }

    /// The serial from the raw bytes of a certificate's serial INTEGER.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, SerialError> {
        bytes.try_into().map(Self).map_err(|_| SerialError)
    }

    /// The 16 bytes, as encoded in the certificate.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl FromStr for Serial {
    type Err = SerialError;
    fn from_str(s: &str) -> Result<Self, SerialError> {
        if s.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(SerialError);
        }
        // Straight into the array: a million-entry CRL parses a million of these.
        let mut bytes = [0u8; 16];
        hex::decode_to_slice(s, &mut bytes).map_err(|_| SerialError)?;
        Ok(Self(bytes))
    }
}

/// Lowercase hex, the form used in the store, the API and the logs.
impl fmt::Display for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl serde::Serialize for Serial {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

deserialize_from_str!(Serial);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_serials_are_positive_and_sixteen_bytes() {
        for _ in 0..1000 {
            let s = Serial::generate();
            assert_eq!(s.as_bytes()[0] & 0xc0, 0x40);
            assert_eq!(s.to_string().parse::<Serial>().unwrap(), s);
        }
    }
}
