//! The CRL publisher: a component beside the authority that keeps a fresh CRL of each level
//! of the chain in the store and in memory. The authority decides who is revoked; the
//! publisher turns what the store says into signed CRLs and serves them.
//!
//! It holds exactly what that takes: the signer (for the intermediate's CRLs), a
//! [`RevocationLedger`] (the store's revocations, CRLs, lease and issuers, nothing else), the
//! clock, and the [`CrlSchedule`]. Others get narrow handles: the HTTP edge and readiness a
//! [`PublishedCrls`] (read and wait), the authority a [`CrlPoke`] (say that revocations
//! changed). `key_crl` builds the intermediate's CRL, `root_crl` keeps the root's.

mod key_crl;
mod published;
mod reader;
mod root_crl;

use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use time::{Duration, OffsetDateTime};
use tokio::sync::Notify;

use crate::ca::{Signer, SignerError};
use crate::clock::Clock;
use crate::store::{RevocationLedger, StoreError};

pub use published::PublishedCrl;
pub use reader::{CrlHealth, CrlProblem, PublishedCrls};
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
    /// Other replicas kept storing the number just chosen.
    #[error("CRL numbers kept colliding")]
    NumbersKeptColliding,
    /// A signing task on the blocking pool panicked or was cancelled.
    #[error("a CRL signing task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// The handle the authority holds: it says that revocations changed, and nothing else. A
/// poke asks for a new CRL soon; pokes that arrive while one is pending are one.
#[derive(Debug, Clone)]
pub struct CrlPoke {
    dirty: Arc<Notify>,
}

impl CrlPoke {
    /// Asks for a new CRL soon (after a revocation).
    pub fn poke(&self) {
        self.dirty.notify_one();
    }
}

/// The CRL publisher. [`Publisher::start`] runs the intermediate's CRL loop and
/// [`Publisher::start_root`] the root's; until then it publishes nothing.
#[derive(Debug, Clone)]
pub struct Publisher {
    inner: Arc<Inner>,
}

/// What the publisher's tasks share.
#[derive(Debug)]
struct Inner {
    ledger: RevocationLedger,
    signer: Arc<Signer>,
    clock: Arc<dyn Clock>,
    schedule: CrlSchedule,
    /// The issuing intermediate, as recorded among the issuers.
    issuer_id: i64,
    /// The root, as recorded among the issuers: its CRLs are numbered on their own.
    root_issuer_id: i64,
    /// This process's name as a holder of the CRL builder lease.
    holder: String,
    /// Rung by [`CrlPoke::poke`].
    dirty: Arc<Notify>,
    board: Arc<reader::Board>,
    metrics: CrlMetrics,
}

impl Publisher {
    /// Puts the publisher together for the intermediate of `signer` and the root in
    /// `root_der`, recording both among the store's issuers if they are not yet, and
    /// registers its metrics in `metrics`. Publishes nothing until started.
    pub async fn new(
        ledger: RevocationLedger,
        signer: Arc<Signer>,
        root_der: &[u8],
        clock: Arc<dyn Clock>,
        schedule: CrlSchedule,
        metrics: &mut Registry,
    ) -> Result<Self, PublisherError> {
        let now = clock.now();
        let issuer_id = recorded_issuer(&ledger, signer.certificate(), "issuer", now).await?;
        let root_issuer_id = recorded_issuer(&ledger, root_der, "root", now).await?;
        Ok(Self {
            inner: Arc::new(Inner {
                ledger,
                signer,
                board: Arc::new(reader::Board::new(clock.clone())),
                clock,
                schedule,
                issuer_id,
                root_issuer_id,
                holder: hex::encode(crate::random_bytes::<8>()),
                dirty: Arc::new(Notify::new()),
                metrics: CrlMetrics::register(metrics),
            }),
        })
    }

    /// The handle for the authority: "revocations changed".
    pub fn poke(&self) -> CrlPoke {
        CrlPoke {
            dirty: self.inner.dirty.clone(),
        }
    }

    /// The handle for readers: the CRLs being served.
    pub fn crls(&self) -> PublishedCrls {
        PublishedCrls {
            board: self.inner.board.clone(),
        }
    }
}

/// The issuers row of the certificate in `der` (`what` names it in errors), recorded if it
/// is not yet. The authority records its intermediate too; the store makes both one row.
async fn recorded_issuer(
    ledger: &RevocationLedger,
    der: &[u8],
    what: &'static str,
    now: OffsetDateTime,
) -> Result<i64, PublisherError> {
    let (_, parsed) =
        x509_parser::parse_x509_certificate(der).map_err(|e| PublisherError::Certificate {
            what,
            detail: e.to_string(),
        })?;
    Ok(ledger
        .ensure_issuer(
            &hex::encode(ring::digest::digest(&ring::digest::SHA256, der)),
            &parsed.subject().to_string(),
            der,
            parsed.validity().not_after.to_datetime(),
            now,
        )
        .await?)
}

/// The publisher's Prometheus metrics, registered in the registry `/metrics` serves.
#[derive(Debug)]
struct CrlMetrics {
    number: Gauge,
    entries: Gauge,
    next_update: Gauge,
    failing: Gauge,
    failures: Counter,
    number_conflicts: Counter,
}

impl CrlMetrics {
    fn register(registry: &mut Registry) -> Self {
        let m = Self {
            number: Gauge::default(),
            entries: Gauge::default(),
            next_update: Gauge::default(),
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
            "1 while the CA cannot publish a new CRL",
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
