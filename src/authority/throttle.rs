//! Password guessing, limited two ways, neither of which lets a guesser lock a user out:
//!
//! - **Per user, across all sources.** After [`USER_FREE_FAILURES`] wrong passwords in a row
//!   for one user, each further attempt must wait a delay after the last failure that
//!   doubles from one second up to [`MAX_USER_DELAY`]. A delay, never a lock: whoever guesses
//!   against a user can keep that user waiting at most [`MAX_USER_DELAY`] at a time, and
//!   gets about two guesses a minute for it, from however many addresses.
//! - **Per source network** (an IPv4 address, an IPv6 /64; behind a TCP load balancer, the
//!   address its PROXY header names). After [`SOURCE_LIMIT`] wrong passwords in a row from
//!   one network, whatever the users, that network is refused for a minute, doubling with
//!   each further failure up to an hour. Only the guessing network is shut out.
//!
//! Both maps are keyed on fixed-size values, never on what the client sent: the user as a
//! keyed hash of its canonical name, and only for names that parse (an unparseable name has
//! no user to protect and is counted against its source alone). Each map holds at most
//! [`MAX_TRACKED`] entries, so what guessing leaves in memory is bounded whatever it sends.
//! The state is per process: N replicas allow N times the guesses, and a restart forgets.
//!
//! It fails closed: if a panic ever poisons one of the maps, every password attempt is
//! refused (500) rather than let through unthrottled. Time is `tokio::time::Instant`, so a
//! test can move it with `tokio::time::pause` and `advance`.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::AuthorityError;
use crate::model::{SourceNet, UserRef};

/// Wrong passwords in a row for one user before each attempt is delayed.
pub const USER_FREE_FAILURES: u32 = 5;
/// The longest delay a user's failures impose.
pub const MAX_USER_DELAY: Duration = Duration::from_secs(30);
/// Wrong passwords in a row from one source network before it is refused.
pub const SOURCE_LIMIT: u32 = 20;
const FIRST_SOURCE_COOLDOWN: Duration = Duration::from_secs(60);
const MAX_SOURCE_COOLDOWN: Duration = Duration::from_secs(3600);
/// Entries each map holds at most.
pub const MAX_TRACKED: usize = 100_000;

/// A user, as the throttle remembers it: 128 bits of a salted SHA-256 of its canonical name.
type UserKey = [u8; 16];

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

/// Consecutive failures per user and per source network.
#[derive(Debug)]
pub struct PasswordThrottle {
    salt: [u8; 16],
    users: Mutex<HashMap<UserKey, Failures>>,
    sources: Mutex<HashMap<SourceNet, Failures>>,
}

impl Default for PasswordThrottle {
    fn default() -> Self {
        Self {
            salt: crate::random_bytes(),
            users: Mutex::default(),
            sources: Mutex::default(),
        }
    }
}

/// How long after its last failure a user waits, once past the free failures.
fn user_delay(count: u32) -> Duration {
    if count < USER_FREE_FAILURES {
        return Duration::ZERO;
    }
    let doublings = (count - USER_FREE_FAILURES).min(16);
    (Duration::from_secs(1) * 2u32.pow(doublings)).min(MAX_USER_DELAY)
}

/// How long a source network is refused after its last failure.
fn source_cooldown(count: u32) -> Duration {
    if count < SOURCE_LIMIT {
        return Duration::ZERO;
    }
    let doublings = (count - SOURCE_LIMIT).min(6);
    (FIRST_SOURCE_COOLDOWN * 2u32.pow(doublings)).min(MAX_SOURCE_COOLDOWN)
}

impl PasswordThrottle {
    fn user_key(&self, user: &UserRef) -> UserKey {
        let mut context = ring::digest::Context::new(&ring::digest::SHA256);
        context.update(&self.salt);
        context.update(user.to_string().as_bytes());
        let digest = context.finish();
        let mut key = [0u8; 16];
        key.copy_from_slice(&digest.as_ref()[..16]);
        key
    }

    /// Refuses (429, with when to try again) while the user is delayed or the source is
    /// refused. Runs before any password is checked, so a refused attempt costs no argon2.
    pub fn check(
        &self,
        user: Option<&UserRef>,
        source: Option<SourceNet>,
    ) -> Result<(), AuthorityError> {
        let now = Instant::now();
        let mut wait = Duration::ZERO;
        if let Some(user) = user {
            let key = self.user_key(user);
            wait = wait.max(remaining(&self.users, &key, now, user_delay)?);
        }
        if let Some(source) = source {
            wait = wait.max(remaining(&self.sources, &source, now, source_cooldown)?);
        }
        if wait.is_zero() {
            Ok(())
        } else {
            Err(AuthorityError::TooManyAttempts { retry_after: wait })
        }
    }

    /// Counts a wrong password.
    pub fn failed(&self, user: Option<&UserRef>, source: Option<SourceNet>) {
        let now = Instant::now();
        if let Some(user) = user {
            let key = self.user_key(user);
            count_failure(&self.users, key, now, user_delay);
        }
        if let Some(source) = source {
            count_failure(&self.sources, source, now, source_cooldown);
        }
    }

    /// Forgets the user's and the source's failures after a correct password.
    pub fn succeeded(&self, user: &UserRef, source: Option<SourceNet>) {
        let key = self.user_key(user);
        if let Ok(mut users) = self.users.lock() {
            users.remove(&key);
        }
        if let (Some(source), Ok(mut sources)) = (source, self.sources.lock()) {
            sources.remove(&source);
        }
    }

    /// Entries held, users and sources.
    #[cfg(test)]
    fn tracked(&self) -> (usize, usize) {
        (
            self.users.lock().map_or(0, |m| m.len()),
            self.sources.lock().map_or(0, |m| m.len()),
        )
    }
}

/// How much longer `key` must wait, given the wait its failure count imposes. A poisoned
/// map refuses: its counts can no longer be trusted, and letting guesses through unthrottled
/// is the one answer a throttle must never give.
fn remaining<K: Eq + Hash>(
    map: &Mutex<HashMap<K, Failures>>,
    key: &K,
    now: Instant,
    wait_for: fn(u32) -> Duration,
) -> Result<Duration, AuthorityError> {
    let map = map.lock().map_err(|_| {
        AuthorityError::Internal(
            "the password throttle's state is poisoned by an earlier panic; refusing password \
             attempts until the CA restarts"
                .into(),
        )
    })?;
    Ok(map.get(key).map_or(Duration::ZERO, |f| {
        (f.last + wait_for(f.count)).saturating_duration_since(now)
    }))
}

fn count_failure<K: Eq + Hash>(
    map: &Mutex<HashMap<K, Failures>>,
    key: K,
    now: Instant,
    wait_for: fn(u32) -> Duration,
) {
    let Ok(mut map) = map.lock() else {
        return;
    };
    if map.len() >= MAX_TRACKED && !map.contains_key(&key) {
        // Full: keep only entries that still impose a wait; if every one does, the oldest
        // failures make room (they are the closest to being forgotten anyway).
        map.retain(|_, f| f.last + wait_for(f.count) > now);
        if map.len() >= MAX_TRACKED {
            let mut by_age: Vec<Instant> = map.values().map(|f| f.last).collect();
            by_age.sort_unstable();
            let cutoff = by_age[by_age.len() / 2];
            map.retain(|_, f| f.last > cutoff);
        }
    }
    let entry = map.entry(key).or_insert(Failures {
        count: 0,
        last: now,
    });
    entry.count = entry.count.saturating_add(1);
    entry.last = now;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(s: &str) -> UserRef {
        s.parse().unwrap()
    }

    fn source(s: &str) -> SourceNet {
        SourceNet::from(s.parse::<std::net::IpAddr>().unwrap())
    }

    #[test]
    fn a_user_is_delayed_not_locked_and_the_delay_is_capped() {
        assert_eq!(user_delay(USER_FREE_FAILURES - 1), Duration::ZERO);
        assert_eq!(user_delay(USER_FREE_FAILURES), Duration::from_secs(1));
        assert_eq!(user_delay(USER_FREE_FAILURES + 3), Duration::from_secs(8));
        assert_eq!(user_delay(u32::MAX), MAX_USER_DELAY);
        let throttle = PasswordThrottle::default();
        let alice = user("alice@acme");
        for _ in 0..USER_FREE_FAILURES {
            throttle.check(Some(&alice), None).unwrap();
            throttle.failed(Some(&alice), None);
        }
        let Err(AuthorityError::TooManyAttempts { retry_after }) =
            throttle.check(Some(&alice), None)
        else {
            panic!("not delayed");
        };
        assert!(retry_after <= Duration::from_secs(1));
        // Another user is not affected.
        throttle.check(Some(&user("bob@acme")), None).unwrap();
    }

    #[test]
    fn a_source_is_refused_after_its_limit_whatever_the_users() {
        let throttle = PasswordThrottle::default();
        let net = source("2001:db8:1::1");
        for i in 0..SOURCE_LIMIT {
            let u = user(&format!("nobody{i}@acme"));
            throttle.check(Some(&u), Some(net)).unwrap();
            throttle.failed(Some(&u), Some(net));
        }
        // The same /64 from another address, for a fresh user: refused.
        let fresh = user("fresh@acme");
        assert!(
            throttle
                .check(Some(&fresh), Some(source("2001:db8:1::ffff")))
                .is_err()
        );
        // Another /64: not.
        throttle
            .check(Some(&fresh), Some(source("2001:db8:2::1")))
            .unwrap();
    }

    /// The delay is measured on tokio's clock: a paused clock moved past the delay lets
    /// the user try again, and nothing waits in real time.
    #[tokio::test(start_paused = true)]
    async fn the_delay_runs_on_the_tokio_clock() {
        let throttle = PasswordThrottle::default();
        let alice = user("alice@acme");
        for _ in 0..=USER_FREE_FAILURES {
            throttle.failed(Some(&alice), None);
        }
        let delay = user_delay(USER_FREE_FAILURES + 1);
        assert!(throttle.check(Some(&alice), None).is_err());
        tokio::time::advance(delay - Duration::from_millis(1)).await;
        assert!(throttle.check(Some(&alice), None).is_err());
        tokio::time::advance(Duration::from_millis(1)).await;
        throttle.check(Some(&alice), None).unwrap();
    }

    #[test]
    fn a_poisoned_throttle_refuses_instead_of_allowing() {
        let throttle = PasswordThrottle::default();
        let alice = user("alice@acme");
        throttle.check(Some(&alice), None).unwrap();
        std::thread::scope(|s| {
            let poisoned = s
                .spawn(|| {
                    let _held = throttle.users.lock().unwrap();
                    panic!("poison the users map");
                })
                .join();
            assert!(poisoned.is_err());
        });
        assert!(matches!(
            throttle.check(Some(&alice), None),
            Err(AuthorityError::Internal(_))
        ));
        // A check without a user does not read the users map, and the sources map is whole.
        throttle.check(None, Some(source("192.0.2.1"))).unwrap();
    }

    #[test]
    fn entries_are_fixed_size_and_capped() {
        let throttle = PasswordThrottle::default();
        for i in 0..(MAX_TRACKED + 10) {
            throttle.failed(Some(&user(&format!("u{i}@acme"))), None);
        }
        assert!(throttle.tracked().0 <= MAX_TRACKED);
    }
}
