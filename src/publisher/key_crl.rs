//! The issuing intermediate's CRL. One background task per CA process builds a new CRL
//! promptly after revocations (coalescing bursts), and again when half of the current one's
//! validity has passed, so a fresh CRL always exists well before `nextUpdate`. Building
//! happens off the request path; the result is stored (so a restart or a replica serves the
//! same bytes) and published through one watch channel that `GET /v1/crl` and its
//! long-polls read. The task also watches the store: for a CRL another replica built, which
//! it serves, and for a revocation made by another process that no CRL lists yet, for which
//! it builds one.
//!
//! The procedure, numbered as in README's architecture section:
//! 0. Take the builder lease (across replicas, one builds at a time).
//! 1. Choose the number: one above the highest stored (numbers never repeat).
//! 2. Collect the entries: revoked certificates whose `not_after` is within one validity
//!    interval of now (the cutoff), so each stays until the first scheduled CRL after it
//!    expires, stamped at or below the store's revocation revision, read first and recorded
//!    as what the CRL covers. Incrementally: the builder keeps the last CRL's entries,
//!    encoded, and reads only the revocations stamped since the revision that CRL covered
//!    (migration 0011 says why that order is the commit order), dropping the expired ones; it
//!    starts from the whole list at start-up, when the clock moved back, and once per half
//!    validity, so that nothing it could have missed lasts.
//! 3. Sign (on the blocking pool).
//! 4. Store; a number taken meanwhile (by a replica) goes back to step 1.
//! 5. Publish to waiting readers.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration as StdDuration;

use time::OffsetDateTime;

use super::reader::IssuerBoard;
use super::{CrlMetrics, Inner, PublishedCrl, PublisherError};
use crate::ca::{CrlEntries, CrlEntry, CrlHeader, CrlKind, Signer};
use crate::store::{CrlBasis, CrlRow, Revisions, RevokedCertificate, StoreError};

/// Revocations arriving within this of each other share one CRL.
const COALESCE: StdDuration = StdDuration::from_millis(50);
/// How often a number collision (another replica built one) is retried.
const NUMBER_RETRIES: usize = 5;
/// How long a CRL builder lease lasts if its holder dies before giving it back.
const LEASE: StdDuration = StdDuration::from_secs(30);
/// How often the builder looks in the store for a CRL another replica built, or for a
/// revocation no CRL lists yet.
const FOLLOW_INTERVAL: StdDuration = StdDuration::from_millis(200);
/// How long a revocation may go unlisted before this process builds a CRL for it itself: the
/// process that revoked builds within a fraction of a second, unless it died first.
const UNLISTED_GRACE: StdDuration = StdDuration::from_secs(1);
/// The longest wait between attempts after a failed build.
const MAX_BACKOFF: StdDuration = StdDuration::from_secs(30);
/// How long the CA keeps what a CRL listed, so that a follower holding it gets a delta; one
/// that held a CRL older than this gets the whole CRL.
pub(super) const DELTA_HORIZON: time::Duration = time::Duration::hours(24);

/// What the builder keeps between CRLs: the last one's entries, encoded, and what they are.
struct Accumulated {
    entries: CrlEntries,
    /// Every revocation stamped up to this revision is in `entries`.
    covers: i64,
    /// No certificate whose notAfter is at or before this is.
    cutoff: OffsetDateTime,
    /// When the entries were last read whole.
    read_whole_at: OffsetDateTime,
    /// The number and times of the CRL they are the entries of.
    header: CrlHeader,
}

/// What the builder does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Work {
    /// Nothing: wait.
    None,
    /// Revocations changed: decide a new number (followers get its delta at once), and sign
    /// its whole CRL as its share of the CPU allows.
    Decide,
    /// Sign the whole CRL of the newest number decided.
    Whole,
    /// The CRL is due (half its validity passed, or start-up): a new number and its whole CRL
    /// now.
    Refresh,
}

/// What a decision came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decided {
    /// A new number, decided here.
    Number,
    /// A replica had decided and signed one that does.
    Followed,
}

/// How many times the cost of the last whole CRL passes before the next is signed, when
/// revocations keep coming: whole CRLs take at most a seventh of one core (and, on SQLite, of
/// the write lock: storing 49 MB holds it for a quarter of a second), however many
/// revocations and however large the CRL. Followers of deltas get every revocation at once;
/// a reader of whole CRLs gets them batched (at a million entries, every two seconds or so).
const WHOLE_SHARE: u32 = 6;

/// One intermediate's CRL builder.
pub(super) struct IssuerCrl {
    inner: Arc<Inner>,
    /// The intermediate, as recorded among the issuers.
    issuer_id: i64,
    /// Its signer; `None` when its key cannot be opened here.
    signer: Option<Arc<Signer>>,
    board: Arc<IssuerBoard>,
    /// Moved by every poke.
    pokes: tokio::sync::watch::Receiver<u64>,
    /// The last CRL's entries; taken out while a build runs.
    accumulated: std::sync::Mutex<Option<Accumulated>>,
    /// How long the last whole CRL took to sign and store.
    whole_cost: std::sync::Mutex<StdDuration>,
}

impl IssuerCrl {
    pub(super) fn new(
        inner: Arc<Inner>,
        issuer_id: i64,
        signer: Option<Arc<Signer>>,
        board: Arc<IssuerBoard>,
    ) -> Self {
        let pokes = inner.pokes.subscribe();
        Self {
            inner,
            issuer_id,
            signer,
            board,
            pokes,
            accumulated: std::sync::Mutex::new(None),
            whole_cost: std::sync::Mutex::new(StdDuration::ZERO),
        }
    }

    /// Publishes the stored CRL if it is current and agrees with the store's revocations,
    /// otherwise builds one at once; then rebuilds after revocations and on schedule. Runs
    /// until the intermediate retires or the process ends.
    pub(super) async fn run(self) {
        Arc::new(self).crl_loop().await
    }

    fn now(&self) -> OffsetDateTime {
        self.inner.clock.now()
    }

    fn current_crl(&self) -> Option<Arc<PublishedCrl>> {
        self.board.current.borrow().clone()
    }

    fn metrics(&self) -> &CrlMetrics {
        &self.inner.metrics
    }

    /// Marks this builder failing or not, in its board and in the CA-wide metric.
    fn set_failing(&self, failing: bool) {
        self.board.failing.store(failing, Ordering::Relaxed);
        let any = self.inner.board.any_failing();
        self.metrics().failing.set(i64::from(any));
    }

    async fn crl_loop(self: Arc<Self>) {
        let mut work = match self.load_stored_crl().await {
            Ok(true) => Work::None,
            Ok(false) => Work::Refresh,
            Err(e) => {
                tracing::warn!(error = %e, "cannot check the stored CRL; building a new one");
                Work::Refresh
            }
        };
        let mut backoff = StdDuration::from_secs(1);
        // When the newest number's whole CRL may be signed (its share of the CPU), while it
        // lacks one.
        let mut whole_due: Option<tokio::time::Instant> = None;
        let mut whole_allowed_at = tokio::time::Instant::now();
        // One receiver for the loop's life, so each poke is seen once.
        let mut pokes = self.pokes.clone();
        pokes.mark_unchanged();
        loop {
            let done = match work {
                Work::None => Ok(()),
                Work::Decide | Work::Refresh => {
                    let refresh = work == Work::Refresh;
                    match self.decide_exclusively(refresh).await {
                        Ok(Decided::Number) if refresh => self.sign_whole().await,
                        Ok(Decided::Number) => {
                            whole_due = Some(whole_allowed_at);
                            Ok(())
                        }
                        Ok(Decided::Followed) => Ok(()),
                        Err(e) => Err(e),
                    }
                }
                Work::Whole => self.sign_whole().await,
            };
            match done {
                Ok(()) => {
                    backoff = StdDuration::from_secs(1);
                    if work != Work::None {
                        self.set_failing(false);
                    }
                }
                Err(e) => {
                    self.set_failing(true);
                    self.board.failures.fetch_add(1, Ordering::Relaxed);
                    self.metrics().failures.inc();
                    tracing::error!(issuer = self.issuer_id, error = %e, retry_in = ?backoff,
                        "CANNOT PUBLISH A CRL: revocations are not reaching relying services");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    work = Work::Refresh;
                    continue;
                }
            }
            if matches!(work, Work::Whole | Work::Refresh) {
                whole_due = None;
                // The next whole CRL waits for the CPU share of this one (see WHOLE_SHARE).
                whole_allowed_at =
                    tokio::time::Instant::now() + self.last_whole_cost() * WHOLE_SHARE;
            }
            if whole_due.is_some_and(|due| due <= tokio::time::Instant::now()) {
                work = Work::Whole;
                continue;
            }
            // Rebuilt when half of its validity is left. Not from thisUpdate, which is
            // backdated: with a short validity that would make every CRL due at once.
            // Waited on the CA's clock, so a clock moved forward (in tests) wakes it.
            let refresh_at = self.current_crl().map_or_else(
                || self.now(),
                |c| c.next_update - self.inner.schedule.validity / 2,
            );
            let whole_at = whole_due
                .unwrap_or_else(|| tokio::time::Instant::now() + StdDuration::from_secs(86_400));
            work = tokio::select! {
                Ok(()) = pokes.changed() => {
                    // Let a burst of revocations land in one CRL.
                    tokio::time::sleep(COALESCE).await;
                    Work::Decide
                }
                () = self.inner.clock.sleep_until(refresh_at) => Work::Refresh,
                () = tokio::time::sleep_until(whole_at), if whole_due.is_some() => Work::Whole,
                followed = self.follow_store() => match followed {
                    Followed::Unlisted => {
                        // Something revoked that its process did not list: read the whole
                        // list again rather than trust what was revoked since.
                        self.take_accumulated();
                        Work::Decide
                    }
                    Followed::Published => Work::None,
                },
            };
        }
    }

    /// Returns once another process (a replica, or `latchkey rotate-admin`) has changed what
    /// the CRL must be: after publishing a CRL another replica stored, so every replica
    /// serves the same one and its long polls wake within a fraction of a second of a
    /// revocation made elsewhere; or when a revocation has gone unlisted for longer than the
    /// process that made it needs to build a CRL, which it may have died before doing.
    async fn follow_store(&self) -> Followed {
        let mut unlisted_since: Option<tokio::time::Instant> = None;
        loop {
            tokio::time::sleep(FOLLOW_INTERVAL).await;
            let newest = self.newest();
            let (published, covers) = newest.map_or((0, 0), |n| (n.number, n.covers));
            let whole = self.current_crl().map_or(0, |c| c.number);
            // Two numbers first: a CRL can be tens of megabytes.
            let marks = match self.inner.ledger.crl_marks(self.issuer_id).await {
                Ok(marks) => marks,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot check the store for CRL changes");
                    continue;
                }
            };
            if marks.highest_number > published {
                // A number another replica decided: deltas lead to it from now on.
                match self.inner.ledger.newest_crl_basis(self.issuer_id).await {
                    Ok(Some(basis)) if basis.number > published => {
                        self.board.newest.send_replace(Some(basis));
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "cannot read a newer CRL number"),
                }
            }
            if marks.highest_whole > whole {
                match self.inner.ledger.latest_crl(self.issuer_id).await {
                    Ok(Some(row)) if row.number > whole => {
                        tracing::info!(number = row.number, "CRL from another replica published");
                        self.publish(Arc::new(PublishedCrl::from_row(row)));
                        return Followed::Published;
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "cannot read a newer CRL"),
                }
            }
            if marks.revision <= covers {
                unlisted_since = None;
                continue;
            }
            let since = *unlisted_since.get_or_insert_with(tokio::time::Instant::now);
            if since.elapsed() >= UNLISTED_GRACE {
                tracing::warn!(
                    revision = marks.revision,
                    covered = covers,
                    "a revocation made elsewhere is in no CRL yet; building one"
                );
                return Followed::Unlisted;
            }
        }
    }

    fn publish(&self, crl: Arc<PublishedCrl>) {
        let label = CrlMetrics::issuer(self.issuer_id);
        let metrics = self.metrics();
        metrics.number.get_or_create(&label).set(crl.number);
        metrics.entries.get_or_create(&label).set(crl.entries);
        metrics
            .next_update
            .get_or_create(&label)
            .set(crl.next_update.unix_timestamp());
        self.board.current.send_replace(Some(crl));
    }

    /// Publishes the stored CRL if it is still fresh and lists exactly what the store says
    /// is revoked. Returns false when a new one must be built.
    async fn load_stored_crl(&self) -> Result<bool, PublisherError> {
        let Some(row) = self.inner.ledger.latest_crl(self.issuer_id).await? else {
            return Ok(false);
        };
        // Due for its refresh (as the builder's schedule counts), or older than a revocation
        // the store holds: build a new one.
        let refresh_at = row.next_update - self.inner.schedule.validity / 2;
        let marks = self.inner.ledger.crl_marks(self.issuer_id).await?;
        // A newer number decided whose whole CRL was never stored (the process died while
        // signing it) is also a reason: its entries are not held here.
        if refresh_at <= self.now()
            || row.covers < marks.revision
            || marks.highest_number > row.number
        {
            return Ok(false);
        }
        let built_at = row.this_update + crate::ca::BACKDATE;
        let cutoff = row
            .cutoff
            .unwrap_or(built_at - self.inner.schedule.validity);
        let revoked = self
            .inner
            .ledger
            .revoked_certificates(self.issuer_id, Revisions::up_to(row.covers), cutoff)
            .await?;
        // The entries a new CRL would have, as the stored one must list them.
        let expected: Vec<CrlEntry> = revoked
            .iter()
            .map(|r| r.map(|r| crl_entry(&r)))
            .collect::<Result<_, _>>()?;
        drop(revoked);
        // A negative stored number cannot be the CRL's: rebuild.
        let agrees = u64::try_from(row.number)
            .is_ok_and(|number| crate::ca::crl_lists_exactly(&row.der, number, &expected));
        if !agrees {
            tracing::warn!(
                number = row.number,
                "the stored CRL disagrees with the store's revocations; rebuilding"
            );
            return Ok(false);
        }
        self.publish(Arc::new(PublishedCrl::from_row(row)));
        Ok(true)
    }

    /// The newest number decided here or at a replica, as far as this process knows.
    fn newest(&self) -> Option<CrlBasis> {
        self.board.newest_basis()
    }

    /// How long the last whole CRL took to sign and store.
    fn last_whole_cost(&self) -> StdDuration {
        *self.whole_cost.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Decides the next CRL number holding the builder lease, so that across replicas one
    /// decides at a time; waits (a decision takes milliseconds, a first one a fraction of a
    /// second) while another holds it.
    async fn decide_exclusively(&self, refresh: bool) -> Result<Decided, PublisherError> {
        let lease = time::Duration::try_from(LEASE).unwrap_or(time::Duration::MINUTE);
        loop {
            let now = self.now();
            if self
                .inner
                .ledger
                .take_crl_lease(self.issuer_id, &self.inner.holder, now, now + lease)
                .await?
            {
                break;
            }
            tokio::time::sleep(COALESCE).await;
        }
        let decided = match self.stored_crl_suffices(refresh).await {
            Ok(true) => Ok(Decided::Followed),
            Ok(false) => self.decide().await.map(|()| Decided::Number),
            Err(e) => Err(e),
        };
        if let Err(e) = self
            .inner
            .ledger
            .release_crl_lease(self.issuer_id, &self.inner.holder)
            .await
        {
            tracing::warn!(error = %e, "cannot release the CRL lease; it expires by itself");
        }
        decided
    }

    /// Publishes the newest stored CRL instead of deciding one when another replica stored it
    /// while this one waited for the lease, and it leaves nothing to do: it is newer than the
    /// one published here, lists every revocation so far, and (for a refresh) is not due for
    /// its own. (Replicas whose refresh timers fire together, or that all saw one
    /// revocation, build once between them.)
    async fn stored_crl_suffices(&self, refresh: bool) -> Result<bool, PublisherError> {
        // Nothing published yet: this is the start-up build, decided because the stored CRL
        // is stale or disagrees with the store, which its revision alone cannot tell.
        let Some(published) = self.current_crl().map(|c| c.number) else {
            return Ok(false);
        };
        let marks = self.inner.ledger.crl_marks(self.issuer_id).await?;
        if marks.highest_whole <= published {
            return Ok(false);
        }
        let Some(row) = self.inner.ledger.latest_crl(self.issuer_id).await? else {
            return Ok(false);
        };
        let refresh_at = row.next_update - self.inner.schedule.validity / 2;
        if row.number <= published
            || row.covers < marks.revision
            || (refresh && refresh_at <= self.now())
        {
            return Ok(false);
        }
        tracing::info!(number = row.number, "CRL from another replica published");
        self.publish(Arc::new(PublishedCrl::from_row(row)));
        Ok(true)
    }

    /// Decides the next CRL: its number, times, and entries (every revocation stamped up to
    /// the store's revision, none expired), stored without its bytes and published as the
    /// newest number, so that followers get the delta to it at once; its whole CRL is signed
    /// by [`IssuerCrl::sign_whole`], as its share of the CPU allows.
    async fn decide(&self) -> Result<(), PublisherError> {
        for _ in 0..NUMBER_RETRIES {
            // 1. Number.
            let published = self.newest().map_or(0, |c| c.number);
            let number = self.inner.ledger.highest_crl_number().await?.max(published) + 1;
            // 2. Entries.
            // thisUpdate a minute early, as for certificates, so a relying party whose clock
            // lags a little does not see a fresh CRL as "not yet valid".
            let now = self.now();
            let header = CrlHeader {
                number: number as u64,
                this_update: now - crate::ca::BACKDATE,
                next_update: now + self.inner.schedule.validity,
            };
            let cutoff = now - self.inner.schedule.validity;
            // The revision before the entries: every revocation stamped up to it has
            // committed, and none will be stamped at or below it.
            let covers = self.inner.ledger.crl_revision().await?;
            let (held, revisions) = match self.take_accumulated() {
                Some(held)
                    if held.covers <= covers
                        && held.cutoff <= cutoff
                        && now - held.read_whole_at < self.inner.schedule.validity / 2 =>
                {
                    let since = Revisions {
                        after: held.covers,
                        up_to: covers,
                    };
                    (held, since)
                }
                _ => (
                    Accumulated {
                        entries: CrlEntries::new(),
                        covers: -1,
                        cutoff,
                        read_whole_at: now,
                        header,
                    },
                    Revisions::up_to(covers),
                ),
            };
            let revoked = self
                .inner
                .ledger
                .revoked_certificates(self.issuer_id, revisions, cutoff)
                .await?;
            // Off the async threads: a first read encodes a million entries.
            let mut held = tokio::task::spawn_blocking(move || {
                let mut held = held;
                held.entries.retain_unexpired(cutoff);
                for r in revoked.iter() {
                    let r = r?;
                    held.entries.insert(&crl_entry(&r), r.not_after);
                }
                held.covers = covers;
                held.cutoff = cutoff;
                Ok::<_, PublisherError>(held)
            })
            .await??;
            held.header = header;
            let row = CrlRow {
                number,
                this_update: header.this_update,
                next_update: header.next_update,
                entries: held.entries.len() as i64,
                der: bytes::Bytes::new(),
                covers,
                cutoff: Some(cutoff),
            };
            // What the entries are stays true whatever becomes of this number.
            self.put_accumulated(held);
            // 3. Store, without the bytes.
            match self
                .inner
                .ledger
                .insert_crl(self.issuer_id, &row, now, now - DELTA_HORIZON)
                .await
            {
                Ok(()) => {}
                Err(StoreError::Collision) => {
                    self.metrics().number_conflicts.inc();
                    tracing::warn!(number, "another replica stored this CRL number first");
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
            // 4. Publish the number: long polls of `.../crl/latest` wake.
            self.board.newest.send_replace(Some(CrlBasis {
                number,
                this_update: header.this_update,
                next_update: header.next_update,
                covers,
                cutoff,
            }));
            return Ok(());
        }
        Err(PublisherError::NumbersKeptColliding)
    }

    /// Signs, stores and publishes the whole CRL of the newest number decided here.
    async fn sign_whole(&self) -> Result<(), PublisherError> {
        let Some(held) = self.take_accumulated() else {
            return Err(PublisherError::NothingDecided);
        };
        let header = held.header;
        if self
            .current_crl()
            .is_some_and(|c| c.number >= header.number as i64)
        {
            self.put_accumulated(held);
            return Ok(());
        }
        let started = tokio::time::Instant::now();
        let signer = match self.signer.clone() {
            Some(signer) => signer,
            None => {
                self.put_accumulated(held);
                return Err(PublisherError::NoKey(self.issuer_id));
            }
        };
        let (der, held) = tokio::task::spawn_blocking(move || {
            let der = signer.sign_crl_of(&header, CrlKind::Complete, &held.entries);
            (der, held)
        })
        .await?;
        let (covers, cutoff, entries) = (held.covers, held.cutoff, held.entries.len() as i64);
        self.put_accumulated(held);
        let der = der?;
        let signed = started.elapsed();
        let number = header.number as i64;
        if !self
            .inner
            .ledger
            .store_crl_bytes(self.issuer_id, number, &der)
            .await?
        {
            // Its row left (past the horizon) or has its bytes: nothing to publish.
            tracing::warn!(
                number,
                "the CRL's row took other bytes or left; not published"
            );
            return Ok(());
        }
        *self.whole_cost.lock().unwrap_or_else(|e| e.into_inner()) = started.elapsed();
        // Not failing any more from here: a reader woken by the publication must not find the
        // new CRL marked stale.
        self.set_failing(false);
        let crl = Arc::new(PublishedCrl::from_row(CrlRow {
            number,
            this_update: header.this_update,
            next_update: header.next_update,
            entries,
            der,
            covers,
            cutoff: Some(cutoff),
        }));
        tracing::info!(
            issuer = self.issuer_id,
            number,
            entries,
            sign_ms = signed.as_millis() as u64,
            store_ms = (started.elapsed() - signed).as_millis() as u64,
            "CRL published"
        );
        self.publish(crl);
        Ok(())
    }

    fn take_accumulated(&self) -> Option<Accumulated> {
        self.accumulated
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    fn put_accumulated(&self, accumulated: Accumulated) {
        *self.accumulated.lock().unwrap_or_else(|e| e.into_inner()) = Some(accumulated);
    }
}

/// Why [`IssuerCrl::follow_store`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Followed {
    /// A newer CRL another replica stored is published here now.
    Published,
    /// A revocation has been in no CRL for too long: build one.
    Unlisted,
}

/// The CRL entry of a revoked certificate.
pub(super) fn crl_entry(r: &RevokedCertificate) -> CrlEntry {
    CrlEntry {
        serial: r.serial,
        revoked_at: r.revoked_at,
        reason: r.reason,
    }
}
