//! Password guessing: after 20 wrong passwords in a row for one user from one source, that
//! pair is refused (429) for a minute, doubling with each further failure up to an hour,
//! without running argon2. A correct password resets the count. Nobody else is locked out:
//! the same user from another source and other users from this source are unaffected.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::AuthorityError;

/// Wrong passwords in a row before the pair is throttled.
pub const LIMIT: u32 = 20;
const FIRST_COOLDOWN: Duration = Duration::from_secs(60);
const MAX_COOLDOWN: Duration = Duration::from_secs(3600);
/// Pairs remembered at most; past this only throttled pairs are kept.
const MAX_TRACKED: usize = 100_000;

#[derive(Debug, Default)]
struct Failures {
    count: u32,
    blocked_until: Option<Instant>,
}

/// Consecutive failures per (user, source).
#[derive(Debug, Default)]
pub struct PasswordThrottle {
    failures: Mutex<HashMap<(String, Option<IpAddr>), Failures>>,
}

impl PasswordThrottle {
    /// Refuses while the pair is throttled.
    pub fn check(&self, user: &str, source: Option<IpAddr>) -> Result<(), AuthorityError> {
        let Ok(failures) = self.failures.lock() else {
            return Ok(());
        };
        match failures
            .get(&(user.to_owned(), source))
            .and_then(|f| f.blocked_until)
        {
            Some(until) if until > Instant::now() => Err(AuthorityError::TooManyAttempts {
                retry_after: until - Instant::now(),
            }),
            _ => Ok(()),
        }
    }

    /// Counts a wrong password.
    pub fn failed(&self, user: &str, source: Option<IpAddr>) {
        let Ok(mut failures) = self.failures.lock() else {
            return;
        };
        if failures.len() >= MAX_TRACKED {
            failures.retain(|_, f| f.blocked_until.is_some());
        }
        let entry = failures.entry((user.to_owned(), source)).or_default();
        entry.count += 1;
        if entry.count >= LIMIT {
            let doublings = (entry.count - LIMIT).min(6);
            let cooldown = (FIRST_COOLDOWN * 2u32.pow(doublings)).min(MAX_COOLDOWN);
            entry.blocked_until = Some(Instant::now() + cooldown);
        }
    }

    /// Forgets the pair after a correct password.
    pub fn succeeded(&self, user: &str, source: Option<IpAddr>) {
        if let Ok(mut failures) = self.failures.lock() {
            failures.remove(&(user.to_owned(), source));
        }
    }
}
