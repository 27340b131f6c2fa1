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
    NewTokenBatch, NewUser, NewWebhook, TenantChange, TenantInfo, TokenInfo, TokenQuery,
    UserChange, UserInfo, WebhookInfo, WebhookQuery,
};
use crate::authority::Admin;
use crate::model::{TenantName, UserRef};

/// `POST /v1/admin/tenants`.
#[utoipa::path(
    post, path = "/v1/admin/tenants", tag = "admin",
    request_body = NewTenant,
    responses((status = 201, description = "The tenant made.", body = TenantInfo)),
    security(("client_certificate" = [])),
)]
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
#[utoipa::path(
    get, path = "/v1/admin/tenants", tag = "admin",
    responses((status = 200, description = "Every tenant.", body = Vec<TenantInfo>)),
    security(("client_certificate" = [])),
)]
pub async fn tenants(
    State(authority): State<AppState>,
    admin: Admin,
) -> Result<Json<Vec<TenantInfo>>, ApiError> {
    Ok(Json(views::all(authority.tenants(&admin).await?)))
}

/// `POST /v1/admin/users`.
#[utoipa::path(
    post, path = "/v1/admin/users", tag = "admin",
    request_body = NewUser,
    responses((status = 201, description = "The user made.", body = UserInfo)),
    security(("client_certificate" = [])),
)]
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
#[utoipa::path(
    get, path = "/v1/admin/tenants/{tenant}/users", tag = "admin",
    params(("tenant" = String, Path, description = "The tenant's name.")),
    responses((status = 200, description = "The tenant's users.", body = Vec<UserInfo>)),
    security(("client_certificate" = [])),
)]
pub async fn users(
    State(authority): State<AppState>,
    admin: Admin,
    ApiPath(tenant): ApiPath<TenantName>,
) -> Result<Json<Vec<UserInfo>>, ApiError> {
    Ok(Json(views::all(authority.users(&admin, &tenant).await?)))
}

/// `POST /v1/admin/tokens`: the answer holds the token's secret, shown this once.
#[utoipa::path(
    post, path = "/v1/admin/tokens", tag = "admin",
    request_body = NewToken,
    responses((status = 201, description = "The token, with its secret (`token`), shown this once.", body = TokenInfo)),
    security(("client_certificate" = [])),
)]
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

/// `POST /v1/admin/tokens/batch`: `count` tokens alike, in one transaction; the answer
/// holds their secrets, shown this once.
#[utoipa::path(
    post, path = "/v1/admin/tokens/batch", tag = "admin",
    request_body = NewTokenBatch,
    responses((status = 201, description = "The tokens, each with its secret (`token`), shown this once.", body = Vec<TokenInfo>)),
    security(("client_certificate" = [])),
)]
pub async fn create_tokens(
    State(authority): State<AppState>,
    admin: Admin,
    ApiJson(request): ApiJson<NewTokenBatch>,
) -> Result<(StatusCode, Json<Vec<TokenInfo>>), ApiError> {
    let (token, count) = request.split();
    let made = authority.create_tokens(&admin, token, count).await?;
    let infos = made
        .into_iter()
        .map(|(token, secret)| views::token_info(token, Some(secret)))
        .collect();
    Ok((StatusCode::CREATED, Json(infos)))
}

/// `GET /v1/admin/tokens`: without secrets.
#[utoipa::path(
    get, path = "/v1/admin/tokens", tag = "admin",
    params(TokenQuery),
    responses((status = 200, description = "Enrollment tokens, without secrets.", body = Vec<TokenInfo>)),
    security(("client_certificate" = [])),
)]
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
#[utoipa::path(
    delete, path = "/v1/admin/tokens/{token_id}", tag = "admin",
    params(("token_id" = i64, Path, description = "The token's id.")),
    responses((status = 204, description = "The token no longer works.")),
    security(("client_certificate" = [])),
)]
pub async fn revoke_token(
    State(authority): State<AppState>,
    admin: Admin,
    ApiPath(TokenId(id)): ApiPath<TokenId>,
) -> Result<StatusCode, ApiError> {
    authority.revoke_token(&admin, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `PATCH /v1/admin/tenants/{tenant}`: policy, disable, enable.
#[utoipa::path(
    patch, path = "/v1/admin/tenants/{tenant}", tag = "admin",
    params(("tenant" = String, Path, description = "The tenant's name.")),
    request_body = TenantChange,
    responses((status = 200, description = "The tenant as changed.", body = TenantInfo)),
    security(("client_certificate" = [])),
)]
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
#[utoipa::path(
    patch, path = "/v1/admin/users/{user}", tag = "admin",
    params(("user" = String, Path, description = "`owner@tenant`.")),
    request_body = UserChange,
    responses((status = 200, description = "The user as changed.", body = UserInfo)),
    security(("client_certificate" = [])),
)]
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
#[utoipa::path(
    post, path = "/v1/admin/revocations", tag = "admin",
    request_body = BulkRevocation,
    responses((status = 200, description = "How many keys and certificates were revoked, in one transaction.", body = BulkRevocationResult)),
    security(("client_certificate" = [])),
)]
pub async fn revoke_many(
    State(authority): State<AppState>,
    admin: Admin,
    ApiJson(request): ApiJson<BulkRevocation>,
) -> Result<Json<BulkRevocationResult>, ApiError> {
    Ok(Json(authority.revoke_many(&admin, request).await?.into()))
}

/// `GET /v1/admin/audit`: newest first, filtered by tenant, actor, action and time.
#[utoipa::path(
    get, path = "/v1/admin/audit", tag = "admin",
    params(AuditQuery),
    responses((status = 200, description = "A page of audit events, newest first.", body = AuditPage)),
    security(("client_certificate" = [])),
)]
pub async fn audit(
    State(authority): State<AppState>,
    admin: Admin,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> Result<Json<AuditPage>, ApiError> {
    Ok(Json(authority.audit_log(&admin, query).await?.into()))
}

/// `POST /v1/admin/webhooks`: the answer holds the webhook's secret, shown this once.
#[utoipa::path(
    post, path = "/v1/admin/webhooks", tag = "admin",
    request_body = NewWebhook,
    responses((status = 201, description = "The webhook, with its signing secret (`secret`), shown this once.", body = WebhookInfo)),
    security(("client_certificate" = [])),
)]
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
#[utoipa::path(
    get, path = "/v1/admin/webhooks", tag = "admin",
    params(WebhookQuery),
    responses((status = 200, description = "The webhooks, without their secrets.", body = Vec<WebhookInfo>)),
    security(("client_certificate" = [])),
)]
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
#[utoipa::path(
    delete, path = "/v1/admin/webhooks/{webhook_id}", tag = "admin",
    params(("webhook_id" = i64, Path, description = "The webhook's id.")),
    responses((status = 204, description = "Nothing more is sent to it.")),
    security(("client_certificate" = [])),
)]
pub async fn remove_webhook(
    State(authority): State<AppState>,
    admin: Admin,
    ApiPath(WebhookId(id)): ApiPath<WebhookId>,
) -> Result<StatusCode, ApiError> {
    authority.remove_webhook(&admin, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/admin/webhooks/deliveries`: the newest messages and how each went.
#[utoipa::path(
    get, path = "/v1/admin/webhooks/deliveries", tag = "admin",
    params(WebhookQuery),
    responses((status = 200, description = "The newest messages, newest first, and how each delivery went.", body = Vec<DeliveryInfo>)),
    security(("client_certificate" = [])),
)]
pub async fn webhook_deliveries(
    State(authority): State<AppState>,
    admin: Admin,
    ApiQuery(query): ApiQuery<WebhookQuery>,
) -> Result<Json<Vec<DeliveryInfo>>, ApiError> {
    Ok(Json(views::all(
        authority.webhook_deliveries(&admin, &query).await?,
    )))
}
