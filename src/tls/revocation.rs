//! What a relying service knows about revocation: a set of revoked serials taken from a CRL
//! whose signature, issuer and number were checked once, swapped in atomically as newer CRLs
//! arrive. A handshake's revocation check is one hash lookup, whatever the CRL's size.
//!
//! Each issuing intermediate has its own [`Revocations`] (see `issuers.rs`): a CRL counts
//! only for the intermediate that signed it.
//!
//! Where CRLs come from is a [`CrlSource`]'s business (the CA's URL, a file: see
//! `crate::relying`); a source only hands bytes to a [`CrlSink`], which verifies them
//! against the issuing intermediate, so no source can put an unverified or older CRL in
//! force. Nothing here does network or file I/O.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use rustls_pki_types::CertificateDer;

use super::issuers::Issuers;
use crate::profile::{CrlError, RevocationSet};

/// The revocation state a verifier reads on every handshake, and its sources write.
#[derive(Debug, Clone, Default)]
pub struct Revocations {
    current: Arc<ArcSwapOption<RevocationSet>>,
}

impl Revocations {
    /// An empty state: no CRL yet, so every handshake is refused until one arrives.
    pub fn new() -> Self {
        Self::default()
    }

    /// A state holding `set` from the start: a CRL read once (see
    /// [`RevocationSet::from_crl`]) and never replaced.
    pub fn fixed(set: RevocationSet) -> Self {
        let r = Self::new();
        r.current.store(Some(Arc::new(set)));
        r
    }

    /// The set in force, if any.
    pub fn current(&self) -> Option<Arc<RevocationSet>> {
        self.current.load_full()
    }

    /// Takes a newer set. A set whose number is not above the held one is refused (the
    /// newer one is kept, and the caller warns).
    pub(crate) fn offer(&self, set: RevocationSet) -> Result<(), CrlError> {
        let offered = Arc::new(set);
        let mut refused = None;
        // Compare and swap in one step: two sources at once never let an older CRL win.
        self.current.rcu(|held| match held {
            Some(held) if offered.number() <= held.number() => {
                refused = Some(held.number());
                Some(held.clone())
            }
            _ => {
                refused = None;
                Some(offered.clone())
            }
        });
        match refused {
            Some(held) => Err(CrlError::NotNewer {
                got: offered.number(),
                held,
            }),
            None => Ok(()),
        }
    }
}

impl Revocations {
    /// Applies a delta CRL (see [`RevocationSet::apply_delta`]) to the set in force, checked
    /// against `issuer`; refused, and nothing changed, when no set is held, when the delta's
    /// base is not the held number, or when it does not verify.
    pub(crate) fn apply_delta(
        &self,
        der: &[u8],
        issuer: &CertificateDer<'_>,
    ) -> Result<(i64, usize), CrlError> {
        let mut outcome = Err(CrlError::NotDelta);
        // Compare and swap in one step: a complete CRL taken meanwhile is not overwritten by a
        // delta computed from the set it replaced.
        self.current.rcu(|held| match held {
            Some(held) => match held.apply_delta(der, issuer) {
                Ok(next) => {
                    outcome = Ok((next.number(), next.len()));
                    Some(Arc::new(next))
                }
                Err(e) => {
                    outcome = Err(e);
                    Some(held.clone())
                }
            },
            None => {
                outcome = Err(CrlError::NotDelta);
                None
            }
        });
        outcome
    }
}

/// Where a CRL source delivers: it verifies each CRL against the intermediate it is filed
/// under and puts it in force for that intermediate only if it is newer than the one held.
/// Cheap to clone.
///
/// A sink either feeds one intermediate (a source following that intermediate's CRL), or
/// files each CRL it is given under the intermediate that signed it among the verifier's
/// (a file or a source of your own, which may hand over several CRLs in one PEM bundle such
/// as `GET /v1/crl/bundle.pem`; the roots' CRLs in it, after a root rollover those of both
/// roots, are passed over: only an intermediate's CRL revokes keys, and a CRL is filed under
/// an intermediate only when it carries that intermediate's name and its key signed it).
#[derive(Debug, Clone)]
pub struct CrlSink {
    target: Target,
}

#[derive(Debug, Clone)]
enum Target {
    /// One intermediate: a CRL signed by any other is refused.
    Issuer {
        certificate: CertificateDer<'static>,
        revocations: Revocations,
    },
    /// Whichever of the verifier's intermediates signed the CRL.
    Signer(Issuers),
}

/// What became of one CRL offered to a sink.
enum Filed {
    /// In force from now on.
    Taken,
    /// Not newer than the one held (or for no intermediate followed here): nothing to do.
    Passed,
    /// Unreadable, or not signed by the intermediate it names: logged as an error.
    Refused,
}

impl CrlSink {
    /// A sink into `revocations` for CRLs signed by `issuer`, one issuing intermediate.
    pub(crate) fn new(revocations: Revocations, issuer: CertificateDer<'static>) -> Self {
        Self {
            target: Target::Issuer {
                certificate: issuer,
                revocations,
            },
        }
    }

    /// A sink that files each CRL under whichever intermediate of `issuers` signed it.
    pub(crate) fn by_signer(issuers: Issuers) -> Self {
        Self {
            target: Target::Signer(issuers),
        }
    }

    /// The number of the CRL in force, if any: a source asks for newer ones. For a sink
    /// filing CRLs under several intermediates, the lowest number held among them, `None`
    /// while any of them has none.
    pub fn held(&self) -> Option<i64> {
        match &self.target {
            Target::Issuer { revocations, .. } => revocations.current().map(|set| set.number()),
            Target::Signer(issuers) => {
                let set = issuers.load();
                if set.is_empty() {
                    return None;
                }
                set.iter()
                    .map(|(_, i)| i.revocations.current().map(|c| c.number()))
                    .collect::<Option<Vec<_>>>()
                    .and_then(|numbers| numbers.into_iter().min())
            }
        }
    }

    /// Applies a delta CRL (DER) to the set in force, for a sink that feeds one
    /// intermediate. False (logged) when it is refused: the caller fetches the whole CRL.
    pub fn take_delta(&self, der: &[u8]) -> bool {
        let Target::Issuer {
            certificate,
            revocations,
        } = &self.target
        else {
            return false;
        };
        match revocations.apply_delta(der, certificate) {
            Ok((number, entries)) => {
                tracing::debug!(number, entries, issuer = %subject(certificate), "delta CRL applied");
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, issuer = %subject(certificate), "delta CRL refused; fetching the whole CRL");
                false
            }
        }
    }

    /// Verifies a CRL (DER, or PEM `X509 CRL`; PEM may hold several, each filed under the
    /// intermediate that signed it) and puts it in force if it is newer than the one held.
    /// Logs why a CRL is not taken. Returns true when a CRL was taken and none refused.
    pub fn take(&self, crl: &[u8]) -> bool {
        let Some(crls) = crl_ders(crl) else {
            tracing::error!("CRL rejected: neither DER nor PEM X509 CRL blocks");
            return false;
        };
        let (mut taken, mut refused) = (0, 0);
        for der in &crls {
            match self.file(der) {
                Filed::Taken => taken += 1,
                Filed::Passed => {}
                Filed::Refused => refused += 1,
            }
        }
        taken > 0 && refused == 0
    }

    /// True when, for every CRL in `crl` (DER or PEM) that an intermediate of this sink
    /// names, the CRL in force has a number at least its own (and there is one): an older
    /// or the same CRL offered again needs no new attempt.
    pub fn holds_at_least(&self, crl: &[u8]) -> bool {
        let Some(crls) = crl_ders(crl) else {
            return false;
        };
        let mut named = 0;
        for der in &crls {
            let Ok((_, parsed)) = x509_parser::parse_x509_crl(der) else {
                return false;
            };
            let Some(number) = parsed.crl_number().and_then(|n| i64::try_from(n).ok()) else {
                return false;
            };
            let held: Vec<Option<i64>> = match &self.target {
                Target::Issuer { revocations, .. } => {
                    vec![revocations.current().map(|set| set.number())]
                }
                Target::Signer(issuers) => issuers
                    .load()
                    .named(parsed.issuer().as_raw())
                    .map(|(_, i)| i.revocations.current().map(|set| set.number()))
                    .collect(),
            };
            if held.is_empty() {
                continue;
            }
            named += 1;
            if !held.iter().any(|h| h.is_some_and(|h| h >= number)) {
                return false;
            }
        }
        named > 0
    }

    /// Verifies one DER CRL against the intermediate it is filed under, and offers it.
    fn file(&self, der: &[u8]) -> Filed {
        match &self.target {
            Target::Issuer {
                certificate,
                revocations,
            } => offer(der, certificate, revocations),
            Target::Signer(issuers) => {
                let Ok((_, parsed)) = x509_parser::parse_x509_crl(der) else {
                    tracing::error!(error = %CrlError::Malformed, "CRL rejected");
                    return Filed::Refused;
                };
                let set = issuers.load();
                let named: Vec<_> = set.named(parsed.issuer().as_raw()).collect();
                if named.is_empty() {
                    let issuer = parsed.issuer().to_string();
                    // A root's, or another root's whose key a cross-certificate held here
                    // certifies (after a root rollover).
                    let by_root = issuers.roots().iter().chain(set.crosses()).any(|root| {
                        x509_parser::parse_x509_certificate(root)
                            .is_ok_and(|(_, root)| root.subject() == parsed.issuer())
                    });
                    if by_root {
                        tracing::debug!(%issuer, "a root's CRL passed over: it revokes no key");
                    } else {
                        tracing::warn!(%issuer, "CRL passed over: its issuer is not an intermediate followed here");
                    }
                    return Filed::Passed;
                }
                // Two intermediates may share a name: the one whose key signed it.
                let signer = named
                    .iter()
                    .find(|(certificate, _)| RevocationSet::from_crl(der, certificate).is_ok());
                match signer {
                    Some((certificate, issuer)) => offer(der, certificate, &issuer.revocations),
                    None => {
                        tracing::error!(
                            error = %CrlError::BadSignature,
                            issuer = %parsed.issuer(),
                            "CRL rejected"
                        );
                        Filed::Refused
                    }
                }
            }
        }
    }
}

/// Verifies `der` against `issuer` and offers it to `revocations`, logging the outcome.
fn offer(der: &[u8], issuer: &CertificateDer<'_>, revocations: &Revocations) -> Filed {
    match RevocationSet::from_crl(der, issuer).and_then(|set| {
        let (number, entries) = (set.number(), set.len());
        revocations.offer(set).map(|()| (number, entries))
    }) {
        Ok((number, entries)) => {
            tracing::info!(number, entries, issuer = %subject(issuer), "CRL taken");
            Filed::Taken
        }
        Err(CrlError::NotNewer { got, held }) if got == held => {
            tracing::debug!(number = got, "CRL already held");
            Filed::Passed
        }
        Err(e @ CrlError::NotNewer { .. }) => {
            tracing::warn!(error = %e, "CRL ignored: keeping the newer one held");
            Filed::Passed
        }
        Err(e) => {
            tracing::error!(error = %e, issuer = %subject(issuer), "CRL rejected");
            Filed::Refused
        }
    }
}

/// A certificate's subject, for the log.
fn subject(certificate: &CertificateDer<'_>) -> String {
    x509_parser::parse_x509_certificate(certificate)
        .map(|(_, c)| c.subject().to_string())
        .unwrap_or_default()
}

/// The DER CRLs in `bytes`: every `X509 CRL` block of PEM, or `bytes` itself as one DER
/// CRL. `None` for PEM with a broken block (a file caught half-written) or no CRL at all.
fn crl_ders(bytes: &[u8]) -> Option<Vec<Vec<u8>>> {
    use rustls_pki_types::CertificateRevocationListDer;
    use rustls_pki_types::pem::PemObject;
    if !bytes.trim_ascii_start().starts_with(b"-----BEGIN") {
        return Some(vec![bytes.to_vec()]);
    }
    let crls = CertificateRevocationListDer::pem_slice_iter(bytes)
        .map(|crl| crl.map(|c| c.as_ref().to_vec()))
        .collect::<Result<Vec<_>, _>>()
        .ok()?;
    (!crls.is_empty()).then_some(crls)
}

/// The future a [`CrlSource`] runs.
pub type CrlSourceTask = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Where a relying service's CRLs come from: the CA's URL (long poll), a watched file, or
/// anything else that can deliver CRL bytes. A source only fetches; the [`CrlSink`] it is
/// given verifies each CRL and keeps the newest.
pub trait CrlSource: Send + 'static {
    /// The task that delivers CRLs to `sink` for as long as it runs (until aborted). It must
    /// retry on its own while its origin is unreachable.
    fn run(self: Box<Self>, sink: CrlSink) -> CrlSourceTask;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A set numbered `number` revoking nothing.
    fn numbered(number: i64) -> RevocationSet {
        let mut set = RevocationSet::from_serials([], time::Duration::hours(1));
        set.number = number;
        set
    }

    #[test]
    fn offer_of_a_set_not_newer_than_the_held_one_is_refused_and_keeps_the_held_one() {
        let revocations = Revocations::new();
        revocations.offer(numbered(5)).unwrap();
        assert!(matches!(
            revocations.offer(numbered(4)),
            Err(CrlError::NotNewer { got: 4, held: 5 })
        ));
        assert!(matches!(
            revocations.offer(numbered(5)),
            Err(CrlError::NotNewer { got: 5, held: 5 })
        ));
        assert_eq!(revocations.current().unwrap().number(), 5);
        revocations.offer(numbered(6)).unwrap();
        assert_eq!(revocations.current().unwrap().number(), 6);
    }
}
