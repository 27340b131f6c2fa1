//! The relying service's client-certificate verifier. Each handshake:
//! 1. builds and checks the chain with webpki (to the CA's root, through its intermediate
//!    whether or not the client sent it; a CA certificate, an expired one, a wrong EKU or an
//!    unknown critical extension fails here);
//! 2. reads the latchkey identity (the clientAuth EKU, exactly one URI SAN in the trust
//!    domain, a subject that agrees with it, the scopes): admin certificates and anything
//!    else are refused;
//! 3. checks the tenant against the accepted ones;
//! 4. looks the serial up in the revocation set of the last verified CRL: one hash lookup.
//!    No CRL yet, or one past `nextUpdate` plus the grace, refuses (fail closed).
//!
//! Every refusal is logged at warn with its reason (at most once a second per verifier, with
//! a count of the ones left out), so that a misconfigured service says why it refuses keys.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};
use rustls_pki_types::{CertificateDer, TrustAnchor, UnixTime};
use time::{Duration, OffsetDateTime};

use super::log_limit::LogLimit;
use super::revocation::Revocations;
use crate::model::TenantName;
use crate::profile::{Identity, IdentityError};

/// The default tolerance past a CRL's `nextUpdate` before handshakes are refused.
pub const DEFAULT_GRACE: Duration = Duration::minutes(5);
/// The most [`crate::relying::RelyingBuilder::grace`] accepts.
pub const MAX_GRACE: Duration = Duration::hours(1);

/// Why a verifier could not be built: each is a configuration that could never accept a key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifierError {
    /// A certificate of the CA chain does not parse.
    #[error("the CA chain holds an unreadable certificate: {0}")]
    Malformed(String),
    /// The CA chain holds no self-signed root.
    #[error("the CA chain holds no self-signed root: give the CA's root certificate (ca.pem)")]
    NoRoot,
    /// The CA chain holds only the root: key certificates are issued by the intermediate, so
    /// every key would be refused.
    #[error(
        "the CA chain holds no issuing intermediate: every key would be refused; give the chain of GET /v1/ca (intermediate, then root)"
    )]
    NoIntermediate,
    /// An intermediate of the chain is not a CA certificate signed by a root of the chain.
    #[error("the intermediate {0:?} is not a CA certificate issued by the root given")]
    NotIssuedByRoot(String),
    /// The trust domain is not a valid SPIFFE trust domain, so no URI SAN could match it.
    #[error("invalid trust domain {0:?}: lowercase letters, digits, dots and dashes")]
    TrustDomain(String),
    /// The grace past a CRL's `nextUpdate` is negative or above [`MAX_GRACE`].
    #[error("the CRL grace must be between 0 and {MAX_GRACE}, not {0}")]
    Grace(Duration),
    /// A tenant list that accepts no tenant at all.
    #[error("no tenant given: name at least one, or accept any tenant explicitly")]
    NoTenants,
}

/// A rejection reason rustls carries to the log.
#[derive(Debug)]
struct Refused(&'static str);

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for Refused {}

/// A refusal with a reason of our own, as rustls carries it to the log.
pub(super) fn refused(why: &'static str) -> Error {
    Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(Arc::new(
        Refused(why),
    ))))
}

/// Which tenants' keys a verifier accepts: a choice every relying service makes, because a
/// multi-tenant CA's keys of other tenants are otherwise accepted too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tenants {
    /// Keys of any tenant of the CA.
    Any,
    /// Keys of these tenants only.
    Only(HashSet<TenantName>),
}

/// Verifies latchkey key certificates with live revocation. Built by
/// [`crate::relying::Relying::builder`], which wires the same verifier into the TLS listener
/// and the per-request checks; loosen it only through the `insecure_` settings.
pub struct LatchkeyVerifier {
    anchors: Vec<TrustAnchor<'static>>,
    intermediates: Vec<CertificateDer<'static>>,
    hints: Vec<DistinguishedName>,
    trust_domain: String,
    revocations: Revocations,
    grace: Duration,
    tenants: Tenants,
    insecure_allow_stale_crl: bool,
    provider: Arc<rustls::crypto::CryptoProvider>,
    refusals: LogLimit,
}

impl fmt::Debug for LatchkeyVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LatchkeyVerifier")
            .field("trust_domain", &self.trust_domain)
            .field("tenants", &self.tenants)
            .field("grace", &self.grace)
            .field("insecure_allow_stale_crl", &self.insecure_allow_stale_crl)
            .finish_non_exhaustive()
    }
}

impl LatchkeyVerifier {
    /// A verifier for certificates of the CA whose chain (`GET /v1/ca`: intermediate, then
    /// root) is `chain`, in `trust_domain`, accepting keys of `tenants`, reading revocations
    /// from `revocations`. Refuses a chain that could never verify a key: one without a
    /// self-signed root, without the issuing intermediate, or whose intermediate the root
    /// did not sign.
    pub(crate) fn new(
        chain: &[CertificateDer<'static>],
        trust_domain: &str,
        tenants: Tenants,
        revocations: Revocations,
    ) -> Result<Self, VerifierError> {
        if !crate::profile::valid_trust_domain(trust_domain) {
            return Err(VerifierError::TrustDomain(trust_domain.to_owned()));
        }
        if matches!(&tenants, Tenants::Only(t) if t.is_empty()) {
            return Err(VerifierError::NoTenants);
        }
        let parsed = chain
            .iter()
            .map(|cert| {
                x509_parser::parse_x509_certificate(cert)
                    .map(|(_, parsed)| (cert, parsed))
                    .map_err(|e| VerifierError::Malformed(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let (roots, intermediates): (Vec<_>, Vec<_>) =
            parsed.iter().partition(|(_, p)| p.subject() == p.issuer());
        if roots.is_empty() {
            return Err(VerifierError::NoRoot);
        }
        if intermediates.is_empty() {
            return Err(VerifierError::NoIntermediate);
        }
        for (_, intermediate) in &intermediates {
            let signed_by_a_root = roots.iter().any(|(_, root)| {
                intermediate.issuer() == root.subject()
                    && intermediate
                        .verify_signature(Some(root.public_key()))
                        .is_ok()
            });
            if !intermediate.is_ca() || !signed_by_a_root {
                return Err(VerifierError::NotIssuedByRoot(
                    intermediate.subject().to_string(),
                ));
            }
        }
        let mut anchors = Vec::new();
        let mut hints = Vec::new();
        for (cert, root) in &roots {
            anchors.push(
                webpki::anchor_from_trusted_cert(cert)
                    .map_err(|e| VerifierError::Malformed(format!("{e:?}")))?
                    .to_owned(),
            );
            hints.push(DistinguishedName::from(root.subject().as_raw().to_vec()));
        }
        Ok(Self {
            anchors,
            intermediates: intermediates.iter().map(|(c, _)| (*c).clone()).collect(),
            hints,
            trust_domain: trust_domain.to_owned(),
            revocations,
            grace: DEFAULT_GRACE,
            tenants,
            insecure_allow_stale_crl: false,
            provider: super::config::provider(),
            refusals: LogLimit::default(),
        })
    }

    /// How long past a CRL's `nextUpdate` handshakes still pass (default 5 minutes). A value
    /// below zero or above [`MAX_GRACE`] is refused: beyond that only
    /// [`Self::insecure_allow_stale_crl`] loosens the rule, by name.
    pub(crate) fn grace(mut self, grace: Duration) -> Result<Self, VerifierError> {
        if grace < Duration::ZERO || grace > MAX_GRACE {
            return Err(VerifierError::Grace(grace));
        }
        self.grace = grace;
        Ok(self)
    }

    /// DANGER: accepts handshakes with a CRL past `nextUpdate` plus the grace. Revocations
    /// may then be missed; logged whenever it matters.
    pub(crate) fn insecure_allow_stale_crl(mut self) -> Self {
        tracing::warn!("insecure_allow_stale_crl: a stale CRL will not stop handshakes");
        self.insecure_allow_stale_crl = true;
        self
    }

    /// The trust domain this verifier accepts.
    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    /// The issuing intermediate, whose CRLs this verifier's revocation set takes.
    pub(crate) fn issuer(&self) -> &CertificateDer<'static> {
        &self.intermediates[0]
    }

    /// The revocation state this verifier reads.
    pub fn revocations(&self) -> &Revocations {
        &self.revocations
    }

    /// Checks, for a request on a connection whose handshake proved `identity`, that it
    /// still stands at `now`: not revoked since, not expired since, and the CRL still fresh.
    /// Called per request, because a keep-alive connection outlives its handshake.
    pub fn still_valid(&self, identity: &Identity, now: UnixTime) -> Result<(), Error> {
        let now = offset(now);
        if identity.not_after() <= now {
            return Err(self.refuse(
                Error::InvalidCertificate(CertificateError::Expired),
                Some(identity),
            ));
        }
        self.check_revocation(identity, now)
            .map_err(|e| self.refuse(e, Some(identity)))
    }

    fn check_revocation(&self, identity: &Identity, now: OffsetDateTime) -> Result<(), Error> {
        let Some(set) = self.revocations.current() else {
            return Err(refused("no CRL yet: refusing until one is verified"));
        };
        if now > set.next_update() + self.grace {
            if self.insecure_allow_stale_crl {
                tracing::warn!(number = set.number(), "accepting a stale CRL");
            } else {
                tracing::error!(number = set.number(), next_update = %set.next_update(), "the CRL is stale; refusing");
                return Err(refused("the CRL is stale"));
            }
        }
        if set.is_revoked(identity.serial().as_bytes()) {
            return Err(Error::InvalidCertificate(CertificateError::Revoked));
        }
        Ok(())
    }

    /// Logs a refusal at warn with its reason (rate-limited: a client can cause them at
    /// will), and hands it back.
    fn refuse(&self, error: Error, identity: Option<&Identity>) -> Error {
        self.refusals.log(|left_out| match identity {
            Some(id) => tracing::warn!(
                tenant = %id.tenant(),
                key_id = %id.key_id(),
                serial = %id.serial(),
                reason = %error,
                left_out,
                "latchkey key refused"
            ),
            None => tracing::warn!(reason = %error, left_out, "client certificate refused"),
        });
        error
    }

    /// The full check of a presented leaf (and any intermediates it came with) at `now`:
    /// the identity it proves, or why not. The only way to an [`Identity`].
    pub fn verify(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<Identity, Error> {
        // 1. Chain, validity, clientAuth, criticality, CA-as-leaf.
        // Only the CA's own intermediate builds the path, whatever the client sends: the
        // revocation set belongs to that issuer, so a leaf of any other intermediate under
        // the root (an old or rotated one) must not pass with revocations nobody checks.
        let _ = intermediates;
        let leaf = webpki::EndEntityCert::try_from(end_entity)
            .map_err(|e| self.refuse(pki_error(e), None))?;
        leaf.verify_for_usage(
            self.provider.signature_verification_algorithms.all,
            &self.anchors,
            &self.intermediates,
            now,
            // Checked on every certificate of the path, so "if present" here; the leaf's
            // clientAuth is required by the identity check below.
            webpki::KeyUsage::client_auth(),
            None,
            None,
        )
        .map_err(|e| self.refuse(pki_error(e), None))?;
        // 2. The latchkey identity.
        let identity = Identity::from_der(end_entity, &self.trust_domain)
            .map_err(|e| self.refuse(refused(not_a_key(&e)), None))?;
        // 3. Accepted tenants.
        if let Tenants::Only(tenants) = &self.tenants
            && !tenants.contains(identity.tenant())
        {
            return Err(self.refuse(refused("tenant not accepted here"), Some(&identity)));
        }
        // 4. Revocation.
        self.check_revocation(&identity, offset(now))
            .map_err(|e| self.refuse(e, Some(&identity)))?;
        Ok(identity)
    }
}

/// Why a certificate that chains to the CA is still no latchkey key certificate, for the log.
fn not_a_key(e: &IdentityError) -> &'static str {
    match e {
        IdentityError::Malformed => "not a latchkey key certificate: not a valid certificate",
        IdentityError::Serial => "not a latchkey key certificate: not a latchkey serial",
        IdentityError::SpiffeId => {
            "not a latchkey key certificate: no key URI SAN in this trust domain (another trust domain, or an administrator's certificate)"
        }
        IdentityError::SubjectMismatch => {
            "not a latchkey key certificate: the subject does not match the URI SAN"
        }
        IdentityError::ExtendedKeyUsage => "not a latchkey key certificate: no clientAuth usage",
        IdentityError::Scopes => "not a latchkey key certificate: malformed scopes",
    }
}

/// rustls's time as the `time` crate's, for comparing with certificate and CRL dates.
fn offset(now: UnixTime) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(now.as_secs() as i64).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn pki_error(e: webpki::Error) -> Error {
    use webpki::Error as E;
    Error::InvalidCertificate(match e {
        E::CertExpired { .. } => CertificateError::Expired,
        E::CertNotValidYet { .. } => CertificateError::NotValidYet,
        E::UnknownIssuer => CertificateError::UnknownIssuer,
        E::InvalidSignatureForPublicKey => CertificateError::BadSignature,
        E::RequiredEkuNotFoundContext(_) => CertificateError::InvalidPurpose,
        other => CertificateError::Other(rustls::OtherError(Arc::new(other))),
    })
}

impl ClientCertVerifier for LatchkeyVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        self.verify(end_entity, intermediates, now)
            .map(|_| ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(all(test, feature = "server"))]
#[allow(clippy::unwrap_used, reason = "test code")]
mod tests {
    use super::*;
    use crate::ca::{Bootstrap, CrlEntry, CrlOrder, KeyOrder, Signer};
    use crate::model::{KeyId, RevocationReason, ScopeSet, Serial};
    use crate::profile::read::tests::{ScopesOidKey, key_profile, key_uri, sign, subject};
    use crate::tls::{CrlSink, CrlSource, RevocationSet};
    use rcgen::{BasicConstraints, CustomExtension, ExtendedKeyUsagePurpose, IsCa, Issuer};

    struct Fixture {
        chain: Vec<CertificateDer<'static>>,
        signer: Signer,
        /// The intermediate's key, for leaves built field by field.
        issuer: Issuer<'static, ScopesOidKey>,
        leaf: CertificateDer<'static>,
        serial: Serial,
    }

    fn fixture() -> Fixture {
        let now = OffsetDateTime::now_utc();
        let ca = Bootstrap::generate(now).unwrap();
        let signer = Signer::new(
            ca.intermediate_certificate.clone(),
            &ca.intermediate_key_pem,
            "latchkey.internal",
            "https://localhost/v1/crl",
        )
        .unwrap();
        let csr = crate::client::new_key_pair(crate::client::KeyType::P256)
            .unwrap()
            .csr_pem;
        let serial = Serial::random();
        let leaf = signer
            .sign_key_certificate(KeyOrder {
                serial,
                tenant: "acme".parse().unwrap(),
                owner: "alice".parse().unwrap(),
                key_id: KeyId::random(),
                scopes: ScopeSet::parse(["read:metrics"]).unwrap(),
                not_before: now - Duration::minutes(1),
                not_after: now + Duration::hours(1),
                public_key: crate::authority::csr::verify_pem(&csr).unwrap().public_key,
            })
            .unwrap()
            .der;
        let issuer = Issuer::from_ca_cert_der(
            &ca.intermediate_certificate,
            ScopesOidKey(rcgen::KeyPair::from_pem(&ca.intermediate_key_pem).unwrap()),
        )
        .unwrap();
        Fixture {
            chain: vec![ca.intermediate_certificate, ca.root_certificate],
            signer,
            issuer,
            leaf,
            serial,
        }
    }

    fn verifier(f: &Fixture, revocations: Revocations) -> LatchkeyVerifier {
        LatchkeyVerifier::new(&f.chain, "latchkey.internal", Tenants::Any, revocations).unwrap()
    }

    fn set(serials: Vec<Serial>, validity: Duration) -> Revocations {
        Revocations::fixed(RevocationSet::from_serials(serials, validity))
    }

    #[test]
    fn a_good_key_passes_and_a_revoked_one_does_not() {
        let f = fixture();
        let now = UnixTime::now();
        let identity = verifier(&f, set(vec![], Duration::hours(1)))
            .verify(&f.leaf, &[], now)
            .unwrap();
        assert_eq!(identity.tenant().as_str(), "acme");
        let revoked = verifier(&f, set(vec![f.serial], Duration::hours(1)));
        assert!(matches!(
            revoked.verify(&f.leaf, &[], now),
            Err(Error::InvalidCertificate(CertificateError::Revoked))
        ));
        // The per-request check sees a revocation that came after the handshake.
        let live = Revocations::fixed(RevocationSet::from_serials(vec![], Duration::hours(1)));
        let v = verifier(&f, live.clone());
        let identity = v.verify(&f.leaf, &[], now).unwrap();
        let mut newer = RevocationSet::from_serials(vec![f.serial], Duration::hours(1));
        newer.number = 2;
        live.offer(newer).unwrap();
        assert!(v.still_valid(&identity, UnixTime::now()).is_err());
    }

    #[test]
    fn a_chain_that_could_never_verify_a_key_is_refused_when_built() {
        let f = fixture();
        let other = fixture();
        let new = |chain: &[CertificateDer<'static>]| {
            LatchkeyVerifier::new(chain, "latchkey.internal", Tenants::Any, Revocations::new())
        };
        assert!(matches!(
            new(&f.chain[1..]),
            Err(VerifierError::NoIntermediate)
        ));
        assert!(matches!(new(&f.chain[..1]), Err(VerifierError::NoRoot)));
        assert!(matches!(
            new(&[f.chain[0].clone(), other.chain[1].clone()]),
            Err(VerifierError::NotIssuedByRoot(_))
        ));
        assert!(matches!(
            LatchkeyVerifier::new(&f.chain, "Not A Domain", Tenants::Any, Revocations::new()),
            Err(VerifierError::TrustDomain(_))
        ));
        assert!(matches!(
            LatchkeyVerifier::new(
                &f.chain,
                "latchkey.internal",
                Tenants::Only(Default::default()),
                Revocations::new()
            ),
            Err(VerifierError::NoTenants)
        ));
        assert!(new(&f.chain).is_ok());
    }

    #[test]
    fn no_crl_or_a_stale_one_refuses_unless_insecurely_allowed() {
        let f = fixture();
        let now = UnixTime::now();
        assert!(
            verifier(&f, Revocations::new())
                .verify(&f.leaf, &[], now)
                .is_err()
        );
        let stale = || set(vec![], -(DEFAULT_GRACE + Duration::minutes(1)));
        assert!(verifier(&f, stale()).verify(&f.leaf, &[], now).is_err());
        // A grace out of range is refused when the verifier is built, never clamped.
        for out_of_range in [
            Duration::days(365),
            MAX_GRACE + Duration::SECOND,
            -Duration::SECOND,
        ] {
            assert!(
                matches!(
                    verifier(&f, stale()).grace(out_of_range),
                    Err(VerifierError::Grace(g)) if g == out_of_range
                ),
                "grace {out_of_range} accepted"
            );
        }
        assert!(verifier(&f, stale()).grace(MAX_GRACE).is_ok());
        assert!(
            verifier(&f, stale())
                .insecure_allow_stale_crl()
                .verify(&f.leaf, &[], now)
                .is_ok()
        );
    }

    #[test]
    fn pinned_tenants_ca_certificates_and_admin_certificates_are_refused() {
        let f = fixture();
        let now = UnixTime::now();
        let pinned = LatchkeyVerifier::new(
            &f.chain,
            "latchkey.internal",
            Tenants::Only(["globex".parse().unwrap()].into_iter().collect()),
            set(vec![], Duration::hours(1)),
        )
        .unwrap();
        assert!(pinned.verify(&f.leaf, &[], now).is_err());
        let v = verifier(&f, set(vec![], Duration::hours(1)));
        assert!(
            v.verify(&f.chain[0], &[], now).is_err(),
            "the intermediate as a leaf"
        );
        let pair = crate::client::new_key_pair(crate::client::KeyType::P256).unwrap();
        let pk = crate::authority::csr::verify_pem(&pair.csr_pem)
            .unwrap()
            .public_key;
        let t = OffsetDateTime::now_utc();
        let admin = f
            .signer
            .sign_admin_certificate(
                &"admin".parse().unwrap(),
                Serial::random(),
                t - Duration::minutes(1),
                t + Duration::hours(1),
                &pk,
            )
            .unwrap();
        assert!(
            v.verify(&admin.der, &[], now).is_err(),
            "an admin certificate is not a key"
        );
    }

    #[test]
    fn crls_are_taken_only_when_signed_by_the_issuer_and_newer() {
        let f = fixture();
        let other = fixture();
        let now = OffsetDateTime::now_utc();
        let order = |number| CrlOrder {
            number,
            this_update: now - Duration::minutes(1),
            next_update: now + Duration::hours(1),
            entries: vec![CrlEntry {
                serial: f.serial,
                revoked_at: now,
                reason: RevocationReason::KeyCompromise,
            }],
        };
        let issuer = &f.chain[0];
        let good = f.signer.sign_crl(&order(5)).unwrap();
        let set5 = RevocationSet::from_crl(&good, issuer).unwrap();
        assert!(set5.is_revoked(f.serial.as_bytes()));
        let forged = other.signer.sign_crl(&order(9)).unwrap();
        assert!(
            RevocationSet::from_crl(&forged, issuer).is_err(),
            "another CA's CRL"
        );
        let revocations = Revocations::new();
        revocations.offer(set5).unwrap();
        let older =
            RevocationSet::from_crl(&f.signer.sign_crl(&order(4)).unwrap(), issuer).unwrap();
        assert!(matches!(
            revocations.offer(older),
            Err(crate::profile::CrlError::NotNewer { got: 4, held: 5 })
        ));
        assert_eq!(revocations.current().unwrap().number, 5);
    }

    #[tokio::test]
    async fn a_watched_crl_file_is_taken_when_it_changes() {
        let f = fixture();
        let now = OffsetDateTime::now_utc();
        let order = |number, entries: Vec<CrlEntry>| CrlOrder {
            number,
            this_update: now - Duration::minutes(1),
            next_update: now + Duration::hours(1),
            entries,
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("crl.pem");
        let first = f.signer.sign_crl(&order(1, vec![])).unwrap();
        std::fs::write(&path, crate::pem::encode("X509 CRL", &first)).unwrap();
        let revocations = Revocations::new();
        let sink = CrlSink::new(revocations.clone(), f.chain[0].clone());
        let source: Box<dyn CrlSource> = Box::new(crate::relying::CrlFile::new(path.clone()));
        let task = tokio::spawn(source.run(sink));
        let v = verifier(&f, revocations.clone());
        let wait_for = |n: i64| {
            let revocations = revocations.clone();
            async move {
                for _ in 0..50 {
                    if revocations.current().is_some_and(|c| c.number >= n) {
                        return;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                panic!("CRL {n} was not taken from the file");
            }
        };
        wait_for(1).await;
        assert!(v.verify(&f.leaf, &[], UnixTime::now()).is_ok());
        // Replaced (DER this time, with a later mtime): the key is revoked from then on.
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        let entry = CrlEntry {
            serial: f.serial,
            revoked_at: now,
            reason: RevocationReason::KeyCompromise,
        };
        std::fs::write(&path, f.signer.sign_crl(&order(2, vec![entry])).unwrap()).unwrap();
        wait_for(2).await;
        assert!(v.verify(&f.leaf, &[], UnixTime::now()).is_err());
        task.abort();
    }

    /// The reason carried by a refusal that rustls only knows as `CertificateError::Other`.
    fn other_reason(result: Result<Identity, Error>) -> Arc<dyn std::error::Error + Send + Sync> {
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

    /// The refusal of a leaf whose latchkey identity does not parse: it says so, and why.
    fn not_a_key_because(e: IdentityError) -> String {
        let reason = not_a_key(&e).to_owned();
        assert!(reason.starts_with("not a latchkey key certificate: "));
        reason
    }

    /// The key profile changed by `change`, signed by the fixture's intermediate.
    fn leaf_with(
        f: &Fixture,
        change: impl FnOnce(&mut rcgen::CertificateParams),
    ) -> CertificateDer<'static> {
        let mut params = key_profile();
        change(&mut params);
        sign(params, &f.issuer)
    }

    fn fresh(f: &Fixture) -> LatchkeyVerifier {
        verifier(f, set(vec![], Duration::hours(1)))
    }

    #[test]
    fn verify_of_a_leaf_with_an_unknown_critical_extension_is_refused() {
        let f = fixture();
        let v = fresh(&f);
        let now = UnixTime::now();
        let with_private = |critical: bool| {
            leaf_with(&f, |p| {
                let mut ext = CustomExtension::from_oid_content(
                    &[1, 3, 6, 1, 4, 1, 55555, 1],
                    vec![0x05, 0x00],
                );
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

    #[test]
    fn verify_of_a_leaf_without_client_auth_is_refused() {
        let f = fixture();
        let v = fresh(&f);
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
            Identity::from_der(&no_eku, "latchkey.internal").unwrap_err(),
            IdentityError::ExtendedKeyUsage
        );
        assert_eq!(
            other_reason(v.verify(&no_eku, &[], now)).to_string(),
            not_a_key_because(IdentityError::ExtendedKeyUsage)
        );
    }

    #[test]
    fn verify_of_a_leaf_without_exactly_one_latchkey_uri_is_refused() {
        let f = fixture();
        let v = fresh(&f);
        let now = UnixTime::now();
        let good = leaf_with(&f, |p| {
            p.subject_alt_names = vec![key_uri("latchkey.internal", "acme")]
        });
        assert!(v.verify(&good, &[], now).is_ok());
        let cases = [
            ("no URI SAN", vec![]),
            (
                "two latchkey URIs",
                vec![
                    key_uri("latchkey.internal", "acme"),
                    key_uri("latchkey.internal", "acme"),
                ],
            ),
            (
                "a URI in another trust domain",
                vec![key_uri("other.internal", "acme")],
            ),
        ];
        for (case, sans) in cases {
            let leaf = leaf_with(&f, |p| p.subject_alt_names = sans);
            assert_eq!(
                Identity::from_der(&leaf, "latchkey.internal").unwrap_err(),
                IdentityError::SpiffeId,
                "{case}"
            );
            assert_eq!(
                other_reason(v.verify(&leaf, &[], now)).to_string(),
                not_a_key_because(IdentityError::SpiffeId),
                "{case}"
            );
        }
    }

    #[test]
    fn verify_of_a_leaf_whose_subject_disagrees_with_the_uri_is_refused() {
        let f = fixture();
        let v = fresh(&f);
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
                Identity::from_der(&leaf, "latchkey.internal").unwrap_err(),
                IdentityError::SubjectMismatch,
                "{case}"
            );
            assert_eq!(
                other_reason(v.verify(&leaf, &[], now)).to_string(),
                not_a_key_because(IdentityError::SubjectMismatch),
                "{case}"
            );
        }
    }

    #[test]
    fn verify_of_a_ca_certificate_with_the_key_profile_is_refused() {
        let f = fixture();
        let v = fresh(&f);
        let now = UnixTime::now();
        let good = leaf_with(&f, |p| p.is_ca = IsCa::ExplicitNoCa);
        assert!(v.verify(&good, &[], now).is_ok());
        let ca = leaf_with(&f, |p| p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0)));
        // Its identity alone would pass: only the chain check stands in the way.
        assert!(Identity::from_der(&ca, "latchkey.internal").is_ok());
        assert_eq!(
            webpki_reason(v.verify(&ca, &[], now)),
            webpki::Error::CaUsedAsEndEntity
        );
    }

    #[test]
    fn verify_with_a_crl_past_next_update_honours_the_configured_grace() {
        let f = fixture();
        let now = OffsetDateTime::now_utc();
        let crl_overdue_by = |overdue: Duration| {
            let der = f
                .signer
                .sign_crl(&CrlOrder {
                    number: 1,
                    this_update: now - Duration::hours(1),
                    next_update: now - overdue,
                    entries: vec![],
                })
                .unwrap();
            Revocations::fixed(RevocationSet::from_crl(&der, &f.chain[0]).unwrap())
        };
        // Six minutes overdue lies between the default grace and the configured one.
        assert!(DEFAULT_GRACE < Duration::minutes(6));
        let t = UnixTime::now();
        let stale = "the CRL is stale";
        assert_eq!(
            other_reason(verifier(&f, crl_overdue_by(Duration::minutes(6))).verify(
                &f.leaf,
                &[],
                t
            ))
            .to_string(),
            stale
        );
        let identity = verifier(&f, crl_overdue_by(Duration::minutes(6)))
            .grace(Duration::minutes(10))
            .unwrap()
            .verify(&f.leaf, &[], t)
            .unwrap();
        assert_eq!(*identity.serial(), f.serial);
        // The grace stretches the deadline; it does not lift it.
        assert_eq!(
            other_reason(
                verifier(&f, crl_overdue_by(Duration::minutes(11)))
                    .grace(Duration::minutes(10))
                    .unwrap()
                    .verify(&f.leaf, &[], t)
            )
            .to_string(),
            stale
        );
    }
}
