//! The console's changes: revoke a key, revoke every key of a tenant or owner, make an
//! enrollment token. Each is two steps: a `GET` page that shows what will happen (for a
//! bulk revocation, how many keys and certificates, counted by the store) and changes
//! nothing, and the `POST` of its confirming form, which calls the authority method the
//! API handler calls, so the change is checked and audited as its API twin.

use axum::Extension;
use axum::extract::State;
use axum::response::{Html, Redirect};
use serde::Deserialize;

use super::form::{Confirmed, UiPath, UiQuery, given, parse};
use super::guard::FormToken;
use super::view::{ConfirmPage, DonePage, TokenMadePage, reason_names, when};
use super::{UiError, frame, html};
use crate::api::{BulkRevocation, Code, NewToken, RevokeRequest};
use crate::authority::Admin;
use crate::http::{AppState, RequestError};
use crate::model::{KeyId, OwnerName, RevocationReason, ScopeSet, Span, TenantName, UserRef};

/// `GET /ui/keys/{id}/revoke`: what revoking the key does, and the form that does it.
pub async fn revoke_key_form(
    State(authority): State<AppState>,
    admin: Admin,
    Extension(token): Extension<FormToken>,
    UiPath(id): UiPath<KeyId>,
) -> Result<Html<String>, UiError> {
    let view = authority.show_key(&admin.reader(), &id).await?;
    let key = &view.key;
    let live = view
        .certificates
        .iter()
        .filter(|c| c.revoked_at.is_none())
        .count();
    html(&ConfirmPage {
        frame: frame(token, "keys"),
        title: format!("Revoke key {id}"),
        facts: vec![
            format!(
                "Key \u{201c}{}\u{201d} of {}@{}, scopes {}.",
                key.name,
                key.owner,
                key.tenant,
                key.scopes.to_stored()
            ),
            format!(
                "Its certificates not yet revoked ({live} listed) are revoked with it and appear in the next CRL, within about a second."
            ),
            "A revoked key cannot be used, renewed or restored: its holder must enroll a new one."
                .to_owned(),
        ],
        action: format!("/ui/keys/{id}/revoke"),
        hidden: Vec::new(),
        reasons: reason_names(),
        button: "Revoke this key".into(),
        back: format!("/ui/keys/{id}"),
        nothing_to_do: key.revoked_at.is_some(),
    })
}

/// The confirming form of a key's revocation.
#[derive(Deserialize)]
pub struct RevokeForm {
    reason: RevocationReason,
}

/// `POST /ui/keys/{id}/revoke`: `DELETE /v1/keys/{id}` with the reason, then the key's page.
pub async fn revoke_key(
    State(authority): State<AppState>,
    admin: Admin,
    UiPath(id): UiPath<KeyId>,
    Confirmed(form): Confirmed<RevokeForm>,
) -> Result<Redirect, UiError> {
    let request = RevokeRequest {
        reason: Some(form.reason),
    };
    authority.revoke_key(&admin.reader(), &id, request).await?;
    Ok(Redirect::to(&format!("/ui/keys/{id}")))
}

/// Which keys a bulk revocation takes: a tenant's, or one owner's in it.
#[derive(Deserialize)]
pub struct BulkScope {
    tenant: Option<String>,
    owner: Option<String>,
}

impl BulkScope {
    fn parse(self) -> Result<(TenantName, Option<OwnerName>), UiError> {
        let tenant = parse::<TenantName>(self.tenant, Code::InvalidName)?
            .ok_or_else(|| RequestError::Query("name the tenant whose keys to revoke".into()))?;
        Ok((tenant, parse::<OwnerName>(self.owner, Code::InvalidName)?))
    }
}

/// `GET /ui/revocations?tenant=T[&owner=O]`: how many keys and certificates revoking them
/// all would revoke (counted by the store now), and the form that does it.
pub async fn revoke_many_form(
    State(authority): State<AppState>,
    admin: Admin,
    Extension(token): Extension<FormToken>,
    UiQuery(scope): UiQuery<BulkScope>,
) -> Result<Html<String>, UiError> {
    let (tenant, owner) = scope.parse()?;
    let count = authority
        .revocation_preview(&admin, &tenant, owner.as_ref())
        .await?;
    let whose = match &owner {
        Some(owner) => format!("{owner}@{tenant}"),
        None => format!("every owner of tenant {tenant}"),
    };
    let mut hidden = vec![("tenant".to_owned(), tenant.to_string())];
    if let Some(owner) = &owner {
        hidden.push(("owner".to_owned(), owner.to_string()));
    }
    let back = match &owner {
        Some(_) => format!("/ui/tenants/{tenant}"),
        None => "/ui/".to_owned(),
    };
    html(&ConfirmPage {
        frame: frame(token, "tenants"),
        title: format!("Revoke every key of {whose}"),
        facts: vec![
            format!(
                "This revokes {} keys and {} certificates, in one transaction.",
                count.keys, count.certificates
            ),
            "Every one of them appears in the next CRL, within about a second; none can be restored.".to_owned(),
            "Keys made after this page was shown are revoked too: the count is taken again when you confirm.".to_owned(),
        ],
        action: "/ui/revocations".into(),
        hidden,
        reasons: reason_names(),
        button: format!("Revoke {} keys", count.keys),
        back,
        nothing_to_do: count.keys == 0 && count.certificates == 0,
    })
}

/// The confirming form of a bulk revocation.
#[derive(Deserialize)]
pub struct BulkForm {
    tenant: Option<String>,
    owner: Option<String>,
    reason: RevocationReason,
}

/// `POST /ui/revocations`: `POST /v1/admin/revocations`, then what it revoked.
pub async fn revoke_many(
    State(authority): State<AppState>,
    admin: Admin,
    Extension(token): Extension<FormToken>,
    Confirmed(form): Confirmed<BulkForm>,
) -> Result<Html<String>, UiError> {
    let scope = BulkScope {
        tenant: form.tenant,
        owner: form.owner,
    };
    let (tenant, owner) = scope.parse()?;
    let request = BulkRevocation {
        tenant: tenant.clone(),
        owner,
        reason: Some(form.reason),
    };
    let count = authority.revoke_many(&admin, request).await?;
    html(&DonePage {
        frame: frame(token, "tenants"),
        title: "Keys revoked".into(),
        facts: vec![format!(
            "Revoked {} keys and {} certificates ({}).",
            count.keys,
            count.certificates,
            form.reason.as_str()
        )],
        back: format!("/ui/keys?tenant={tenant}&status=revoked"),
    })
}

/// An enrollment token to make: `owner` and `tenant` (or `owner@tenant` in `owner`), its
/// scopes (spaces or commas between them) and how long it may wait to be used.
#[derive(Deserialize)]
pub struct TokenForm {
    tenant: Option<String>,
    owner: Option<String>,
    scopes: Option<String>,
    ttl: Option<String>,
}

impl TokenForm {
    fn parse(self) -> Result<NewToken, UiError> {
        let owner = given(self.owner).unwrap_or_default();
        let user = match given(self.tenant) {
            Some(tenant) if !owner.contains('@') => format!("{owner}@{tenant}"),
            _ => owner,
        };
        let owner = parse::<UserRef>(Some(user), Code::InvalidName)?
            .ok_or_else(|| RequestError::Query("name the token's owner".into()))?;
        let scopes =
            ScopeSet::parse_list(&given(self.scopes).unwrap_or_default()).map_err(|e| {
                RequestError::Value {
                    code: Code::InvalidScope,
                    detail: e.to_string(),
                }
            })?;
        let ttl = parse::<Span>(self.ttl, Code::InvalidRequest)?;
        Ok(NewToken {
            owner,
            scopes,
            ttl_seconds: ttl.map(Span::seconds),
        })
    }
}

/// `GET /ui/tokens/new?...`: the token that would be made, and the form that makes it.
pub async fn token_form(
    _admin: Admin,
    Extension(token): Extension<FormToken>,
    UiQuery(form): UiQuery<TokenForm>,
) -> Result<Html<String>, UiError> {
    let request = form.parse()?;
    let ttl = request
        .ttl_seconds
        .map_or_else(|| "the default hour".to_owned(), |s| format!("{s} s"));
    let mut hidden = vec![
        ("owner".to_owned(), request.owner.to_string()),
        ("scopes".to_owned(), request.scopes.to_stored()),
    ];
    if let Some(seconds) = request.ttl_seconds {
        hidden.push(("ttl".to_owned(), format!("{seconds}s")));
    }
    let back = format!("/ui/tenants/{}", request.owner.tenant);
    html(&ConfirmPage {
        frame: frame(token, "tenants"),
        title: format!("New enrollment token for {}", request.owner),
        facts: vec![
            format!(
                "It enrolls one key for {} with the scopes {}.",
                request.owner,
                request.scopes.to_stored()
            ),
            format!("It can be used once, within {ttl}; it is shown once, after you confirm."),
        ],
        action: "/ui/tokens".into(),
        hidden,
        reasons: Vec::new(),
        button: "Make the token".into(),
        back,
        nothing_to_do: false,
    })
}

/// `POST /ui/tokens`: `POST /v1/admin/tokens`, then the secret, shown this once.
pub async fn create_token(
    State(authority): State<AppState>,
    admin: Admin,
    Extension(token): Extension<FormToken>,
    Confirmed(form): Confirmed<TokenForm>,
) -> Result<Html<String>, UiError> {
    let request = form.parse()?;
    let (made, secret) = authority.create_token(&admin, request).await?;
    html(&TokenMadePage {
        frame: frame(token, "tenants"),
        owner: made.token.owner.to_string(),
        tenant: made.token.tenant.to_string(),
        scopes: made.token.scopes.to_stored(),
        expires_at: when(made.token.expires_at),
        secret: secret.into_inner(),
    })
}
