//! Renewing a key directory's certificate: once, or forever at two thirds of each
//! certificate's lifetime (with a little jitter, so a fleet does not renew in lockstep),
//! retrying with backoff while the CA is unreachable and keeping the current certificate
//! until it expires. Files are replaced atomically, so a reader never sees half of one.

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::watch;

use super::{Client, ClientError, KeyDir};
use crate::api::EnrollResponse;
use crate::clock::{Clock, SystemClock};
use crate::profile::{BACKDATE, SpiffeId};

/// The longest wait between retries while the CA is unreachable.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// When a certificate valid from `not_before` to `not_after` should be renewed: at two
/// thirds of its lifetime, moved by up to ±3% of it at random. The lifetime counts from the
/// issue time, not the backdated `not_before`.
pub fn next_renewal_at(not_before: OffsetDateTime, not_after: OffsetDateTime) -> OffsetDateTime {
    let issued = (not_before + BACKDATE).min(not_after);
    let lifetime = not_after - issued;
    let random: [u8; 2] = crate::random_bytes();
    // A fraction in [-0.03, 0.03].
    let jitter = (f64::from(u16::from_be_bytes(random)) / f64::from(u16::MAX) - 0.5) * 0.06;
    issued + lifetime * (2.0 / 3.0 + jitter)
}

/// How many renewal attempts in a row may fail before the status says so loudly
/// ([`RenewalStatus::Failing`] is reported from the first failure; this is when the log
/// turns from a warning per retry into an error).
const FAILURES_BEFORE_ERROR: u32 = 3;

/// Where a [`Renewer::watch`] stands, as seen through [`Renewer::status`]: a program using
/// the library can tell a key that renews from one whose renewal keeps failing or stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RenewalStatus {
    /// Not watching yet.
    Idle,
    /// The current certificate is good; the next renewal is due at `renew_at`.
    Waiting {
        /// When the next renewal is due, by the renewer's clock.
        renew_at: OffsetDateTime,
        /// When the current certificate expires.
        not_after: OffsetDateTime,
    },
    /// Renewal is due and has failed `failures` times in a row; the current certificate is
    /// kept until `not_after`.
    Failing {
        /// Failed attempts in a row.
        failures: u32,
        /// The last attempt's error.
        error: String,
        /// When the current certificate expires.
        not_after: OffsetDateTime,
    },
    /// Renewal stopped for good: the key was refused, expired or reached its end.
    Stopped {
        /// Why.
        error: String,
    },
}

/// Renews the certificate of one key directory through one CA.
pub struct Renewer {
    server: String,
    ca_pem: Vec<u8>,
    dir: KeyDir,
    clock: Arc<dyn Clock>,
    status: watch::Sender<RenewalStatus>,
}

/// The validity and key id of a key directory's current certificate.
struct Current {
    key_id: String,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
}

impl Renewer {
    /// A renewer for `dir`, talking to `server` and trusting `ca_pem`.
    pub fn new(server: &str, ca_pem: &[u8], dir: KeyDir) -> Self {
        Self {
            server: server.to_owned(),
            ca_pem: ca_pem.to_vec(),
            dir,
            clock: Arc::new(SystemClock),
            status: watch::Sender::new(RenewalStatus::Idle),
        }
    }

    /// The same renewer, deciding when to renew (and when the certificate has expired) by
    /// `clock` instead of the system's: tests move a [`crate::clock::ManualClock`] shared
    /// with an in-process CA rather than wait out a lifetime.
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The key directory renewed.
    pub fn dir(&self) -> &KeyDir {
        &self.dir
    }

    /// Where [`Renewer::watch`] stands, updated as it goes.
    pub fn status(&self) -> watch::Receiver<RenewalStatus> {
        self.status.subscribe()
    }

    fn stop(&self, error: ClientError) -> ClientError {
        self.status.send_replace(RenewalStatus::Stopped {
            error: error.to_string(),
        });
        error
    }

    fn current(&self) -> Result<Current, ClientError> {
        let (chain, _) = self.dir.identity()?;
        let bad =
            |why: &str| ClientError::Certificate(format!("{}: {why}", self.dir.chain().display()));
        let leaf = crate::tls::load_certificates(&chain, "chain.pem")?.remove(0);
        let (_, cert) =
            x509_parser::parse_x509_certificate(&leaf).map_err(|_| bad("unreadable"))?;
        let uri = cert
            .subject_alternative_name()
            .ok()
            .flatten()
            .and_then(|san| {
                san.value.general_names.iter().find_map(|n| match n {
                    x509_parser::extensions::GeneralName::URI(u) => Some(u.to_string()),
                    _ => None,
                })
            })
            .ok_or_else(|| bad("no latchkey identity"))?;
        let Some((_, SpiffeId::Key { key_id, .. })) = SpiffeId::parse_any_domain(&uri) else {
            return Err(bad("not a latchkey key certificate"));
        };
        Ok(Current {
            key_id: key_id.to_string(),
            not_before: cert.validity().not_before.to_datetime(),
            not_after: cert.validity().not_after.to_datetime(),
        })
    }

    /// Renews once: presents the current certificate, writes the new one (write, fsync,
    /// rename). The key pair stays the same.
    pub async fn renew_once(&self) -> Result<EnrollResponse, ClientError> {
        let current = self.current()?;
        let (chain, key) = self.dir.identity()?;
        let client = Client::new(&self.server, &self.ca_pem, Some((&chain, &key)))?;
        let response = client.renew(&current.key_id, None).await?;
        self.dir
            .write_certificates(&response.certificate, &response.chain)?;
        Ok(response)
    }

    /// Renews at two thirds of every certificate's lifetime, forever. Returns only when the
    /// certificate expired without a successful renewal, the CA refused for good (the key
    /// was revoked or expired), or the key reached its end (a renewal no longer extends it).
    pub async fn watch(&self) -> ClientError {
        self.watch_with(|_| {}).await
    }

    /// [`Renewer::watch`], calling `renewed` after each renewal has been written.
    pub async fn watch_with(&self, renewed: impl Fn(&EnrollResponse)) -> ClientError {
        let mut local_backoff = Duration::from_secs(1);
        loop {
            let current = match self.current() {
                Ok(c) => c,
                Err(e) => {
                    // A key directory being replaced, a full disk: try again rather than stop.
                    tracing::warn!(error = %e, retry_in = ?local_backoff, "cannot read the key directory");
                    tokio::time::sleep(local_backoff).await;
                    local_backoff = (local_backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            };
            local_backoff = Duration::from_secs(1);
            let at = next_renewal_at(current.not_before, current.not_after);
            tracing::info!(key_id = %current.key_id, not_after = %current.not_after, renew_at = %at, "waiting to renew");
            self.status.send_replace(RenewalStatus::Waiting {
                renew_at: at,
                not_after: current.not_after,
            });
            self.clock.sleep_until(at).await;
            let mut backoff = Duration::from_secs(1);
            let mut failures = 0;
            loop {
                match self.renew_once().await {
                    Ok(response) => {
                        tracing::info!(key_id = %response.key.id,
                            expires_in_seconds = response.expires_in_seconds, "certificate renewed");
                        renewed(&response);
                        let extended = self
                            .current()
                            .is_ok_and(|c| c.not_after > current.not_after);
                        if !extended {
                            // Capped by the key's expires_at: renewing again gains nothing.
                            tracing::warn!(key_id = %response.key.id, expires_at = %response.key.expires_at,
                                "the key ends here; keys cannot be extended, make a new one");
                            return self.stop(ClientError::KeyEnding(response.key.expires_at));
                        }
                        break;
                    }
                    // The CA answered no: retrying would not change its mind.
                    Err(ClientError::Problem(p)) if p.status == 403 || p.status == 401 => {
                        tracing::error!(status = p.status, code = %p.code, "the CA refused the renewal; renewal stopped");
                        return self.stop(ClientError::Problem(p));
                    }
                    Err(e) => {
                        let left = current.not_after - self.clock.now();
                        if left <= time::Duration::ZERO {
                            tracing::error!(error = %e, "the certificate expired before it could be renewed");
                            return self.stop(e);
                        }
                        failures += 1;
                        self.status.send_replace(RenewalStatus::Failing {
                            failures,
                            error: e.to_string(),
                            not_after: current.not_after,
                        });
                        let pause = backoff.min(Duration::try_from(left).unwrap_or(backoff));
                        if failures >= FAILURES_BEFORE_ERROR {
                            tracing::error!(error = %e, failures, retry_in = ?pause, not_after = %current.not_after,
                                "renewal keeps failing; the certificate expires at not_after");
                        } else {
                            tracing::warn!(error = %e, retry_in = ?pause, "renewal failed; keeping the current certificate");
                        }
                        // Real time: the retry waits on the network, not on the certificate.
                        tokio::time::sleep(pause).await;
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                }
            }
        }
    }
}
