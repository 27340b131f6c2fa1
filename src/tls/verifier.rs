//! The relying service's client-certificate verifier. Each handshake:
//! 1. builds and checks the chain with webpki (to one of the CA's roots, through one of the
//!    issuing intermediates it holds and, after a root rollover, a cross-certificate it
//!    holds, whatever intermediates the client sent; a CA certificate, an expired one, a
//!    wrong EKU or an unknown critical extension fails here), and notes which intermediate
//!    the path went through next to the leaf: the leaf's issuer;
//! 2. reads the latchkey identity (the clientAuth EKU, exactly one URI SAN in the trust
//!    domain, a subject that agrees with it, the scopes): admin certificates and anything
//!    else are refused;
//! 3. checks the tenant against the accepted ones;
//! 4. looks the serial up in the revocation set of the last verified CRL of that issuer:
//!    one hash lookup. No CRL of that issuer yet, or one past `nextUpdate` plus the grace,
//!    refuses (fail closed).
//!
//! The intermediates can change while it runs (`issuers.rs`): a relying service following
//! the CA adds the new one after a rotation and drops a retired one, each with its own CRL;
//! after a root rollover it takes the cross-certificates first, through which the other
//! root's intermediates chain to the root it trusts.
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

use super::issuers::{Issuer, Issuers};
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
    /// An intermediate is not a CA certificate signed by a root of the chain, nor by another
    /// root's key that a cross-certificate of the chain certifies.
    #[error(
        "the intermediate {0:?} is not a CA certificate issued by the root given (directly or through a cross-certificate it signed)"
    )]
    NotIssuedByRoot(String),
    /// A cross-certificate of the chain (a CA certificate carrying another root's name) is
    /// not signed by a root of the chain.
    #[error("the cross-certificate {0:?} is not a CA certificate issued by the root given")]
    CrossNotIssuedByRoot(String),
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

/// A CA chain sorted out: what a verifier is built from.
#[derive(Debug, Default)]
pub(crate) struct Chain {
    /// The self-signed roots: each is a trust anchor.
    pub(crate) roots: Vec<CertificateDer<'static>>,
    /// The cross-certificates between roots (after a root rollover), to be checked against
    /// the roots.
    pub(crate) crosses: Vec<CertificateDer<'static>>,
    /// The issuing intermediates, to be checked against the roots and cross-certificates.
    pub(crate) intermediates: Vec<CertificateDer<'static>>,
}

impl Chain {
    /// Sorts `chain` (as `GET /v1/ca` serves it: the issuing intermediates, then after a
    /// root rollover the cross-certificates, then every root; any order is read): a
    /// self-signed certificate is a root; a CA certificate that is not is a cross-certificate
    /// when it carries the name of a root of the chain or of the issuer of another CA
    /// certificate of the chain (the other root, whose key it certifies); every other
    /// certificate is an intermediate.
    pub(crate) fn sort(chain: &[CertificateDer<'static>]) -> Result<Self, VerifierError> {
        let parsed = chain
            .iter()
            .map(|cert| {
                x509_parser::parse_x509_certificate(cert)
                    .map(|(_, parsed)| (cert, parsed))
                    .map_err(|e| VerifierError::Malformed(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let self_signed =
            |p: &x509_parser::certificate::X509Certificate<'_>| p.subject() == p.issuer();
        let mut sorted = Self::default();
        for (i, (cert, p)) in parsed.iter().enumerate() {
            let names_another_ca = || {
                parsed.iter().enumerate().any(|(j, (_, other))| {
                    j != i
                        && if self_signed(other) {
                            other.subject() == p.subject()
                        } else {
                            other.is_ca() && other.issuer() == p.subject()
                        }
                })
            };
            // A certificate with the name and key of another CA certificate of the chain
            // (an intermediate certified by the root that did not sign it) is a
            // cross-certificate too.
            let twin = || {
                parsed.iter().enumerate().any(|(j, (_, other))| {
                    j != i && !self_signed(other) && super::issuers::same_name_and_key(other, p)
                })
            };
            let kind = if self_signed(p) {
                &mut sorted.roots
            } else if p.is_ca() && (names_another_ca() || twin()) {
                &mut sorted.crosses
            } else {
                &mut sorted.intermediates
            };
            kind.push((*cert).clone());
        }
        Ok(sorted)
    }
}

/// Verifies latchkey key certificates with live revocation. Built by
/// [`crate::relying::Relying::builder`], which wires the same verifier into the TLS listener
/// and the per-request checks; loosen it only through the `insecure_` settings.
pub struct LatchkeyVerifier {
    anchors: Vec<TrustAnchor<'static>>,
    issuers: Issuers,
    hints: Vec<DistinguishedName>,
    trust_domain: String,
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
    /// A verifier for certificates of the CA whose chain is `chain` (`GET /v1/ca`, sorted:
    /// see [`Chain::sort`]), in `trust_domain`, accepting keys of `tenants`; each
    /// intermediate starts without a CRL. Every root is a trust anchor. Refuses a chain that
    /// could never verify a key: one without a self-signed root, without an issuing
    /// intermediate, with an intermediate no root signed (directly, or through a
    /// cross-certificate a root signed), or with a cross-certificate no root signed (one
    /// that certifies a root of the chain itself adds nothing and is passed over).
    pub(crate) fn new(
        chain: Chain,
        trust_domain: &str,
        tenants: Tenants,
    ) -> Result<Self, VerifierError> {
        if !crate::profile::valid_trust_domain(trust_domain) {
            return Err(VerifierError::TrustDomain(trust_domain.to_owned()));
        }
        if matches!(&tenants, Tenants::Only(t) if t.is_empty()) {
            return Err(VerifierError::NoTenants);
        }
        if chain.roots.is_empty() {
            return Err(VerifierError::NoRoot);
        }
        if chain.intermediates.is_empty() {
            return Err(VerifierError::NoIntermediate);
        }
        let mut crosses = Vec::new();
        for cross in chain.crosses {
            if super::issuers::certifies_a_root(&cross, &chain.roots) {
                continue;
            }
            super::issuers::cross_certified(&cross, &chain.roots)?;
            crosses.push(cross);
        }
        let issuers = Issuers::new(chain.roots.clone());
        issuers.set_crosses(&crosses);
        for intermediate in &chain.intermediates {
            issuers.add(intermediate)?;
        }
        let mut anchors = Vec::new();
        let mut hints = Vec::new();
        for cert in &chain.roots {
            let (_, root) = x509_parser::parse_x509_certificate(cert)
                .map_err(|e| VerifierError::Malformed(e.to_string()))?;
            anchors.push(
                webpki::anchor_from_trusted_cert(cert)
                    .map_err(|e| VerifierError::Malformed(format!("{e:?}")))?
                    .to_owned(),
            );
            hints.push(DistinguishedName::from(root.subject().as_raw().to_vec()));
        }
        Ok(Self {
            anchors,
            issuers,
            hints,
            trust_domain: trust_domain.to_owned(),
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

    /// The issuing intermediates whose keys this verifier accepts now, each with its own
    /// CRL: crate-private, for the revocation sources that add and remove them.
    pub(crate) fn issuer_set(&self) -> &Issuers {
        &self.issuers
    }

    /// The issuing intermediates whose keys this verifier accepts now (their certificates,
    /// in the order they were added). A relying service following the CA adds one after a
    /// rotation and drops one the CA retired.
    pub fn issuers(&self) -> Vec<CertificateDer<'static>> {
        self.issuers.load().certificates.clone()
    }

    /// The revocation state of the intermediate `issuer`, if this verifier accepts its keys.
    pub fn revocations_of(&self, issuer: &CertificateDer<'_>) -> Option<Revocations> {
        self.issuers
            .load()
            .by_certificate(issuer)
            .map(|i| i.revocations.clone())
    }

    /// The revocation state of the newest intermediate (the latest start of validity: the
    /// one signing new certificates; with one intermediate, that one). Empty, with no CRL,
    /// when no intermediate is left. Each intermediate has its own: see
    /// [`Self::revocations_of`].
    pub fn revocations(&self) -> Revocations {
        self.issuers
            .load()
            .newest()
            .map(|i| i.revocations.clone())
            .unwrap_or_default()
    }

    /// The identity a leaf proves whose chain a handshake with this verifier already
    /// checked: its fields, and the intermediate that issued it among those held now (see
    /// `IssuerSet::issuer_of`). `None` when it carries no identity or its issuer is gone.
    #[cfg(feature = "axum")]
    pub(crate) fn identity_after_handshake(&self, leaf: &[u8]) -> Option<Identity> {
        let identity = Identity::from_der(leaf, &self.trust_domain).ok()?;
        let issuer = self.issuers.load().issuer_of(leaf)?.fingerprint;
        Some(identity.issued_by(issuer))
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
        let issuers = self.issuers.load();
        let issuer = identity
            .issuer()
            .and_then(|fingerprint| issuers.by_fingerprint(fingerprint));
        let Some(issuer) = issuer else {
            return Err(self.refuse(
                refused("its issuing intermediate is no longer accepted here"),
                Some(identity),
            ));
        };
        self.check_revocation(issuer, identity, now)
            .map_err(|e| self.refuse(e, Some(identity)))
    }

    /// Looks `identity` up in the CRL of `issuer`, the intermediate that issued it.
    fn check_revocation(
        &self,
        issuer: &Issuer,
        identity: &Identity,
        now: OffsetDateTime,
    ) -> Result<(), Error> {
        let Some(set) = issuer.revocations.current() else {
            return Err(refused("no CRL yet: refusing until one is verified"));
        };
        if now > set.next_update() + self.grace {
            if self.insecure_allow_stale_crl {
                tracing::warn!(number = set.number(), issuer = %issuer.subject, "accepting a stale CRL");
            } else {
                tracing::error!(number = set.number(), next_update = %set.next_update(), issuer = %issuer.subject, "the CRL is stale; refusing");
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
        // Only the intermediates (and cross-certificates) held here build the path, whatever
        // the client sends: each intermediate has its own revocation set, so a leaf of any
        // other intermediate under the root (a retired one, one never followed) must not
        // pass with revocations nobody checks.
        let _ = intermediates;
        let issuers = self.issuers.load();
        let leaf = webpki::EndEntityCert::try_from(end_entity)
            .map_err(|e| self.refuse(pki_error(e), None))?;
        let path = leaf
            .verify_for_usage(
                self.provider.signature_verification_algorithms.all,
                &self.anchors,
                issuers.path(),
                now,
                // Checked on every certificate of the path, so "if present" here; the leaf's
                // clientAuth is required by the identity check below.
                webpki::KeyUsage::client_auth(),
                None,
                None,
            )
            .map_err(|e| self.refuse(pki_error(e), None))?;
        // The leaf's issuer is the intermediate next to it on the verified path (its key
        // signed the leaf), never what the leaf or the client names: a held intermediate, or
        // a cross-certificate of one (same name and key), which counts as that intermediate
        // and takes its CRL; a cross-certificate of a root there is no issuer.
        let issuer = path
            .intermediate_certificates()
            .next()
            .and_then(|cert| issuers.by_name_and_key(cert.der().as_ref()))
            .ok_or_else(|| self.refuse(refused("not issued by an issuing intermediate"), None))?;
        // 2. The latchkey identity.
        let identity = Identity::from_der(end_entity, &self.trust_domain)
            .map_err(|e| self.refuse(refused(not_a_key(&e)), None))?
            .issued_by(issuer.fingerprint);
        // 3. Accepted tenants.
        if let Tenants::Only(tenants) = &self.tenants
            && !tenants.contains(identity.tenant())
        {
            return Err(self.refuse(refused("tenant not accepted here"), Some(&identity)));
        }
        // 4. Revocation, by the issuer's CRL.
        self.check_revocation(issuer, &identity, offset(now))
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
        .map_err(|e| self.refuse(e, None))
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
        .map_err(|e| self.refuse(e, None))
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

// The verifier's behaviour against a real CA's certificates is tested through the public
// API in `tests/integration/verifier.rs`: building a CA here would make this part depend on
// the signer in test builds.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_identity_error_has_its_own_reason_naming_the_certificate_no_key() {
        let errors = [
            IdentityError::Malformed,
            IdentityError::Serial,
            IdentityError::SpiffeId,
            IdentityError::SubjectMismatch,
            IdentityError::ExtendedKeyUsage,
            IdentityError::Scopes,
        ];
        let reasons: HashSet<&str> = errors.iter().map(not_a_key).collect();
        assert_eq!(reasons.len(), errors.len(), "two errors share a reason");
        for reason in reasons {
            assert!(
                reason.starts_with("not a latchkey key certificate: "),
                "{reason}"
            );
        }
    }
}
