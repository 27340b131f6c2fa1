//! The certificate profile of DESIGN.md, a wire format: the SPIFFE identity URI, the subject,
//! and the scopes extension. The signer writes it and the verifier reads it through these
//! functions only, so both always agree.

use super::{KeyId, OwnerName, ScopeSet, TenantName};

/// The scopes extension's OID, `2.25.195384371966353938652200206769540452565.1`: a UUID-derived
/// OID (ITU-T X.667), so it needs no registration. Its arcs, as rcgen takes them, are the
/// decimal UUID split into 64-bit pieces, which it cannot be: see [`SCOPES_OID_DER`].
pub const SCOPES_OID_STR: &str = "2.25.195384371966353938652200206769540452565.1";

/// The DER content octets of [`SCOPES_OID_STR`] (the OID value without tag and length).
///
/// The UUID arc does not fit in a `u64`, so it is encoded once here, base-128 by hand, and
/// checked against the dotted form in the tests.
pub const SCOPES_OID_DER: &[u8] = &[
    0x69, 0x82, 0xa5, 0xfd, 0xd4, 0xd2, 0x92, 0x91, 0x8a, 0x89, 0xc5, 0xa5, 0x89, 0xd2, 0xf7, 0x83,
    0xf0, 0x99, 0xa1, 0x55, 0x01,
];

/// Certificates (and CRLs) start this long before they are issued, so a client whose clock
/// runs slightly behind does not see them as not yet valid. A certificate's useful lifetime
/// is therefore `not_after - (not_before + BACKDATE)`.
pub const BACKDATE: time::Duration = time::Duration::minutes(1);

/// The default SPIFFE trust domain, set at initialization.
pub const DEFAULT_TRUST_DOMAIN: &str = "latchkey.internal";

/// The organization name in administrator certificates. Tenant names cannot contain
/// a space, so no tenant can ever be mistaken for it.
pub const ADMIN_ORGANIZATION: &str = "latchkey admin";

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

/// The value of the scopes extension: `SEQUENCE OF UTF8String`, sorted and de-duplicated
/// (a [`ScopeSet`] is both).
pub fn encode_scopes(scopes: &ScopeSet) -> Vec<u8> {
    yasna::construct_der(|w| {
        w.write_sequence_of(|w| {
            for scope in scopes.iter() {
                w.next().write_utf8_string(scope.as_str());
            }
        })
    })
}

/// Reads the value of the scopes extension, refusing anything but a DER `SEQUENCE OF
/// UTF8String` of valid, sorted, distinct scopes.
pub fn decode_scopes(der: &[u8]) -> Option<ScopeSet> {
    let items: Vec<String> =
        yasna::parse_der(der, |r| r.collect_sequence_of(|r| r.read_utf8string())).ok()?;
    let set = ScopeSet::parse(&items).ok()?;
    // Re-encoding must give the same bytes: this refuses unsorted lists and non-DER forms.
    (encode_scopes(&set) == der).then_some(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_oid_der_matches_the_dotted_form() {
        // Encode the dotted form independently; the UUID arc fits in a u128.
        let arcs: Vec<u128> = SCOPES_OID_STR
            .split('.')
            .map(|a| a.parse().unwrap())
            .collect();
        let mut der = vec![u8::try_from(arcs[0] * 40 + arcs[1]).unwrap()];
        for &arc in &arcs[2..] {
            let mut groups = vec![(arc & 0x7f) as u8];
            let mut rest = arc >> 7;
            while rest > 0 {
                groups.push(0x80 | (rest & 0x7f) as u8);
                rest >>= 7;
            }
            der.extend(groups.iter().rev());
        }
        assert_eq!(der, SCOPES_OID_DER);
    }

    #[test]
    fn spiffe_ids_round_trip_and_refuse_other_domains() {
        let id = SpiffeId::Key {
            tenant: "acme".parse().unwrap(),
            key_id: KeyId::random(),
        };
        let uri = id.to_uri("latchkey.internal");
        assert_eq!(SpiffeId::parse(&uri, "latchkey.internal"), Some(id));
        assert_eq!(SpiffeId::parse(&uri, "latchkey.internal.evil"), None);
        assert_eq!(SpiffeId::parse(&uri, "other.internal"), None);
        assert_eq!(
            SpiffeId::parse(
                "spiffe://latchkey.internal/tenant/acme/key/x/y",
                "latchkey.internal"
            ),
            None
        );
    }

    #[test]
    fn scopes_extension_round_trips_and_refuses_unsorted_lists() {
        let set = ScopeSet::parse(["write:events", "read:metrics"]).unwrap();
        let der = encode_scopes(&set);
        assert_eq!(decode_scopes(&der), Some(set));
        let unsorted = yasna::construct_der(|w| {
            w.write_sequence_of(|w| {
                w.next().write_utf8_string("write:events");
                w.next().write_utf8_string("read:metrics");
            })
        });
        assert_eq!(decode_scopes(&unsorted), None);
    }
}
