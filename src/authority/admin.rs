//! Administration: tenants, users, enrollment tokens. Every action takes an [`Admin`], the proof
//! that the caller presented an administrator certificate, and writes an audit event in the
//! same transaction as the change.

use crate::api::AuditAction;
use crate::api::Code;
use crate::api::TokenStatus;
use time::Duration;

use super::authenticate::stored_scopes;
use super::{Admin, Authority, AuthorityError, MAX_KEY_DAYS, from_unix, token};
use crate::api::{NewTenant, NewToken, NewUser, TenantInfo, TokenInfo, UserInfo};
use crate::model::{ScopeSet, TenantName};
use crate::store::{NewToken as StoredToken, TenantRow, TokenRow, UserRow};

/// An enrollment token's lifetime when none is asked for, and the longest allowed.
const DEFAULT_TOKEN_TTL: Duration = Duration::hours(1);
const MAX_TOKEN_TTL: Duration = Duration::days(30);

/// Grants and token scopes name at least one scope: a user or token that may carry nothing
/// could only make keys no service accepts. (Each scope was parsed at the edge.)
pub(super) fn at_least_one(scopes: ScopeSet) -> Result<ScopeSet, AuthorityError> {
    if scopes.is_empty() {
        return Err(AuthorityError::invalid(
            Code::InvalidScope,
            "name at least one scope",
        ));
    }
    Ok(scopes)
}

impl Authority {
    /// Adds a tenant.
    pub async fn add_tenant(
        &self,
        admin: &Admin,
        request: NewTenant,
    ) -> Result<TenantInfo, AuthorityError> {
        let name = request.name;
        let max_key_days = request.max_key_days.unwrap_or(MAX_KEY_DAYS);
        if !(1..=MAX_KEY_DAYS).contains(&max_key_days) {
            return Err(AuthorityError::TtlOutOfRange(format!(
                "max_key_days must be 1 to {MAX_KEY_DAYS}"
            )));
        }
        let event = self.event(
            &admin.actor(),
            AuditAction::TenantAdd,
            Some(name.as_str()),
            Some(name.to_string()),
            serde_json::json!({ "max_key_days": max_key_days }),
        );
        let row = self
            .store
            .insert_tenant(name.as_str(), max_key_days, event.at, &event)
            .await?;
        Ok(tenant_info(row))
    }

    /// Every tenant.
    pub async fn tenants(&self, _admin: &Admin) -> Result<Vec<TenantInfo>, AuthorityError> {
        Ok(self
            .store
            .tenants()
            .await?
            .into_iter()
            .map(tenant_info)
            .collect())
    }

    /// Adds a user with a password and grants.
    pub async fn add_user(
        &self,
        admin: &Admin,
        request: NewUser,
    ) -> Result<UserInfo, AuthorityError> {
        let user = request.user;
        let scopes = at_least_one(request.scopes)?;
        let tenant = self.existing_tenant(&user.tenant).await?;
        let hash = self.passwords.hash(request.password.into_inner()).await?;
        let event = self.event(
            &admin.actor(),
            AuditAction::UserAdd,
            Some(user.tenant.as_str()),
            Some(user.to_string()),
            serde_json::json!({ "scopes": scopes.to_stored() }),
        );
        let row = self
            .store
            .insert_user(
                tenant.id,
                user.owner.as_str(),
                &hash,
                &scopes.to_stored(),
                event.at,
                &event,
            )
            .await?;
        user_info(&tenant, row)
    }

    /// The users of a tenant.
    pub async fn users(
        &self,
        _admin: &Admin,
        tenant: &TenantName,
    ) -> Result<Vec<UserInfo>, AuthorityError> {
        let tenant = self.existing_tenant(tenant).await?;
        self.store
            .users(tenant.id)
            .await?
            .into_iter()
            .map(|row| user_info(&tenant, row))
            .collect()
    }

    /// Creates a one-time enrollment token. Its secret is in this answer and nowhere else.
    pub async fn create_token(
        &self,
        admin: &Admin,
        request: NewToken,
    ) -> Result<TokenInfo, AuthorityError> {
        let owner = request.owner;
        let scopes = at_least_one(request.scopes)?;
        let ttl = match request.ttl_seconds {
            None => DEFAULT_TOKEN_TTL,
            Some(s) if s > 0 && s <= MAX_TOKEN_TTL.whole_seconds() => Duration::seconds(s),
            Some(s) => {
                return Err(AuthorityError::TtlOutOfRange(format!(
                    "token ttl_seconds {s} must be 1 to {}",
                    MAX_TOKEN_TTL.whole_seconds()
                )));
            }
        };
        let tenant = self.existing_tenant(&owner.tenant).await?;
        let secret = token::generate();
        let now = self.now();
        let stored = StoredToken {
            token_hash: token::hash(&secret),
            tenant_id: tenant.id,
            owner: owner.owner.to_string(),
            scopes: scopes.to_stored(),
            created_by: admin.actor(),
            created_at: now.unix_timestamp(),
            expires_at: (now + ttl).unix_timestamp(),
        };
        let event = self.event(
            &stored.created_by,
            AuditAction::TokenCreate,
            Some(owner.tenant.as_str()),
            None,
            serde_json::json!({
                "owner": owner.to_string(),
                "scopes": stored.scopes,
                "expires_at": stored.expires_at,
            }),
        );
        let id = self.store.insert_token(&stored, &event).await?;
        Ok(TokenInfo {
            id,
            token: Some(secret.into()),
            owner: owner.to_string(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            expires_at: from_unix(stored.expires_at),
            status: TokenStatus::Unused,
            key_id: None,
        })
    }

    /// The enrollment tokens of a tenant (or all), without their secrets.
    pub async fn tokens(
        &self,
        _admin: &Admin,
        tenant: Option<&TenantName>,
    ) -> Result<Vec<TokenInfo>, AuthorityError> {
        let tenant_id = match tenant {
            Some(name) => Some(self.existing_tenant(name).await?.id),
            None => None,
        };
        let now = self.now().unix_timestamp();
        self.store
            .tokens(tenant_id)
            .await?
            .into_iter()
            .map(|row| token_info(row, now))
            .collect()
    }
}

pub(super) fn tenant_info(row: TenantRow) -> TenantInfo {
    TenantInfo {
        name: row.name,
        max_key_days: row.max_key_days,
        disabled: row.disabled_at.is_some(),
        created_at: from_unix(row.created_at),
    }
}

pub(super) fn user_info(tenant: &TenantRow, row: UserRow) -> Result<UserInfo, AuthorityError> {
    Ok(UserInfo {
        user: format!("{}@{}", row.name, tenant.name),
        scopes: stored_scopes(&row.scopes)?
            .iter()
            .map(|s| s.to_string())
            .collect(),
        disabled: row.disabled_at.is_some(),
        created_at: from_unix(row.created_at),
    })
}

fn token_info(row: TokenRow, now: i64) -> Result<TokenInfo, AuthorityError> {
    let status = if row.revoked_at.is_some() {
        TokenStatus::Revoked
    } else if row.used_at.is_some() {
        TokenStatus::Used
    } else if row.expires_at <= now {
        TokenStatus::Expired
    } else {
        TokenStatus::Unused
    };
    Ok(TokenInfo {
        id: row.id,
        token: None,
        owner: format!("{}@{}", row.owner, row.tenant),
        scopes: stored_scopes(&row.scopes)?
            .iter()
            .map(|s| s.to_string())
            .collect(),
        expires_at: from_unix(row.expires_at),
        status,
        key_id: row.key_id,
    })
}
