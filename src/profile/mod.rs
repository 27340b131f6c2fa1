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
//!
//! One module, one file per idea: [`spiffe`] (the URI SAN), [`subject`] (the subject the
//! signer writes), [`legacy`] (the old scopes extension), `read` (what a certificate says,
//! read back), [`Identity`] (what a verified key certificate proves) and [`crl`] (what a
//! CRL says). No rustls here: the CA, the relying service and the tools all link it.

pub mod crl;
#[cfg(any(feature = "server", feature = "test-util"))]
pub mod danger;
mod identity;
pub mod legacy;
pub(crate) mod read;
pub mod spiffe;
pub mod subject;

pub use crl::{CrlError, RevocationSet};
pub use identity::Identity;
pub use legacy::*;
pub use read::IdentityError;
#[cfg(feature = "server")]
pub(crate) use read::PeerIdentity;
pub use spiffe::{SpiffeId, valid_trust_domain};
#[cfg(any(feature = "server", test))]
pub(crate) use subject::replace_subject;
pub use subject::subject_der;

/// The subject key identifier of a parsed certificate, if it has one: how the CA's
/// certificates and CRLs name the key that signed them.
pub fn subject_key_identifier(
    certificate: &x509_parser::certificate::X509Certificate<'_>,
) -> Option<Vec<u8>> {
    certificate
        .extensions()
        .iter()
        .find_map(|ext| match ext.parsed_extension() {
            x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(ski) => {
                Some(ski.0.to_vec())
            }
            _ => None,
        })
}

/// `userId` (RFC 4519 `uid`, 0.9.2342.19200300.100.1.1): the key id in a key certificate's
/// subject.
pub const USER_ID: &[u64] = &[0, 9, 2342, 19200300, 100, 1, 1];

/// The longest scope name, the upper bound of an `OU` attribute (RFC 5280
/// `ub-organizational-unit-name`); [`crate::model::Scope`] refuses longer ones.
pub use crate::model::MAX_SCOPE_LEN;

/// Certificates (and CRLs) start this long before they are issued, so a client whose clock
/// runs slightly behind does not see them as not yet valid. A certificate's useful lifetime
/// is therefore `not_after - (not_before + BACKDATE)`.
pub const BACKDATE: time::Duration = time::Duration::minutes(1);

/// The default SPIFFE trust domain, set at initialization.
pub const DEFAULT_TRUST_DOMAIN: &str = "latchkey.internal";

/// The organization name in administrator certificates. Tenant names cannot contain
/// a space, so no tenant can ever be mistaken for it.
pub const ADMIN_ORGANIZATION: &str = "latchkey admin";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{KeyId, ScopeSet};

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
            key_id: KeyId::generate(),
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
