use sqlx::{Any, Transaction};
use time::OffsetDateTime;

use super::filter::Statement;
use super::rows::{AuditSqlRow, convert_all, seconds};
use super::{Store, StoreError};
use crate::model::AuditRecord;

/// An audit event, written in the same transaction as the change it describes.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    /// When.
    pub at: OffsetDateTime,
    /// Who: `admin:<name>`, `user:<owner>@<tenant>`, `token:<owner>@<tenant>`, `key:<id>`.
    pub actor: String,
    /// What, as `noun.verb`: `key.issue`, `tenant.add`, …
    pub action: &'static str,
    /// The tenant concerned, if any.
    pub tenant: Option<String>,
    /// The object concerned (a key id, a user, a token id), if any.
    pub target: Option<String>,
    /// Details, a JSON object.
    pub detail: serde_json::Value,
}

pub(super) async fn insert(
    tx: &mut Transaction<'static, Any>,
    event: &AuditEvent,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO audit_events (at, actor, action, tenant, target, detail) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(seconds(event.at))
    .bind(&event.actor)
    .bind(event.action)
    .bind(&event.tenant)
    .bind(&event.target)
    .bind(event.detail.to_string())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Which audit events to read: one page, newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only this tenant's.
    pub tenant: Option<String>,
    /// Only this actor's.
    pub actor: Option<String>,
    /// Only this action.
    pub action: Option<String>,
    /// Only events about this target (a key id, a user, a tenant).
    pub target: Option<String>,
    /// Only at or after this time.
    pub since: Option<OffsetDateTime>,
    /// Only before this time.
    pub until: Option<OffsetDateTime>,
    /// Only events older than this id (paging).
    pub before_id: Option<i64>,
    /// At most this many.
    pub limit: i64,
}

impl Store {
    /// One page of audit events, newest first.
    pub async fn audit_events(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
        let mut sql = Statement::new(
            "SELECT id, at, actor, action, tenant, target, detail FROM audit_events WHERE TRUE",
        );
        sql.push(" AND id < $?");
        for (value, fragment) in [
            (&filter.tenant, " AND tenant = $?"),
            (&filter.actor, " AND actor = $?"),
            (&filter.action, " AND action = $?"),
            (&filter.target, " AND target = $?"),
        ] {
            if value.is_some() {
                sql.push(fragment);
            }
        }
        if filter.since.is_some() {
            sql.push(" AND at >= $?");
        }
        if filter.until.is_some() {
            sql.push(" AND at < $?");
        }
        sql.push(" ORDER BY id DESC LIMIT $?");
        let mut query =
            sqlx::query_as::<_, AuditSqlRow>(sql.sql()).bind(filter.before_id.unwrap_or(i64::MAX));
        for value in [
            &filter.tenant,
            &filter.actor,
            &filter.action,
            &filter.target,
        ]
        .into_iter()
        .flatten()
        {
            query = query.bind(value.clone());
        }
        for value in [filter.since, filter.until].into_iter().flatten() {
            query = query.bind(seconds(value));
        }
        convert_all(query.bind(filter.limit).fetch_all(&self.pool).await?)
    }
}
