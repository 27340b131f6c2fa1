//! The webhook worker's view of the store: claiming due messages (one replica at a time per
//! message, by a lease), recording how each attempt went, and writing `key.expiring`
//! messages once per webhook, key and lead time. Nothing else of the store: a worker cannot
//! issue, revoke or change a webhook.

use time::OffsetDateTime;

use super::rows::{parse, seconds, time};
use super::webhooks::{message_id, rfc3339};
use super::{Backend, Store, StoreError};
use crate::model::{KeyId, OwnerName, Span, TenantName, WebhookEvent, WebhookEvents};

/// A narrow handle on the [`Store`] for the webhook worker (cheap to clone).
#[derive(Debug, Clone)]
pub struct WebhookOutbox {
    store: Store,
}

impl Store {
    /// The view of this store the webhook worker works with.
    pub fn webhook_outbox(&self) -> WebhookOutbox {
        WebhookOutbox {
            store: self.clone(),
        }
    }
}

/// A message claimed for sending, with what sending it needs.
pub struct OutboxMessage {
    /// The outbox row.
    pub id: i64,
    /// The `webhook-id` header: the same on every attempt.
    pub message_id: String,
    /// The webhook.
    pub webhook_id: i64,
    /// Where to POST it.
    pub url: String,
    /// The webhook's `whsec_…` secret.
    pub secret: String,
    /// What happened.
    pub event: WebhookEvent,
    /// The key's tenant.
    pub tenant: TenantName,
    /// The key.
    pub key_id: KeyId,
    /// Its owner.
    pub owner: OwnerName,
    /// Its name.
    pub key_name: String,
    /// When it happened.
    pub occurred_at: OffsetDateTime,
    /// The event's own part of `data`, a JSON object.
    pub detail: serde_json::Value,
    /// Attempts made before this one.
    pub attempts: i64,
}

impl std::fmt::Debug for OutboxMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        f.debug_struct("OutboxMessage")
            .field("message_id", &self.message_id)
            .field("webhook_id", &self.webhook_id)
            .field("event", &self.event)
            .field("key_id", &self.key_id)
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, sqlx::FromRow)]
struct OutboxSqlRow {
    id: i64,
    webhook_id: i64,
    url: String,
    secret: String,
    event_type: String,
    tenant: String,
    key_id: String,
    owner: String,
    key_name: String,
    occurred_at: i64,
    detail: String,
    attempts: i64,
}

impl TryFrom<OutboxSqlRow> for OutboxMessage {
    type Error = StoreError;
    fn try_from(r: OutboxSqlRow) -> Result<Self, StoreError> {
        const T: &str = "webhook_outbox";
        Ok(Self {
            message_id: message_id(r.id),
            id: r.id,
            webhook_id: r.webhook_id,
            url: r.url,
            secret: r.secret,
            event: parse(T, "event_type", &r.event_type)?,
            tenant: parse("tenants", "name", &r.tenant)?,
            key_id: parse(T, "key_id", &r.key_id)?,
            owner: parse("keys", "owner", &r.owner)?,
            key_name: r.key_name,
            occurred_at: time(T, "occurred_at", r.occurred_at)?,
            detail: serde_json::from_str(&r.detail)
                .map_err(|_| StoreError::corrupt(T, "detail", &r.detail))?,
            attempts: r.attempts,
        })
    }
}

/// How one attempt ended.
#[derive(Debug, Clone)]
pub enum AttemptOutcome {
    /// Answered with a 2xx status.
    Delivered {
        /// The status.
        status: u16,
    },
    /// Not delivered: try again at `retry_at`, or never (`None`: given up).
    Failed {
        /// The status, when the endpoint answered.
        status: Option<u16>,
        /// What went wrong.
        error: String,
        /// When to try again; `None` gives up.
        retry_at: Option<OffsetDateTime>,
    },
}

impl WebhookOutbox {
    /// Claims up to `limit` messages due at `now` for `holder` until `lease_until` (no other
    /// replica takes them before then, or before they are answered) and returns them. On
    /// PostgreSQL rows another replica is claiming are skipped (`FOR UPDATE SKIP LOCKED`);
    /// SQLite has one writer.
    pub async fn claim(
        &self,
        holder: &str,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: i64,
    ) -> Result<Vec<OutboxMessage>, StoreError> {
        let claim = match self.store.backend() {
            Backend::Sqlite => {
                "UPDATE webhook_outbox SET claimed_by = $1, claimed_until = $2 WHERE id IN \
                 (SELECT o.id FROM webhook_outbox o JOIN webhooks w ON w.id = o.webhook_id \
                  WHERE o.delivered_at IS NULL AND o.failed_at IS NULL \
                  AND o.next_attempt_at <= $3 AND (o.claimed_until IS NULL OR o.claimed_until < $3) \
                  AND w.removed_at IS NULL ORDER BY o.next_attempt_at, o.id LIMIT $4)"
            }
            Backend::Postgres => {
                "UPDATE webhook_outbox SET claimed_by = $1, claimed_until = $2 WHERE id IN \
                 (SELECT o.id FROM webhook_outbox o JOIN webhooks w ON w.id = o.webhook_id \
                  WHERE o.delivered_at IS NULL AND o.failed_at IS NULL \
                  AND o.next_attempt_at <= $3 AND (o.claimed_until IS NULL OR o.claimed_until < $3) \
                  AND w.removed_at IS NULL ORDER BY o.next_attempt_at, o.id LIMIT $4 \
                  FOR UPDATE OF o SKIP LOCKED)"
            }
        };
        let mut tx = self.store.begin().await?;
        let claimed = sqlx::query(claim)
            .bind(holder)
            .bind(seconds(lease_until))
            .bind(seconds(now))
            .bind(limit)
            .execute(tx.conn())
            .await?
            .rows_affected();
        if claimed == 0 {
            return Ok(Vec::new());
        }
        let rows: Vec<OutboxSqlRow> = sqlx::query_as(
            "SELECT o.id, o.webhook_id, w.url, w.secret, o.event_type, t.name AS tenant, \
             o.key_id, k.owner, k.name AS key_name, o.occurred_at, o.detail, o.attempts \
             FROM webhook_outbox o JOIN webhooks w ON w.id = o.webhook_id \
             JOIN keys k ON k.id = o.key_id JOIN tenants t ON t.id = k.tenant_id \
             WHERE o.claimed_by = $1 AND o.claimed_until = $2 \
             AND o.delivered_at IS NULL AND o.failed_at IS NULL ORDER BY o.id",
        )
        .bind(holder)
        .bind(seconds(lease_until))
        .fetch_all(tx.conn())
        .await?;
        tx.commit().await?;
        super::rows::convert_all(rows)
    }

    /// Records how the attempt at message `id` by `holder` at `now` ended, and gives the
    /// claim back. Nothing changes when another replica took the message over meanwhile
    /// (its lease ran out): that one's answer counts.
    pub async fn record_attempt(
        &self,
        id: i64,
        holder: &str,
        now: OffsetDateTime,
        outcome: &AttemptOutcome,
    ) -> Result<(), StoreError> {
        let (delivered_at, failed_at, next_at, status, error) = match outcome {
            AttemptOutcome::Delivered { status } => {
                (Some(seconds(now)), None, seconds(now), Some(*status), None)
            }
            AttemptOutcome::Failed {
                status,
                error,
                retry_at,
            } => (
                None,
                retry_at.is_none().then(|| seconds(now)),
                retry_at.map_or(seconds(now), seconds),
                *status,
                Some(error.clone()),
            ),
        };
        let mut tx = self.store.begin().await?;
        sqlx::query(
            "UPDATE webhook_outbox SET attempts = attempts + 1, delivered_at = $1, \
             failed_at = $2, next_attempt_at = $3, last_status = $4, last_error = $5, \
             claimed_by = NULL, claimed_until = NULL WHERE id = $6 AND claimed_by = $7",
        )
        .bind(delivered_at)
        .bind(failed_at)
        .bind(next_at)
        .bind(status.map(i64::from))
        .bind(error)
        .bind(id)
        .bind(holder)
        .execute(tx.conn())
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Writes a `key.expiring` message for every active key whose end is within one of
    /// `leads` of `now`, to every webhook of its tenant that takes it, once per webhook, key
    /// and lead: a key due at several leads at once (a short-lived key, or one seen for the
    /// first time) gets one message, for the shortest, and the longer ones count as given.
    /// At most `limit` messages per lead and call; returns how many were written.
    pub async fn notice_expiring(
        &self,
        leads: &[Span],
        now: OffsetDateTime,
        limit: i64,
    ) -> Result<u64, StoreError> {
        let mut leads: Vec<i64> = leads.iter().map(|l| l.seconds()).collect();
        leads.sort_unstable();
        leads.dedup();
        let mut written = 0;
        let mut tx = self.store.begin().await?;
        for (i, &lead) in leads.iter().enumerate() {
            let due: Vec<(i64, String, i64)> = sqlx::query_as(
                "SELECT w.id, k.id, k.expires_at FROM webhooks w \
                 JOIN keys k ON k.tenant_id = w.tenant_id \
                 WHERE w.removed_at IS NULL AND w.events LIKE $1 AND k.revoked_at IS NULL \
                 AND k.expires_at > $2 AND k.expires_at <= $3 AND NOT EXISTS \
                 (SELECT 1 FROM webhook_expiry_notices n WHERE n.webhook_id = w.id \
                  AND n.key_id = k.id AND n.lead_seconds = $4) \
                 ORDER BY k.expires_at LIMIT $5",
            )
            .bind(WebhookEvents::like_pattern(WebhookEvent::KeyExpiring))
            .bind(seconds(now))
            .bind(seconds(now) + lead)
            .bind(lead)
            .bind(limit)
            .fetch_all(tx.conn())
            .await?;
            for (webhook_id, key_id, expires_at) in due {
                // This lead and every longer one are given by this message. Another replica
                // that got here first made the row for this lead: then it sent the message.
                let mut ours = false;
                for &given in &leads[i..] {
                    let inserted = sqlx::query(
                        "INSERT INTO webhook_expiry_notices (webhook_id, key_id, lead_seconds, \
                         noticed_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                    )
                    .bind(webhook_id)
                    .bind(&key_id)
                    .bind(given)
                    .bind(seconds(now))
                    .execute(tx.conn())
                    .await?
                    .rows_affected();
                    ours |= given == lead && inserted == 1;
                }
                if !ours {
                    continue;
                }
                let ends = time("keys", "expires_at", expires_at)?;
                let detail = serde_json::json!({
                    "expires_at": rfc3339(ends),
                    "lead": Span::from_seconds(u32::try_from(lead).unwrap_or(u32::MAX)).to_string(),
                });
                sqlx::query(
                    "INSERT INTO webhook_outbox (webhook_id, event_type, key_id, occurred_at, \
                     detail, next_attempt_at) VALUES ($1, $2, $3, $4, $5, $4)",
                )
                .bind(webhook_id)
                .bind(WebhookEvent::KeyExpiring.as_str())
                .bind(&key_id)
                .bind(seconds(now))
                .bind(detail.to_string())
                .execute(tx.conn())
                .await?;
                written += 1;
            }
        }
        tx.commit().await?;
        Ok(written)
    }

    /// How many messages wait for a delivery (pending, not given up), for the metrics.
    pub async fn pending(&self) -> Result<i64, StoreError> {
        let (n,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM webhook_outbox WHERE delivered_at IS NULL AND failed_at IS NULL",
        )
        .fetch_one(&self.store.pool)
        .await?;
        Ok(n)
    }
}
