//! Changing what exists: tenant policy and state, users' grants, passwords and state,
//! enrollment tokens; and reading the audit log. Administrators only: each method takes the
//! [`Admin`] proof.

use super::paging::{self, Page};
use super::{Admin, Authority, AuthorityError, MAX_KEY_DAYS};
use crate::api::AuditAction;
use crate::api::AuditQuery;
use crate::api::Code;
use crate::api::{TenantChange, UserChange};
use crate::model::{AuditRecord, Listing, TenantName, TenantRecord, UserRecord, UserRef};
use crate::store::{AuditFilter, UserChange as StoredChange};

const DEFAULT_PAGE: i64 = 100;
const MAX_PAGE: i64 = 1000;

impl Authority {
    /// `PATCH /v1/admin/tenants/{tenant}`: sets the maximum key lifetime, disables or
    /// enables. A disabled tenant gets no new keys; its existing keys keep working until
    /// they are revoked.
    pub async fn change_tenant(
        &self,
        admin: &Admin,
        name: &TenantName,
        change: TenantChange,
    ) -> Result<TenantRecord, AuthorityError> {
        if let Some(days) = change.max_key_days
            && !(1..=MAX_KEY_DAYS).contains(&days)
        {
            return Err(AuthorityError::TtlOutOfRange(format!(
                "max_key_days must be 1 to {MAX_KEY_DAYS}"
            )));
        }
        let event = self.event(
            &admin.actor(),
            AuditAction::TenantChange,
            Some(name.as_str()),
            Some(name.to_string()),
            serde_json::json!({
                "max_key_days": change.max_key_days,
                "disabled": change.disabled,
                "dedicated_issuer": change.dedicated_issuer,
            }),
        );
        if change.dedicated_issuer == Some(true) && !self.issuers.can_sign_intermediates() {
            return Err(crate::issuers::IssuerError::NoRootKey.into());
        }
        let row = self
            .store
            .update_tenant(name, change.max_key_days, change.disabled, event.at, &event)
            .await?
            .ok_or(AuthorityError::NotFound("tenant"))?;
        let tenant = (row.id, name.clone());
        let dedicated = self.issuers.current().active_in(Some(row.id)).is_some();
        match change.dedicated_issuer {
            // Its existing keys renew under the new one.
            Some(true) if !dedicated => {
                self.issuers
                    .rotate(
                        Some(tenant),
                        &admin.actor(),
                        "the tenant gets its own issuer",
                    )
                    .await?;
            }
            Some(false) if dedicated => {
                self.issuers.undedicate(tenant, &admin.actor()).await?;
            }
            _ => {}
        }
        Ok(row.tenant)
    }

    /// `PATCH /v1/admin/users/{user}`: sets grants, resets the password, disables or enables.
    pub async fn change_user(
        &self,
        admin: &Admin,
        user: &UserRef,
        change: UserChange,
    ) -> Result<UserRecord, AuthorityError> {
        let scopes = match change.scopes {
            Some(scopes) => Some(super::admin::at_least_one(scopes)?),
            None => None,
        };
        let tenant = self
            .store
            .tenant(&user.tenant)
            .await?
            .ok_or(AuthorityError::NotFound("user"))?;
        let password_hash = match change.password {
            Some(p) => Some(self.passwords.hash(p.into_inner()).await?),
            None => None,
        };
        let event = self.event(
            &admin.actor(),
            AuditAction::UserChange,
            Some(user.tenant.as_str()),
            Some(user.to_string()),
            serde_json::json!({
                "disabled": change.disabled,
                "scopes": scopes.as_ref().map(|s| s.to_stored()),
                "password_reset": password_hash.is_some(),
            }),
        );
        let stored = StoredChange {
            disabled: change.disabled,
            scopes,
            password_hash,
        };
        let row = self
            .store
            .update_user(tenant.id, &user.owner, &stored, event.at, &event)
            .await?
            .ok_or(AuthorityError::NotFound("user"))?;
        Ok(super::admin::user_record(&tenant, row))
    }

    /// `DELETE /v1/admin/tokens/{id}`: an unused token stops working.
    pub async fn revoke_token(&self, admin: &Admin, id: i64) -> Result<(), AuthorityError> {
        let token = self
            .store
            .token(id)
            .await?
            .ok_or(AuthorityError::NotFound("token"))?
            .token;
        let event = self.event(
            &admin.actor(),
            AuditAction::TokenRevoke,
            Some(token.tenant.as_str()),
            Some(format!("token:{id}")),
            serde_json::json!({ "owner": format!("{}@{}", token.owner, token.tenant) }),
        );
        if !self.store.revoke_token(id, event.at, &event).await? {
            return Err(AuthorityError::invalid(
                Code::TokenNotRevocable,
                "the token was used or revoked already",
            ));
        }
        Ok(())
    }

    /// `GET /v1/admin/audit`: newest first, filtered.
    pub async fn audit_log(
        &self,
        _admin: &Admin,
        query: AuditQuery,
    ) -> Result<Listing<AuditRecord>, AuthorityError> {
        let page = Page::parse(query.limit, DEFAULT_PAGE, MAX_PAGE)?;
        // The cursor is the id of the last event given out; every event's id is shown to
        // the administrator, the only one who reads this log.
        let before_id = match paging::given(query.cursor.as_deref()) {
            None => None,
            Some(c) => Some(c.parse::<i64>().map_err(|_| paging::invalid_cursor())?),
        };
        let filter = AuditFilter {
            tenant: query.tenant,
            actor: query.actor,
            action: query.action.map(|a| a.as_str().to_owned()),
            target: query.target,
            since: query.since,
            until: query.until,
            before_id,
            limit: page.fetch(),
        };
        let mut items = self.store.audit_events(&filter).await?;
        let next_cursor = page.finish(&mut items, |r| r.id.to_string());
        Ok(Listing { items, next_cursor })
    }
}
