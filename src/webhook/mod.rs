//! The webhook worker, beside the CRL publisher: sends what the store's outbox holds, at
//! least once, and writes the `key.expiring` messages when keys come within the notice lead
//! times. The outbox rows of issuances, renewals and revocations are written by the store in
//! the transaction of the change, so a crash or `kill -9` at any point loses no message: a
//! message claimed and not answered is taken again when its lease ends (by this process after
//! a restart, or by another replica).
//!
//! Each message is claimed under a lease (PostgreSQL: `FOR UPDATE SKIP LOCKED`, so two
//! replicas never send one message at the same time), POSTed once (no redirect followed; a
//! 2xx delivers it), and on failure tried again after 1 s, 2 s, 4 s, … up to an hour between
//! attempts, [`MAX_ATTEMPTS`] times in all (about 12 hours), then given up.

mod message;

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use time::OffsetDateTime;

use crate::client::Poster;
use crate::clock::Clock;
use crate::model::Span;
use crate::store::{AttemptOutcome, OutboxMessage, StoreError, WebhookOutbox};

pub use message::{SignError, body, headers, signature};

/// The default lead times of `key.expiring`: 14, 3 and 1 days before a key's end.
pub const DEFAULT_EXPIRY_NOTICE: [Span; 3] =
    [Span::from_days(14), Span::from_days(3), Span::from_days(1)];
/// Attempts per message before it is given up.
pub const MAX_ATTEMPTS: i64 = 24;
/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// How often the outbox is read when it had nothing due.
const POLL: Duration = Duration::from_secs(1);
/// How often keys are looked at for expiry notices.
const EXPIRY_SCAN_EVERY: Duration = Duration::from_secs(5);
/// Messages claimed (and sent concurrently) at once.
const BATCH: i64 = 16;
/// One attempt's deadline: connection, TLS, request and answer.
const ATTEMPT_DEADLINE: Duration = Duration::from_secs(10);
/// How long a claim keeps other replicas off a message: well over one attempt.
const LEASE: time::Duration = time::Duration::seconds(60);
/// Expiry notices written per lead time and scan.
const EXPIRY_BATCH: i64 = 500;

/// The wait after the `failures`-th failed attempt: 1 s doubling, at most an hour.
pub fn backoff(failures: i64) -> Duration {
    let exponent = u32::try_from(failures.saturating_sub(1).clamp(0, 20)).unwrap_or(20);
    Duration::from_secs(1u64 << exponent).min(MAX_BACKOFF)
}

/// The worker's counters, registered in the CA's metrics.
#[derive(Debug, Clone, Default)]
struct Metrics {
    attempts: Family<Vec<(&'static str, &'static str)>, Counter>,
    pending: Gauge,
    expiry_notices: Counter,
}

impl Metrics {
    fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register(
            "webhook_attempts",
            "Webhook delivery attempts, by outcome (delivered, retry, failed: given up)",
            m.attempts.clone(),
        );
        registry.register(
            "webhook_pending",
            "Webhook messages not yet delivered nor given up",
            m.pending.clone(),
        );
        registry.register(
            "webhook_expiry_notices",
            "key.expiring messages written",
            m.expiry_notices.clone(),
        );
        m
    }

    fn count(&self, outcome: &'static str) {
        self.attempts
            .get_or_create(&vec![("outcome", outcome)])
            .inc();
    }
}

/// Sends the outbox's messages; see the module's documentation.
#[derive(Debug)]
pub struct WebhookWorker {
    outbox: WebhookOutbox,
    clock: Arc<dyn Clock>,
    metrics: Metrics,
    /// This process, in the claims it makes.
    holder: String,
}

/// A started worker's state.
#[derive(Debug)]
struct Running {
    outbox: WebhookOutbox,
    clock: Arc<dyn Clock>,
    poster: Poster,
    leads: Vec<Span>,
    /// This process, in the claims it makes.
    holder: String,
    metrics: Metrics,
}

impl WebhookWorker {
    /// A worker on `outbox`, its metrics registered in `registry`; not started.
    pub fn new(outbox: WebhookOutbox, clock: Arc<dyn Clock>, registry: &mut Registry) -> Self {
        let id: [u8; 8] = crate::random_bytes();
        Self {
            outbox,
            clock,
            holder: format!("webhook-{}", hex::encode(id)),
            metrics: Metrics::register(registry),
        }
    }

    /// Runs the worker until the task is aborted: it sends with `poster` and writes expiry
    /// notices at `leads` before each key's end (none: no `key.expiring`).
    pub fn start(self, poster: Poster, leads: Vec<Span>) -> tokio::task::JoinHandle<()> {
        let worker = Arc::new(Running {
            outbox: self.outbox,
            clock: self.clock,
            poster,
            leads,
            holder: self.holder,
            metrics: self.metrics,
        });
        tokio::spawn(async move {
            let mut last_scan: Option<tokio::time::Instant> = None;
            loop {
                if !worker.leads.is_empty()
                    && last_scan.is_none_or(|at| at.elapsed() >= EXPIRY_SCAN_EVERY)
                {
                    last_scan = Some(tokio::time::Instant::now());
                    match worker
                        .outbox
                        .notice_expiring(&worker.leads, worker.now(), EXPIRY_BATCH)
                        .await
                    {
                        Ok(n) => {
                            worker.metrics.expiry_notices.inc_by(n);
                        }
                        Err(e) => tracing::warn!(error = %e, "webhook expiry scan failed"),
                    }
                }
                let busy = match worker.send_due().await {
                    Ok(sent) => sent == BATCH as usize,
                    Err(e) => {
                        tracing::warn!(error = %e, "webhook outbox unavailable");
                        false
                    }
                };
                if !busy {
                    tokio::time::sleep(POLL).await;
                }
            }
        })
    }
}

impl Running {
    fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    /// Claims the messages due and sends them concurrently; how many were claimed.
    async fn send_due(self: &Arc<Self>) -> Result<usize, StoreError> {
        let now = self.now();
        let due = self
            .outbox
            .claim(&self.holder, now, now + LEASE, BATCH)
            .await?;
        let claimed = due.len();
        let mut sending = tokio::task::JoinSet::new();
        for message in due {
            let worker = self.clone();
            sending.spawn(async move { worker.attempt(message).await });
        }
        let mut pending = 0;
        while let Some(done) = sending.join_next().await {
            match done {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "cannot record a webhook attempt"),
                Err(e) => tracing::error!(error = %e, "a webhook attempt panicked"),
            }
        }
        if let Ok(n) = self.outbox.pending().await {
            pending = n;
        }
        self.metrics.pending.set(pending);
        Ok(claimed)
    }

    /// One attempt at `message`, and its outcome recorded.
    async fn attempt(&self, message: OutboxMessage) -> Result<(), StoreError> {
        let body = body(&message);
        let timestamp = self.now().unix_timestamp();
        let answer = match headers(&message.secret, &message.message_id, timestamp, &body) {
            Ok(headers) => self
                .poster
                .post(&message.url, &headers, body, ATTEMPT_DEADLINE)
                .await
                .map_err(|e| (None, e.to_string())),
            Err(e) => Err((None, e.to_string())),
        };
        let failures = message.attempts + 1;
        let now = self.now();
        let outcome = match answer {
            Ok(status) if (200..300).contains(&status) => AttemptOutcome::Delivered { status },
            Ok(status) => failed(
                Some(status),
                if (300..400).contains(&status) {
                    format!("answered {status}; redirects are not followed")
                } else {
                    format!("answered {status}")
                },
                failures,
                now,
            ),
            Err((status, error)) => failed(status, error, failures, now),
        };
        match &outcome {
            AttemptOutcome::Delivered { .. } => self.metrics.count("delivered"),
            AttemptOutcome::Failed {
                retry_at: Some(_),
                error,
                ..
            } => {
                self.metrics.count("retry");
                tracing::info!(message = %message.message_id, webhook = message.webhook_id, attempt = failures, error, "webhook not delivered; will retry");
            }
            AttemptOutcome::Failed {
                retry_at: None,
                error,
                ..
            } => {
                self.metrics.count("failed");
                tracing::warn!(message = %message.message_id, webhook = message.webhook_id, attempts = failures, error, "webhook given up");
            }
        }
        self.outbox
            .record_attempt(message.id, &self.holder, now, &outcome)
            .await
    }
}

/// The outcome of the `failures`-th failed attempt at `now`: another after the backoff, or
/// none after [`MAX_ATTEMPTS`].
fn failed(
    status: Option<u16>,
    error: String,
    failures: i64,
    now: OffsetDateTime,
) -> AttemptOutcome {
    let retry_at = (failures < MAX_ATTEMPTS)
        .then(|| now + time::Duration::try_from(backoff(failures)).unwrap_or(LEASE));
    AttemptOutcome::Failed {
        status,
        error,
        retry_at,
    }
}

#[cfg(test)]
mod tests {
    use super::{MAX_ATTEMPTS, backoff};
    use std::time::Duration;

    #[test]
    fn backoff_doubles_from_a_second_to_an_hour() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(3), Duration::from_secs(4));
        assert_eq!(backoff(12), Duration::from_secs(2048));
        assert_eq!(backoff(13), Duration::from_secs(3600));
        assert_eq!(backoff(MAX_ATTEMPTS), Duration::from_secs(3600));
        let total: Duration = (1..MAX_ATTEMPTS).map(backoff).sum();
        assert!(
            total > Duration::from_secs(11 * 3600) && total < Duration::from_secs(13 * 3600),
            "{total:?}"
        );
    }
}
