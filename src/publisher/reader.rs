//! The readers' side of publication: each intermediate's CRL being served, a wait for a
//! newer one (the long poll of `GET /v1/crl` and `GET /v1/issuers/{id}/crl`), the root's, and
//! the health that `/readyz` reports. The publisher writes the [`Board`]; everyone else
//! holds a [`PublishedCrls`].

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration as StdDuration;

use time::OffsetDateTime;
use tokio::sync::watch;

use super::PublishedCrl;
use super::delta::{DeltaError, Deltas};
use crate::clock::Clock;
use crate::store::CrlBasis;

/// One intermediate's CRL as its builder writes it.
#[derive(Debug)]
pub(super) struct IssuerBoard {
    /// The intermediate's id.
    pub(super) issuer_id: i64,
    /// True for an intermediate shared by all tenants (not dedicated to one).
    pub(super) shared: bool,
    /// Its CRL being served.
    pub(super) current: watch::Sender<Option<Arc<PublishedCrl>>>,
    /// The newest CRL number decided, which deltas lead to: the whole CRL of that number
    /// may still be being signed.
    pub(super) newest: watch::Sender<Option<CrlBasis>>,
    /// True while the last build failed.
    pub(super) failing: AtomicBool,
    /// Builds that failed since start.
    pub(super) failures: AtomicU64,
}

impl IssuerBoard {
    /// The newest CRL number decided (what deltas lead to): the one recorded as decided, or
    /// the whole CRL being served when that is newer.
    pub(super) fn newest_basis(&self) -> Option<CrlBasis> {
        let newest = *self.newest.borrow();
        let current = self.current.borrow().clone();
        match (newest, current) {
            (Some(n), Some(c)) if c.number > n.number => c.basis(),
            (Some(n), _) => Some(n),
            (None, c) => c.and_then(|c| c.basis()),
        }
    }
}

/// One root's CRL as served.
#[derive(Debug, Clone)]
pub(super) struct RootSlot {
    /// The root's id among the issuers.
    pub(super) id: i64,
    /// True for the root made at initialization: its CRL is `/v1/crl/root`.
    pub(super) first: bool,
    /// Its subject key identifier, hex: `/v1/roots/{key id}/crl`.
    pub(super) key_id: String,
    /// Its newest CRL, if one was ever found.
    pub(super) crl: Option<Arc<PublishedCrl>>,
}

/// What the publisher writes and readers read.
#[derive(Debug)]
pub(super) struct Board {
    /// Every intermediate whose CRL is published, by id (ascending: oldest first).
    issuers: RwLock<BTreeMap<i64, Arc<IssuerBoard>>>,
    /// Every root's CRL being served (one root until a rollover), oldest root first.
    roots: RwLock<Vec<RootSlot>>,
    /// The time a CRL's nextUpdate is compared with: the CA's clock.
    pub(super) clock: Arc<dyn Clock>,
}

impl Board {
    pub(super) fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            issuers: RwLock::new(BTreeMap::new()),
            roots: RwLock::new(Vec::new()),
            clock,
        }
    }

    fn issuers(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<i64, Arc<IssuerBoard>>> {
        self.issuers.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds the board of intermediate `issuer_id` (nothing published yet).
    pub(super) fn add(&self, issuer_id: i64, shared: bool) -> Arc<IssuerBoard> {
        let board = Arc::new(IssuerBoard {
            issuer_id,
            shared,
            current: watch::Sender::new(None),
            newest: watch::Sender::new(None),
            failing: AtomicBool::new(false),
            failures: AtomicU64::new(0),
        });
        self.issuers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(issuer_id, board.clone());
        board
    }

    /// Drops the boards of intermediates no longer published.
    pub(super) fn keep_only(&self, keep: impl Fn(i64) -> bool) {
        self.issuers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|id, _| keep(*id));
    }

    fn roots(&self) -> std::sync::RwLockReadGuard<'_, Vec<RootSlot>> {
        self.roots.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Publishes the roots of `slots` (the CA's roots now, each with the newest CRL found
    /// for it), keeping a CRL already served when it is newer than the one offered.
    pub(super) fn publish_roots(&self, mut slots: Vec<RootSlot>) {
        let mut roots = self.roots.write().unwrap_or_else(|e| e.into_inner());
        for slot in &mut slots {
            let held = roots
                .iter()
                .find(|r| r.id == slot.id)
                .and_then(|r| r.crl.clone());
            if let Some(held) = held
                && slot.crl.as_ref().is_none_or(|c| c.number < held.number)
            {
                slot.crl = Some(held);
            }
        }
        *roots = slots;
    }

    /// True while any intermediate's builder is failing.
    pub(super) fn any_failing(&self) -> bool {
        self.issuers()
            .values()
            .any(|b| b.failing.load(Ordering::Relaxed))
    }
}

/// The CRLs being served, for the HTTP edge and readiness: a cheap-clone handle that can
/// read and wait, never build or store.
#[derive(Debug, Clone)]
pub struct PublishedCrls {
    pub(super) board: Arc<Board>,
    pub(super) deltas: Arc<Deltas>,
}

/// One intermediate's CRLs being served: read, wait for a newer one, ask for a delta.
#[derive(Debug, Clone)]
pub struct IssuerCrls {
    board: Arc<IssuerBoard>,
    clock: Arc<dyn Clock>,
    deltas: Arc<Deltas>,
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
    fn handle(&self, board: &Arc<IssuerBoard>) -> IssuerCrls {
        IssuerCrls {
            board: board.clone(),
            clock: self.board.clock.clone(),
            deltas: self.deltas.clone(),
        }
    }

    /// The CRLs of intermediate `issuer_id`, while it is published.
    pub fn issuer(&self, issuer_id: i64) -> Option<IssuerCrls> {
        self.board.issuers().get(&issuer_id).map(|b| self.handle(b))
    }

    /// The CRLs `GET /v1/crl` serves: the oldest shared intermediate's still published,
    /// which is the one every certificate made before the first rotation names.
    pub fn default_issuer(&self) -> Option<IssuerCrls> {
        self.board
            .issuers()
            .values()
            .find(|b| b.shared)
            .map(|b| self.handle(b))
    }

    /// Every published intermediate's CRLs, oldest intermediate first.
    pub fn issuers(&self) -> Vec<IssuerCrls> {
        self.board
            .issuers()
            .values()
            .map(|b| self.handle(b))
            .collect()
    }

    /// The first root's CRL being served (`/v1/crl/root`), if one was ever found.
    pub fn current_root(&self) -> Option<Arc<PublishedCrl>> {
        self.board
            .roots()
            .iter()
            .find(|r| r.first)
            .and_then(|r| r.crl.clone())
    }

    /// The CRL of the root whose subject key identifier is `key_id` (hex): one a rollover
    /// made (`/v1/roots/{key id}/crl`) or the first.
    pub fn root_by_key_id(&self, key_id: &str) -> Option<Arc<PublishedCrl>> {
        self.board
            .roots()
            .iter()
            .find(|r| r.key_id == key_id)
            .and_then(|r| r.crl.clone())
    }

    /// Every root's CRL being served, oldest root first: the bundle's.
    pub fn all_roots(&self) -> Vec<Arc<PublishedCrl>> {
        self.board
            .roots()
            .iter()
            .filter_map(|r| r.crl.clone())
            .collect()
    }

    /// Whether the root CRL `crl` may be served: not past its nextUpdate.
    pub fn root_stale(&self, crl: &PublishedCrl) -> Result<(), CrlProblem> {
        expired(crl, self.board.clock.now())
    }

    /// Waits up to `wait` until every published intermediate has a CRL; false when one
    /// still has none (start-up: serve only once every CRL is out, or say why not).
    pub async fn wait_for_all(&self, wait: StdDuration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        let issuers = self.issuers();
        if issuers.is_empty() {
            return false;
        }
        for crls in issuers {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if crls.current().is_none() && crls.newer_than(0, left).await.is_none() {
                return false;
            }
        }
        true
    }

    /// Ready to serve as far as CRLs go: every published intermediate's CRL is published,
    /// fresh, and its builder is not failing; and a fresh root CRL is served.
    pub fn ready(&self) -> Result<(), CrlProblem> {
        let not_ready = |why: String| Err(CrlProblem::NotReady(why));
        let issuers = self.issuers();
        if issuers.is_empty() {
            return not_ready("no intermediate's CRL is published".into());
        }
        let now = self.board.clock.now();
        for crls in issuers {
            let id = crls.issuer_id();
            match crls.current() {
                None => return not_ready(format!("issuer {id}: no CRL has been published yet")),
                Some(crl) if crl.next_update <= now => {
                    return not_ready(format!(
                        "issuer {id}: the published CRL is past its nextUpdate"
                    ));
                }
                _ if crls.failing() => {
                    return not_ready(format!(
                        "issuer {id}: the CA cannot publish a new CRL; see its log"
                    ));
                }
                _ => {}
            }
        }
        match self.root_problem() {
            Some(problem) => Err(CrlProblem::NotReady(problem)),
            None => Ok(()),
        }
    }

    /// Why a root's CRL is not fit to serve, if one is not: for `/readyz` and the log.
    pub(super) fn root_problem(&self) -> Option<String> {
        let roots = self.board.roots();
        if roots.is_empty() {
            return Some("no root CRL has been looked for yet".into());
        }
        roots.iter().find_map(|root| match &root.crl {
            None => Some(format!(
                "no CRL of root {} is stored: its key is not in the CA home; run `latchkey \
                 crl sign-root` where it is",
                root.id
            )),
            Some(crl) if crl.next_update <= self.board.clock.now() => Some(format!(
                "the CRL of root {} (number {}) is past its nextUpdate; run `latchkey crl \
                 sign-root` where its key is",
                root.id, crl.number
            )),
            _ => None,
        })
    }
}

impl IssuerCrls {
    /// The intermediate's id.
    pub fn issuer_id(&self) -> i64 {
        self.board.issuer_id
    }

    /// The delta CRL from CRL `base` to CRL `target` of this intermediate (see `delta.rs`).
    pub async fn delta(&self, base: i64, target: i64) -> Result<Arc<PublishedCrl>, DeltaError> {
        let newest = self.newest();
        self.deltas
            .delta(self.board.issuer_id, base, target, newest.as_ref())
            .await
    }

    /// The newest CRL number decided (what a delta leads to), if any: the whole CRL being
    /// served, or a newer one whose whole CRL is still being signed.
    pub fn newest(&self) -> Option<CrlBasis> {
        self.board.newest_basis()
    }

    /// Waits up to `wait` for a CRL number above `number` to be decided; `None` when none
    /// was.
    pub async fn newest_after(&self, number: i64, wait: StdDuration) -> Option<CrlBasis> {
        if let Some(newest) = self.newest().filter(|n| n.number > number) {
            return Some(newest);
        }
        let mut newest = self.board.newest.subscribe();
        let mut current = self.board.current.subscribe();
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            tokio::select! {
                changed = newest.changed() => changed.ok()?,
                changed = current.changed() => changed.ok()?,
                () = tokio::time::sleep_until(deadline) => return None,
            }
            if let Some(n) = self.newest().filter(|n| n.number > number) {
                return Some(n);
            }
        }
    }

    /// Its CRL being served, if one was published.
    pub fn current(&self) -> Option<Arc<PublishedCrl>> {
        self.board.current.borrow().clone()
    }

    /// True when its builder's last attempt failed.
    pub fn failing(&self) -> bool {
        self.board.failing.load(Ordering::Relaxed)
    }

    /// Builds of its CRL that failed since start.
    pub fn failures(&self) -> u64 {
        self.board.failures.load(Ordering::Relaxed)
    }

    /// Whether `crl` may be served, and how: `Ok(false)` when it is the truth as far as this CA
    /// knows, `Ok(true)` when the builder's last attempt failed (revocations since may be
    /// missing, and the answer must say so), and an error once it is past its nextUpdate.
    pub fn stale(&self, crl: &PublishedCrl) -> Result<bool, CrlProblem> {
        expired(crl, self.clock.now())?;
        Ok(self.failing())
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
}

/// An error once `crl` is past its nextUpdate at `now`.
fn expired(crl: &PublishedCrl, now: OffsetDateTime) -> Result<(), CrlProblem> {
    if crl.next_update <= now {
        return Err(CrlProblem::Expired {
            number: crl.number,
            next_update: crl.next_update,
        });
    }
    Ok(())
}
