//! The SPIFFE identity URI in a latchkey certificate's SAN.

use crate::model::{KeyId, OwnerName, TenantName};

/// The identity a latchkey certificate's URI SAN names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpiffeId {
    /// `spiffe://<trust-domain>/tenant/<tenant>/key/<key-id>`: an API key.
    Key {
        /// The tenant the key belongs to.
        tenant: TenantName,
        /// The key's id.
        key_id: KeyId,
    },
    /// `spiffe://<trust-domain>/admin/<name>`: an administrator of the whole CA.
    Admin {
        /// The administrator's name.
        name: OwnerName,
    },
}

impl SpiffeId {
    /// The URI for this identity in `trust_domain`.
    pub fn to_uri(&self, trust_domain: &str) -> String {
        match self {
            SpiffeId::Key { tenant, key_id } => {
                format!("spiffe://{trust_domain}/tenant/{tenant}/key/{key_id}")
            }
            SpiffeId::Admin { name } => format!("spiffe://{trust_domain}/admin/{name}"),
        }
    }

    /// Parses a URI SAN in whatever trust domain it names; returns the domain too. For
    /// reading one's own certificate; a verifier must use [`SpiffeId::parse`] with its domain.
    pub fn parse_any_domain(uri: &str) -> Option<(String, Self)> {
        let domain = uri.strip_prefix("spiffe://")?.split('/').next()?;
        valid_trust_domain(domain).then_some(())?;
        Some((domain.to_owned(), Self::parse(uri, domain)?))
    }

    /// Parses a URI SAN, accepting only the given trust domain and the two exact path shapes.
    pub fn parse(uri: &str, trust_domain: &str) -> Option<Self> {
        let rest = uri.strip_prefix("spiffe://")?.strip_prefix(trust_domain)?;
        let parts: Vec<&str> = rest.strip_prefix('/')?.split('/').collect();
        match parts.as_slice() {
            ["tenant", tenant, "key", key_id] => Some(SpiffeId::Key {
                tenant: tenant.parse().ok()?,
                key_id: key_id.parse().ok()?,
            }),
            ["admin", name] => Some(SpiffeId::Admin {
                name: name.parse().ok()?,
            }),
            _ => None,
        }
    }
}

/// Checks a trust domain: a DNS-like name of lowercase letters, digits, dots and dashes.
pub fn valid_trust_domain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-'))
        && !s.starts_with(['.', '-'])
}
