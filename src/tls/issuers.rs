//! The issuing intermediates a verifier accepts keys of, each with its own revocation state.
//! The CA rotates its intermediate (and may give a tenant its own), so the set changes while
//! a relying service runs: it is one immutable value swapped atomically, read once per
//! handshake without a lock, and changed only through [`Issuers::add`] (which checks the
//! intermediate against the configured root) and [`Issuers::remove`].
//!
//! The root stays the only trust anchor: an intermediate is taken only when it is a CA
//! certificate the root signed, whoever offers it.

use std::sync::Arc;

use arc_swap::{ArcSwap, Guard};
use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;

use super::revocation::Revocations;
use super::verifier::VerifierError;

/// One issuing intermediate and the revocations of the CRLs it signed.
#[derive(Debug, Clone)]
pub(crate) struct Issuer {
    /// The SHA-256 of its certificate: what an [`crate::profile::Identity`] names it by.
    pub(crate) fingerprint: [u8; 32],
    /// Its subject, for the log.
    pub(crate) subject: String,
    /// Its subject as DER, to match a CRL's or a leaf's issuer name.
    subject_der: Vec<u8>,
    /// Its start of validity: the newest of a set signs new certificates.
    pub(crate) not_before: OffsetDateTime,
    /// What its CRLs revoke.
    pub(crate) revocations: Revocations,
}

/// The intermediates in force at one moment: `certificates[i]` is `issuers[i]`'s.
#[derive(Debug, Default)]
pub(crate) struct IssuerSet {
    /// For webpki's path building, which takes a slice of certificates.
    pub(crate) certificates: Vec<CertificateDer<'static>>,
    issuers: Vec<Issuer>,
}

impl IssuerSet {
    /// The intermediates with their certificates.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&CertificateDer<'static>, &Issuer)> {
        self.certificates.iter().zip(&self.issuers)
    }

    /// The issuer whose certificate is `der`.
    pub(crate) fn by_certificate(&self, der: &[u8]) -> Option<&Issuer> {
        self.iter()
            .find(|(cert, _)| cert.as_ref() == der)
            .map(|(_, issuer)| issuer)
    }

    /// The issuer whose certificate hashes to `fingerprint`.
    pub(crate) fn by_fingerprint(&self, fingerprint: &[u8; 32]) -> Option<&Issuer> {
        self.issuers.iter().find(|i| &i.fingerprint == fingerprint)
    }

    /// The issuers named `subject` (DER), with their certificates: one, unless two
    /// intermediates share a name.
    pub(crate) fn named<'s, 'n>(
        &'s self,
        subject: &'n [u8],
    ) -> impl Iterator<Item = (&'s CertificateDer<'static>, &'s Issuer)> + use<'s, 'n> {
        self.iter()
            .filter(move |(_, issuer)| issuer.subject_der == subject)
    }

    /// The issuer of `leaf`, a certificate a handshake already verified against this set's
    /// intermediates: the one named as its issuer, and when several share that name, the
    /// one whose key verifies its signature.
    #[cfg(feature = "axum")]
    pub(crate) fn issuer_of(&self, leaf: &[u8]) -> Option<&Issuer> {
        let (_, leaf) = x509_parser::parse_x509_certificate(leaf).ok()?;
        let named: Vec<_> = self.named(leaf.issuer().as_raw()).collect();
        if let [(_, only)] = named[..] {
            return Some(only);
        }
        named
            .into_iter()
            .find(|(cert, _)| {
                x509_parser::parse_x509_certificate(cert).is_ok_and(|(_, issuer)| {
                    leaf.verify_signature(Some(issuer.public_key())).is_ok()
                })
            })
            .map(|(_, issuer)| issuer)
    }

    /// True when the set holds no intermediate.
    pub(crate) fn is_empty(&self) -> bool {
        self.issuers.is_empty()
    }

    /// The newest intermediate (latest start of validity): the one signing new certificates.
    pub(crate) fn newest(&self) -> Option<&Issuer> {
        self.issuers.iter().max_by_key(|i| i.not_before)
    }
}

/// The set of intermediates a verifier accepts, under the roots it was configured with.
/// Cheap to clone: every clone changes and reads the same set.
#[derive(Debug, Clone)]
pub(crate) struct Issuers {
    roots: Arc<[CertificateDer<'static>]>,
    set: Arc<ArcSwap<IssuerSet>>,
}

impl Issuers {
    /// An empty set under `roots` (self-signed certificates the caller checked).
    pub(crate) fn new(roots: Vec<CertificateDer<'static>>) -> Self {
        Self {
            roots: roots.into(),
            set: Arc::default(),
        }
    }

    /// The set in force: one atomic load.
    pub(crate) fn load(&self) -> Guard<Arc<IssuerSet>> {
        self.set.load()
    }

    /// The roots the intermediates must be signed by.
    pub(crate) fn roots(&self) -> &[CertificateDer<'static>] {
        &self.roots
    }

    /// Adds `certificate` once it proves to be a CA certificate one of the roots signed,
    /// with no CRL yet (its keys are refused until one is taken). Adding one already held
    /// keeps it, CRL and all. Returns its revocation state, where its CRLs go.
    pub(crate) fn add(
        &self,
        certificate: &CertificateDer<'static>,
    ) -> Result<Revocations, VerifierError> {
        let fresh = issued_by_root(certificate, &self.roots)?;
        let mut held = fresh.revocations.clone();
        self.set.rcu(|set| {
            if let Some(existing) = set.by_certificate(certificate) {
                held = existing.revocations.clone();
                return set.clone();
            }
            held = fresh.revocations.clone();
            let mut certificates = set.certificates.clone();
            let mut issuers = set.issuers.clone();
            certificates.push(certificate.clone());
            issuers.push(fresh.clone());
            Arc::new(IssuerSet {
                certificates,
                issuers,
            })
        });
        Ok(held)
    }

    /// Removes `certificate`: its keys are refused from then on. True when it was held.
    pub(crate) fn remove(&self, certificate: &CertificateDer<'_>) -> bool {
        let mut removed = false;
        self.set.rcu(|set| {
            removed = set.by_certificate(certificate).is_some();
            let (certificates, issuers) = set
                .iter()
                .filter(|(cert, _)| cert.as_ref() != certificate.as_ref())
                .map(|(cert, issuer)| (cert.clone(), issuer.clone()))
                .unzip();
            IssuerSet {
                certificates,
                issuers,
            }
        });
        removed
    }
}

/// Checks that `certificate` is a CA certificate (not self-signed) that one of `roots`
/// signed, and describes it with an empty revocation state.
pub(crate) fn issued_by_root(
    certificate: &CertificateDer<'_>,
    roots: &[CertificateDer<'_>],
) -> Result<Issuer, VerifierError> {
    let (_, parsed) = x509_parser::parse_x509_certificate(certificate)
        .map_err(|e| VerifierError::Malformed(e.to_string()))?;
    let subject = parsed.subject().to_string();
    let signed_by_a_root = parsed.subject() != parsed.issuer()
        && roots.iter().any(|root| {
            x509_parser::parse_x509_certificate(root).is_ok_and(|(_, root)| {
                parsed.issuer() == root.subject()
                    && parsed.verify_signature(Some(root.public_key())).is_ok()
            })
        });
    if !parsed.is_ca() || !signed_by_a_root {
        return Err(VerifierError::NotIssuedByRoot(subject));
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, certificate);
    let mut fingerprint = [0u8; 32];
    fingerprint.copy_from_slice(digest.as_ref());
    Ok(Issuer {
        fingerprint,
        subject,
        subject_der: parsed.subject().as_raw().to_vec(),
        not_before: parsed.validity().not_before.to_datetime(),
        revocations: Revocations::new(),
    })
}
