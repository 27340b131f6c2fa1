use std::fmt;
use std::str::FromStr;

/// A certificate serial number: 16 bytes from the OS CSPRNG.
///
/// The top bit is cleared and the next one set, so the DER INTEGER is positive, needs no
/// leading zero and is always exactly these 16 bytes: the store, the CRL and
/// `x509-parser`'s `raw_serial()` all see the same value. That leaves 126 random bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Serial([u8; 16]);

/// The error for bytes or text that are not a latchkey serial.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a serial is 16 bytes (32 lowercase hex digits)")]
pub struct SerialError;

impl Serial {
    /// A fresh random serial.
    pub fn random() -> Self {
        let mut bytes: [u8; 16] = crate::random_bytes();
        bytes[0] = (bytes[0] & 0x7f) | 0x40;
        Self(bytes)
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
    fn random_serials_are_positive_and_sixteen_bytes() {
        for _ in 0..1000 {
            let s = Serial::random();
            assert_eq!(s.as_bytes()[0] & 0xc0, 0x40);
            assert_eq!(s.to_string().parse::<Serial>().unwrap(), s);
        }
    }
}
