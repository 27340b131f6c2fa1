use time::OffsetDateTime;

use super::audit::AuditEvent;
use super::rows::{TenantSqlRow, UserSqlRow, convert_all, convert_optional, seconds};
use super::{Change, Store, StoreError, unique_as};
use crate::model::{KeyCounts, OwnerName, ScopeSet, TenantId, TenantName, TenantRecord};

/// A tenant as stored: the record, and its internal id.
#[derive(Debug, Clone)]
pub struct TenantRow {
    /// Internal id.
    pub id: TenantId,
    /// The tenant.
    pub tenant: TenantRecord,
}

/// A user as stored.
#[derive(Debug, Clone)]
pub struct UserRow {
    /// Internal id.
    pub id: i64,
    /// The tenant's internal id.
    pub tenant_id: TenantId,
    /// The user's name (the owner of its keys).
    pub name: OwnerName,
    /// The argon2id PHC string.
    pub password_hash: String,
    /// Granted scopes.
    pub scopes: ScopeSet,
    /// When it was disabled, if it was.
    pub disabled_at: Option<OffsetDateTime>,
    /// When it was made.
    pub created_at: OffsetDateTime,
}

impl Store {
    /// Adds a tenant; `AlreadyExists` if the name is taken.
    pub async fn insert_tenant(
        &self,
        name: &TenantName,
        max_key_days: i64,
        now: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<TenantRow, StoreError> {
        self.write(event, async |tx, _| {
            let row = sqlx::query_as::<_, TenantSqlRow>(
                "INSERT INTO tenants (name, max_key_days, created_at) VALUES ($1, $2, $3) \
                 RETURNING id, name, max_key_days, disabled_at, created_at",
            )
            .bind(name.as_str())
            .bind(max_key_days)
            .bind(seconds(now))
            .fetch_one(tx.conn())
            .await
            .map_err(|e| unique_as(e, StoreError::AlreadyExists("tenant")))?;
            Ok(Change::Made(row.try_into()?))
        })
        .await
    }

    /// The tenant with this name.
    pub async fn tenant(&self, name: &TenantName) -> Result<Option<TenantRow>, StoreError> {
        convert_optional(
            sqlx::query_as::<_, TenantSqlRow>(
                "SELECT id, name, max_key_days, disabled_at, created_at FROM tenants \
                 WHERE name = $1",
            )
            .bind(name.as_str())
            .fetch_optional(&self.pool)
            .await?,
        )
    }

    /// Every tenant, by name.
    pub async fn tenants(&self) -> Result<Vec<TenantRow>, StoreError> {
        convert_all(
            sqlx::query_as::<_, TenantSqlRow>(
                "SELECT id, name, max_key_days, disabled_at, created_at FROM tenants ORDER BY name",
            )
            .fetch_all(&self.pool)
            .await?,
        )
    }

    /// Each tenant's keys counted by state at `now`: active, of those the ones whose end is
    /// at or before `expires_by`, and revoked. Tenants without keys are left out. One pass
    /// over an index that carries the three columns (migration 0013), never the table.
    pub async fn key_counts(
        &self,
        now: OffsetDateTime,
        expires_by: OffsetDateTime,
    ) -> Result<Vec<(TenantId, KeyCounts)>, StoreError> {
        let rows: Vec<(i64, i64, i64, i64)> = sqlx::query_as(
            "SELECT tenant_id, \
             SUM(CASE WHEN revoked_at IS NULL AND expires_at > $1 THEN 1 ELSE 0 END), \
             SUM(CASE WHEN revoked_at IS NULL AND expires_at > $1 AND expires_at <= $2 \
                 THEN 1 ELSE 0 END), \
             SUM(CASE WHEN revoked_at IS NOT NULL THEN 1 ELSE 0 END) \
             FROM keys GROUP BY tenant_id",
        )
        .bind(seconds(now))
        .bind(seconds(expires_by))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(tenant_id, active, expiring, revoked)| {
                (
                    TenantId::new(tenant_id),
                    KeyCounts {
                        active,
                        expiring,
                        revoked,
                    },
                )
            })
            .collect())
    }

    /// Adds a user to a tenant; `AlreadyExists` if the name is taken there.
    pub async fn insert_user(
        &self,
        tenant_id: TenantId,
        name: &OwnerName,
        password_hash: &str,
        scopes: &ScopeSet,
        now: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<UserRow, StoreError> {
        self.write(event, async |tx, _| {
            let row = sqlx::query_as::<_, UserSqlRow>(
                "INSERT INTO users (tenant_id, name, password_hash, scopes, created_at) \
                 VALUES ($1, $2, $3, $4, $5) \
                 RETURNING id, tenant_id, name, password_hash, scopes, disabled_at, created_at",
            )
            .bind(tenant_id.get())
            .bind(name.as_str())
            .bind(password_hash)
            .bind(scopes.to_stored())
            .bind(seconds(now))
            .fetch_one(tx.conn())
            .await
            .map_err(|e| unique_as(e, StoreError::AlreadyExists("user")))?;
            Ok(Change::Made(row.try_into()?))
        })
        .await
    }

    /// The user `name` of the tenant, if both exist.
    pub async fn user(
        &self,
        tenant_id: TenantId,
        name: &OwnerName,
    ) -> Result<Option<UserRow>, StoreError> {
        convert_optional(
            sqlx::query_as::<_, UserSqlRow>(
                "SELECT id, tenant_id, name, password_hash, scopes, disabled_at, created_at \
                 FROM users WHERE tenant_id = $1 AND name = $2",
            )
            .bind(tenant_id.get())
            .bind(name.as_str())
            .fetch_optional(&self.pool)
            .await?,
        )
    }

    /// The users of a tenant, by name.
    pub async fn users(&self, tenant_id: TenantId) -> Result<Vec<UserRow>, StoreError> {
        convert_all(
            sqlx::query_as::<_, UserSqlRow>(
                "SELECT id, tenant_id, name, password_hash, scopes, disabled_at, created_at \
                 FROM users WHERE tenant_id = $1 ORDER BY name",
            )
            .bind(tenant_id.get())
            .fetch_all(&self.pool)
            .await?,
        )
    }
}

/// Changes to a user; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct UserChange {
    /// Disable (`Some(true)`) or enable (`Some(false)`).
    pub disabled: Option<bool>,
    /// New grants.
    pub scopes: Option<ScopeSet>,
    /// A new argon2id hash.
    pub password_hash: Option<String>,
}

impl Store {
    /// Changes a tenant's maximum key lifetime and/or disables or enables it. Returns the
    /// tenant as changed, or `None` if there is no such tenant.
    pub async fn update_tenant(
        &self,
        name: &TenantName,
        max_key_days: Option<i64>,
        disabled: Option<bool>,
        now: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<Option<TenantRow>, StoreError> {
        self.write(event, async |tx, _| {
            // -1 means "unchanged"; disabled_at keeps its first time while disabled.
            let row: Option<TenantSqlRow> = sqlx::query_as(
                "UPDATE tenants SET \
                 max_key_days = CASE WHEN $1 < 0 THEN max_key_days ELSE $1 END, \
                 disabled_at = CASE WHEN $2 = 1 THEN COALESCE(disabled_at, $3) \
                                    WHEN $2 = 0 THEN NULL ELSE disabled_at END \
                 WHERE name = $4 RETURNING id, name, max_key_days, disabled_at, created_at",
            )
            .bind(max_key_days.unwrap_or(-1))
            .bind(disabled.map_or(-1_i64, i64::from))
            .bind(seconds(now))
            .bind(name.as_str())
            .fetch_optional(tx.conn())
            .await?;
            Ok(Change::made_if_found(convert_optional(row)?))
        })
        .await
    }

    /// Changes a user. Returns the user as changed, or `None` if there is no such user.
    pub async fn update_user(
        &self,
        tenant_id: TenantId,
        name: &OwnerName,
        change: &UserChange,
        now: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<Option<UserRow>, StoreError> {
        self.write(event, async |tx, _| {
            let row: Option<UserSqlRow> = sqlx::query_as(
                "UPDATE users SET \
                 disabled_at = CASE WHEN $1 = 1 THEN COALESCE(disabled_at, $2) \
                                    WHEN $1 = 0 THEN NULL ELSE disabled_at END, \
                 scopes = COALESCE($3, scopes), \
                 password_hash = COALESCE($4, password_hash) \
                 WHERE tenant_id = $5 AND name = $6 \
                 RETURNING id, tenant_id, name, password_hash, scopes, disabled_at, created_at",
            )
            .bind(change.disabled.map_or(-1_i64, i64::from))
            .bind(seconds(now))
            .bind(change.scopes.as_ref().map(ScopeSet::to_stored))
            .bind(&change.password_hash)
            .bind(tenant_id.get())
            .bind(name.as_str())
            .fetch_optional(tx.conn())
            .await?;
            Ok(Change::made_if_found(convert_optional(row)?))
        })
        .await
    }
}
