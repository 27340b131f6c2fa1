//! The API's JSON answers, made from what the authority returns. The authority decides and
//! hands out domain values ([`crate::model`]'s records and views, with any status already
//! judged at the request's time); this file only says how each is written on the wire, one
//! conversion per wire type. Field names and formats are the API's and never change here:
//! serials in lowercase hex, times in RFC 3339, names as given.

use crate::api::{
    AuditEventInfo, AuditPage, BulkRevocationResult, CertificateInfo, DeliveryInfo, EnrollResponse,
    IssuerInfo, IssuerList, KeyInfo, KeyPage, KeyStatus as WireKeyStatus, Secret, TenantInfo,
    TokenInfo, TokenStatus as WireTokenStatus, UserInfo, WebhookInfo,
};
use crate::issuers::IssuerSet;
use crate::model::{
    AuditRecord, CertificateRecord, DeliveryRecord, IssuedKey, KeyStatus, KeyView, Listing,
    RevocationCount, ScopeSet, TenantRecord, TokenStatus, TokenView, UserRecord, WebhookRecord,
};

/// `GET /v1/issuers`: every intermediate, oldest first.
pub(super) fn issuer_list(set: &IssuerSet) -> IssuerList {
    IssuerList {
        revision: set.revision,
        issuers: set
            .issuers()
            .iter()
            .map(|i| IssuerInfo {
                id: i.id,
                subject: i.subject.clone(),
                not_before: i.not_before,
                not_after: i.not_after,
                status: i.status,
                tenant: i.tenant.as_ref().map(|(_, name)| name.clone()),
                certificate: i.pem.clone(),
                crl: i.is_published().then(|| i.crl_path()),
            })
            .collect(),
        cross_certificates: set.cross_certificates_pem(),
    }
}

/// Scopes on the wire: their names, sorted.
fn scope_names(scopes: &ScopeSet) -> Vec<String> {
    scopes.iter().map(ToString::to_string).collect()
}

impl From<KeyStatus> for WireKeyStatus {
    fn from(status: KeyStatus) -> Self {
        match status {
            KeyStatus::Active => Self::Active,
            KeyStatus::Expired => Self::Expired,
            KeyStatus::Revoked => Self::Revoked,
        }
    }
}

impl From<TokenStatus> for WireTokenStatus {
    fn from(status: TokenStatus) -> Self {
        match status {
            TokenStatus::Unused => Self::Unused,
            TokenStatus::Used => Self::Used,
            TokenStatus::Expired => Self::Expired,
            TokenStatus::Revoked => Self::Revoked,
        }
    }
}

impl From<CertificateRecord> for CertificateInfo {
    fn from(c: CertificateRecord) -> Self {
        Self {
            serial: c.serial.to_string(),
            not_before: c.not_before,
            not_after: c.not_after,
            revoked: c.revoked_at.is_some(),
        }
    }
}

impl From<KeyView> for KeyInfo {
    fn from(view: KeyView) -> Self {
        let key = view.key;
        Self {
            id: key.id.to_string(),
            tenant: key.tenant.to_string(),
            owner: key.owner.to_string(),
            name: key.name,
            description: key.description,
            scopes: scope_names(&key.scopes),
            created_at: key.created_at,
            expires_at: key.expires_at,
            status: view.status.into(),
            revoked_at: key.revoked_at,
            certificates: view.certificates.into_iter().map(Into::into).collect(),
            older_certificates: view.older_certificates,
        }
    }
}

impl From<Listing<KeyView>> for KeyPage {
    fn from(page: Listing<KeyView>) -> Self {
        Self {
            keys: page.items.into_iter().map(Into::into).collect(),
            next_cursor: page.next_cursor,
        }
    }
}

impl From<IssuedKey> for EnrollResponse {
    fn from(issued: IssuedKey) -> Self {
        Self {
            key: issued.key.into(),
            certificate: issued.certificate_pem,
            chain: issued.chain_pem,
            expires_in_seconds: issued.expires_in.whole_seconds(),
        }
    }
}

impl From<TenantRecord> for TenantInfo {
    fn from(tenant: TenantRecord) -> Self {
        Self {
            name: tenant.name.to_string(),
            max_key_days: tenant.max_key_days,
            disabled: tenant.disabled_at.is_some(),
            created_at: tenant.created_at,
        }
    }
}

impl From<UserRecord> for UserInfo {
    fn from(user: UserRecord) -> Self {
        Self {
            user: user.user.to_string(),
            scopes: scope_names(&user.scopes),
            disabled: user.disabled_at.is_some(),
            created_at: user.created_at,
        }
    }
}

/// A token on the wire; `secret` only in the answer that creates it.
pub(super) fn token_info(view: TokenView, secret: Option<Secret<String>>) -> TokenInfo {
    let token = view.token;
    TokenInfo {
        id: token.id,
        token: secret,
        owner: format!("{}@{}", token.owner, token.tenant),
        scopes: scope_names(&token.scopes),
        expires_at: token.expires_at,
        status: view.status.into(),
        key_id: token.key_id.map(|id| id.to_string()),
    }
}

impl From<TokenView> for TokenInfo {
    /// A listed token: never its secret, which is not stored.
    fn from(view: TokenView) -> Self {
        token_info(view, None)
    }
}

impl From<RevocationCount> for BulkRevocationResult {
    fn from(count: RevocationCount) -> Self {
        Self {
            keys: count.keys,
            certificates: count.certificates,
        }
    }
}

impl From<AuditRecord> for AuditEventInfo {
    fn from(event: AuditRecord) -> Self {
        Self {
            id: event.id,
            at: event.at,
            actor: event.actor,
            action: event.action,
            tenant: event.tenant,
            target: event.target,
            detail: event.detail,
        }
    }
}

impl From<Listing<AuditRecord>> for AuditPage {
    fn from(page: Listing<AuditRecord>) -> Self {
        Self {
            events: page.items.into_iter().map(Into::into).collect(),
            next_cursor: page.next_cursor,
        }
    }
}

/// Every item of a list on the wire.
pub(super) fn all<T, W: From<T>>(items: Vec<T>) -> Vec<W> {
    items.into_iter().map(W::from).collect()
}

/// A webhook; `secret` only in the answer that adds it.
pub(super) fn webhook_info(webhook: WebhookRecord, secret: Option<Secret<String>>) -> WebhookInfo {
    WebhookInfo {
        id: webhook.id,
        tenant: webhook.tenant.to_string(),
        url: webhook.url,
        events: webhook
            .events
            .iter()
            .map(|e| e.as_str().to_owned())
            .collect(),
        secret,
        created_by: webhook.created_by,
        created_at: webhook.created_at,
    }
}

impl From<WebhookRecord> for WebhookInfo {
    /// A listed webhook: never its secret.
    fn from(webhook: WebhookRecord) -> Self {
        webhook_info(webhook, None)
    }
}

impl From<DeliveryRecord> for DeliveryInfo {
    fn from(d: DeliveryRecord) -> Self {
        Self {
            id: d.message_id,
            webhook_id: d.webhook_id,
            tenant: d.tenant.to_string(),
            event: d.event.as_str().to_owned(),
            key: d.key_id.to_string(),
            occurred_at: d.occurred_at,
            status: d.status.as_str().to_owned(),
            attempts: d.attempts,
            next_attempt_at: d.next_attempt_at,
            finished_at: d.finished_at,
            last_status: d.last_status,
            last_error: d.last_error,
        }
    }
}
