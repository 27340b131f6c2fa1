//! The relying service's verifier, through its public configuration (`Relying::builder`),
//! against a real CA's chain (`ca::Bootstrap`, `ca::Signer`) and leaves built field by field
//! with rcgen, each breaking one part of the key profile. No server runs: what a verifier
//! holds comes from a CRL source the test drives ([`Handed`]) or a watched file.

use std::future::pending;
use std::time::Duration as StdDuration;

use latchkey::ca::{Bootstrap, CrlEntry, CrlOrder, KeyOrder, Signer};
use latchkey::model::{KeyId, RevocationReason, ScopeSet, Serial};
use latchkey::profile::danger::read_unverified;
use latchkey::profile::{IdentityError, SpiffeId};
use latchkey::relying::{Relying, RelyingBuilder, RelyingError, TenantsChosen};
use latchkey::tls::{
    CrlSink, CrlSource, CrlSourceTask, DEFAULT_GRACE, Identity, MAX_GRACE, RevocationSet,
    VerifierError,
};
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use rustls::{CertificateError, Error};
use rustls_pki_types::{CertificateDer, UnixTime};
use time::{Duration, OffsetDateTime};

pub(crate) const TRUST_DOMAIN: &str = "latchkey.internal";

/// The refusal reasons the verifier gives a certificate that chains to the CA but is no
/// latchkey key certificate (one per `IdentityError`; `tls::verifier`'s unit test keeps
/// them distinct).
const NO_CLIENT_AUTH: &str = "not a latchkey key certificate: no clientAuth usage";
const NO_KEY_URI: &str = "not a latchkey key certificate: no key URI SAN in this trust domain (another trust domain, or an administrator's certificate)";
const SUBJECT_MISMATCH: &str =
    "not a latchkey key certificate: the subject does not match the URI SAN";
const STALE: &str = "the CRL is stale";
pub(crate) const NO_CRL_YET: &str = "no CRL yet: refusing until one is verified";

/// A CA (root and intermediate) with one key certificate of alice@acme.
pub(crate) struct Fixture {
    /// Intermediate, then root: what `GET /v1/ca` serves.
    pub(crate) chain: Vec<CertificateDer<'static>>,
    pub(crate) signer: Signer,
    /// The intermediate's key, for leaves built field by field.
    issuer: Issuer<'static, KeyPair>,
    /// The root's key, for more intermediates (as after a rotation).
    pub(crate) root: Issuer<'static, KeyPair>,
    pub(crate) leaf: CertificateDer<'static>,
    /// The leaf's private key (PEM).
    leaf_key_pem: String,
    serial: Serial,
}

pub(crate) fn fixture() -> Fixture {
    let now = OffsetDateTime::now_utc();
    let ca = Bootstrap::generate(now).unwrap();
    let signer = Signer::new(
        ca.intermediate_certificate.clone(),
        &ca.intermediate_key_pem,
        TRUST_DOMAIN,
        "https://localhost/v1/crl",
    )
    .unwrap();
    let (leaf, serial, leaf_key_pem) = key_certificate(&signer);
    let issuer = Issuer::from_ca_cert_der(
        &ca.intermediate_certificate,
        KeyPair::from_pem(&ca.intermediate_key_pem).unwrap(),
    )
    .unwrap();
    let root = Issuer::from_ca_cert_der(
        &ca.root_certificate,
        KeyPair::from_pem(&ca.root_key_pem).unwrap(),
    )
    .unwrap();
    Fixture {
        chain: vec![ca.intermediate_certificate, ca.root_certificate],
        signer,
        issuer,
        root,
        leaf,
        leaf_key_pem,
        serial,
    }
}

/// A key certificate of alice@acme (`read:metrics`, valid for an hour) signed by `signer`:
/// the certificate, its serial and its private key (PEM).
pub(crate) fn key_certificate(signer: &Signer) -> (CertificateDer<'static>, Serial, String) {
    let now = OffsetDateTime::now_utc();
    let pair = latchkey::client::new_key_pair(latchkey::client::KeyType::P256).unwrap();
    let serial = Serial::generate();
    let leaf = signer
        .sign_key_certificate(KeyOrder {
            serial,
            tenant: "acme".parse().unwrap(),
            owner: "alice".parse().unwrap(),
            key_id: KeyId::generate(),
            scopes: ScopeSet::parse(["read:metrics"]).unwrap(),
            not_before: now - Duration::minutes(1),
            not_after: now + Duration::hours(1),
            public_key: latchkey::authority::csr::verify_pem(&pair.csr_pem)
                .unwrap()
                .public_key,
        })
        .unwrap()
        .der;
    (leaf, serial, pair.key_pem)
}

/// Another issuing intermediate under the fixture's root, `CN=<cn>, O=latchkey` (as `ca
/// rotate` makes one), and its signer.
pub(crate) fn rotated(f: &Fixture, cn: &str) -> (CertificateDer<'static>, Signer) {
    intermediate_under(&f.root, cn)
}

/// The parameters of a CA certificate `CN=<cn>, O=latchkey` at most `path_length` CAs above
/// a leaf, valid from a minute ago for 30 days.
fn ca_profile(cn: &str, path_length: u8) -> CertificateParams {
    let now = OffsetDateTime::now_utc();
    let mut params = CertificateParams::default();
    params.distinguished_name = subject(cn, "latchkey");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(path_length));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = now - Duration::minutes(1);
    params.not_after = now + Duration::days(30);
    params.use_authority_key_identifier_extension = true;
    params
}

/// An issuing intermediate `CN=<cn>, O=latchkey` under `root`, and its signer.
fn intermediate_under(root: &Issuer<'_, KeyPair>, cn: &str) -> (CertificateDer<'static>, Signer) {
    let key = KeyPair::generate().unwrap();
    let params = ca_profile(cn, 0);
    let certificate = CertificateDer::from(params.signed_by(&key, root).unwrap().der().to_vec());
    let signer = Signer::new(
        certificate.clone(),
        &key.serialize_pem(),
        TRUST_DOMAIN,
        "https://localhost/v1/issuers/2/crl",
    )
    .unwrap();
    (certificate, signer)
}

/// The CA after a root rollover (`latchkey ca rotate --root`): beside the fixture's root R1
/// and intermediate I1, a new root R2, an intermediate I2 under it with a key certificate it
/// signed, and the two cross-certificates: X21 (R2's subject and key, signed by R1) and X12
/// (R1's subject and key, signed by R2).
pub(crate) struct Rollover {
    pub(crate) r2: CertificateDer<'static>,
    /// R2's key, for its CRLs.
    pub(crate) r2_key_pem: String,
    pub(crate) x21: CertificateDer<'static>,
    pub(crate) x12: CertificateDer<'static>,
    pub(crate) i2: CertificateDer<'static>,
    pub(crate) i2_signer: Signer,
    /// A key certificate of alice@acme I2 signed, and its serial.
    pub(crate) leaf: CertificateDer<'static>,
    pub(crate) serial: Serial,
}

/// A cross-certificate as `ca rotate --root` makes one: another root's name `subject_cn` and
/// key, issued by `issuer` (a CA with one CA below it, pathlen 1; its authority key id is
/// the issuer's, its subject key id the other root's).
fn cross(
    subject_cn: &str,
    key: &KeyPair,
    issuer: &Issuer<'_, impl rcgen::SigningKey>,
) -> CertificateDer<'static> {
    let params = ca_profile(subject_cn, 1);
    CertificateDer::from(params.signed_by(key, issuer).unwrap().der().to_vec())
}

pub(crate) fn rollover(f: &Fixture) -> Rollover {
    let r2_key = KeyPair::generate().unwrap();
    let mut params = ca_profile("latchkey root CA 2", 1);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.not_after = OffsetDateTime::now_utc() + Duration::days(3650);
    let r2 = CertificateDer::from(params.self_signed(&r2_key).unwrap().der().to_vec());
    let x21 = cross("latchkey root CA 2", &r2_key, &f.root);
    let r2_key_pem = r2_key.serialize_pem();
    let r2_issuer = Issuer::from_ca_cert_der(&r2, r2_key).unwrap();
    let x12 = cross("latchkey root CA", f.root.key(), &r2_issuer);
    // The cross-certificates carry exactly the roots' names, which paths are built on.
    let name = |der: &[u8]| {
        let (_, c) = x509_parser::parse_x509_certificate(der).unwrap();
        c.subject().as_raw().to_vec()
    };
    assert_eq!(name(&x12), name(&f.chain[1]));
    assert_eq!(name(&x21), name(&r2));
    let (i2, i2_signer) = intermediate_under(&r2_issuer, "latchkey issuing CA 2");
    let (leaf, serial, _) = key_certificate(&i2_signer);
    Rollover {
        r2,
        r2_key_pem,
        x21,
        x12,
        i2,
        i2_signer,
        leaf,
        serial,
    }
}

/// A root's CRL numbered `number`, revoking nothing, valid 30 days.
pub(crate) fn root_crl(root: &CertificateDer<'_>, key_pem: &str, number: u64) -> Vec<u8> {
    let now = OffsetDateTime::now_utc();
    latchkey::ca::RootSigner::new(root, key_pem)
        .unwrap()
        .sign(&CrlOrder {
            number,
            this_update: now,
            next_update: now + Duration::days(30),
            entries: Vec::new(),
        })
        .unwrap()
}

/// A CRL of the fixture's intermediate, numbered `number`, listing `revoked` (for key
/// compromise), whose `nextUpdate` lies `next_update` from now (negative: overdue).
pub(crate) fn crl(f: &Fixture, number: u64, next_update: Duration, revoked: &[Serial]) -> Vec<u8> {
    crl_of(&f.signer, number, next_update, revoked)
}

/// [`crl`] signed by any intermediate's `signer`.
pub(crate) fn crl_of(
    signer: &Signer,
    number: u64,
    next_update: Duration,
    revoked: &[Serial],
) -> Vec<u8> {
    let now = OffsetDateTime::now_utc();
    signer
        .sign_crl(&CrlOrder {
            number,
            this_update: now - Duration::hours(1),
            next_update: now + next_update,
            entries: revoked
                .iter()
                .map(|serial| CrlEntry {
                    serial: *serial,
                    revoked_at: now,
                    reason: RevocationReason::KeyCompromise,
                })
                .collect(),
        })
        .unwrap()
}

/// CRLs in one PEM bundle, as `GET /v1/crl/bundle.pem` serves them.
fn bundle(crls: &[&[u8]]) -> Vec<u8> {
    crls.iter()
        .flat_map(|der| latchkey::pem::encode("X509 CRL", der).into_bytes())
        .collect()
}

/// A CRL source driven by the test: it delivers `first` (if any), then hands its sink to the
/// test, which delivers whatever else it likes with [`CrlSink::take`].
struct Handed {
    first: Option<Vec<u8>>,
    sink: tokio::sync::oneshot::Sender<CrlSink>,
}

impl CrlSource for Handed {
    fn run(self: Box<Self>, sink: CrlSink) -> CrlSourceTask {
        Box::pin(async move {
            if let Some(first) = &self.first {
                sink.take(first);
            }
            let _ = self.sink.send(sink);
            pending::<()>().await;
        })
    }
}

/// Builds `builder` on the fixture's chain with `first` as its first CRL: the relying
/// service and the sink its source delivers to.
async fn build(
    f: &Fixture,
    builder: RelyingBuilder<TenantsChosen>,
    first: Option<Vec<u8>>,
) -> Result<(Relying, CrlSink), RelyingError> {
    build_on(f.chain.clone(), builder, first).await
}

/// [`build`] on any chain.
async fn build_on(
    chain: Vec<CertificateDer<'static>>,
    builder: RelyingBuilder<TenantsChosen>,
    first: Option<Vec<u8>>,
) -> Result<(Relying, CrlSink), RelyingError> {
    let (sink, handed) = tokio::sync::oneshot::channel();
    let relying = builder
        .ca_chain(chain)
        .crl_source(Handed { first, sink })
        .first_crl_within(StdDuration::from_millis(300))
        .build()
        .await?;
    Ok((
        relying,
        handed.await.expect("the source hands its sink over"),
    ))
}

/// A relying service accepting any tenant, holding `first`.
async fn relying(f: &Fixture, first: Vec<u8>) -> Relying {
    build(f, any_tenant(), Some(first)).await.unwrap().0
}

fn any_tenant() -> RelyingBuilder<TenantsChosen> {
    Relying::builder(TRUST_DOMAIN).any_tenant()
}

/// A relying service holding a fresh CRL that revokes nothing.
async fn fresh(f: &Fixture) -> Relying {
    relying(f, crl(f, 1, Duration::hours(1), &[])).await
}

/// The reason carried by a refusal that rustls only knows as `CertificateError::Other`.
pub(crate) fn other_reason(
    result: Result<Identity, Error>,
) -> std::sync::Arc<dyn std::error::Error + Send + Sync> {
    match result {
        Err(Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(e)))) => e,
        other => panic!("expected a refusal with a reason, got {other:?}"),
    }
}

/// The webpki error behind a chain refusal.
fn webpki_reason(result: Result<Identity, Error>) -> webpki::Error {
    other_reason(result)
        .downcast_ref::<webpki::Error>()
        .cloned()
        .expect("a webpki error")
}

/// A subject `CN=<cn>, O=<o>`.
fn subject(cn: &str, o: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn.push(DnType::OrganizationName, o);
    dn
}

/// The URI SAN of a key of `tenant` in `trust_domain`.
fn key_uri(trust_domain: &str, tenant: &str) -> SanType {
    let id = SpiffeId::Key {
        tenant: tenant.parse().unwrap(),
        key_id: KeyId::generate(),
    };
    SanType::URI(id.to_uri(trust_domain).try_into().unwrap())
}

/// The key certificate profile (as `ca::Signer` writes it) for `alice` of tenant `acme`,
/// scope `read:metrics`, valid from a minute ago for an hour.
fn key_profile() -> CertificateParams {
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

/// The key profile changed by `change`, for a new key pair, signed by the fixture's
/// intermediate.
fn leaf_with(f: &Fixture, change: impl FnOnce(&mut CertificateParams)) -> CertificateDer<'static> {
    let mut params = key_profile();
    change(&mut params);
    let key = KeyPair::generate().unwrap();
    CertificateDer::from(params.signed_by(&key, &f.issuer).unwrap().der().to_vec())
}

#[tokio::test]
async fn verify_of_a_good_key_passes_and_of_a_revoked_one_does_not() {
    let f = fixture();
    let now = UnixTime::now();
    let identity = fresh(&f)
        .await
        .verifier()
        .verify(&f.leaf, &[], now)
        .unwrap();
    assert_eq!(identity.tenant().as_str(), "acme");
    assert_eq!(*identity.serial(), f.serial);
    let revoked = relying(&f, crl(&f, 1, Duration::hours(1), &[f.serial])).await;
    assert!(matches!(
        revoked.verifier().verify(&f.leaf, &[], now),
        Err(Error::InvalidCertificate(CertificateError::Revoked))
    ));
    // The per-request check sees a revocation that came after the handshake.
    let (live, sink) = build(&f, any_tenant(), Some(crl(&f, 1, Duration::hours(1), &[])))
        .await
        .unwrap();
    let identity = live.verifier().verify(&f.leaf, &[], now).unwrap();
    live.verifier()
        .still_valid(&identity, UnixTime::now())
        .unwrap();
    assert!(sink.take(&crl(&f, 2, Duration::hours(1), &[f.serial])));
    assert!(
        live.verifier()
            .still_valid(&identity, UnixTime::now())
            .is_err()
    );
}

#[tokio::test]
async fn a_chain_that_could_never_verify_a_key_is_refused_when_built() {
    let f = fixture();
    let other = fixture();
    let first = || Some(crl(&f, 1, Duration::hours(1), &[]));
    let refused = |result: Result<(Relying, CrlSink), RelyingError>| match result {
        Err(RelyingError::Verifier(e)) => e,
        Err(other) => panic!("refused for another reason: {other}"),
        Ok(_) => panic!("built"),
    };
    assert!(matches!(
        refused(build_on(f.chain[1..].to_vec(), any_tenant(), first()).await),
        VerifierError::NoIntermediate
    ));
    assert!(matches!(
        refused(build_on(f.chain[..1].to_vec(), any_tenant(), first()).await),
        VerifierError::NoRoot
    ));
    let mixed = vec![f.chain[0].clone(), other.chain[1].clone()];
    assert!(matches!(
        refused(build_on(mixed, any_tenant(), first()).await),
        VerifierError::NotIssuedByRoot(_)
    ));
    let builder = Relying::builder("Not A Domain").any_tenant();
    assert!(matches!(
        refused(build(&f, builder, first()).await),
        VerifierError::TrustDomain(_)
    ));
    let builder = Relying::builder(TRUST_DOMAIN).tenants([]);
    assert!(matches!(
        refused(build(&f, builder, first()).await),
        VerifierError::NoTenants
    ));
    build(&f, any_tenant(), first()).await.unwrap();
}

#[tokio::test]
async fn no_crl_or_a_stale_one_refuses_unless_insecurely_allowed() {
    let f = fixture();
    let now = UnixTime::now();
    // No CRL: no relying service at all, so no key is ever accepted without one.
    assert!(matches!(
        build(&f, any_tenant(), None).await,
        Err(RelyingError::NoCrl(_))
    ));
    let stale = || Some(crl(&f, 1, -(DEFAULT_GRACE + Duration::minutes(1)), &[]));
    let (held_stale, _) = build(&f, any_tenant(), stale()).await.unwrap();
    assert!(held_stale.verifier().verify(&f.leaf, &[], now).is_err());
    // A grace out of range is refused when the verifier is built, never clamped.
    for out_of_range in [
        Duration::days(365),
        MAX_GRACE + Duration::SECOND,
        -Duration::SECOND,
    ] {
        let result = build(&f, any_tenant().grace(out_of_range), stale()).await;
        assert!(
            matches!(
                result,
                Err(RelyingError::Verifier(VerifierError::Grace(g))) if g == out_of_range
            ),
            "grace {out_of_range} accepted"
        );
    }
    build(&f, any_tenant().grace(MAX_GRACE), stale())
        .await
        .unwrap();
    let (insecure, _) = build(&f, any_tenant().insecure_allow_stale_crl(), stale())
        .await
        .unwrap();
    assert!(insecure.verifier().verify(&f.leaf, &[], now).is_ok());
}

#[tokio::test]
async fn pinned_tenants_ca_certificates_and_admin_certificates_are_refused() {
    let f = fixture();
    let now = UnixTime::now();
    let first = || Some(crl(&f, 1, Duration::hours(1), &[]));
    let globex_only = Relying::builder(TRUST_DOMAIN).tenants(["globex".parse().unwrap()]);
    let (pinned, _) = build(&f, globex_only, first()).await.unwrap();
    assert_eq!(
        other_reason(pinned.verifier().verify(&f.leaf, &[], now)).to_string(),
        "tenant not accepted here"
    );
    let acme_only = Relying::builder(TRUST_DOMAIN).tenants(["acme".parse().unwrap()]);
    let (acme, _) = build(&f, acme_only, first()).await.unwrap();
    assert!(acme.verifier().verify(&f.leaf, &[], now).is_ok());
    let any = fresh(&f).await;
    let v = any.verifier();
    assert!(
        v.verify(&f.chain[0], &[], now).is_err(),
        "the intermediate as a leaf"
    );
    let pair = latchkey::client::new_key_pair(latchkey::client::KeyType::P256).unwrap();
    let pk = latchkey::authority::csr::verify_pem(&pair.csr_pem)
        .unwrap()
        .public_key;
    let t = OffsetDateTime::now_utc();
    let admin = f
        .signer
        .sign_admin_certificate(
            &"admin".parse().unwrap(),
            Serial::generate(),
            t - Duration::minutes(1),
            t + Duration::hours(1),
            &pk,
        )
        .unwrap();
    assert_eq!(
        other_reason(v.verify(&admin.der, &[], now)).to_string(),
        NO_KEY_URI,
        "an admin certificate is not a key"
    );
}

#[tokio::test]
async fn crls_are_taken_only_when_signed_by_the_issuer_and_newer() {
    let f = fixture();
    let other = fixture();
    let issuer = &f.chain[0];
    let good = crl(&f, 5, Duration::hours(1), &[f.serial]);
    let set5 = RevocationSet::from_crl(&good, issuer).unwrap();
    assert!(set5.is_revoked(f.serial.as_bytes()));
    assert_eq!(set5.number(), 5);
    let forged = crl(&other, 9, Duration::hours(1), &[f.serial]);
    assert!(
        RevocationSet::from_crl(&forged, issuer).is_err(),
        "another CA's CRL"
    );
    let (relying, sink) = build(&f, any_tenant(), Some(good)).await.unwrap();
    assert!(!sink.take(&forged), "another CA's CRL taken");
    assert!(
        !sink.take(&crl(&f, 4, Duration::hours(1), &[])),
        "an older CRL taken"
    );
    assert!(sink.holds_at_least(&crl(&f, 4, Duration::hours(1), &[])));
    assert_eq!(sink.held(), Some(5));
    let held = relying.verifier().revocations().current().unwrap();
    assert_eq!(held.number(), 5);
    assert!(held.is_revoked(f.serial.as_bytes()));
}

/// The CA after a rotation: two intermediates under one root, newest first as `GET /v1/ca`
/// serves them, with the first CRL of each in one bundle. Returns the service, its sink, the
/// second intermediate, a key certificate it signed (with its serial) and its signer.
async fn rotated_ca(
    f: &Fixture,
) -> (
    Relying,
    CrlSink,
    CertificateDer<'static>,
    (CertificateDer<'static>, Serial),
    Signer,
) {
    let (second, signer) = rotated(f, "latchkey issuing CA 2");
    let (leaf, serial, _) = key_certificate(&signer);
    let chain = vec![second.clone(), f.chain[0].clone(), f.chain[1].clone()];
    let first = bundle(&[
        &crl(f, 1, Duration::hours(1), &[]),
        &crl_of(&signer, 1, Duration::hours(1), &[]),
    ]);
    let (relying, sink) = build_on(chain, any_tenant(), Some(first)).await.unwrap();
    (relying, sink, second, (leaf, serial), signer)
}

#[tokio::test]
async fn verify_with_two_intermediates_checks_each_leaf_against_its_own_issuers_crl() {
    let f = fixture();
    let (relying, sink, second, (leaf, serial), signer) = rotated_ca(&f).await;
    let v = relying.verifier();
    assert_eq!(v.issuers(), vec![second.clone(), f.chain[0].clone()]);
    let old = v.verify(&f.leaf, &[], UnixTime::now()).unwrap();
    let new = v.verify(&leaf, &[], UnixTime::now()).unwrap();
    assert_eq!(*new.serial(), serial);

    // The first intermediate's CRL lists the second's key: it counts for neither.
    assert!(sink.take(&crl(&f, 2, Duration::hours(1), &[serial])));
    assert!(v.verify(&leaf, &[], UnixTime::now()).is_ok());
    v.still_valid(&new, UnixTime::now()).unwrap();
    // The second's own CRL revokes it, at the handshake and on a connection already open;
    // listing the first's key too, it leaves that one standing.
    assert!(sink.take(&crl_of(&signer, 2, Duration::hours(1), &[serial, f.serial])));
    assert!(matches!(
        v.verify(&leaf, &[], UnixTime::now()),
        Err(Error::InvalidCertificate(CertificateError::Revoked))
    ));
    assert!(v.still_valid(&new, UnixTime::now()).is_err());
    assert!(v.verify(&f.leaf, &[], UnixTime::now()).is_ok());
    v.still_valid(&old, UnixTime::now()).unwrap();
    // Each CRL was filed under the intermediate that signed it.
    let first_held = v.revocations_of(&f.chain[0]).unwrap().current().unwrap();
    assert_eq!(first_held.number(), 2);
    assert!(first_held.is_revoked(serial.as_bytes()));
    let second_held = v.revocations_of(&second).unwrap().current().unwrap();
    assert_eq!(second_held.number(), 2);
    assert!(second_held.is_revoked(serial.as_bytes()));

    // A CRL in the second's name signed by another key (another root's intermediate of the
    // same name) counts for nobody, alone or in a bundle.
    let other = fixture();
    let (_, impostor) = rotated(&other, "latchkey issuing CA 2");
    let forged = crl_of(&impostor, 9, Duration::hours(1), &[]);
    assert!(!sink.take(&forged));
    assert!(!sink.take(&bundle(&[&crl(&f, 3, Duration::hours(1), &[]), &forged])));
    assert_eq!(
        v.revocations_of(&second)
            .unwrap()
            .current()
            .unwrap()
            .number(),
        2
    );
    assert!(matches!(
        v.verify(&leaf, &[], UnixTime::now()),
        Err(Error::InvalidCertificate(CertificateError::Revoked))
    ));
    // The root's CRL in a bundle (as `bundle.pem` ends) is passed over, not refused.
    let now = OffsetDateTime::now_utc();
    let root_crl = latchkey::ca::RootSigner::new(&f.chain[1], &f.root.key().serialize_pem())
        .unwrap()
        .sign(&CrlOrder {
            number: 1,
            this_update: now,
            next_update: now + Duration::days(30),
            entries: Vec::new(),
        })
        .unwrap();
    assert!(sink.take(&bundle(&[
        &crl(&f, 4, Duration::hours(1), &[]),
        &crl_of(&signer, 3, Duration::hours(1), &[]),
        &root_crl,
    ])));
    assert!(v.verify(&leaf, &[], UnixTime::now()).is_ok());
    assert_eq!(sink.held(), Some(3), "the lowest number held");
}

#[tokio::test]
async fn verify_of_a_leaf_whose_intermediate_has_no_crl_yet_is_refused_until_its_crl_is_taken() {
    let f = fixture();
    let (second, signer) = rotated(&f, "latchkey issuing CA 2");
    let (leaf, _, _) = key_certificate(&signer);
    let chain = vec![second.clone(), f.chain[0].clone(), f.chain[1].clone()];
    // Only the first intermediate's CRL comes: the builder waits for the other's in vain,
    // then starts, refusing the second's keys.
    let (relying, sink) = build_on(
        chain,
        any_tenant(),
        Some(crl(&f, 1, Duration::hours(1), &[])),
    )
    .await
    .unwrap();
    let v = relying.verifier();
    assert!(v.revocations_of(&second).unwrap().current().is_none());
    assert!(v.verify(&f.leaf, &[], UnixTime::now()).is_ok());
    assert_eq!(
        other_reason(v.verify(&leaf, &[], UnixTime::now())).to_string(),
        NO_CRL_YET
    );
    // Another intermediate's fresh CRL is no CRL of this one.
    assert!(sink.take(&crl(&f, 2, Duration::hours(1), &[])));
    assert_eq!(
        other_reason(v.verify(&leaf, &[], UnixTime::now())).to_string(),
        NO_CRL_YET
    );
    assert_eq!(sink.held(), None, "not every intermediate holds a CRL");
    assert!(sink.take(&crl_of(&signer, 1, Duration::hours(1), &[])));
    assert!(v.verify(&leaf, &[], UnixTime::now()).is_ok());
    assert_eq!(sink.held(), Some(1));
}

#[tokio::test]
async fn an_intermediate_the_root_did_not_sign_is_refused_and_so_are_its_keys() {
    let f = fixture();
    let other = fixture();
    let (foreign, foreign_signer) = rotated(&other, "latchkey issuing CA 2");
    // Beside the CA's own intermediate in the chain: refused when built, by name.
    let chain = vec![foreign.clone(), f.chain[0].clone(), f.chain[1].clone()];
    let first = Some(crl(&f, 1, Duration::hours(1), &[]));
    match build_on(chain, any_tenant(), first).await {
        Err(RelyingError::Verifier(VerifierError::NotIssuedByRoot(subject))) => {
            assert!(subject.contains("latchkey issuing CA 2"), "{subject}")
        }
        Err(e) => panic!("refused for another reason: {e}"),
        Ok(_) => panic!("built with an intermediate of another root"),
    }
    // A certificate the root signed that is no CA certificate is no intermediate either.
    let not_a_ca = {
        let mut params = CertificateParams::default();
        params.distinguished_name = subject("latchkey issuing CA 3", "latchkey");
        params.is_ca = IsCa::ExplicitNoCa;
        let key = KeyPair::generate().unwrap();
        CertificateDer::from(params.signed_by(&key, &f.root).unwrap().der().to_vec())
    };
    let chain = vec![not_a_ca, f.chain[0].clone(), f.chain[1].clone()];
    assert!(matches!(
        build_on(
            chain,
            any_tenant(),
            Some(crl(&f, 1, Duration::hours(1), &[]))
        )
        .await,
        Err(RelyingError::Verifier(VerifierError::NotIssuedByRoot(_)))
    ));

    // A service holding two intermediates of its root takes no third from the client: not
    // another root's, not even its own root's when it was not given.
    let (relying, _, second, _, _) = rotated_ca(&f).await;
    let v = relying.verifier();
    let (foreign_leaf, _, _) = key_certificate(&foreign_signer);
    let (unlisted, unlisted_signer) = rotated(&f, "latchkey issuing CA 3");
    let (unlisted_leaf, _, _) = key_certificate(&unlisted_signer);
    // Another root's, named like the second intermediate held here: that one's key did not
    // sign it.
    assert!(matches!(
        v.verify(&foreign_leaf, &[foreign, second.clone()], UnixTime::now()),
        Err(Error::InvalidCertificate(CertificateError::BadSignature))
    ));
    assert!(matches!(
        v.verify(&unlisted_leaf, &[unlisted, second], UnixTime::now()),
        Err(Error::InvalidCertificate(CertificateError::UnknownIssuer))
    ));
}

/// A service anchored at `anchor` alone, given `intermediates` and `cross` (a
/// cross-certificate, if any) in its chain, holding the first CRL of I1 and I2.
async fn anchored_at(
    f: &Fixture,
    r: &Rollover,
    anchor: &CertificateDer<'static>,
    intermediates: &[&CertificateDer<'static>],
    cross: Option<&CertificateDer<'static>>,
) -> Result<(Relying, CrlSink), RelyingError> {
    let chain = intermediates
        .iter()
        .copied()
        .chain(cross)
        .chain([anchor])
        .cloned()
        .collect();
    let first = bundle(&[
        &crl(f, 1, Duration::hours(1), &[]),
        &crl_of(&r.i2_signer, 1, Duration::hours(1), &[]),
    ]);
    build_on(chain, any_tenant(), Some(first)).await
}

#[tokio::test]
async fn verify_after_a_root_rollover_accepts_keys_of_both_roots_intermediates_each_against_its_own_crl()
 {
    let f = fixture();
    let r = rollover(&f);
    let (r1, i1) = (&f.chain[1], &f.chain[0]);
    // Trusting only the old root (the old ca.pem: leaf → I2 → X21 → R1), or only the new
    // one (leaf → I1 → X12 → R2).
    for (anchor, cross) in [(r1, &r.x21), (&r.r2, &r.x12)] {
        let (relying, sink) = anchored_at(&f, &r, anchor, &[i1, &r.i2], Some(cross))
            .await
            .unwrap();
        let v = relying.verifier();
        let name = subject_of(anchor);
        // The cross-certificate builds paths; it issues nothing and has no CRL.
        assert_eq!(v.issuers(), vec![i1.clone(), r.i2.clone()], "{name}");
        assert!(v.revocations_of(cross).is_none(), "{name}");
        let old = v.verify(&f.leaf, &[], UnixTime::now()).unwrap();
        let new = v.verify(&r.leaf, &[], UnixTime::now()).unwrap();
        assert_eq!(*new.serial(), r.serial);

        // I1's CRL listing I2's key counts for I1's keys only.
        assert!(sink.take(&crl(&f, 2, Duration::hours(1), &[r.serial])));
        assert!(v.verify(&r.leaf, &[], UnixTime::now()).is_ok(), "{name}");
        // I2's own CRL revokes it, at the handshake and on a connection already open; listing
        // I1's key too, it leaves that one standing.
        assert!(sink.take(&crl_of(
            &r.i2_signer,
            2,
            Duration::hours(1),
            &[r.serial, f.serial]
        )));
        assert!(
            matches!(
                v.verify(&r.leaf, &[], UnixTime::now()),
                Err(Error::InvalidCertificate(CertificateError::Revoked))
            ),
            "{name}"
        );
        assert!(v.still_valid(&new, UnixTime::now()).is_err(), "{name}");
        assert!(v.verify(&f.leaf, &[], UnixTime::now()).is_ok(), "{name}");
        v.still_valid(&old, UnixTime::now()).unwrap();
        // And the other way round: I1's CRL revokes I1's key, not I2's.
        assert!(sink.take(&crl(&f, 3, Duration::hours(1), &[f.serial])));
        assert!(matches!(
            v.verify(&f.leaf, &[], UnixTime::now()),
            Err(Error::InvalidCertificate(CertificateError::Revoked))
        ));
    }
}

#[tokio::test]
async fn verify_after_a_root_rollover_refuses_the_other_roots_keys_without_the_cross_certificate_or_with_a_forged_one()
 {
    let f = fixture();
    let r = rollover(&f);
    let (r1, i1) = (&f.chain[1], &f.chain[0]);
    // With the cross-certificate, I2's key passes at a service trusting R1.
    let (relying, _) = anchored_at(&f, &r, r1, &[i1, &r.i2], Some(&r.x21))
        .await
        .unwrap();
    assert!(
        relying
            .verifier()
            .verify(&r.leaf, &[], UnixTime::now())
            .is_ok()
    );

    // Without it: I2 is refused when the service is built, and its keys at the handshake
    // even when the client sends I2 and the cross-certificate itself (the client's own
    // certificates never count). The same at a service trusting R2 for I1's keys.
    for (anchor, own, (other, other_leaf), cross) in [
        (r1, i1, (&r.i2, &r.leaf), &r.x21),
        (&r.r2, &r.i2, (i1, &f.leaf), &r.x12),
    ] {
        let name = subject_of(anchor);
        match anchored_at(&f, &r, anchor, &[own, other], None).await {
            Err(RelyingError::Verifier(VerifierError::NotIssuedByRoot(subject))) => {
                assert_eq!(subject, subject_of(other), "{name}")
            }
            Err(e) => panic!("{name}: refused for another reason: {e}"),
            Ok(_) => panic!("{name}: built with the other root's intermediate and no cross"),
        }
        let (relying, _) = anchored_at(&f, &r, anchor, &[own], None).await.unwrap();
        let v = relying.verifier();
        assert_eq!(v.issuers(), vec![own.clone()]);
        let sent = [other.clone(), cross.clone()];
        assert!(
            matches!(
                v.verify(other_leaf, &sent, UnixTime::now()),
                Err(Error::InvalidCertificate(CertificateError::UnknownIssuer))
            ),
            "{name}"
        );
    }

    // A forged cross-certificate: R2's name and key, R1's name as its issuer, signed by a
    // third key. Refused by name when built; sent by a client, it gains nothing.
    let forger = {
        let mut params = ca_profile("latchkey root CA", 1);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        Issuer::new(params, KeyPair::generate().unwrap())
    };
    let r2_key = KeyPair::from_pem(&r.r2_key_pem).unwrap();
    let forged = cross("latchkey root CA 2", &r2_key, &forger);
    let (_, parsed) = x509_parser::parse_x509_certificate(&forged).unwrap();
    assert_eq!(parsed.issuer().to_string(), subject_of(r1), "forged well");
    match anchored_at(&f, &r, r1, &[i1, &r.i2], Some(&forged)).await {
        Err(RelyingError::Verifier(VerifierError::CrossNotIssuedByRoot(subject))) => {
            assert_eq!(subject, subject_of(&r.r2))
        }
        Err(e) => panic!("refused for another reason: {e}"),
        Ok(_) => panic!("built with a forged cross-certificate"),
    }
    let (relying, _) = anchored_at(&f, &r, r1, &[i1], None).await.unwrap();
    let v = relying.verifier();
    assert!(
        v.verify(&f.leaf, std::slice::from_ref(&forged), UnixTime::now())
            .is_ok()
    );
    assert!(matches!(
        v.verify(&r.leaf, &[r.i2.clone(), forged], UnixTime::now()),
        Err(Error::InvalidCertificate(CertificateError::UnknownIssuer))
    ));
}

#[tokio::test]
async fn a_chain_after_a_root_rollover_as_get_v1_ca_serves_it_anchors_at_both_roots_and_files_no_root_crl_under_an_intermediate()
 {
    let f = fixture();
    let r = rollover(&f);
    let (r1, i1) = (&f.chain[1], &f.chain[0]);
    let hour = Duration::hours(1);
    let r1_crl = root_crl(r1, &f.root.key().serialize_pem(), 1);
    let r2_crl = root_crl(&r.r2, &r.r2_key_pem, 1);
    // `GET /v1/ca`: the intermediates newest first, the cross-certificates, every root
    // newest first. Both roots are anchors; the cross-certificates are neither issuers nor
    // CRL signers.
    let chain = vec![
        r.i2.clone(),
        i1.clone(),
        r.x21.clone(),
        r.x12.clone(),
        r.r2.clone(),
        r1.clone(),
    ];
    let first = bundle(&[
        &crl(&f, 1, hour, &[]),
        &crl_of(&r.i2_signer, 1, hour, &[]),
        &r2_crl,
        &r1_crl,
    ]);
    let (relying, sink) = build_on(chain, any_tenant(), Some(first)).await.unwrap();
    let v = relying.verifier();
    assert_eq!(v.issuers(), vec![r.i2.clone(), i1.clone()]);
    assert!(v.verify(&f.leaf, &[], UnixTime::now()).is_ok());
    assert!(v.verify(&r.leaf, &[], UnixTime::now()).is_ok());
    assert_eq!(sink.held(), Some(1));

    // Trusting R1 alone with X21 (R2's name and key) in the chain: a bundle with both
    // roots' CRLs is taken for the intermediates; R2's CRL, which X21's key verifies, is
    // passed over, not filed as anybody's.
    let (relying, sink) = anchored_at(&f, &r, r1, &[i1, &r.i2], Some(&r.x21))
        .await
        .unwrap();
    let v = relying.verifier();
    assert!(sink.take(&bundle(&[
        &crl(&f, 2, hour, &[]),
        &crl_of(&r.i2_signer, 2, hour, &[]),
        &r1_crl,
        &r2_crl,
    ])));
    assert_eq!(sink.held(), Some(2));
    assert!(v.revocations_of(&r.x21).is_none());
    // A CRL in I2's name signed by R2's key is no CRL of I2's: refused, alone or in a bundle.
    let r2_key = KeyPair::from_pem(&r.r2_key_pem).unwrap();
    let named_like_i2 = ca_profile("latchkey issuing CA 2", 0)
        .self_signed(&r2_key)
        .unwrap();
    let by_r2 = latchkey::ca::RootSigner::new(
        &CertificateDer::from(named_like_i2.der().to_vec()),
        &r.r2_key_pem,
    )
    .unwrap()
    .sign(&CrlOrder {
        number: 9,
        this_update: OffsetDateTime::now_utc() - hour,
        next_update: OffsetDateTime::now_utc() + hour,
        entries: vec![CrlEntry {
            serial: r.serial,
            revoked_at: OffsetDateTime::now_utc(),
            reason: RevocationReason::KeyCompromise,
        }],
    })
    .unwrap();
    assert!(!sink.take(&by_r2));
    assert!(!sink.take(&bundle(&[&crl(&f, 3, hour, &[]), &by_r2])));
    let held = v.revocations_of(&r.i2).unwrap().current().unwrap();
    assert_eq!(held.number(), 2);
    assert!(v.verify(&r.leaf, &[], UnixTime::now()).is_ok());
}

/// A certificate's subject, as x509-parser prints it.
fn subject_of(certificate: &CertificateDer<'_>) -> String {
    let (_, parsed) = x509_parser::parse_x509_certificate(certificate).unwrap();
    parsed.subject().to_string()
}

#[tokio::test]
async fn a_watched_crl_file_is_taken_when_it_changes() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crl.pem");
    let first = crl(&f, 1, Duration::hours(1), &[]);
    std::fs::write(&path, latchkey::pem::encode("X509 CRL", &first)).unwrap();
    let relying = any_tenant()
        .ca_chain(f.chain.clone())
        .crl_file(&path)
        .build()
        .await
        .unwrap();
    let v = relying.verifier();
    let wait_for = |n: i64| async move {
        for _ in 0..50 {
            if v.revocations().current().is_some_and(|c| c.number() >= n) {
                return;
            }
            tokio::time::sleep(StdDuration::from_millis(100)).await;
        }
        panic!("CRL {n} was not taken from the file");
    };
    wait_for(1).await;
    assert!(v.verify(&f.leaf, &[], UnixTime::now()).is_ok());
    // Replaced (DER this time, with a later mtime): the key is revoked from then on.
    tokio::time::sleep(StdDuration::from_millis(1100)).await;
    std::fs::write(&path, crl(&f, 2, Duration::hours(1), &[f.serial])).unwrap();
    wait_for(2).await;
    assert!(matches!(
        v.verify(&f.leaf, &[], UnixTime::now()),
        Err(Error::InvalidCertificate(CertificateError::Revoked))
    ));
}

#[tokio::test]
async fn verify_of_a_leaf_with_an_unknown_critical_extension_is_refused() {
    let f = fixture();
    let relying = fresh(&f).await;
    let v = relying.verifier();
    let now = UnixTime::now();
    let with_private = |critical: bool| {
        leaf_with(&f, |p| {
            let mut ext =
                CustomExtension::from_oid_content(&[1, 3, 6, 1, 4, 1, 55555, 1], vec![0x05, 0x00]);
            ext.set_criticality(critical);
            p.custom_extensions.push(ext);
        })
    };
    // The same extension, not critical: ignored, so the leaf is otherwise sound.
    assert!(v.verify(&with_private(false), &[], now).is_ok());
    assert_eq!(
        webpki_reason(v.verify(&with_private(true), &[], now)),
        webpki::Error::UnsupportedCriticalExtension
    );
}

#[tokio::test]
async fn verify_of_a_leaf_without_client_auth_is_refused() {
    let f = fixture();
    let relying = fresh(&f).await;
    let v = relying.verifier();
    let now = UnixTime::now();
    let good = leaf_with(&f, |_| {});
    assert!(v.verify(&good, &[], now).is_ok());
    // serverAuth only: webpki finds an EKU without clientAuth.
    let server_only = leaf_with(&f, |p| {
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    });
    assert!(matches!(
        v.verify(&server_only, &[], now),
        Err(Error::InvalidCertificate(CertificateError::InvalidPurpose))
    ));
    // No EKU at all: webpki lets it through ("if present"), the identity check does not.
    let no_eku = leaf_with(&f, |p| p.extended_key_usages.clear());
    assert_eq!(
        read_unverified(&no_eku, TRUST_DOMAIN).unwrap_err(),
        IdentityError::ExtendedKeyUsage
    );
    assert_eq!(
        other_reason(v.verify(&no_eku, &[], now)).to_string(),
        NO_CLIENT_AUTH
    );
}

#[tokio::test]
async fn verify_of_a_leaf_without_exactly_one_latchkey_uri_is_refused() {
    let f = fixture();
    let relying = fresh(&f).await;
    let v = relying.verifier();
    let now = UnixTime::now();
    let good = leaf_with(&f, |p| {
        p.subject_alt_names = vec![key_uri(TRUST_DOMAIN, "acme")]
    });
    assert!(v.verify(&good, &[], now).is_ok());
    let cases = [
        ("no URI SAN", vec![]),
        (
            "two latchkey URIs",
            vec![key_uri(TRUST_DOMAIN, "acme"), key_uri(TRUST_DOMAIN, "acme")],
        ),
        (
            "a URI in another trust domain",
            vec![key_uri("other.internal", "acme")],
        ),
    ];
    for (case, sans) in cases {
        let leaf = leaf_with(&f, |p| p.subject_alt_names = sans);
        assert_eq!(
            read_unverified(&leaf, TRUST_DOMAIN).unwrap_err(),
            IdentityError::SpiffeId,
            "{case}"
        );
        assert_eq!(
            other_reason(v.verify(&leaf, &[], now)).to_string(),
            NO_KEY_URI,
            "{case}"
        );
    }
}

#[tokio::test]
async fn verify_of_a_leaf_whose_subject_disagrees_with_the_uri_is_refused() {
    let f = fixture();
    let relying = fresh(&f).await;
    let v = relying.verifier();
    let now = UnixTime::now();
    let good = leaf_with(&f, |p| p.distinguished_name = subject("alice", "acme"));
    assert!(v.verify(&good, &[], now).is_ok());
    let cases = [
        ("O = globex, URI tenant acme", subject("alice", "globex")),
        ("CN that is no owner name", subject("Alice Smith", "acme")),
    ];
    for (case, dn) in cases {
        let leaf = leaf_with(&f, |p| p.distinguished_name = dn);
        assert_eq!(
            read_unverified(&leaf, TRUST_DOMAIN).unwrap_err(),
            IdentityError::SubjectMismatch,
            "{case}"
        );
        assert_eq!(
            other_reason(v.verify(&leaf, &[], now)).to_string(),
            SUBJECT_MISMATCH,
            "{case}"
        );
    }
}

#[tokio::test]
async fn verify_of_a_ca_certificate_with_the_key_profile_is_refused() {
    let f = fixture();
    let relying = fresh(&f).await;
    let v = relying.verifier();
    let now = UnixTime::now();
    let good = leaf_with(&f, |p| p.is_ca = IsCa::ExplicitNoCa);
    assert!(v.verify(&good, &[], now).is_ok());
    let ca = leaf_with(&f, |p| p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0)));
    // Its identity alone would pass: only the chain check stands in the way.
    let read = read_unverified(&ca, TRUST_DOMAIN).unwrap();
    assert!(matches!(read.id, SpiffeId::Key { .. }));
    assert_eq!(
        webpki_reason(v.verify(&ca, &[], now)),
        webpki::Error::CaUsedAsEndEntity
    );
}

#[tokio::test]
async fn verify_with_a_crl_past_next_update_honours_the_configured_grace() {
    let f = fixture();
    let overdue_by = |overdue: Duration| Some(crl(&f, 1, -overdue, &[]));
    // Six minutes overdue lies between the default grace and the configured one.
    assert!(DEFAULT_GRACE < Duration::minutes(6));
    let t = UnixTime::now();
    let (default_grace, _) = build(&f, any_tenant(), overdue_by(Duration::minutes(6)))
        .await
        .unwrap();
    assert_eq!(
        other_reason(default_grace.verifier().verify(&f.leaf, &[], t)).to_string(),
        STALE
    );
    let ten_minutes = || any_tenant().grace(Duration::minutes(10));
    let (longer, _) = build(&f, ten_minutes(), overdue_by(Duration::minutes(6)))
        .await
        .unwrap();
    let identity = longer.verifier().verify(&f.leaf, &[], t).unwrap();
    assert_eq!(*identity.serial(), f.serial);
    // The grace stretches the deadline; it does not lift it.
    let (past_it, _) = build(&f, ten_minutes(), overdue_by(Duration::minutes(11)))
        .await
        .unwrap();
    assert_eq!(
        other_reason(past_it.verifier().verify(&f.leaf, &[], t)).to_string(),
        STALE
    );
}

/// A relying service refuses a revoked key at the handshake with one warning, from the
/// verifier, naming the key and why; the accept loop counts it without a second line.
#[tokio::test]
async fn a_refused_handshake_at_a_relying_service_is_logged_once_with_its_reason() {
    // Single-threaded runtime: the service's tasks log on this thread, into the capture.
    let log = crate::support::CapturedLog::default();
    let _capture = log.capture();
    let f = fixture();
    let relying = relying(&f, crl(&f, 1, Duration::hours(1), &[f.serial])).await;
    let service = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let service_cert = CertificateDer::from(service.cert.der().to_vec());
    let service_key = latchkey::tls::load_private_key(
        service.signing_key.serialize_pem().as_bytes(),
        "service key",
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(relying.serve(
        listener,
        vec![service_cert.clone()],
        service_key,
        axum::Router::new(),
        async {
            let _ = stopped.await;
        },
    ));

    let key = latchkey::tls::load_private_key(f.leaf_key_pem.as_bytes(), "key.pem").unwrap();
    let config = latchkey::tls::client_config(
        &[service_cert],
        Some((vec![f.leaf.clone(), f.chain[0].clone()], key)),
    )
    .unwrap();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(address).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    // TLS 1.3: the client's side may finish before the server has judged its certificate,
    // so the refusal arrives at the first read.
    let answered = match connector.connect(name, tcp).await {
        Ok(mut tls) => {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let _ = tls
                .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
                .await;
            let mut buf = [0u8; 64];
            tls.read(&mut buf).await.is_ok_and(|n| n > 0)
        }
        Err(_) => false,
    };
    assert!(!answered, "a revoked key got an answer");
    let _ = stop.send(());
    served.await.unwrap().unwrap();

    let text = log.text();
    let warnings: Vec<&str> = text.lines().filter(|l| l.contains(" WARN ")).collect();
    assert_eq!(warnings.len(), 1, "one warning per refusal: {text}");
    let line = warnings[0];
    assert!(line.contains("latchkey key refused"), "{line}");
    assert!(line.contains(&f.serial.to_string()), "the serial: {line}");
    assert!(line.contains("Revoked"), "the reason: {line}");
    assert!(
        !text.contains("TLS handshake refused"),
        "the accept loop repeated it: {text}"
    );
}
