//! What a relying service knows about revocation: a set of revoked serials taken from a CRL
//! whose signature, issuer and number were checked once, swapped in atomically as newer CRLs
//! arrive. A handshake's revocation check is one hash lookup, whatever the CRL's size.
//!
//! Where CRLs come from is a [`CrlSource`]'s business (the CA's URL, a file: see
//! `crate::relying`); a source only hands bytes to a [`CrlSink`], which verifies them
//! against the issuing CA, so no source can put an unverified or older CRL in force. Nothing
//! here does network or file I/O.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use rustls_pki_types::CertificateDer;

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

/// Where a CRL source delivers: it verifies each CRL against the issuing CA's certificate
/// and puts it in force only if it is newer than the one held. Cheap to clone.
#[derive(Debug, Clone)]
pub struct CrlSink {
    revocations: Revocations,
    issuer: CertificateDer<'static>,
}

impl CrlSink {
    /// A sink into `revocations` for CRLs signed by `issuer`, the issuing intermediate.
    pub(crate) fn new(revocations: Revocations, issuer: CertificateDer<'static>) -> Self {
        Self {
            revocations,
            issuer,
        }
    }

    /// The number of the CRL in force, if any: a source asks for newer ones.
    pub fn held(&self) -> Option<i64> {
        self.revocations.current().map(|set| set.number())
    }

    /// Verifies a CRL (DER, or PEM `X509 CRL`) and puts it in force if it is newer than the
    /// one held. Logs why a CRL is not taken; returns whether it is now the one held.
    pub fn take(&self, crl: &[u8]) -> bool {
        let der = crate::profile::crl::crl_der(crl);
        match RevocationSet::from_crl(&der, &self.issuer).and_then(|set| {
            let (number, entries) = (set.number(), set.len());
            self.revocations.offer(set).map(|()| (number, entries))
        }) {
            Ok((number, entries)) => {
                tracing::info!(number, entries, "CRL taken");
                true
            }
            Err(e @ CrlError::NotNewer { .. }) => {
                tracing::warn!(error = %e, "CRL ignored: keeping the newer one held");
                false
            }
            Err(e) => {
                tracing::error!(error = %e, "CRL rejected");
                false
            }
        }
    }

    /// True when the CRL in force has a number at least that of `crl` (DER or PEM): an
    /// older or the same CRL offered again needs no new attempt.
    pub fn holds_at_least(&self, crl: &[u8]) -> bool {
        let der = crate::profile::crl::crl_der(crl);
        let number = x509_parser::parse_x509_crl(&der)
            .ok()
            .and_then(|(_, crl)| crl.crl_number().and_then(|n| i64::try_from(n).ok()));
        matches!((self.held(), number), (Some(held), Some(n)) if held >= n)
    }
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
