//! Webhooks: the endpoints administrators add, and the outbox rows every key change writes
//! for them in its own transaction (so that a crash loses no message). The worker's side of
//! the outbox (claims, results, expiry notices) is `outbox.rs`.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::audit::AuditEvent;
use super::rows::{convert_all, optional_time, parse, seconds, time};
use super::{Change, Store, StoreError};
use crate::model::{
    DeliveryRecord, DeliveryStatus, TenantId, WebhookEvent, WebhookEvents, WebhookRecord,
};

/// A webhook to record.
#[derive(Debug, Clone)]
pub struct NewWebhook {
    /// The tenant whose key changes it is told of.
    pub tenant_id: TenantId,
    /// Where messages go (checked by the authority).
    pub url: String,
    /// What it is told of.
    pub events: WebhookEvents,
    /// `whsec_…`, the signing secret.
    pub secret: String,
    /// True for plain http to a loopback address.
    pub allow_http: bool,
    /// Who adds it (an audit actor).
    pub created_by: String,
    /// When.
    pub created_at: OffsetDateTime,
}

/// A webhook as stored: the record and its tenant's internal id.
#[derive(Debug, Clone)]
pub struct WebhookRow {
    /// The tenant's internal id.
    pub tenant_id: TenantId,
    /// The webhook.
    pub webhook: WebhookRecord,
}

#[derive(Debug, sqlx::FromRow)]
struct WebhookSqlRow {
    id: i64,
    tenant_id: i64,
    tenant: String,
    url: String,
    events: String,
    created_by: String,
    created_at: i64,
}

impl TryFrom<WebhookSqlRow> for WebhookRow {
    type Error = StoreError;
    fn try_from(r: WebhookSqlRow) -> Result<Self, StoreError> {
        const T: &str = "webhooks";
        Ok(Self {
            tenant_id: TenantId::new(r.tenant_id),
            webhook: WebhookRecord {
                id: r.id,
                tenant: parse("tenants", "name", &r.tenant)?,
                url: r.url,
                events: WebhookEvents::from_stored(&r.events)
                    .map_err(|_| StoreError::corrupt(T, "events", &r.events))?,
                created_by: r.created_by,
                created_at: time(T, "created_at", r.created_at)?,
            },
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
struct DeliverySqlRow {
    id: i64,
    webhook_id: i64,
    tenant: String,
    event_type: String,
    key_id: String,
    occurred_at: i64,
    attempts: i64,
    next_attempt_at: i64,
    delivered_at: Option<i64>,
    failed_at: Option<i64>,
    last_status: Option<i64>,
    last_error: Option<String>,
}

impl TryFrom<DeliverySqlRow> for DeliveryRecord {
    type Error = StoreError;
    fn try_from(r: DeliverySqlRow) -> Result<Self, StoreError> {
        const T: &str = "webhook_outbox";
        let delivered_at = optional_time(T, "delivered_at", r.delivered_at)?;
        let failed_at = optional_time(T, "failed_at", r.failed_at)?;
        let status = match (delivered_at, failed_at) {
            (Some(_), _) => DeliveryStatus::Delivered,
            (None, Some(_)) => DeliveryStatus::Failed,
            (None, None) => DeliveryStatus::Pending,
        };
        Ok(Self {
            message_id: message_id(r.id),
            webhook_id: r.webhook_id,
            tenant: parse("tenants", "name", &r.tenant)?,
            event: parse(T, "event_type", &r.event_type)?,
            key_id: parse(T, "key_id", &r.key_id)?,
            occurred_at: time(T, "occurred_at", r.occurred_at)?,
            attempts: r.attempts,
            next_attempt_at: match status {
                DeliveryStatus::Pending => Some(time(T, "next_attempt_at", r.next_attempt_at)?),
                _ => None,
            },
            finished_at: delivered_at.or(failed_at),
            last_status: r
                .last_status
                .map(|s| u16::try_from(s).map_err(|_| StoreError::corrupt(T, "last_status", s)))
                .transpose()?,
            last_error: r.last_error,
            status,
        })
    }
}

/// The `webhook-id` of the outbox row `id`: the same on every attempt.
pub(super) fn message_id(id: i64) -> String {
    format!("msg_{id}")
}

/// A time in a message's `data`.
pub(super) fn rfc3339(t: OffsetDateTime) -> String {
    // Formatting a valid date in RFC 3339 cannot fail for the years a CA meets.
    t.format(&Rfc3339).unwrap_or_default()
}

const WEBHOOK_COLUMNS: &str = "w.id, w.tenant_id, t.name AS tenant, w.url, w.events, \
     w.created_by, w.created_at";

impl Store {
    /// Records a webhook with its audit event; returns its id.
    pub async fn insert_webhook(
        &self,
        webhook: &NewWebhook,
        event: &AuditEvent,
    ) -> Result<i64, StoreError> {
        self.write(event, async |tx, event| {
            let (id,): (i64,) = sqlx::query_as(
                "INSERT INTO webhooks (tenant_id, url, events, secret, allow_http, created_by, \
                 created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
            )
            .bind(webhook.tenant_id.get())
            .bind(&webhook.url)
            .bind(webhook.events.to_stored())
            .bind(&webhook.secret)
            .bind(i64::from(webhook.allow_http))
            .bind(&webhook.created_by)
            .bind(seconds(webhook.created_at))
            .fetch_one(tx.conn())
            .await?;
            event.target = Some(id.to_string());
            Ok(Change::Made(id))
        })
        .await
    }

    /// The webhooks not removed, of one tenant or all, oldest first.
    pub async fn webhooks(
        &self,
        tenant_id: Option<TenantId>,
    ) -> Result<Vec<WebhookRow>, StoreError> {
        let sql = format!(
            "SELECT {WEBHOOK_COLUMNS} FROM webhooks w JOIN tenants t ON t.id = w.tenant_id \
             WHERE w.removed_at IS NULL AND ($1 = 0 OR w.tenant_id = $1) ORDER BY w.id"
        );
        let rows: Vec<WebhookSqlRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(tenant_id.map_or(0, TenantId::get))
            .fetch_all(&self.pool)
            .await?;
        convert_all(rows)
    }

    /// The webhook with this id, unless removed.
    pub async fn webhook(&self, id: i64) -> Result<Option<WebhookRow>, StoreError> {
        let sql = format!(
            "SELECT {WEBHOOK_COLUMNS} FROM webhooks w JOIN tenants t ON t.id = w.tenant_id \
             WHERE w.removed_at IS NULL AND w.id = $1"
        );
        let row: Option<WebhookSqlRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        super::rows::convert_optional(row)
    }

    /// Removes a webhook (its undelivered messages are not attempted any more) with its
    /// audit event: false when there was none to remove.
    pub async fn remove_webhook(
        &self,
        id: i64,
        now: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<bool, StoreError> {
        self.update_one_row(
            "UPDATE webhooks SET removed_at = $1 WHERE id = $2 AND removed_at IS NULL",
            now,
            id,
            event,
        )
        .await
    }

    /// The newest messages (of one tenant's webhooks, or all), newest first.
    pub async fn deliveries(
        &self,
        tenant_id: Option<TenantId>,
        limit: i64,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        let rows: Vec<DeliverySqlRow> = sqlx::query_as(
            "SELECT o.id, o.webhook_id, t.name AS tenant, o.event_type, o.key_id, \
             o.occurred_at, o.attempts, o.next_attempt_at, o.delivered_at, o.failed_at, \
             o.last_status, o.last_error FROM webhook_outbox o \
             JOIN webhooks w ON w.id = o.webhook_id JOIN tenants t ON t.id = w.tenant_id \
             WHERE ($1 = 0 OR w.tenant_id = $1) ORDER BY o.id DESC LIMIT $2",
        )
        .bind(tenant_id.map_or(0, TenantId::get))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        convert_all(rows)
    }
}

/// The statement of [`enqueue`]: `$1` the event, `$2` the key, `$3` when, `$4` the detail,
/// `$5` the tenant's id. The embedded database's issuance writer runs it too, once per
/// certificate: the pattern is made in SQL from `$1` because SQLite prepares a statement
/// again at every execution whose `LIKE` takes a bound pattern (it may plan by the value),
/// 4% of an issuance's CPU. The stored set of events is `,a,b,` ([`WebhookEvents`]).
pub(super) const ENQUEUE: &str = "INSERT INTO webhook_outbox (webhook_id, event_type, key_id, \
     occurred_at, detail, next_attempt_at) SELECT id, $1, $2, $3, $4, $3 FROM webhooks \
     WHERE tenant_id = $5 AND removed_at IS NULL AND events LIKE '%,' || $1 || ',%'";

/// Writes, in the transaction of a change to one key, a message about it for every webhook
/// of the key's tenant that takes `event`. `detail` is the message's own part of `data`.
pub(super) async fn enqueue(
    conn: &mut sqlx::AnyConnection,
    tenant_id: i64,
    event: WebhookEvent,
    key_id: &str,
    at: OffsetDateTime,
    detail: serde_json::Value,
) -> Result<(), StoreError> {
    sqlx::query(ENQUEUE)
        .bind(event.as_str())
        .bind(key_id)
        .bind(seconds(at))
        .bind(detail.to_string())
        .bind(tenant_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Writes, in a bulk revocation's transaction and before its update, a `key.revoked` message
/// for every key it is about to revoke (of the tenant, or of one owner in it: `owner` is ''
/// for all) and every webhook of the tenant that takes it.
pub(super) async fn enqueue_bulk_revocation(
    conn: &mut sqlx::AnyConnection,
    tenant_id: i64,
    owner: &str,
    at: OffsetDateTime,
    detail: serde_json::Value,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO webhook_outbox (webhook_id, event_type, key_id, occurred_at, detail, \
         next_attempt_at) SELECT w.id, $1, k.id, $2, $3, $2 FROM keys k \
         JOIN webhooks w ON w.tenant_id = k.tenant_id \
         WHERE k.tenant_id = $4 AND ($5 = '' OR k.owner = $5) AND k.revoked_at IS NULL \
         AND w.removed_at IS NULL AND w.events LIKE $6",
    )
    .bind(WebhookEvent::KeyRevoked.as_str())
    .bind(seconds(at))
    .bind(detail.to_string())
    .bind(tenant_id)
    .bind(owner)
    .bind(WebhookEvents::like_pattern(WebhookEvent::KeyRevoked))
    .execute(conn)
    .await?;
    Ok(())
}

/// The `key.issued` detail of a key and its first certificate.
pub(super) fn issued_detail(
    key: &super::NewKey,
    certificate: &super::NewCertificate,
) -> serde_json::Value {
    serde_json::json!({
        "scopes": key.scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        "expires_at": rfc3339(key.expires_at),
        "serial": certificate.serial.to_string(),
        "not_after": rfc3339(certificate.not_after),
    })
}

/// The `key.renewed` detail of a key's new certificate.
pub(super) fn renewed_detail(certificate: &super::NewCertificate) -> serde_json::Value {
    serde_json::json!({
        "serial": certificate.serial.to_string(),
        "not_after": rfc3339(certificate.not_after),
    })
}
