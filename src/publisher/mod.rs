//! The CRL publisher: a component beside the authority that keeps a fresh CRL of each level
//! of the chain in the store and in memory. The authority decides who is revoked; the
//! publisher turns what the store says into signed CRLs and serves them.
//!
//! It holds exactly what that takes: the signer (for the intermediate's CRLs), a
//! [`RevocationLedger`] (the store's revocations, CRLs, lease and issuers, nothing else), the
//! clock, and the [`CrlSchedule`]. Others get narrow handles: the HTTP edge and readiness a
//! [`PublishedCrls`] (read and wait), the authority a [`CrlPoke`] (say that revocations
//! changed). `key_crl` builds the intermediate's CRL, `root_crl` keeps the root's.

mod delta;
mod key_crl;
mod published;
mod reader;
mod root_crl;

use std::collections::HashMap;
use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use time::{Duration, OffsetDateTime};
use tokio::sync::watch;

use crate::ca::SignerError;
use crate::clock::Clock;
use crate::issuers::{IssuerSet, LiveIssuer};
use crate::store::{IssuerRole, RevocationLedger, StoreError};

pub use delta::{DeltaError, DeltaUnavailable};
pub use published::PublishedCrl;
pub use reader::{CrlProblem, IssuerCrls, PublishedCrls};
pub use root_crl::{newest_root_crl_number, sign_root_crl, store_root_crl};

/// How long a CRL is valid by default.
pub const DEFAULT_CRL_VALIDITY: Duration = Duration::hours(1);
/// How long a root CRL is valid by default.
pub const DEFAULT_ROOT_CRL_VALIDITY: Duration = Duration::days(30);

/// How far ahead the CRLs' nextUpdate lies; each is signed again when half of it has passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrlSchedule {
    /// The issuing intermediate's CRLs (default 1 h).
    pub validity: Duration,
    /// The root's CRLs (default 30 days).
    pub root_validity: Duration,
}

impl Default for CrlSchedule {
    fn default() -> Self {
        Self {
            validity: DEFAULT_CRL_VALIDITY,
            root_validity: DEFAULT_ROOT_CRL_VALIDITY,
        }
    }
}

/// Why the publisher could not start, build, sign or store a CRL.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublisherError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Signing a CRL failed.
    #[error("signing a CRL failed: {0}")]
    Signer(#[from] SignerError),
    /// A certificate of the chain could not be read.
    #[error("{what} certificate: {detail}")]
    Certificate {
        /// Which certificate.
        what: &'static str,
        /// The parser's complaint.
        detail: String,
    },
    /// A root CRL given to store is not one the root signed (or not a CRL at all).
    #[error("root CRL: {0}")]
    RootCrlRefused(String),
    /// The intermediate's key cannot be opened in this process.
    #[error("issuer {0}'s key cannot be opened here, so its CRL cannot be signed here")]
    NoKey(i64),
    /// A whole CRL was to be signed before any number was decided here.
    #[error("no CRL number decided here yet")]
    NothingDecided,
    /// Other replicas kept storing the number just chosen.
    #[error("CRL numbers kept colliding")]
    NumbersKeptColliding,
    /// A signing task on the blocking pool panicked or was cancelled.
    #[error("a CRL signing task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// The handle the authority holds: it says that revocations changed, and nothing else. A
/// poke asks every intermediate's CRL builder for a new CRL soon; pokes that arrive while
/// one is pending are one.
#[derive(Debug, Clone)]
pub struct CrlPoke {
    pokes: Arc<watch::Sender<u64>>,
}

impl CrlPoke {
    /// Asks for new CRLs soon (after a revocation).
    pub fn poke(&self) {
        self.pokes.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// The CRL publisher. [`Publisher::start`] runs a CRL builder for every intermediate whose
/// CRL is published (starting and stopping them as the issuers change), and
/// [`Publisher::start_root`] the root's; until then it publishes nothing.
#[derive(Debug, Clone)]
pub struct Publisher {
    inner: Arc<Inner>,
}

/// What the publisher's tasks share.
#[derive(Debug)]
struct Inner {
    ledger: RevocationLedger,
    clock: Arc<dyn Clock>,
    schedule: CrlSchedule,
    /// The CA's intermediates, as the issuer registry follows them.
    issuers: watch::Receiver<Arc<IssuerSet>>,
    /// This process's name as a holder of the CRL builder lease.
    holder: String,
    /// Moved by [`CrlPoke::poke`].
    pokes: Arc<watch::Sender<u64>>,
    board: Arc<reader::Board>,
    deltas: Arc<delta::Deltas>,
    metrics: CrlMetrics,
}

impl Publisher {
    /// Puts the publisher together for the intermediates and roots `issuers` holds (the
    /// registry's watch), and registers its metrics in `metrics`. Publishes nothing until
    /// started.
    pub fn new(
        ledger: RevocationLedger,
        issuers: watch::Receiver<Arc<IssuerSet>>,
        clock: Arc<dyn Clock>,
        schedule: CrlSchedule,
        metrics: &mut Registry,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                deltas: Arc::new(delta::Deltas::new(
                    ledger.clone(),
                    clock.clone(),
                    issuers.clone(),
                )),
                ledger,
                board: Arc::new(reader::Board::new(clock.clone())),
                clock,
                schedule,
                issuers,
                holder: hex::encode(crate::random_bytes::<8>()),
                pokes: Arc::new(watch::Sender::new(0)),
                metrics: CrlMetrics::register(metrics),
            }),
        }
    }

    /// The handle for the authority: "revocations changed".
    pub fn poke(&self) -> CrlPoke {
        CrlPoke {
            pokes: self.inner.pokes.clone(),
        }
    }

    /// The handle for readers: the CRLs being served.
    pub fn crls(&self) -> PublishedCrls {
        PublishedCrls {
            board: self.inner.board.clone(),
            deltas: self.inner.deltas.clone(),
        }
    }

    /// Starts a CRL builder for every intermediate whose CRL is published, and keeps doing
    /// so as intermediates are made (a rotation, here or at a replica) and retired (its
    /// builder stops and its CRL is no longer served). Runs until the process ends (or the
    /// handle is aborted, which stops every builder).
    pub fn start(&self) -> tokio::task::JoinHandle<()> {
        let inner = self.inner.clone();
        let mut issuers = inner.issuers.clone();
        let mut running = HashMap::new();
        // The first builders before returning, so that a caller waiting for every CRL
        // waits for these.
        let first = issuers.borrow_and_update().clone();
        inner.run_builders_for(&first, &mut running);
        tokio::spawn(async move {
            while issuers.changed().await.is_ok() {
                let set = issuers.borrow_and_update().clone();
                inner.run_builders_for(&set, &mut running);
            }
        })
    }
}

impl Inner {
    /// Starts a builder for each intermediate of `set` whose CRL is published and has none,
    /// and stops those of intermediates no longer published (their CRLs are no longer
    /// served).
    fn run_builders_for(
        self: &Arc<Self>,
        set: &IssuerSet,
        running: &mut HashMap<i64, AbortOnDrop>,
    ) {
        let published: HashMap<i64, &Arc<LiveIssuer>> =
            set.published().map(|i| (i.id, i)).collect();
        running.retain(|id, _| published.contains_key(id));
        self.board.keep_only(|id| published.contains_key(&id));
        for (id, issuer) in published {
            if running.contains_key(&id) {
                continue;
            }
            // `None` when its key cannot be opened here (the registry logged why): this
            // process then serves the CRLs a replica stores, and cannot build one.
            let signer = issuer.signer.clone();
            let board = self.board.add(id, issuer.tenant.is_none());
            let task = key_crl::IssuerCrl::new(self.clone(), id, signer, board);
            running.insert(id, AbortOnDrop(tokio::spawn(task.run())));
        }
    }
}

/// Stops a builder when its intermediate retires, and every builder when the publisher's
/// own task is aborted.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The issuers row of the root certificate in `der` (`what` names it in errors), recorded if
/// it is not yet: for the CLI's root CRL commands, which run without the issuer registry.
async fn recorded_issuer(
    ledger: &RevocationLedger,
    der: &[u8],
    what: &'static str,
    now: OffsetDateTime,
) -> Result<i64, PublisherError> {
    let facts = crate::ca::IssuerFacts::of(der)
        .map_err(|detail| PublisherError::Certificate { what, detail })?;
    let (fingerprint, subject) = (&facts.fingerprint, &facts.subject);
    let role = IssuerRole::Root;
    Ok(ledger
        .ensure_issuer(fingerprint, subject, der, facts.not_after, role, now)
        .await?)
}

/// The label of a metric that is one intermediate's.
type IssuerLabel = Vec<(&'static str, String)>;

/// The publisher's Prometheus metrics, registered in the registry `/metrics` serves: per
/// intermediate (label `issuer`, its id) the published CRL's figures; for the whole CA the
/// failures.
#[derive(Debug)]
struct CrlMetrics {
    number: Family<IssuerLabel, Gauge>,
    entries: Family<IssuerLabel, Gauge>,
    next_update: Family<IssuerLabel, Gauge>,
    /// 1 while any intermediate's builder is failing.
    failing: Gauge,
    failures: Counter,
    number_conflicts: Counter,
}

impl CrlMetrics {
    /// The label of intermediate `issuer_id`.
    fn issuer(issuer_id: i64) -> IssuerLabel {
        vec![("issuer", issuer_id.to_string())]
    }
}

impl CrlMetrics {
    fn register(registry: &mut Registry) -> Self {
        let m = Self {
            number: Family::default(),
            entries: Family::default(),
            next_update: Family::default(),
            failing: Gauge::default(),
            failures: Counter::default(),
            number_conflicts: Counter::default(),
        };
        registry.register(
            "crl_number",
            "Number of the published CRL",
            m.number.clone(),
        );
        registry.register(
            "crl_entries",
            "Certificates listed in the published CRL",
            m.entries.clone(),
        );
        registry.register(
            "crl_next_update_timestamp_seconds",
            "nextUpdate of the published CRL, unix seconds",
            m.next_update.clone(),
        );
        registry.register(
            "crl_failing",
            "1 while the CA cannot publish a new CRL of one of its intermediates",
            m.failing.clone(),
        );
        registry.register(
            "crl_build_failures",
            "CRL builds that failed",
            m.failures.clone(),
        );
        registry.register(
            "crl_number_conflicts",
            "CRLs built here whose number another replica had stored first (the builder lease \
             should keep this at 0)",
            m.number_conflicts.clone(),
        );
        m
    }
}

#[cfg(test)]
mod tests;
