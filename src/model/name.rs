use std::fmt;
use std::str::FromStr;

/// Why a tenant or owner name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The name is empty or longer than 63 characters.
    #[error("{kind} must be 1 to 63 characters long")]
    Length {
        /// Which kind of name it was.
        kind: &'static str,
    },
    /// The name has a character outside `a-z 0-9 . _ -`, or does not start with a letter or digit.
    #[error("{kind} may contain only a-z, 0-9, '.', '_' and '-', starting with a letter or digit")]
    Characters {
        /// Which kind of name it was.
        kind: &'static str,
    },
    /// A user reference lacks the `@tenant` part.
    #[error("expected owner@tenant")]
    MissingTenant,
}

/// Names appear in certificate subjects and in SPIFFE URI paths, so they are restricted to
/// characters that need no escaping in either, and compared case-sensitively in lowercase.
fn check(kind: &'static str, s: &str) -> Result<(), NameError> {
    if s.is_empty() || s.len() > 63 {
        return Err(NameError::Length { kind });
    }
    let first_ok = s.as_bytes()[0].is_ascii_lowercase() || s.as_bytes()[0].is_ascii_digit();
    let all_ok = s
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'));
    if !(first_ok && all_ok) {
        return Err(NameError::Characters { kind });
    }
    Ok(())
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The name as a string.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = NameError;
            fn from_str(s: &str) -> Result<Self, NameError> {
                check($kind, s)?;
                Ok(Self(s.to_owned()))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        deserialize_from_str!($name);
    };
}

name_type!(
    /// A tenant: an isolated namespace such as `acme`.
    TenantName,
    "tenant name"
);
name_type!(
    /// The owner of keys inside a tenant: a user (`alice`) or a machine (`build-bot`).
    OwnerName,
    "owner name"
);

/// `owner@tenant`, the way users and token owners are written everywhere.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct UserRef {
    /// The owner part, before the `@`.
    pub owner: OwnerName,
    /// The tenant part, after the `@`.
    pub tenant: TenantName,
}

impl FromStr for UserRef {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, NameError> {
        let (owner, tenant) = s.rsplit_once('@').ok_or(NameError::MissingTenant)?;
        Ok(Self {
            owner: owner.parse()?,
            tenant: tenant.parse()?,
        })
    }
}

impl fmt::Display for UserRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.owner, self.tenant)
    }
}

/// `UserRef("alice@acme")`: in logs and assertions the way it is written everywhere else.
impl fmt::Debug for UserRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UserRef({:?})", self.to_string())
    }
}

/// On the wire as `owner@tenant`, one string.
impl serde::Serialize for UserRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

deserialize_from_str!(UserRef);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ref_parses_owner_and_tenant() {
        let u: UserRef = "alice@acme".parse().unwrap();
        assert_eq!(u.owner.as_str(), "alice");
        assert_eq!(u.tenant.as_str(), "acme");
        assert_eq!(u.to_string(), "alice@acme");
        let json = serde_json::to_value(&u).unwrap();
        assert_eq!(json, "alice@acme");
        assert_eq!(serde_json::from_value::<UserRef>(json).unwrap(), u);
        assert!(serde_json::from_value::<UserRef>("alice".into()).is_err());
    }

    #[test]
    fn names_with_unsafe_characters_are_refused() {
        for bad in ["", "Acme", "a/b", "-x", "a b", "a@b", &"x".repeat(64), "é"] {
            assert!(bad.parse::<TenantName>().is_err(), "{bad:?} accepted");
        }
        assert!("alice".parse::<UserRef>().is_err());
    }
}
