//! Password hashing: argon2id, off the async threads (a hash takes ~40 ms of CPU), and at
//! most one per core at a time, so a flood of password requests cannot starve the rest of
//! the CA; a request that cannot get a turn within [`QUEUE_WAIT`] is answered "busy".
//!
//! One source network holds at most [`CHECKS_PER_SOURCE`] places in that queue: its further
//! requests wait behind its own, so one client sending a flood of logins (distinct user
//! names escape the throttle) delays itself, and everyone else's logins still get their
//! turn within a few checks.

use crate::api::Code;
use std::sync::Arc;
use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use tokio::sync::Semaphore;

use super::AuthorityError;
use crate::model::SourceNet;
use crate::per_source::PerSourceSlots;

/// Hashes and verifies passwords. Holds a hash of a random password so that an unknown
/// user costs the same verification time as a known one.
#[derive(Debug, Clone)]
pub struct Passwords {
    decoy_hash: String,
    turns: Arc<Semaphore>,
    per_source: Arc<PerSourceSlots>,
}

/// Password checks one source network may have queued or running at once.
pub const CHECKS_PER_SOURCE: usize = 4;

/// How long a password check may wait for a free core.
pub const QUEUE_WAIT: Duration = Duration::from_secs(10);

/// The shortest password accepted, in characters.
pub const MIN_PASSWORD_LENGTH: usize = 12;

impl Passwords {
    /// Prepares the decoy hash (one argon2id hash; call once at start-up).
    pub fn new() -> Result<Self, AuthorityError> {
        let decoy: [u8; 16] = crate::random_bytes();
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Ok(Self {
            decoy_hash: hash_blocking(&hex::encode(decoy))?,
            turns: Arc::new(Semaphore::new(cores)),
            per_source: PerSourceSlots::new(CHECKS_PER_SOURCE),
        })
    }

    /// Runs `work` on the blocking pool once a core is free.
    async fn with_turn<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, AuthorityError> {
        let permit = tokio::time::timeout(QUEUE_WAIT, self.turns.clone().acquire_owned())
            .await
            .map_err(|_| AuthorityError::Busy)?
            .map_err(|_| AuthorityError::Busy)?;
        let result = tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| AuthorityError::Internal(e.to_string()));
        drop(permit);
        result
    }

    /// The argon2id PHC string for `password`.
    pub async fn hash(&self, password: String) -> Result<String, AuthorityError> {
        check_strength(&password)?;
        self.with_turn(move || hash_blocking(&password)).await?
    }

    /// True when `password` matches `hash`. With no hash (unknown user or tenant) the decoy is
    /// verified instead and the answer is false, in the same time.
    pub async fn verify(
        &self,
        password: String,
        hash: Option<String>,
        source: Option<SourceNet>,
    ) -> Result<bool, AuthorityError> {
        let _share = match source {
            Some(source) => Some(
                self.per_source
                    .take(source, QUEUE_WAIT)
                    .await
                    .ok_or(AuthorityError::Busy)?,
            ),
            None => None,
        };
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.decoy_hash.clone());
        let matched = self
            .with_turn(move || {
                PasswordHash::new(&hash)
                    .map(|parsed| {
                        Argon2::default()
                            .verify_password(password.as_bytes(), &parsed)
                            .is_ok()
                    })
                    .unwrap_or(false)
            })
            .await?;
        Ok(known && matched)
    }
}

/// The rules for a new password, each with its own message so that whoever sets one knows
/// what to change. Control characters are refused because a NUL, tab or escape cannot be
/// typed back reliably at a prompt or in a Basic header, and padding a short password with
/// them (or with spaces only) adds length without adding anything to guess.
fn check_strength(password: &str) -> Result<(), AuthorityError> {
    let weak = |detail: String| Err(AuthorityError::invalid(Code::WeakPassword, detail));
    if password.chars().count() < MIN_PASSWORD_LENGTH {
        return weak(format!(
            "passwords need at least {MIN_PASSWORD_LENGTH} characters"
        ));
    }
    if password.chars().any(char::is_control) {
        return weak(
            "passwords may not contain control characters (such as NUL, tab or newline)".into(),
        );
    }
    if password.chars().all(char::is_whitespace) {
        return weak("a password may not be whitespace only".into());
    }
    Ok(())
}

fn hash_blocking(password: &str) -> Result<String, AuthorityError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| AuthorityError::Internal(format!("argon2: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_weak_password_is_refused_by_its_rule() {
        let detail = |p: &str| match check_strength(p) {
            Err(AuthorityError::Invalid { code, detail }) => {
                assert_eq!(code, Code::WeakPassword);
                detail
            }
            other => panic!("{p:?}: {other:?}"),
        };
        assert!(detail("eleven-char").contains("12 characters"));
        assert!(detail(&" ".repeat(12)).contains("whitespace"));
        assert!(detail(&"\u{3000}".repeat(12)).contains("whitespace"));
        assert!(detail(&"\0".repeat(12)).contains("control"));
        assert!(detail(&"\t".repeat(12)).contains("control"));
        assert!(detail("correct\nhorse-battery").contains("control"));
        assert!(check_strength("twelve-chars").is_ok());
        assert!(check_strength("  spaced out  ").is_ok());
    }
}
