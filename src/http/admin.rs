//! `/v1/admin/...`: tenants, users, enrollment tokens. Every route needs an administrator
//! certificate: the admin wall (`super::admin_wall`) checks it once and leaves the proof,
//! [`Admin`], which each handler extracts and hands to the authority.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use super::extract::{ApiJson, ApiPath, ApiQuery, TokenId, WebhookId};
use super::views;
use super::{ApiError, AppState};
use crate::api::{
    AuditPage, AuditQuery, BulkRevocation, BulkRevocationResult, DeliveryInfo, NewTenant, NewToken,
    NewUser, NewWebhook, TenantChange, TenantInfo, TokenInfo, TokenQuery, UserChange, UserInfo,
    WebhookInfo, WebhookQuery,
};
use crate::authority::Admin;
use crate::model::{TenantName, UserRef};

/// `POST /v1/admin/tenants`.
pub async fn add_tenant(
    State(authority): State<AppState>,
    admin: Admin,
    ApiJson(request): ApiJson<NewTenant>,
) -> Result<(StatusCode, Json<TenantInfo>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(authority.add_tenant(&admin, request).await?.into()),
    ))
}

/// `GET /v1/admin/tenants`.
pub async fn tenants(
    State(authority): State<AppState>,
    admin: Admin,
) -> Result<Json<Vec<TenantInfo>>, ApiError> {
    Ok(Json(views::all(authority.tenants(&admin).await?)))
}

/// `POST /v1/admin/users`.
pub async fn add_user(
    State(authority): State<AppState>,
    admin: Admin,
    ApiJson(request): ApiJson<NewUser>,
) -> Result<(StatusCode, Json<UserInfo>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(authority.add_user(&admin, request).await?.into()),
    ))
}

/// `GET /v1/admin/tenants/{tenant}/users`.
pub async fn users(
    State(authority): State<AppState>,
    admin: Admin,
    ApiPath(tenant): ApiPath<TenantName>,
) -> Result<Json<Vec<UserInfo>>, ApiError> {
    Ok(Json(views::all(authority.users(&admin, &tenant).await?)))
}

/// `POST /v1/admin/tokens`: the answer holds the token's secret, shown this once.
pub async fn create_token(
    State(authority): State<AppState>,
    admin: Admin,
    ApiJson(request): ApiJson<NewToken>,
) -> Result<(StatusCode, Json<TokenInfo>), ApiError> {
    let (token, secret) = authority.create_token(&admin, request).await?;
    Ok((
        StatusCode::CREATED,
        Json(views::token_info(token, Some(secret))),
    ))
}

/// `GET /v1/admin/tokens`: without secrets.
pub async fn tokens(
    State(authority): State<AppState>,
    admin: Admin,
    ApiQuery(query): ApiQuery<TokenQuery>,
) -> Result<Json<Vec<TokenInfo>>, ApiError> {
    Ok(Json(views::all(
        authority.tokens(&admin, query.tenant.as_ref()).await?,
    )))
}

/// `DELETE /v1/admin/tokens/{id}`: an unused token stops working.
pub async fn revoke_token(
    State(authority): State<AppState>,
    admin: Admin,
    ApiPath(TokenId(id)): ApiPath<TokenId>,
) -> Result<StatusCode, ApiError> {
    authority.revoke_token(&admin, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `PATCH /v1/admin/tenants/{tenant}`: policy, disable, enable.
pub async fn change_tenant(
    State(authority): State<AppState>,
    admin: Admin,
    ApiPath(tenant): ApiPath<TenantName>,
    ApiJson(change): ApiJson<TenantChange>,
) -> Result<Json<TenantInfo>, ApiError> {
    Ok(Json(
        authority
            .change_tenant(&admin, &tenant, change)
            .await?
            .into(),
    ))
}

/// `PATCH /v1/admin/users/{user}`: grants, password, disable, enable.
pub async fn change_user(
    State(authority): State<AppState>,
    admin: Admin,
    ApiPath(user): ApiPath<UserRef>,
    ApiJson(change): ApiJson<UserChange>,
) -> Result<Json<UserInfo>, ApiError> {
    Ok(Json(
        authority.change_user(&admin, &user, change).await?.into(),
    ))
}

/// `POST /v1/admin/revocations`: every key of a tenant, or of one owner in it.
pub async fn revoke_many(
    State(authority): State<AppState>,
    admin: Admin,
    ApiJson(request): ApiJson<BulkRevocation>,
) -> Result<Json<BulkRevocationResult>, ApiError> {
    Ok(Json(authority.revoke_many(&admin, request).await?.into()))
}

/// `GET /v1/admin/audit`: newest first, filtered by tenant, actor, action and time.
pub async fn audit(
    State(authority): State<AppState>,
    admin: Admin,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> Result<Json<AuditPage>, ApiError> {
    Ok(Json(authority.audit_log(&admin, query).await?.into()))
}

/// `POST /v1/admin/webhooks`: the answer holds the webhook's secret, shown this once.
pub async fn add_webhook(
    State(authority): State<AppState>,
    admin: Admin,
    ApiJson(request): ApiJson<NewWebhook>,
) -> Result<(StatusCode, Json<WebhookInfo>), ApiError> {
    let (webhook, secret) = authority.add_webhook(&admin, request).await?;
    Ok((
        StatusCode::CREATED,
        Json(views::webhook_info(webhook, Some(secret))),
    ))
}

/// `GET /v1/admin/webhooks`: without secrets.
pub async fn webhooks(
    State(authority): State<AppState>,
    admin: Admin,
    ApiQuery(query): ApiQuery<WebhookQuery>,
) -> Result<Json<Vec<WebhookInfo>>, ApiError> {
    Ok(Json(views::all(
        authority.webhooks(&admin, query.tenant.as_ref()).await?,
    )))
}

/// `DELETE /v1/admin/webhooks/{id}`: nothing more is sent to it.
pub async fn remove_webhook(
    State(authority): State<AppState>,
    admin: Admin,
    ApiPath(WebhookId(id)): ApiPath<WebhookId>,
) -> Result<StatusCode, ApiError> {
    authority.remove_webhook(&admin, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/admin/webhooks/deliveries`: the newest messages and how each went.
pub async fn webhook_deliveries(
    State(authority): State<AppState>,
    admin: Admin,
    ApiQuery(query): ApiQuery<WebhookQuery>,
) -> Result<Json<Vec<DeliveryInfo>>, ApiError> {
    Ok(Json(views::all(
        authority.webhook_deliveries(&admin, &query).await?,
    )))
}
