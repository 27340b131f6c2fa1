use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

/// A permission carried in a key, such as `read:metrics` (convention: `verb:resource`).
///
/// Scopes are matched exactly: there are no wildcards, so `*` is not a valid character.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct Scope(String);

/// Why a scope or a list of scopes was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    /// The scope has a character outside `a-z 0-9 : . _ -`, is empty, or is too long.
    #[error(
        "invalid scope {0:?}: 1 to 64 characters of a-z, 0-9, ':', '.', '_', '-', starting with a letter or digit (no wildcards)"
    )]
    Invalid(String),
    /// The same scope is listed twice.
    #[error("scope {0:?} is listed twice")]
    Duplicate(String),
}

/// The longest scope name: a scope travels as one subject `OU`, and RFC 5280 bounds those
/// at 64 characters (`ub-organizational-unit-name`).
pub const MAX_SCOPE_LEN: usize = 64;

impl Scope {
    /// True when `s` is a valid scope: 1 to 64 characters of `a-z 0-9 : . _ -`, starting
    /// with a letter or digit. A `const fn`, so that `tls::axum::scope!` checks its literal
    /// when the service compiles.
    pub const fn is_valid(s: &str) -> bool {
        let bytes = s.as_bytes();
        if bytes.is_empty() || bytes.len() > MAX_SCOPE_LEN {
            return false;
        }
        if !bytes[0].is_ascii_alphanumeric() {
            return false;
        }
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            if !(b.is_ascii_lowercase()
                || b.is_ascii_digit()
                || matches!(b, b':' | b'.' | b'_' | b'-'))
            {
                return false;
            }
            i += 1;
        }
        true
    }

    /// The scope as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Scope {
    type Err = ScopeError;
    fn from_str(s: &str) -> Result<Self, ScopeError> {
        if Self::is_valid(s) {
            Ok(Self(s.to_owned()))
        } else {
            Err(ScopeError::Invalid(s.to_owned()))
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

deserialize_from_str!(Scope);

/// A sorted set of scopes: the order in which they are encoded in certificates and stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct ScopeSet(BTreeSet<Scope>);

impl ScopeSet {
    /// Parses a list of scope strings, refusing invalid and repeated ones.
    pub fn parse<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> Result<Self, ScopeError> {
        let mut set = BTreeSet::new();
        for item in items {
            let scope: Scope = item.as_ref().parse()?;
            if !set.insert(scope) {
                return Err(ScopeError::Duplicate(item.as_ref().to_owned()));
            }
        }
        Ok(Self(set))
    }

    /// Parses the space-separated form used in the store and the comma-separated form of the CLI.
    pub fn parse_list(list: &str) -> Result<Self, ScopeError> {
        Self::parse(
            list.split([' ', ','])
                .map(str::trim)
                .filter(|s| !s.is_empty()),
        )
    }

    /// The scopes of `self` that are not in `granted`.
    pub fn not_in(&self, granted: &ScopeSet) -> Vec<Scope> {
        self.0.difference(&granted.0).cloned().collect()
    }

    /// True when no scope is in the set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// True when `scope` is in the set.
    pub fn contains(&self, scope: &Scope) -> bool {
        self.0.contains(scope)
    }

    /// The scopes in sorted order.
    pub fn iter(&self) -> impl Iterator<Item = &Scope> {
        self.0.iter()
    }

    /// The space-separated form stored in the database.
    pub fn to_stored(&self) -> String {
        self.iter().map(Scope::as_str).collect::<Vec<_>>().join(" ")
    }
}

impl<'de> serde::Deserialize<'de> for ScopeSet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let items = Vec::<String>::deserialize(d)?;
        Self::parse(items).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_sets_are_sorted_and_refuse_duplicates_and_wildcards() {
        let set = ScopeSet::parse(["write:events", "read:metrics"]).unwrap();
        assert_eq!(set.to_stored(), "read:metrics write:events");
        assert_eq!(
            ScopeSet::parse_list("read:metrics,write:events").unwrap(),
            set
        );
        assert!(matches!(
            ScopeSet::parse(["a:b", "a:b"]),
            Err(ScopeError::Duplicate(_))
        ));
        for bad in ["*", "read:*", "", "Read:x", "a b"] {
            assert!(bad.parse::<Scope>().is_err(), "{bad:?} accepted");
        }
        // On the wire a set is the sorted list of its names, and a list that is not a set
        // does not deserialize.
        let json = serde_json::to_value(&set).unwrap();
        assert_eq!(json, serde_json::json!(["read:metrics", "write:events"]));
        assert_eq!(serde_json::from_value::<ScopeSet>(json).unwrap(), set);
        assert!(serde_json::from_value::<ScopeSet>(serde_json::json!(["a:b", "a:b"])).is_err());
        assert!(serde_json::from_value::<ScopeSet>(serde_json::json!(["read:*"])).is_err());
    }
}
