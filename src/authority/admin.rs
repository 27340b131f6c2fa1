//! Administration: tenants, users, enrollment tokens. Every action takes an [`Admin`], the proof
//! that the caller presented an administrator certificate, and writes an audit event in the
//! same transaction as the change.

use crate::api::AuditAction;
use crate::api::Code;
use crate::api::Secret;
use time::Duration;

use super::{Admin, Authority, AuthorityError, MAX_KEY_DAYS, token};
use crate::api::{NewTenant, NewToken, NewUser};
use crate::model::{
    ScopeSet, TenantName, TenantOverview, TenantRecord, TokenRecord, TokenStatus, TokenView,
    UserRecord, UserRef,
};
use crate::store::{NewToken as StoredToken, TenantRow, UserRow, whole_second};

/// An enrollment token's lifetime when none is asked for, and the longest allowed.
const DEFAULT_TOKEN_TTL: Duration = Duration::hours(1);
const MAX_TOKEN_TTL: Duration = Duration::days(30);

/// The most tokens one request makes ([`Authority::create_tokens`]).
pub const MAX_TOKEN_BATCH: u32 = 1000;

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
    ) -> Result<TenantRecord, AuthorityError> {
        let name = request.name;
        let max_key_days = request.max_key_days.unwrap_or(MAX_KEY_DAYS);
        if !(1..=MAX_KEY_DAYS).contains(&max_key_days) {
            return Err(AuthorityError::TtlOutOfRange(format!(
                "max_key_days must be 1 to {MAX_KEY_DAYS}"
            )));
        }
        if request.dedicated_issuer && !self.issuers.can_sign_intermediates() {
            // Refused before the tenant exists: nothing is half made.
            return Err(crate::issuers::IssuerError::NoRootKey.into());
        }
        let event = self.event(
            &admin.actor(),
            AuditAction::TenantAdd,
            Some(name.as_str()),
            Some(name.to_string()),
            serde_json::json!({
                "max_key_days": max_key_days,
                "dedicated_issuer": request.dedicated_issuer,
            }),
        );
        let row = self
            .store
            .insert_tenant(&name, max_key_days, event.at, &event)
            .await?;
        if request.dedicated_issuer {
            self.issuers
                .rotate(
                    Some((row.id, name)),
                    &admin.actor(),
                    "a tenant with its own issuer",
                )
                .await?;
        }
        Ok(row.tenant)
    }

    /// Every tenant.
    pub async fn tenants(&self, _admin: &Admin) -> Result<Vec<TenantRecord>, AuthorityError> {
        Ok(self
            .store
            .tenants()
            .await?
            .into_iter()
            .map(|row| row.tenant)
            .collect())
    }

    /// Every tenant with its keys counted: active, expiring within `within` of now (of
    /// the active ones), revoked.
    pub async fn tenant_overview(
        &self,
        _admin: &Admin,
        within: Duration,
    ) -> Result<Vec<TenantOverview>, AuthorityError> {
        let now = self.now();
        let expires_by = now
            .checked_add(within)
            .unwrap_or(time::PrimitiveDateTime::MAX.assume_utc());
        let counts: std::collections::HashMap<_, _> = self
            .store
            .key_counts(now, expires_by)
            .await?
            .into_iter()
            .collect();
        let tenants = self.store.tenants().await?;
        Ok(tenants
            .into_iter()
            .map(|row| TenantOverview {
                keys: counts.get(&row.id).copied().unwrap_or_default(),
                tenant: row.tenant,
            })
            .collect())
    }

    /// Adds a user with a password and grants.
    pub async fn add_user(
        &self,
        admin: &Admin,
        request: NewUser,
    ) -> Result<UserRecord, AuthorityError> {
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
            .insert_user(tenant.id, &user.owner, &hash, &scopes, event.at, &event)
            .await?;
        Ok(user_record(&tenant, row))
    }

    /// The users of a tenant.
    pub async fn users(
        &self,
        _admin: &Admin,
        tenant: &TenantName,
    ) -> Result<Vec<UserRecord>, AuthorityError> {
        let tenant = self.existing_tenant(tenant).await?;
        Ok(self
            .store
            .users(tenant.id)
            .await?
            .into_iter()
            .map(|row| user_record(&tenant, row))
            .collect())
    }

    /// Creates a one-time enrollment token. Its secret is in this answer and nowhere else.
    pub async fn create_token(
        &self,
        admin: &Admin,
        request: NewToken,
    ) -> Result<(TokenView, Secret<String>), AuthorityError> {
        let mut made = self.create_tokens(admin, request, 1).await?;
        Ok(made.remove(0))
    }

    /// Creates `count` (1 to [`MAX_TOKEN_BATCH`]) one-time enrollment tokens alike, for
    /// enrolling a fleet: one transaction, one audit event naming them all. Their secrets are
    /// in this answer and nowhere else.
    pub async fn create_tokens(
        &self,
        admin: &Admin,
        request: NewToken,
        count: u32,
    ) -> Result<Vec<(TokenView, Secret<String>)>, AuthorityError> {
        if !(1..=MAX_TOKEN_BATCH).contains(&count) {
            return Err(AuthorityError::invalid(
                Code::InvalidRequest,
                format!("count {count} must be 1 to {MAX_TOKEN_BATCH}"),
            ));
        }
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
        let now = self.now();
        let created_by = admin.actor();
        let secrets: Vec<String> = (0..count).map(|_| token::generate()).collect();
        let stored: Vec<StoredToken> = secrets
            .iter()
            .map(|secret| StoredToken {
                token_hash: token::hash(secret),
                tenant_id: tenant.id,
                owner: owner.owner.clone(),
                scopes: scopes.clone(),
                created_by: created_by.clone(),
                created_at: now,
                expires_at: now + ttl,
            })
            .collect();
        let mut detail = serde_json::json!({
            "owner": owner.to_string(),
            "scopes": scopes.to_stored(),
            "expires_at": (now + ttl).unix_timestamp(),
        });
        if count > 1 {
            detail["count"] = count.into();
        }
        let event = self.event(
            &created_by,
            AuditAction::TokenCreate,
            Some(owner.tenant.as_str()),
            None,
            detail,
        );
        let ids = self.store.insert_tokens(&stored, &event).await?;
        Ok(ids
            .into_iter()
            .zip(stored)
            .zip(secrets)
            .map(|((id, stored), secret)| {
                // The token as a read of it now gives it: unused, its times in whole seconds.
                let record = TokenRecord {
                    id,
                    tenant: owner.tenant.clone(),
                    owner: stored.owner,
                    scopes: stored.scopes,
                    created_by: stored.created_by,
                    created_at: whole_second(stored.created_at),
                    expires_at: whole_second(stored.expires_at),
                    used_at: None,
                    key_id: None,
                    revoked_at: None,
                };
                let view = TokenView {
                    token: record,
                    status: TokenStatus::Unused,
                };
                (view, secret.into())
            })
            .collect())
    }

    /// The enrollment tokens of a tenant (or all), without their secrets.
    pub async fn tokens(
        &self,
        _admin: &Admin,
        tenant: Option<&TenantName>,
    ) -> Result<Vec<TokenView>, AuthorityError> {
        let tenant_id = match tenant {
            Some(name) => Some(self.existing_tenant(name).await?.id),
            None => None,
        };
        let now = self.now();
        Ok(self
            .store
            .tokens(tenant_id)
            .await?
            .into_iter()
            .map(|row| TokenView::new(row.token, now))
            .collect())
    }
}

/// The user of `row`, in `tenant`.
pub(super) fn user_record(tenant: &TenantRow, row: UserRow) -> UserRecord {
    UserRecord {
        user: UserRef {
            tenant: tenant.tenant.name.clone(),
            owner: row.name,
        },
        scopes: row.scopes,
        disabled_at: row.disabled_at,
        created_at: row.created_at,
    }
}
