//! Revocation: one key by its owner or an administrator, or every key of a tenant or owner
//! by an administrator. Each is one transaction with its audit event; the CRL builder is
//! told at once, and renewals and the CA's own authentication read the store, so they
//! refuse a revoked key immediately, before any CRL is published.

use super::authenticate::Principal;
use super::{Admin, Authority, AuthorityError, Reader};
use crate::api::AuditAction;
use crate::api::{BulkRevocation, RevokeRequest};
use crate::model::{KeyId, KeyView, OwnerName, RevocationCount, RevocationReason, TenantName};
use crate::store::RevocationScope;

impl Authority {
    /// `DELETE /v1/keys/{id}`: revokes a key and every unexpired certificate of it. Revoking
    /// a revoked key changes nothing and answers the same.
    pub async fn revoke_key(
        &self,
        reader: &Reader,
        id: &KeyId,
        request: RevokeRequest,
    ) -> Result<KeyView, AuthorityError> {
        let principal = reader.principal();
        let reason = request.reason.unwrap_or(RevocationReason::Unspecified);
        let row = self
            .store
            .key(id)
            .await?
            .ok_or(AuthorityError::NotFound("key"))?
            .key;
        match &principal {
            Principal::Admin { .. } => {}
            // A key's certificate speaks for that key only: a leaked key cannot revoke its
            // owner's other keys.
            Principal::Key { tenant, key_id, .. } if &row.tenant == tenant && key_id != id => {
                return Err(AuthorityError::NotKeyOwner);
            }
            Principal::User { tenant, owner, .. } | Principal::Key { tenant, owner, .. } => {
                // Another tenant's key does not exist for this caller; a colleague's does.
                if &row.tenant != tenant {
                    return Err(AuthorityError::NotFound("key"));
                }
                if &row.owner != owner {
                    return Err(AuthorityError::NotKeyOwner);
                }
            }
            Principal::Token { .. } => return Err(AuthorityError::Unauthenticated),
        }
        let now = self.now();
        let event = self.event(
            &principal.actor(),
            AuditAction::KeyRevoke,
            Some(row.tenant.as_str()),
            Some(id.to_string()),
            serde_json::json!({ "owner": row.owner.as_str(), "reason": reason.as_str() }),
        );
        if let Some(certificates) = self.store.revoke_key(id, reason, now, &event).await? {
            self.crl.poke();
            self.metrics.revoked.inc();
            tracing::info!(key_id = %id, tenant = %row.tenant, %reason, certificates, "key revoked");
        }
        let row = self
            .store
            .key(id)
            .await?
            .ok_or(AuthorityError::NotFound("key"))?;
        self.key_view(row.key).await
    }

    /// What [`Authority::revoke_many`] would revoke now for `tenant` (or one `owner` in
    /// it), counted and changed nothing: the figure an administrator confirms first.
    pub async fn revocation_preview(
        &self,
        _admin: &Admin,
        tenant: &TenantName,
        owner: Option<&OwnerName>,
    ) -> Result<RevocationCount, AuthorityError> {
        let tenant = self.existing_tenant(tenant).await?;
        let scope = RevocationScope {
            tenant_id: tenant.id,
            owner: owner.cloned(),
        };
        let (keys, certificates) = self.store.revocable_in(&scope, self.now()).await?;
        Ok(RevocationCount { keys, certificates })
    }

    /// `POST /v1/admin/revocations`: revokes every key of a tenant, or of one owner in it, in
    /// one transaction.
    pub async fn revoke_many(
        &self,
        admin: &Admin,
        request: BulkRevocation,
    ) -> Result<RevocationCount, AuthorityError> {
        let reason = request.reason.unwrap_or(RevocationReason::Unspecified);
        let tenant_name = request.tenant;
        let owner = request.owner.clone();
        let tenant = self.existing_tenant(&tenant_name).await?;
        let event = self.event(
            &admin.actor(),
            AuditAction::KeyRevokeBulk,
            Some(tenant_name.as_str()),
            owner.as_ref().map(OwnerName::to_string),
            serde_json::json!({
                "owner": owner.as_ref().map(OwnerName::as_str),
                "reason": reason.as_str(),
            }),
        );
        let scope = RevocationScope {
            tenant_id: tenant.id,
            owner,
        };
        let (keys, certificates) = self
            .store
            .revoke_keys_of(&scope, reason, event.at, &event)
            .await?;
        if keys > 0 {
            self.crl.poke();
            self.metrics.revoked.inc_by(keys as u64);
        }
        tracing::info!(tenant = %tenant_name, keys, certificates, "bulk revocation");
        Ok(RevocationCount { keys, certificates })
    }
}
