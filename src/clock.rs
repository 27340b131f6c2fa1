//! Time, injected: everything that compares against "now" asks a [`Clock`], so tests can
//! pin it or move it forward instead of waiting for a certificate or a CRL to age.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use time::OffsetDateTime;

/// A future returned by [`Clock::sleep_until`].
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// A source of the current time.
pub trait Clock: std::fmt::Debug + Send + Sync + 'static {
    /// Now, in UTC, truncated to whole seconds (the precision of certificates and the store).
    fn now(&self) -> OffsetDateTime;

    /// Completes once this clock reads `at` or later. Schedules decided by the clock (the
    /// CRL's refresh, a certificate's renewal) wait with this rather than with a timer of
    /// their own, so a clock that is moved forward wakes them.
    fn sleep_until(&self, at: OffsetDateTime) -> Sleep {
        let wait = std::time::Duration::try_from(at - self.now()).unwrap_or_default();
        Box::pin(tokio::time::sleep(wait))
    }
}

/// The system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        truncate(OffsetDateTime::now_utc())
    }
}

/// A clock that always says the same time, for tests.
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub OffsetDateTime);

impl Clock for FixedClock {
    fn now(&self) -> OffsetDateTime {
        truncate(self.0)
    }
}

/// A clock that runs with the system's and that tests move forward: the system's time plus
/// an offset shared by every clone. Moving it wakes whatever waits in
/// [`Clock::sleep_until`], so a CRL or a renewal due at the new time happens at once, while
/// real I/O (sockets, the store) keeps its real timeouts.
#[derive(Debug, Clone, Default)]
pub struct ManualClock {
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    /// Seconds added to the system's time.
    offset: AtomicI64,
    moved: tokio::sync::Notify,
}

impl ManualClock {
    /// A clock reading the system's time until it is moved.
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves the clock (and every clone of it) forward by `by`, and wakes its sleepers.
    pub fn advance(&self, by: time::Duration) {
        self.shared
            .offset
            .fetch_add(by.whole_seconds(), Ordering::SeqCst);
        self.shared.moved.notify_waiters();
    }

    /// How far this clock has been moved from the system's time.
    pub fn offset(&self) -> time::Duration {
        time::Duration::seconds(self.shared.offset.load(Ordering::SeqCst))
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        truncate(OffsetDateTime::now_utc() + self.offset())
    }

    fn sleep_until(&self, at: OffsetDateTime) -> Sleep {
        let clock = self.clone();
        Box::pin(async move {
            loop {
                // Registered before reading the time, so a move in between is not missed.
                let moved = clock.shared.moved.notified();
                let Ok(wait) = std::time::Duration::try_from(at - clock.now()) else {
                    return;
                };
                if wait.is_zero() {
                    return;
                }
                tokio::select! {
                    () = moved => {}
                    () = tokio::time::sleep(wait) => {}
                }
            }
        })
    }
}

fn truncate(t: OffsetDateTime) -> OffsetDateTime {
    t.replace_nanosecond(0).unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn moving_a_manual_clock_wakes_its_sleepers_and_moves_its_clones() {
        let clock = ManualClock::new();
        let clone = clock.clone();
        let start = clock.now();
        let at = start + time::Duration::hours(1);
        let sleeper = tokio::spawn(clone.sleep_until(at));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!sleeper.is_finished(), "woke an hour early");
        clock.advance(time::Duration::hours(1));
        tokio::time::timeout(std::time::Duration::from_secs(2), sleeper)
            .await
            .expect("the move woke the sleeper")
            .unwrap();
        assert!(clone.now() >= at, "clones share the move");
        assert_eq!(clone.offset(), time::Duration::hours(1));
    }

    #[tokio::test]
    async fn a_time_already_past_does_not_wait() {
        let clock = ManualClock::new();
        let past = clock.now() - time::Duration::seconds(5);
        tokio::time::timeout(
            std::time::Duration::from_millis(100),
            clock.sleep_until(past),
        )
        .await
        .expect("no wait for a past time");
    }
}
