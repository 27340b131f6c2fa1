use std::fmt;
use std::str::FromStr;

/// Why a key was revoked: the RFC 5280 reason codes that apply to end-entity keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RevocationReason {
    /// No reason given (code 0).
    Unspecified,
    /// The private key was, or may have been, exposed (code 1).
    KeyCompromise,
    /// The holder's affiliation changed (code 3).
    AffiliationChanged,
    /// Replaced by another key (code 4).
    Superseded,
    /// No longer needed (code 5).
    CessationOfOperation,
}

/// The error for an unknown reason name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown revocation reason {0:?}: use key_compromise, superseded, cessation_of_operation, affiliation_changed or unspecified"
)]
pub struct ReasonError(pub String);

impl RevocationReason {
    /// The RFC 5280 reason code.
    pub fn code(self) -> u8 {
        match self {
            Self::Unspecified => 0,
            Self::KeyCompromise => 1,
            Self::AffiliationChanged => 3,
            Self::Superseded => 4,
            Self::CessationOfOperation => 5,
        }
    }

    /// The API's name for the reason.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unspecified => "unspecified",
            Self::KeyCompromise => "key_compromise",
            Self::AffiliationChanged => "affiliation_changed",
            Self::Superseded => "superseded",
            Self::CessationOfOperation => "cessation_of_operation",
        }
    }
}

impl FromStr for RevocationReason {
    type Err = ReasonError;
    fn from_str(s: &str) -> Result<Self, ReasonError> {
        Ok(match s {
            "unspecified" => Self::Unspecified,
            "key_compromise" => Self::KeyCompromise,
            "affiliation_changed" => Self::AffiliationChanged,
            "superseded" => Self::Superseded,
            "cessation_of_operation" => Self::CessationOfOperation,
            other => return Err(ReasonError(other.to_owned())),
        })
    }
}

impl fmt::Display for RevocationReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// On the wire as its API name (`key_compromise`), the form [`RevocationReason::as_str`] gives.
impl serde::Serialize for RevocationReason {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

deserialize_from_str!(RevocationReason);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_travel_as_their_api_names() {
        for reason in [
            RevocationReason::Unspecified,
            RevocationReason::KeyCompromise,
            RevocationReason::AffiliationChanged,
            RevocationReason::Superseded,
            RevocationReason::CessationOfOperation,
        ] {
            let json = serde_json::to_value(reason).unwrap();
            assert_eq!(json, reason.as_str());
            assert_eq!(
                serde_json::from_value::<RevocationReason>(json).unwrap(),
                reason
            );
        }
        assert!(serde_json::from_value::<RevocationReason>("because".into()).is_err());
    }
}
