//! The certificate profile of DESIGN.md, a wire format: the SPIFFE identity URI, the subject
//! with its scopes, and the old scopes extension that certificates issued before
//! [`LEGACY_SCOPES_ISSUED_BEFORE`] carry. The signer writes it and the verifier reads it
//! through these functions only, so both always agree.
//!
//! Scopes are carried as one Subject `OU` attribute per scope, sorted (after `CN` and `O`):
//! every X.509 stack parses it, and proxies read it with their standard variables (nginx's
//! `$ssl_client_s_dn`, HAProxy's `ssl_c_s_dn(OU)`). The first profile put them in an
//! extension under a 128-bit OID arc that Go, Botan and RustCrypto refuse to parse; no new
//! certificate carries it, and relying services read it only within the window below.

use time::OffsetDateTime;
use time::macros::datetime;

use super::{KeyId, OwnerName, ScopeSet, TenantName};

/// The old scopes extension's OID, `2.25.195384371966353938652200206769540452565.1`. Read
/// only, on certificates issued before [`LEGACY_SCOPES_ISSUED_BEFORE`]; never written.
pub const LEGACY_SCOPES_OID_STR: &str = "2.25.195384371966353938652200206769540452565.1";

/// The DER content octets of [`LEGACY_SCOPES_OID_STR`] (the OID value without tag and length).
///
/// The UUID arc does not fit in a `u64`, so it is encoded once here, base-128 by hand, and
/// checked against the dotted form in the tests.
pub const LEGACY_SCOPES_OID_DER: &[u8] = &[
    0x69, 0x82, 0xa5, 0xfd, 0xd4, 0xd2, 0x92, 0x91, 0x8a, 0x89, 0xc5, 0xa5, 0x89, 0xd2, 0xf7, 0x83,
    0xf0, 0x99, 0xa1, 0x55, 0x01,
];

/// The cut-over: latchkey releases from this date on carry scopes in `OU` attributes only.
/// The old extension is read only from a certificate that starts before it.
pub const LEGACY_SCOPES_ISSUED_BEFORE: OffsetDateTime = datetime!(2026-12-01 00:00 UTC);

/// The longest a key certificate can live: it never outlives its key, and no key lives longer
/// than 180 days (`authority::MAX_KEY_DAYS`), plus the backdating of its start.
pub const LONGEST_KEY_CERTIFICATE: time::Duration = time::Duration::days(180);

/// The end of the old extension's acceptance: the cut-over plus the longest key certificate
/// lifetime (and [`BACKDATE`]). A certificate carrying the old extension is read through it
/// only if it also ends by then, so after this date no certificate's scopes come from it.
pub const LEGACY_SCOPES_ACCEPTED_UNTIL: OffsetDateTime = datetime!(2027-05-30 00:01 UTC);

/// True when a certificate valid from `not_before` to `not_after` may have its scopes read
/// from the old extension: it starts before the cut-over and ends within the window.
pub fn legacy_scopes_accepted(not_before: OffsetDateTime, not_after: OffsetDateTime) -> bool {
    not_before < LEGACY_SCOPES_ISSUED_BEFORE && not_after <= LEGACY_SCOPES_ACCEPTED_UNTIL
}

/// `userId` (RFC 4519 `uid`, 0.9.2342.19200300.100.1.1): the key id in a key certificate's
/// subject.
pub const USER_ID: &[u64] = &[0, 9, 2342, 19200300, 100, 1, 1];

/// The longest scope name, the upper bound of an `OU` attribute (RFC 5280
/// `ub-organizational-unit-name`); [`super::Scope`] refuses longer ones.
pub const MAX_SCOPE_LEN: usize = 64;

/// The subject of a client certificate: `CN=<common_name>, O=<organization>`, then for a key
/// `UID=<key id>`, then one `OU=<scope>` per scope in sorted order, each a single-valued RDN
/// of a UTF8String. The key id is also in the URI SAN, the canonical identity; it is in the
/// subject too because TLS terminators (nginx's `$ssl_client_s_dn`, HAProxy's
/// `ssl_c_s_dn(UID)`) can pass subject attributes to an upstream but not URI SANs.
pub fn subject_der(
    common_name: &str,
    organization: &str,
    key_id: Option<&str>,
    scopes: &ScopeSet,
) -> Vec<u8> {
    const CN: &[u64] = &[2, 5, 4, 3];
    const O: &[u64] = &[2, 5, 4, 10];
    const OU: &[u64] = &[2, 5, 4, 11];
    let attributes = [(CN, common_name), (O, organization)]
        .into_iter()
        .chain(key_id.map(|id| (USER_ID, id)))
        .chain(scopes.iter().map(|s| (OU, s.as_str())));
    yasna::construct_der(|w| {
        w.write_sequence(|w| {
            for (oid, value) in attributes {
                w.next().write_set(|w| {
                    w.next().write_sequence(|w| {
                        w.next()
                            .write_oid(&yasna::models::ObjectIdentifier::from_slice(oid));
                        w.next().write_utf8_string(value);
                    })
                });
            }
        })
    })
}

/// Replaces the subject of the DER certificate `cert` by `subject` (a DER Name) and signs the
/// new to-be-signed bytes with `sign`, keeping the signature algorithm. Used because rcgen
/// keeps one value per attribute type and so cannot write one `OU` per scope. The subject
/// found must be `expected` (what rcgen was asked to write), so nothing else is ever replaced.
#[cfg(any(feature = "server", test))]
pub(crate) fn replace_subject<E>(
    cert: &[u8],
    expected: &[u8],
    subject: &[u8],
    sign: impl FnOnce(&[u8]) -> Result<Vec<u8>, E>,
) -> Result<Option<Vec<u8>>, E> {
    let Ok((tbs, algorithm)) = yasna::parse_der(cert, |r| {
        r.read_sequence(|r| {
            let tbs = r.next().read_der()?;
            let algorithm = r.next().read_der()?;
            r.next().read_bitvec_bytes()?;
            Ok((tbs, algorithm))
        })
    }) else {
        return Ok(None);
    };
    // version, serial, signature, issuer, validity, subject, subjectPublicKeyInfo, extensions
    let Ok(mut fields) = yasna::parse_der(&tbs, |r| {
        r.read_sequence(|r| {
            (0..8)
                .map(|_| r.next().read_der())
                .collect::<Result<Vec<_>, _>>()
        })
    }) else {
        return Ok(None);
    };
    if fields[5] != expected {
        return Ok(None);
    }
    fields[5] = subject.to_vec();
    let tbs = yasna::construct_der(|w| {
        w.write_sequence(|w| {
            for field in &fields {
                w.next().write_der(field);
            }
        })
    });
    let signature = sign(&tbs)?;
    Ok(Some(yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_der(&tbs);
            w.next().write_der(&algorithm);
            w.next().write_bitvec_bytes(&signature, signature.len() * 8);
        })
    })))
}

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

/// The value of the old scopes extension: `SEQUENCE OF UTF8String`, sorted and
/// de-duplicated (a [`ScopeSet`] is both). Never written into a certificate any more: kept
/// to read the old extension exactly, and for tests that make old-profile certificates.
pub fn encode_legacy_scopes(scopes: &ScopeSet) -> Vec<u8> {
    yasna::construct_der(|w| {
        w.write_sequence_of(|w| {
            for scope in scopes.iter() {
                w.next().write_utf8_string(scope.as_str());
            }
        })
    })
}

/// Reads the value of the old scopes extension, refusing anything but a DER `SEQUENCE OF
/// UTF8String` of valid, sorted, distinct scopes.
pub fn decode_legacy_scopes(der: &[u8]) -> Option<ScopeSet> {
    let items: Vec<String> =
        yasna::parse_der(der, |r| r.collect_sequence_of(|r| r.read_utf8string())).ok()?;
    let set = ScopeSet::parse(&items).ok()?;
    // Re-encoding must give the same bytes: this refuses unsorted lists and non-DER forms.
    (encode_legacy_scopes(&set) == der).then_some(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_oid_der_matches_the_dotted_form() {
        // Encode the dotted form independently; the UUID arc fits in a u128.
        let arcs: Vec<u128> = LEGACY_SCOPES_OID_STR
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
        assert_eq!(der, LEGACY_SCOPES_OID_DER);
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
        let der = encode_legacy_scopes(&set);
        assert_eq!(decode_legacy_scopes(&der), Some(set));
        let unsorted = yasna::construct_der(|w| {
            w.write_sequence_of(|w| {
                w.next().write_utf8_string("write:events");
                w.next().write_utf8_string("read:metrics");
            })
        });
        assert_eq!(decode_legacy_scopes(&unsorted), None);
    }

    #[test]
    fn the_legacy_window_is_the_cut_over_plus_the_longest_key_certificate() {
        assert_eq!(
            LEGACY_SCOPES_ACCEPTED_UNTIL,
            LEGACY_SCOPES_ISSUED_BEFORE + LONGEST_KEY_CERTIFICATE + BACKDATE
        );
        let before = LEGACY_SCOPES_ISSUED_BEFORE - time::Duration::days(1);
        assert!(legacy_scopes_accepted(
            before,
            before + time::Duration::days(1)
        ));
        assert!(legacy_scopes_accepted(before, LEGACY_SCOPES_ACCEPTED_UNTIL));
        // Issued at or after the cut-over: the old extension is not read.
        assert!(!legacy_scopes_accepted(
            LEGACY_SCOPES_ISSUED_BEFORE,
            LEGACY_SCOPES_ISSUED_BEFORE + time::Duration::days(1)
        ));
        // Issued before it but living past the window: not read either.
        assert!(!legacy_scopes_accepted(
            before,
            LEGACY_SCOPES_ACCEPTED_UNTIL + time::Duration::seconds(1)
        ));
    }

    #[cfg(feature = "server")]
    #[test]
    fn the_longest_key_certificate_is_the_longest_key() {
        assert_eq!(
            LONGEST_KEY_CERTIFICATE,
            time::Duration::days(crate::authority::MAX_KEY_DAYS)
        );
    }

    #[test]
    fn the_subject_carries_one_ou_per_scope_in_order() {
        let scopes = ScopeSet::parse(["write:events", "read:metrics"]).unwrap();
        let der = subject_der("alice", "acme", Some("0123abcd"), &scopes);
        let (_, name) =
            <x509_parser::x509::X509Name as x509_parser::prelude::FromDer<_>>::from_der(&der)
                .unwrap();
        assert_eq!(
            name.to_string(),
            "CN=alice, O=acme, uid=0123abcd, OU=read:metrics, OU=write:events"
        );
        let ous: Vec<&str> = name
            .iter_organizational_unit()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert_eq!(ous, ["read:metrics", "write:events"]);
        // Without scopes, the subject is exactly what rcgen writes for CN and O.
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CommonName, "alice");
        dn.push(rcgen::DnType::OrganizationName, "acme");
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = dn;
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let (_, parsed) = x509_parser::parse_x509_certificate(cert.der()).unwrap();
        assert_eq!(
            parsed.subject().as_raw(),
            subject_der("alice", "acme", None, &ScopeSet::default())
        );
    }
}
