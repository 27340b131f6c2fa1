//! The readers' side of publication: the CRLs being served, a wait for a newer one (the
//! long poll of `GET /v1/crl`), and the health that `/readyz` and `/metrics` report. The
//! publisher writes the [`Board`]; everyone else holds a [`PublishedCrls`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration as StdDuration;

use time::OffsetDateTime;
use tokio::sync::watch;

use super::PublishedCrl;
use crate::clock::Clock;

/// What the publisher writes and readers read.
#[derive(Debug)]
pub(super) struct Board {
    /// The issuing intermediate's CRL being served.
    pub(super) current: watch::Sender<Option<Arc<PublishedCrl>>>,
    /// The root's CRL being served.
    pub(super) root: watch::Sender<Option<Arc<PublishedCrl>>>,
    /// True while the last build of the intermediate's CRL failed.
    pub(super) failing: AtomicBool,
    /// Builds that failed since start.
    pub(super) failures: AtomicU64,
    /// The time a CRL's nextUpdate is compared with: the CA's clock.
    pub(super) clock: Arc<dyn Clock>,
}

impl Board {
    pub(super) fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            current: watch::Sender::new(None),
            root: watch::Sender::new(None),
            failing: AtomicBool::new(false),
            failures: AtomicU64::new(0),
            clock,
        }
    }
}

/// The CRLs being served, for the HTTP edge and readiness: a cheap-clone handle that can
/// read and wait, never build or store.
#[derive(Debug, Clone)]
pub struct PublishedCrls {
    pub(super) board: Arc<Board>,
}

/// The CRL health figures for `/readyz` and `/metrics`.
#[derive(Debug, Clone)]
pub struct CrlHealth {
    /// The published CRL's number, if any.
    pub number: Option<i64>,
    /// Its nextUpdate.
    pub next_update: Option<OffsetDateTime>,
    /// Its entries.
    pub entries: i64,
    /// True when the last build failed.
    pub failing: bool,
    /// Builds that failed since start.
    pub failures: u64,
}

/// Why a CRL cannot be served, or why the CA is not ready for want of one. Only the HTTP
/// edge knows which status code each becomes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CrlProblem {
    /// The newest CRL is past its nextUpdate: relying services would refuse it, and it may
    /// miss revocations. Only a CA whose CRL builder keeps failing gets here.
    #[error(
        "the newest CRL (number {number}) expired at {next_update}; the CA cannot publish a new one"
    )]
    Expired {
        /// The expired CRL's number.
        number: i64,
        /// Its nextUpdate.
        next_update: OffsetDateTime,
    },
    /// No fresh CRL is served at some level of the chain: the CA is not ready.
    #[error("not ready: {0}")]
    NotReady(String),
}

impl PublishedCrls {
    /// The issuing intermediate's CRL being served, if one was published.
    pub fn current(&self) -> Option<Arc<PublishedCrl>> {
        self.board.current.borrow().clone()
    }

    /// The root CRL being served, if a fresh-enough one was ever found.
    pub fn current_root(&self) -> Option<Arc<PublishedCrl>> {
        self.board.root.borrow().clone()
    }

    /// Whether `crl` may be served, and how: `Ok(false)` when it is the truth as far as this CA
    /// knows, `Ok(true)` when the builder's last attempt failed (revocations since may be
    /// missing, and the answer must say so), and an error once it is past its nextUpdate.
    pub fn stale(&self, crl: &PublishedCrl) -> Result<bool, CrlProblem> {
        if crl.next_update <= self.board.clock.now() {
            return Err(CrlProblem::Expired {
                number: crl.number,
                next_update: crl.next_update,
            });
        }
        Ok(self.board.failing.load(Ordering::Relaxed))
    }

    /// Waits up to `wait` for a CRL numbered above `number`; `None` when none came.
    pub async fn newer_than(&self, number: i64, wait: StdDuration) -> Option<Arc<PublishedCrl>> {
        let mut rx = self.board.current.subscribe();
        let newer = |c: &Option<Arc<PublishedCrl>>| c.as_ref().is_some_and(|c| c.number > number);
        match tokio::time::timeout(wait, rx.wait_for(newer)).await {
            Ok(Ok(crl)) => crl.clone(),
            _ => None,
        }
    }

    /// The CRL figures for readiness and metrics.
    pub fn health(&self) -> CrlHealth {
        let current = self.current();
        CrlHealth {
            number: current.as_ref().map(|c| c.number),
            next_update: current.as_ref().map(|c| c.next_update),
            entries: current.as_ref().map_or(0, |c| c.entries),
            failing: self.board.failing.load(Ordering::Relaxed),
            failures: self.board.failures.load(Ordering::Relaxed),
        }
    }

    /// Ready to serve as far as CRLs go: the intermediate's CRL is published, fresh, and its
    /// builder is not failing; and a fresh root CRL is served.
    pub fn ready(&self) -> Result<(), CrlProblem> {
        let crl = self.health();
        let not_ready = |why: &str| Err(CrlProblem::NotReady(why.into()));
        match crl.next_update {
            None => not_ready("no CRL has been published yet"),
            Some(next) if next <= self.board.clock.now() => {
                not_ready("the published CRL is past its nextUpdate")
            }
            _ if crl.failing => not_ready("the CA cannot publish a new CRL; see its log"),
            _ => match self.root_problem() {
                Some(problem) => Err(CrlProblem::NotReady(problem)),
                None => Ok(()),
            },
        }
    }

    /// Why the root CRL is not fit to serve, if it is not: for `/readyz` and the log.
    pub(super) fn root_problem(&self) -> Option<String> {
        match self.current_root() {
            None => Some(
                "no root CRL is stored: the root key is not in the CA home; run \
                 `latchkey crl sign-root` where it is"
                    .into(),
            ),
            Some(crl) if crl.next_update <= self.board.clock.now() => Some(format!(
                "the root CRL (number {}) is past its nextUpdate; run `latchkey crl sign-root` \
                 where the root key is",
                crl.number
            )),
            _ => None,
        }
    }
}
