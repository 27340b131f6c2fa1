use std::fmt;
use std::str::FromStr;

use super::time_ordered::time_ordered;

/// The identifier of a key: 24 lowercase hex digits, safe in URLs and SPIFFE paths. The
/// first 44 bits are the millisecond it was made, so that ids key the store's indexes in
/// order (`time_ordered.rs` says why); the other 52 are random, so ids are unguessable and
/// leak nothing about how many keys exist.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct KeyId(String);

/// The error for a string that is not a key id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a key id is 24 lowercase hex digits")]
pub struct KeyIdError;

impl KeyId {
    /// A fresh key id: now, to the millisecond, and 52 random bits.
    pub fn generate() -> Self {
        Self(format!("{:024x}", time_ordered(96, 44)))
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for KeyId {
    type Err = KeyIdError;
    fn from_str(s: &str) -> Result<Self, KeyIdError> {
        if s.len() == 24 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            Ok(Self(s.to_owned()))
        } else {
            Err(KeyIdError)
        }
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

deserialize_from_str!(KeyId);
