//! Delta CRLs (RFC 5280 §5.2.4): what changed between two of an intermediate's CRLs, for
//! followers that hold the older one. A follower holding CRL N asks for the delta from N to
//! the newest, M, and gets the certificates revoked since N (stamped above the revision N
//! covered, up to the one M covers, still listed in M) and, as removeFromCRL, those N listed
//! that M dropped because they expired (stamped at or below what N covered, notAfter
//! between the two cutoffs). So N's entries with the delta applied are exactly M's.
//!
//! Deltas are computed from the store, by any process that holds the intermediate's key,
//! signed on first request and kept: a delta is immutable (its URL names the issuer, both
//! numbers), so ten thousand followers asking for the same one cost one signature, and a
//! cache in front of the CA can serve it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OnceCell, watch};

use super::PublishedCrl;
use super::key_crl::{DELTA_HORIZON, crl_entry};
use crate::ca::{CrlEntries, CrlHeader, CrlKind, SignerError};
use crate::clock::Clock;
use crate::issuers::IssuerSet;
use crate::store::{CrlBasis, Revisions, RevocationLedger, StoreError};

/// How many deltas are kept signed; past it the oldest are signed again when asked for.
const DELTAS_KEPT: usize = 1024;

/// Why no delta from the asked base can be given: the follower fetches the whole CRL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeltaUnavailable {
    /// The base is a CRL this CA does not know, or one older than its delta horizon.
    #[error("CRL {0} is unknown here or older than the delta horizon")]
    UnknownBase(i64),
    /// The target is not a CRL this CA can describe (never built, or past the horizon).
    #[error("CRL {0} is unknown here or older than the delta horizon")]
    UnknownTarget(i64),
    /// The base is not older than the target.
    #[error("CRL {base} is not older than CRL {target}")]
    NotOlder {
        /// The base asked for.
        base: i64,
        /// The target.
        target: i64,
    },
    /// This process cannot sign for the intermediate (its key is elsewhere).
    #[error("the intermediate's key is not held here")]
    NoKey,
}

/// Why a delta could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeltaError {
    /// There is no delta from that base: fetch the whole CRL.
    #[error(transparent)]
    Unavailable(#[from] DeltaUnavailable),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Signing failed.
    #[error("signing a delta CRL failed: {0}")]
    Signer(#[from] SignerError),
    /// The signing task failed.
    #[error("a delta CRL signing task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// One delta: which intermediate, from which CRL to which.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct DeltaKey {
    issuer: i64,
    base: i64,
    target: i64,
}

type Outcome = Result<Arc<PublishedCrl>, DeltaUnavailable>;

/// The deltas of every intermediate, made on demand and kept.
#[derive(Debug)]
pub(super) struct Deltas {
    ledger: RevocationLedger,
    /// The CA's clock: a base older than the delta horizon is refused.
    clock: Arc<dyn Clock>,
    issuers: watch::Receiver<Arc<IssuerSet>>,
    kept: Mutex<HashMap<DeltaKey, Arc<OnceCell<Outcome>>>>,
}

impl Deltas {
    pub(super) fn new(
        ledger: RevocationLedger,
        clock: Arc<dyn Clock>,
        issuers: watch::Receiver<Arc<IssuerSet>>,
    ) -> Self {
        Self {
            ledger,
            clock,
            issuers,
            kept: Mutex::new(HashMap::new()),
        }
    }

    /// The delta of intermediate `issuer` from CRL `base` to CRL `target`; `newest` is the
    /// intermediate's newest CRL number decided (the usual target, described without asking
    /// the store). Made once however many ask at the same time; kept while it is among the
    /// newest asked for.
    pub(super) async fn delta(
        &self,
        issuer: i64,
        base: i64,
        target: i64,
        newest: Option<&CrlBasis>,
    ) -> Result<Arc<PublishedCrl>, DeltaError> {
        let key = DeltaKey {
            issuer,
            base,
            target,
        };
        let cell = {
            let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
            if kept.len() >= DELTAS_KEPT && !kept.contains_key(&key) {
                // Followers ask for deltas to the newest CRL: the older targets go.
                let newest = kept.keys().map(|k| k.target).max().unwrap_or(0);
                kept.retain(|k, _| k.target >= newest);
            }
            kept.entry(key).or_default().clone()
        };
        // A store or signing failure is not kept: the next request tries again.
        let outcome = cell.get_or_try_init(|| self.make(key, newest)).await?;
        Ok(outcome.clone()?)
    }

    async fn make(&self, key: DeltaKey, newest: Option<&CrlBasis>) -> Result<Outcome, DeltaError> {
        if key.base >= key.target {
            return Ok(Err(DeltaUnavailable::NotOlder {
                base: key.base,
                target: key.target,
            }));
        }
        let target = match newest {
            Some(n) if n.number == key.target => Some(*n),
            _ => self.ledger.crl_basis(key.issuer, key.target).await?,
        };
        let Some(target) = target else {
            return Ok(Err(DeltaUnavailable::UnknownTarget(key.target)));
        };
        let base = self.ledger.crl_basis(key.issuer, key.base).await?;
        let horizon_start = self.clock.now() - DELTA_HORIZON;
        let Some(base) = base.filter(|b| {
            b.covers <= target.covers && b.cutoff <= target.cutoff && b.this_update >= horizon_start
        }) else {
            return Ok(Err(DeltaUnavailable::UnknownBase(key.base)));
        };
        let signer = self
            .issuers
            .borrow()
            .by_id(key.issuer)
            .and_then(|i| i.signer.clone());
        let Some(signer) = signer else {
            return Ok(Err(DeltaUnavailable::NoKey));
        };
        let added = self
            .ledger
            .revoked_certificates(
                key.issuer,
                Revisions {
                    after: base.covers,
                    up_to: target.covers,
                },
                target.cutoff,
            )
            .await?;
        let expired = self
            .ledger
            .expired_revocations(
                key.issuer,
                Revisions::up_to(base.covers),
                base.cutoff,
                target.cutoff,
            )
            .await?;
        let header = CrlHeader {
            number: target.number as u64,
            this_update: target.this_update,
            next_update: target.next_update,
        };
        let kind = CrlKind::Delta {
            base: base.number as u64,
        };
        let (der, count) = tokio::task::spawn_blocking(move || {
            let mut entries = CrlEntries::new();
            for r in expired.iter() {
                let r = r?;
                entries.insert_removal(&r.serial, r.revoked_at);
            }
            for r in added.iter() {
                let r = r?;
                entries.insert(&crl_entry(&r), r.not_after);
            }
            let der = signer.sign_crl_of(&header, kind, &entries)?;
            Ok::<_, DeltaError>((der, entries.len() as i64))
        })
        .await??;
        Ok(Ok(Arc::new(PublishedCrl::delta(
            &target,
            base.number,
            der,
            count,
        ))))
    }
}
