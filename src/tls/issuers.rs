//! The issuing intermediates a verifier accepts keys of, each with its own revocation state.
//! The CA rotates its intermediate (and may give a tenant its own), so the set changes while
//! a relying service runs: it is one immutable value swapped atomically, read once per
//! handshake without a lock, and changed only through [`Issuers::add`] (which checks the
//! intermediate against the configured root), [`Issuers::remove`] and
//! [`Issuers::set_crosses`].
//!
//! The roots stay the only trust anchors: an intermediate is taken only when it is a CA
//! certificate a root signed, whoever offers it, or (after a root rollover, `latchkey ca
//! rotate --root`) one signed by the key of another root that a root certified in a
//! cross-certificate: root → cross-certificate → intermediate, one level only. The
//! cross-certificates held are set as a whole ([`Issuers::set_crosses`]), each checked
//! against the roots like an intermediate; webpki builds a leaf's path through them, but no
//! CRL is ever filed under one and no key is ever taken as issued by one.

use std::sync::Arc;

use arc_swap::{ArcSwap, Guard};
use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;

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
    /// Its public key (SubjectPublicKeyInfo DER): with the name, what a cross-certificate of
    /// it shares.
    spki: Vec<u8>,
    /// Its start of validity: the newest of a set signs new certificates.
    pub(crate) not_before: OffsetDateTime,
    /// What its CRLs revoke.
    pub(crate) revocations: Revocations,
}

/// The intermediates in force at one moment: `certificates[i]` is `issuers[i]`'s.
#[derive(Debug, Default)]
pub(crate) struct IssuerSet {
    /// The intermediates' certificates.
    pub(crate) certificates: Vec<CertificateDer<'static>>,
    issuers: Vec<Issuer>,
    /// The cross-certificates a root signed: each certifies another root's key.
    crosses: Vec<CertificateDer<'static>>,
    /// What webpki builds a path through (it takes one slice): the intermediates, then the
    /// cross-certificates.
    path: Vec<CertificateDer<'static>>,
}

impl IssuerSet {
    /// A set of these intermediates and cross-certificates.
    fn of(
        certificates: Vec<CertificateDer<'static>>,
        issuers: Vec<Issuer>,
        crosses: Vec<CertificateDer<'static>>,
    ) -> Arc<Self> {
        let path = certificates.iter().chain(&crosses).cloned().collect();
        Arc::new(Self {
            certificates,
            issuers,
            crosses,
            path,
        })
    }

    /// The certificates a leaf's path may go through: the intermediates and the
    /// cross-certificates (the leaf's issuer must still be one of the intermediates).
    pub(crate) fn path(&self) -> &[CertificateDer<'static>] {
        &self.path
    }

    /// The cross-certificates held.
    pub(crate) fn crosses(&self) -> &[CertificateDer<'static>] {
        &self.crosses
    }

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

    /// The intermediate held with the same name and key as `der` (its own certificate, or a
    /// cross-certificate another root signed for it): the issuer of a leaf whose verified
    /// path went through either.
    pub(crate) fn by_name_and_key(&self, der: &[u8]) -> Option<&Issuer> {
        if let Some(issuer) = self.by_certificate(der) {
            return Some(issuer);
        }
        // One parse, of the certificate on the path; the held ones are compared by what
        // each keeps of itself.
        let (_, wanted) = x509_parser::parse_x509_certificate(der).ok()?;
        self.issuers.iter().find(|held| {
            held.subject_der == wanted.subject().as_raw() && held.spki == wanted.public_key().raw
        })
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
    /// directly or through a cross-certificate held (see [`anchored`]), with no CRL yet (its
    /// keys are refused until one is taken). Adding one already held keeps it, CRL and all.
    /// Returns its revocation state, where its CRLs go. Set the cross-certificates first.
    pub(crate) fn add(
        &self,
        certificate: &CertificateDer<'static>,
    ) -> Result<Revocations, VerifierError> {
        // The one writer of a verifier's set (its builder, then its follower) sets the
        // cross-certificates and adds intermediates in turn, never at once.
        let fresh = anchored(certificate, &self.roots, self.load().crosses())?;
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
            IssuerSet::of(certificates, issuers, set.crosses.clone())
        });
        Ok(held)
    }

    /// Makes the cross-certificates held exactly those of `crosses` that a root signed (see
    /// [`cross_certified`]; the others are left out: check them first to say why), and drops
    /// every intermediate held that no root signed any more, directly or through one of
    /// them: their keys are refused from then on. Returns the subjects of those dropped.
    pub(crate) fn set_crosses(&self, crosses: &[CertificateDer<'static>]) -> Vec<String> {
        let crosses: Vec<CertificateDer<'static>> = crosses
            .iter()
            .filter(|cross| cross_certified(cross, &self.roots).is_ok())
            .cloned()
            .collect();
        let mut dropped = Vec::new();
        self.set.rcu(|set| {
            dropped.clear();
            let (certificates, issuers) = set
                .iter()
                .filter(|(cert, issuer)| {
                    let kept = anchored(cert, &self.roots, &crosses).is_ok();
                    if !kept {
                        dropped.push(issuer.subject.clone());
                    }
                    kept
                })
                .map(|(cert, issuer)| (cert.clone(), issuer.clone()))
                .unzip();
            IssuerSet::of(certificates, issuers, crosses.clone())
        });
        dropped
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
            IssuerSet::of(certificates, issuers, set.crosses.clone())
        });
        removed
    }
}

/// True when `issuer`'s key signed `certificate` and `certificate` names it as its issuer.
fn signed_by(certificate: &X509Certificate<'_>, issuer: &X509Certificate<'_>) -> bool {
    certificate.issuer() == issuer.subject()
        && certificate
            .verify_signature(Some(issuer.public_key()))
            .is_ok()
}

/// The certificates of `ders` that parse.
fn parsed<'a>(ders: &'a [CertificateDer<'a>]) -> impl Iterator<Item = X509Certificate<'a>> {
    ders.iter().filter_map(|der| {
        x509_parser::parse_x509_certificate(der)
            .ok()
            .map(|(_, c)| c)
    })
}

/// Checks that `certificate` is a cross-certificate one of `roots` signed: a CA certificate,
/// not self-signed, that certifies another root's subject and key (after a root rollover,
/// the new root's, signed by the old root, or the other way round).
pub(crate) fn cross_certified(
    certificate: &CertificateDer<'_>,
    roots: &[CertificateDer<'_>],
) -> Result<(), VerifierError> {
    let (_, parsed_cross) = x509_parser::parse_x509_certificate(certificate)
        .map_err(|e| VerifierError::Malformed(e.to_string()))?;
    let signed_by_a_root = parsed_cross.subject() != parsed_cross.issuer()
        && parsed(roots).any(|root| signed_by(&parsed_cross, &root));
    if !parsed_cross.is_ca() || !signed_by_a_root {
        return Err(VerifierError::CrossNotIssuedByRoot(
            parsed_cross.subject().to_string(),
        ));
    }
    Ok(())
}

/// True when `a` and `b` carry the same subject and the same key: two certificates of one
/// CA, by different issuers.
pub(crate) fn same_name_and_key(a: &X509Certificate<'_>, b: &X509Certificate<'_>) -> bool {
    a.subject().as_raw() == b.subject().as_raw() && a.public_key().raw == b.public_key().raw
}

/// True when `certificate` certifies one of `roots` itself (the same subject and key): a
/// cross-certificate that adds nothing where that root is trusted already (the one the new
/// root signed for the old, at a service trusting the old).
pub(crate) fn certifies_a_root(
    certificate: &CertificateDer<'_>,
    roots: &[CertificateDer<'_>],
) -> bool {
    let Ok((_, certificate)) = x509_parser::parse_x509_certificate(certificate) else {
        return false;
    };
    parsed(roots).any(|root| {
        root.subject() == certificate.subject()
            && root.public_key().raw == certificate.public_key().raw
    })
}

/// Checks that `certificate` is a CA certificate (not self-signed) that one of `roots`
/// signed, or that the key certified by one of `crosses` (cross-certificates the caller
/// checked against `roots`) signed, and describes it with an empty revocation state.
pub(crate) fn anchored(
    certificate: &CertificateDer<'_>,
    roots: &[CertificateDer<'_>],
    crosses: &[CertificateDer<'_>],
) -> Result<Issuer, VerifierError> {
    let (_, parsed_cert) = x509_parser::parse_x509_certificate(certificate)
        .map_err(|e| VerifierError::Malformed(e.to_string()))?;
    let subject = parsed_cert.subject().to_string();
    let signed = parsed_cert.subject() != parsed_cert.issuer()
        && (parsed(roots)
            .chain(parsed(crosses))
            .any(|issuer| signed_by(&parsed_cert, &issuer))
            // Or a cross-certificate a root signed certifies this very intermediate (its
            // name and key, another root as issuer): what a latchkey root rollover makes.
            || parsed(crosses).any(|cross| same_name_and_key(&cross, &parsed_cert)));
    if !parsed_cert.is_ca() || !signed {
        return Err(VerifierError::NotIssuedByRoot(subject));
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, certificate);
    let mut fingerprint = [0u8; 32];
    fingerprint.copy_from_slice(digest.as_ref());
    Ok(Issuer {
        fingerprint,
        subject,
        subject_der: parsed_cert.subject().as_raw().to_vec(),
        spki: parsed_cert.public_key().raw.to_vec(),
        not_before: parsed_cert.validity().not_before.to_datetime(),
        revocations: Revocations::new(),
    })
}
