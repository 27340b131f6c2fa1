//! Reading a latchkey certificate back: what it says about its holder, from the certificate
//! alone. The chain and revocation are the verifier's; this is the profile's half.

use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{GeneralName, ParsedExtension};

use super::{self as profile, SpiffeId};
use crate::model::{ScopeSet, Serial};

/// Why a certificate does not carry a latchkey identity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// Not a parseable X.509 certificate.
    #[error("not a valid certificate")]
    Malformed,
    /// The serial is not a 16-byte latchkey serial.
    #[error("serial is not a latchkey serial")]
    Serial,
    /// Not exactly one URI SAN in this trust domain with a latchkey path.
    #[error("certificate must carry exactly one latchkey URI SAN")]
    SpiffeId,
    /// The subject's CN and O do not match the SPIFFE id.
    #[error("subject does not match the SPIFFE id")]
    SubjectMismatch,
    /// The extended key usage lacks clientAuth.
    #[error("certificate is not for client authentication")]
    ExtendedKeyUsage,
    /// A key certificate whose scopes are malformed: an `OU` that is no valid scope, `OU`s
    /// out of order or repeated, or a malformed or repeated old scopes extension.
    #[error("malformed scopes")]
    Scopes,
}

/// What a latchkey client certificate says about its holder, read from the certificate alone.
/// The certificate's chain and revocation status must be checked separately.
#[derive(Debug, Clone)]
pub struct PeerIdentity {
    /// The SPIFFE id: a key (tenant and key id) or an administrator.
    pub id: SpiffeId,
    /// The subject's CN: the key's owner, or the administrator's name.
    pub owner: String,
    /// The scopes of a key certificate; empty for an administrator.
    pub scopes: ScopeSet,
    /// The serial.
    pub serial: Serial,
    /// End of validity.
    pub not_after: OffsetDateTime,
}

impl PeerIdentity {
    /// Reads the identity from a DER certificate issued in `trust_domain`.
    pub fn from_der(der: &[u8], trust_domain: &str) -> Result<Self, IdentityError> {
        let (rest, cert) =
            x509_parser::parse_x509_certificate(der).map_err(|_| IdentityError::Malformed)?;
        if !rest.is_empty() {
            return Err(IdentityError::Malformed);
        }
        Self::from_certificate(&cert, trust_domain)
    }

    /// Reads the identity from a parsed certificate.
    pub fn from_certificate(
        cert: &X509Certificate<'_>,
        trust_domain: &str,
    ) -> Result<Self, IdentityError> {
        let serial = Serial::from_slice(cert.raw_serial()).map_err(|_| IdentityError::Serial)?;
        let mut uris = Vec::new();
        let mut legacy_scopes = None;
        let mut client_auth = false;
        for ext in cert.extensions() {
            match ext.parsed_extension() {
                ParsedExtension::ExtendedKeyUsage(eku) => client_auth = eku.client_auth,
                ParsedExtension::SubjectAlternativeName(san) => {
                    for name in &san.general_names {
                        if let GeneralName::URI(uri) = name {
                            uris.push(*uri);
                        }
                    }
                }
                _ if ext.oid.as_bytes() == profile::LEGACY_SCOPES_OID_DER => {
                    if legacy_scopes.is_some() {
                        return Err(IdentityError::Scopes);
                    }
                    legacy_scopes = Some(ext.value);
                }
                _ => {}
            }
        }
        if !client_auth {
            return Err(IdentityError::ExtendedKeyUsage);
        }
        let [uri] = uris.as_slice() else {
            return Err(IdentityError::SpiffeId);
        };
        let id = SpiffeId::parse(uri, trust_domain).ok_or(IdentityError::SpiffeId)?;

        fn single<'a>(
            mut it: impl Iterator<Item = &'a x509_parser::x509::AttributeTypeAndValue<'a>>,
        ) -> Option<String> {
            let value = it.next()?.as_str().ok()?.to_owned();
            it.next().is_none().then_some(value)
        }
        let subject = cert.subject();
        let cn = single(subject.iter_common_name()).ok_or(IdentityError::SubjectMismatch)?;
        let o = single(subject.iter_organization()).ok_or(IdentityError::SubjectMismatch)?;
        let uids = subject
            .iter_by_oid(&x509_parser::oid_registry::OID_USERID)
            .map(|uid| uid.as_str().map_err(|_| IdentityError::SubjectMismatch))
            .collect::<Result<Vec<&str>, _>>()?;
        let ous = subject
            .iter_organizational_unit()
            .map(|ou| ou.as_str().map_err(|_| IdentityError::Scopes))
            .collect::<Result<Vec<&str>, _>>()?;
        let scopes = match &id {
            SpiffeId::Key { tenant, key_id } => {
                // The key id in the subject, where a proxy reads it, must be the URI's
                // (certificates issued before it was added have none).
                let uid_agrees = match uids.as_slice() {
                    [] => true,
                    [uid] => *uid == key_id.as_str(),
                    _ => false,
                };
                if o != tenant.as_str()
                    || cn.parse::<crate::model::OwnerName>().is_err()
                    || !uid_agrees
                {
                    return Err(IdentityError::SubjectMismatch);
                }
                let validity = cert.validity();
                scopes_of(
                    &ous,
                    legacy_scopes,
                    validity.not_before.to_datetime(),
                    validity.not_after.to_datetime(),
                )?
            }
            SpiffeId::Admin { name } => {
                if o != profile::ADMIN_ORGANIZATION
                    || cn != name.as_str()
                    || !uids.is_empty()
                    || !ous.is_empty()
                    || legacy_scopes.is_some()
                {
                    return Err(IdentityError::SubjectMismatch);
                }
                ScopeSet::default()
            }
        };
        Ok(Self {
            id,
            owner: cn,
            scopes,
            serial,
            not_after: cert.validity().not_after.to_datetime(),
        })
    }
}

/// The scopes of a key certificate, from its subject's `OU` values (`ous`, in certificate
/// order) and the value of the old scopes extension, if it has one.
///
/// The `OU`s are the scopes, and they take precedence: a certificate with any `OU` has
/// exactly those scopes, whatever an old extension says, so a relying service reads what a
/// proxy reading the subject sees. Only a certificate with no `OU` that starts before the
/// cut-over and ends within the window ([`profile::legacy_scopes_accepted`]) has its scopes
/// read from the old extension; outside it the extension is ignored and the key has no
/// scopes (it is refused wherever a scope is required, never given one).
fn scopes_of(
    ous: &[&str],
    legacy: Option<&[u8]>,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<ScopeSet, IdentityError> {
    if ous.is_empty()
        && let Some(value) = legacy
        && profile::legacy_scopes_accepted(not_before, not_after)
    {
        return profile::decode_legacy_scopes(value).ok_or(IdentityError::Scopes);
    }
    // Sorted and distinct, as the CA writes them: any other order is not a latchkey subject.
    if ous.windows(2).any(|w| w[0] >= w[1]) {
        return Err(IdentityError::Scopes);
    }
    ScopeSet::parse(ous).map_err(|_| IdentityError::Scopes)
}

#[cfg(test)]
pub(crate) mod tests {
    //! Certificates built with rcgen, field by field, so that each test can break exactly one
    //! part of the profile and keep the rest. `key_profile` mirrors `ca::Signer`'s key
    //! certificates (`tests/integration/verifier.rs` has its own copy, signed by a real CA).

    use rcgen::{
        BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType,
        ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
    };
    use rustls_pki_types::CertificateDer;
    use time::Duration;

    use super::*;
    use crate::model::KeyId;
    use crate::profile::Identity;

    pub(crate) const TRUST_DOMAIN: &str = "latchkey.internal";

    /// A stand-in for the old scopes OID, whose UUID arc rcgen cannot take: two `u64::MAX`
    /// arcs encode to as many bytes as the real OID, so swapping them changes no DER length.
    /// Only tests make certificates with the old extension: the CA no longer does.
    const STAND_IN_ARCS: &[u64] = &[2, 25, u64::MAX, u64::MAX];

    /// Replaces every stand-in OID by the old scopes OID.
    fn swap_in_scopes_oid(der: &mut [u8]) {
        let tlv = yasna::construct_der(|w| {
            w.write_oid(&yasna::models::ObjectIdentifier::from_slice(STAND_IN_ARCS))
        });
        assert_eq!(tlv.len() - 2, profile::LEGACY_SCOPES_OID_DER.len());
        while let Some(at) = der.windows(tlv.len()).position(|w| w == tlv) {
            der[at + 2..at + tlv.len()].copy_from_slice(profile::LEGACY_SCOPES_OID_DER);
        }
    }

    /// An issuing key that signs the to-be-signed bytes with the old scopes OID swapped in.
    pub(crate) struct ScopesOidKey(pub(crate) KeyPair);

    impl rcgen::PublicKeyData for ScopesOidKey {
        fn der_bytes(&self) -> &[u8] {
            self.0.der_bytes()
        }

        fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
            rcgen::PublicKeyData::algorithm(&self.0)
        }
    }

    impl rcgen::SigningKey for ScopesOidKey {
        fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
            let mut tbs = msg.to_vec();
            swap_in_scopes_oid(&mut tbs);
            rcgen::SigningKey::sign(&self.0, &tbs)
        }
    }

    /// The old scopes extension carrying `scopes`, as certificates issued before the
    /// cut-over have it.
    pub(crate) fn legacy_extension(scopes: &[&str]) -> CustomExtension {
        CustomExtension::from_oid_content(
            STAND_IN_ARCS,
            profile::encode_legacy_scopes(&ScopeSet::parse(scopes).unwrap()),
        )
    }

    /// The key profile as issued before the cut-over: `CN, O` only, the scopes in the old
    /// extension, valid from a day before the cut-over for two days.
    pub(crate) fn legacy_profile(scopes: &[&str]) -> CertificateParams {
        let mut params = key_profile();
        params.distinguished_name = subject("alice", "acme");
        params.custom_extensions = vec![legacy_extension(scopes)];
        params.not_before = profile::LEGACY_SCOPES_ISSUED_BEFORE - Duration::days(1);
        params.not_after = profile::LEGACY_SCOPES_ISSUED_BEFORE + Duration::days(1);
        params
    }

    pub(crate) use crate::profile::subject::name_der;

    pub(crate) const CN: &[u64] = &[2, 5, 4, 3];
    pub(crate) const O: &[u64] = &[2, 5, 4, 10];
    pub(crate) const OU: &[u64] = &[2, 5, 4, 11];

    /// Signs `params`, then puts `subject` (a DER Name) in place of the subject rcgen wrote
    /// and signs again: rcgen cannot write two `OU`s.
    pub(crate) fn sign_with_subject(
        params: CertificateParams,
        issuer: &Issuer<'_, ScopesOidKey>,
        subject: &[u8],
    ) -> CertificateDer<'static> {
        let der = sign(params, issuer);
        let (_, parsed) = x509_parser::parse_x509_certificate(&der).unwrap();
        let written = parsed.subject().as_raw().to_vec();
        let replaced = profile::replace_subject(&der, &written, subject, |tbs| {
            rcgen::SigningKey::sign(issuer.key(), tbs)
        })
        .unwrap()
        .expect("the subject is where rcgen wrote it");
        CertificateDer::from(replaced)
    }

    /// The URI SAN of a key of `tenant` in `trust_domain`.
    pub(crate) fn key_uri(trust_domain: &str, tenant: &str) -> SanType {
        let id = SpiffeId::Key {
            tenant: tenant.parse().unwrap(),
            key_id: KeyId::generate(),
        };
        SanType::URI(id.to_uri(trust_domain).try_into().unwrap())
    }

    /// A subject `CN=<cn>, O=<o>`.
    pub(crate) fn subject(cn: &str, o: &str) -> DistinguishedName {
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, cn);
        dn.push(DnType::OrganizationName, o);
        dn
    }

    /// The full key certificate profile of DESIGN.md for `alice` of tenant `acme`, scope
    /// `read:metrics` (`OU=read:metrics`), valid from a minute ago for an hour.
    pub(crate) fn key_profile() -> CertificateParams {
        let now = OffsetDateTime::now_utc();
        let mut params = CertificateParams::default();
        params.distinguished_name = subject("alice", "acme");
        params
            .distinguished_name
            .push(DnType::OrganizationalUnitName, "read:metrics");
        params.subject_alt_names = vec![key_uri(TRUST_DOMAIN, "acme")];
        params.serial_number = Some(SerialNumber::from(Serial::generate().as_bytes().to_vec()));
        params.not_before = now - Duration::minutes(1);
        params.not_after = now + Duration::hours(1);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        params
    }

    /// Signs `params` for a new key pair.
    pub(crate) fn sign(
        params: CertificateParams,
        issuer: &Issuer<'_, ScopesOidKey>,
    ) -> CertificateDer<'static> {
        let key = KeyPair::generate().unwrap();
        let mut der = params.signed_by(&key, issuer).unwrap().der().to_vec();
        swap_in_scopes_oid(&mut der);
        CertificateDer::from(der)
    }

    /// A throwaway issuer: identity parsing does not look at the signature.
    fn issuer() -> Issuer<'static, ScopesOidKey> {
        let mut params = CertificateParams::default();
        params.distinguished_name = subject("test issuing CA", "latchkey");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        Issuer::new(params, ScopesOidKey(KeyPair::generate().unwrap()))
    }

    /// Signs the key profile changed by `change`, and reads its identity.
    fn identity_of(change: impl FnOnce(&mut CertificateParams)) -> Result<Identity, IdentityError> {
        let mut params = key_profile();
        change(&mut params);
        Identity::from_der(&sign(params, &issuer()), TRUST_DOMAIN)
    }

    #[test]
    fn identity_of_the_key_profile_is_read_whole() {
        let identity = identity_of(|_| {}).unwrap();
        assert_eq!(identity.tenant().as_str(), "acme");
        assert_eq!(identity.owner().as_str(), "alice");
        assert!(identity.has_scope(&"read:metrics".parse().unwrap()));
        assert_eq!(identity.scopes().to_stored(), "read:metrics");
    }

    /// The scopes of the key profile with `subject` (a DER Name) in place of its own.
    fn scopes_with_subject(
        params: CertificateParams,
        subject: &[u8],
    ) -> Result<ScopeSet, IdentityError> {
        let der = sign_with_subject(params, &issuer(), subject);
        Identity::from_der(&der, TRUST_DOMAIN).map(|i| i.scopes().clone())
    }

    #[test]
    fn a_key_id_in_the_subject_must_be_the_uris() {
        let params = key_profile();
        let SanType::URI(uri) = &params.subject_alt_names[0] else {
            unreachable!()
        };
        let key_id = uri.as_str().rsplit_once("/key/").unwrap().1.to_owned();
        let with_uid = |uids: &[&str]| {
            let mut attributes = vec![(CN, "alice"), (O, "acme")];
            attributes.extend(uids.iter().map(|u| (profile::USER_ID, *u)));
            attributes.push((OU, "read:metrics"));
            let der = sign_with_subject(params.clone(), &issuer(), &name_der(&attributes));
            Identity::from_der(&der, TRUST_DOMAIN).map(|_| ())
        };
        with_uid(&[&key_id]).unwrap();
        with_uid(&[]).unwrap();
        assert!(matches!(
            with_uid(&["0123456789abcdef0123456789abcdef"]),
            Err(IdentityError::SubjectMismatch)
        ));
        assert!(matches!(
            with_uid(&[&key_id, &key_id]),
            Err(IdentityError::SubjectMismatch)
        ));
    }

    #[test]
    fn scopes_are_the_subject_ous_sorted_distinct_and_valid() {
        let base = [(CN, "alice"), (O, "acme")];
        let with = |ous: &[&str]| {
            let mut attributes = base.to_vec();
            attributes.extend(ous.iter().map(|ou| (OU, *ou)));
            scopes_with_subject(key_profile(), &name_der(&attributes))
        };
        let two = with(&["read:metrics", "write:events"]).unwrap();
        assert_eq!(two.to_stored(), "read:metrics write:events");
        assert_eq!(with(&[]).unwrap(), ScopeSet::default());
        let longest = "a".repeat(profile::MAX_SCOPE_LEN);
        assert_eq!(with(&[&longest]).unwrap().to_stored(), longest);
        for (case, ous) in [
            ("out of order", vec!["write:events", "read:metrics"]),
            ("repeated", vec!["read:metrics", "read:metrics"]),
            ("a wildcard", vec!["read:*"]),
            ("upper case", vec!["Read:metrics"]),
            ("empty", vec![""]),
        ] {
            assert_eq!(with(&ous).unwrap_err(), IdentityError::Scopes, "{case}");
        }
        let too_long = "a".repeat(profile::MAX_SCOPE_LEN + 1);
        assert_eq!(with(&[&too_long]).unwrap_err(), IdentityError::Scopes);
        // The CN and O rules hold with OUs too.
        let swapped = name_der(&[(CN, "alice"), (O, "globex"), (OU, "read:metrics")]);
        assert_eq!(
            scopes_with_subject(key_profile(), &swapped).unwrap_err(),
            IdentityError::SubjectMismatch
        );
    }

    #[test]
    fn the_old_extension_is_read_only_without_ous_and_within_the_window() {
        let read = |params: CertificateParams| {
            Identity::from_der(&sign(params, &issuer()), TRUST_DOMAIN)
                .map(|i| i.scopes().to_stored())
        };
        // Issued before the cut-over, with no OU: the old extension's scopes.
        assert_eq!(
            read(legacy_profile(&["read:metrics", "write:events"])).unwrap(),
            "read:metrics write:events"
        );
        // A malformed old extension in the window is refused, not ignored.
        let mut malformed = legacy_profile(&[]);
        malformed.custom_extensions = vec![CustomExtension::from_oid_content(
            STAND_IN_ARCS,
            vec![0x30, 0x03, 0x0c, 0x01, b'*'],
        )];
        assert_eq!(read(malformed).unwrap_err(), IdentityError::Scopes);
        // Issued at the cut-over or later: the extension is not read; no scopes.
        let mut late = legacy_profile(&["read:metrics"]);
        late.not_before = profile::LEGACY_SCOPES_ISSUED_BEFORE;
        assert_eq!(read(late).unwrap(), "");
        // Issued before it but ending after the window: not read either.
        let mut long = legacy_profile(&["read:metrics"]);
        long.not_after = profile::LEGACY_SCOPES_ACCEPTED_UNTIL + Duration::seconds(1);
        assert_eq!(read(long).unwrap(), "");
    }

    #[test]
    fn ous_take_precedence_over_the_old_extension() {
        // Both carriers, disagreeing, inside the window: the OUs (what a proxy sees) win.
        let mut both = legacy_profile(&["admin:everything", "write:events"]);
        both.distinguished_name
            .push(DnType::OrganizationalUnitName, "read:metrics");
        let identity = Identity::from_der(&sign(both, &issuer()), TRUST_DOMAIN).unwrap();
        assert_eq!(identity.scopes().to_stored(), "read:metrics");
        // A malformed old extension beside OUs is ignored too: the OUs are the scopes.
        let mut beside = key_profile();
        beside.not_before = profile::LEGACY_SCOPES_ISSUED_BEFORE - Duration::days(1);
        beside.not_after = profile::LEGACY_SCOPES_ISSUED_BEFORE;
        beside.custom_extensions = vec![CustomExtension::from_oid_content(
            STAND_IN_ARCS,
            vec![0x05, 0x00],
        )];
        let identity = Identity::from_der(&sign(beside, &issuer()), TRUST_DOMAIN).unwrap();
        assert_eq!(identity.scopes().to_stored(), "read:metrics");
        // Two old extensions are never a latchkey certificate (x509-parser already refuses
        // a repeated extension as malformed; the identity would refuse it as Scopes).
        let mut twice = legacy_profile(&["read:metrics"]);
        twice
            .custom_extensions
            .push(legacy_extension(&["read:metrics"]));
        assert!(Identity::from_der(&sign(twice, &issuer()), TRUST_DOMAIN).is_err());
    }

    #[test]
    fn identity_without_client_auth_is_refused() {
        let server_only = identity_of(|p| {
            p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        });
        assert_eq!(server_only.unwrap_err(), IdentityError::ExtendedKeyUsage);
        let no_eku = identity_of(|p| p.extended_key_usages.clear());
        assert_eq!(no_eku.unwrap_err(), IdentityError::ExtendedKeyUsage);
        let both = identity_of(|p| {
            p.extended_key_usages = vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ];
        });
        assert!(both.is_ok(), "clientAuth among others is enough");
    }

    #[test]
    fn identity_without_exactly_one_latchkey_uri_is_refused() {
        let cases: [(&str, Vec<SanType>); 5] = [
            ("no SAN", vec![]),
            (
                "a DNS name only",
                vec![SanType::DnsName("alice.acme.example".try_into().unwrap())],
            ),
            (
                "two latchkey URIs",
                vec![key_uri(TRUST_DOMAIN, "acme"), key_uri(TRUST_DOMAIN, "acme")],
            ),
            (
                "a latchkey URI and a second, foreign one",
                vec![
                    key_uri(TRUST_DOMAIN, "acme"),
                    key_uri("other.internal", "acme"),
                ],
            ),
            (
                "a URI in another trust domain",
                vec![key_uri("other.internal", "acme")],
            ),
        ];
        for (case, sans) in cases {
            assert_eq!(
                identity_of(|p| p.subject_alt_names = sans).unwrap_err(),
                IdentityError::SpiffeId,
                "{case}"
            );
        }
        // The same URI in a subdomain of the trust domain is another domain.
        let sub =
            identity_of(|p| p.subject_alt_names = vec![key_uri("evil.latchkey.internal", "acme")]);
        assert_eq!(sub.unwrap_err(), IdentityError::SpiffeId);
        let one = identity_of(|p| p.subject_alt_names = vec![key_uri(TRUST_DOMAIN, "acme")]);
        assert!(one.is_ok());
    }

    #[test]
    fn identity_with_a_subject_disagreeing_with_the_uri_is_refused() {
        let cases: [(&str, DistinguishedName); 5] = [
            ("O of another tenant", subject("alice", "globex")),
            ("CN that is no owner name", subject("Alice Smith", "acme")),
            ("no O", {
                let mut dn = DistinguishedName::new();
                dn.push(DnType::CommonName, "alice");
                dn
            }),
            ("no CN", {
                let mut dn = DistinguishedName::new();
                dn.push(DnType::OrganizationName, "acme");
                dn
            }),
            (
                "the admin organization",
                subject("alice", profile::ADMIN_ORGANIZATION),
            ),
        ];
        for (case, dn) in cases {
            assert_eq!(
                identity_of(|p| p.distinguished_name = dn).unwrap_err(),
                IdentityError::SubjectMismatch,
                "{case}"
            );
        }
        // A key's URI names no owner: any valid owner name agrees with it.
        let bob = identity_of(|p| p.distinguished_name = subject("bob", "acme")).unwrap();
        assert_eq!(bob.owner().as_str(), "bob");
    }

    #[test]
    fn identity_of_an_admin_whose_cn_is_not_the_uri_name_is_refused() {
        let admin = |cn: &str| {
            let mut params = key_profile();
            params.distinguished_name = subject(cn, profile::ADMIN_ORGANIZATION);
            let id = SpiffeId::Admin {
                name: "root".parse().unwrap(),
            };
            params.subject_alt_names =
                vec![SanType::URI(id.to_uri(TRUST_DOMAIN).try_into().unwrap())];
            sign(params, &issuer())
        };
        assert_eq!(
            PeerIdentity::from_der(&admin("mallory"), TRUST_DOMAIN).unwrap_err(),
            IdentityError::SubjectMismatch
        );
        let good = admin("root");
        let peer = PeerIdentity::from_der(&good, TRUST_DOMAIN).unwrap();
        assert_eq!(peer.owner, "root");
        // An administrator is never a key.
        assert_eq!(
            Identity::from_der(&good, TRUST_DOMAIN).unwrap_err(),
            IdentityError::SpiffeId
        );
        // And carries no scopes, in either carrier.
        let admin_with = |change: &dyn Fn(&mut CertificateParams)| {
            let mut params = key_profile();
            params.distinguished_name = subject("root", profile::ADMIN_ORGANIZATION);
            let id = SpiffeId::Admin {
                name: "root".parse().unwrap(),
            };
            params.subject_alt_names =
                vec![SanType::URI(id.to_uri(TRUST_DOMAIN).try_into().unwrap())];
            change(&mut params);
            PeerIdentity::from_der(&sign(params, &issuer()), TRUST_DOMAIN).unwrap_err()
        };
        assert_eq!(
            admin_with(&|p| p
                .distinguished_name
                .push(DnType::OrganizationalUnitName, "read:metrics")),
            IdentityError::SubjectMismatch
        );
        assert_eq!(
            admin_with(&|p| p.custom_extensions = vec![legacy_extension(&[])]),
            IdentityError::SubjectMismatch
        );
    }
}
