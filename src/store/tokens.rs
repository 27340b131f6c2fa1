use rusqlite::OptionalExtension;
use time::OffsetDateTime;

use super::audit::AuditEvent;
use super::rows::{TokenCredentialSqlRow, TokenSqlRow, convert_all, convert_optional, seconds};
use super::{Change, Store, StoreError, unique_as};
use crate::model::{OwnerName, ScopeSet, TenantId, TokenRecord};

/// An enrollment token to record. The secret itself is never stored, only its hash.
#[derive(Debug, Clone)]
pub struct NewToken {
    /// SHA-256 of the secret, lowercase hex.
    pub token_hash: String,
    /// The tenant it enrolls into.
    pub tenant_id: TenantId,
    /// The owner of the key it enrolls.
    pub owner: OwnerName,
    /// The scopes it may grant.
    pub scopes: ScopeSet,
    /// Who made it (an audit actor string).
    pub created_by: String,
    /// When it was made.
    pub created_at: OffsetDateTime,
    /// When it stops working.
    pub expires_at: OffsetDateTime,
}

/// An enrollment token as stored: the record, and its tenant's internal id.
#[derive(Debug, Clone)]
pub struct TokenRow {
    /// The tenant's internal id.
    pub tenant_id: TenantId,
    /// The token.
    pub token: TokenRecord,
}

/// An enrollment token with what authenticating by it needs: its tenant's state and
/// policy, and whether its owner (if a user) is disabled. One read.
#[derive(Debug, Clone)]
pub struct TokenCredential {
    /// The token.
    pub token: TokenRow,
    /// The tenant's longest key lifetime, in days.
    pub max_key_days: i64,
    /// When the tenant was disabled, if it was.
    pub tenant_disabled_at: Option<OffsetDateTime>,
    /// When the owner, if it is a user of the tenant, was disabled.
    pub owner_disabled_at: Option<OffsetDateTime>,
}

/// The columns of a [`TokenRow`] (`t` the token, `n` its tenant).
macro_rules! token_columns {
    () => {
        "t.id, t.tenant_id, n.name AS tenant, t.owner, t.scopes, t.created_by, t.created_at, \
         t.expires_at, t.used_at, t.key_id, t.revoked_at"
    };
}
const TOKEN_COLUMNS: &str = token_columns!();

/// The read behind [`Store::token_credential`].
const TOKEN_CREDENTIAL: &str = concat!(
    "SELECT ",
    token_columns!(),
    ", n.max_key_days, n.disabled_at AS tenant_disabled_at, \
     u.disabled_at AS owner_disabled_at \
     FROM enrollment_tokens t JOIN tenants n ON n.id = t.tenant_id \
     LEFT JOIN users u ON u.tenant_id = t.tenant_id AND u.name = t.owner \
     WHERE t.token_hash = $1"
);

impl Store {
    /// Records a new enrollment token and returns its id.
    pub async fn insert_token(
        &self,
        token: &NewToken,
        event: &AuditEvent,
    ) -> Result<i64, StoreError> {
        let ids = self
            .insert_tokens(std::slice::from_ref(token), event)
            .await?;
        Ok(ids[0])
    }

    /// Records enrollment tokens in one transaction, with one audit event naming them
    /// (`token:<id>`, or `token:<first>-<last>` for several), and returns their ids in order.
    pub async fn insert_tokens(
        &self,
        tokens: &[NewToken],
        event: &AuditEvent,
    ) -> Result<Vec<i64>, StoreError> {
        self.write(event, async |tx, event| {
            let mut ids = Vec::with_capacity(tokens.len());
            for token in tokens {
                let (id,): (i64,) = sqlx::query_as(
                    "INSERT INTO enrollment_tokens \
                     (token_hash, tenant_id, owner, scopes, created_by, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                )
                .bind(&token.token_hash)
                .bind(token.tenant_id.get())
                .bind(token.owner.as_str())
                .bind(token.scopes.to_stored())
                .bind(&token.created_by)
                .bind(seconds(token.created_at))
                .bind(seconds(token.expires_at))
                .fetch_one(tx.conn())
                .await
                .map_err(|e| unique_as(e, StoreError::Collision))?;
                ids.push(id);
            }
            event.target = match ids.as_slice() {
                [] => return Ok(Change::None(ids)),
                [id] => Some(format!("token:{id}")),
                [first, .., last] => Some(format!("token:{first}-{last}")),
            };
            Ok(Change::Made(ids))
        })
        .await
    }

    /// The token whose secret hashes to `token_hash`, with its tenant and owner's state.
    /// Every token enrollment starts here, so on SQLite it is read directly on this thread
    /// (`embedded.rs`): one indexed read, where a round trip to sqlx's thread cost more.
    pub async fn token_credential(
        &self,
        token_hash: &str,
    ) -> Result<Option<TokenCredential>, StoreError> {
        let row = match &self.embedded {
            Some(embedded) => embedded.read(|conn| {
                conn.prepare_cached(TOKEN_CREDENTIAL)?
                    .query_row([token_hash], TokenCredentialSqlRow::from_sqlite)
                    .optional()
            })?,
            None => {
                sqlx::query_as::<_, TokenCredentialSqlRow>(TOKEN_CREDENTIAL)
                    .bind(token_hash)
                    .fetch_optional(&self.pool)
                    .await?
            }
        };
        convert_optional(row)
    }

    /// The tokens of a tenant (or all), newest first. Secrets are not stored, so none is shown.
    pub async fn tokens(&self, tenant_id: Option<TenantId>) -> Result<Vec<TokenRow>, StoreError> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {TOKEN_COLUMNS} FROM enrollment_tokens t JOIN tenants n ON n.id = t.tenant_id \
             WHERE ($1 = 0 OR t.tenant_id = $1) ORDER BY t.id DESC"
        ));
        convert_all(
            sqlx::query_as::<_, TokenSqlRow>(sql)
                .bind(tenant_id.map_or(0, TenantId::get))
                .fetch_all(&self.pool)
                .await?,
        )
    }
}

impl Store {
    /// Revokes an unused enrollment token. Returns false when there is no such token or it
    /// was used or revoked already.
    pub async fn revoke_token(
        &self,
        id: i64,
        now: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<bool, StoreError> {
        self.update_one_row(
            "UPDATE enrollment_tokens SET revoked_at = $1 \
             WHERE id = $2 AND used_at IS NULL AND revoked_at IS NULL",
            now,
            id,
            event,
        )
        .await
    }

    /// The token with this id.
    pub async fn token(&self, id: i64) -> Result<Option<TokenRow>, StoreError> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {TOKEN_COLUMNS} FROM enrollment_tokens t JOIN tenants n ON n.id = t.tenant_id \
             WHERE t.id = $1"
        ));
        convert_optional(
            sqlx::query_as::<_, TokenSqlRow>(sql)
                .bind(id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }
}
