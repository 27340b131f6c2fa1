//! `/v1/keys`: get a key, list keys, show a key.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use super::extract::{ApiJson, ApiPath, ApiQuery, OptionalJson};
use super::{ApiError, AppState};
use crate::api::{
    EnrollRequest, EnrollResponse, KeyInfo, KeyPage, KeyQuery, RenewRequest, RevokeRequest,
};
use crate::authority::Caller;

/// `POST /v1/keys`. Needs: Basic (user with the scopes granted) or Bearer (enrollment token).
pub async fn enroll(
    State(authority): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<EnrollRequest>,
) -> Result<(StatusCode, Json<EnrollResponse>), ApiError> {
    let issued = authority.enroll(&caller, request).await?;
    Ok((StatusCode::CREATED, Json(issued.into())))
}

/// `GET /v1/keys`. Needs: a key certificate or Basic (own keys), or an admin certificate.
pub async fn list(
    State(authority): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<KeyQuery>,
) -> Result<Json<KeyPage>, ApiError> {
    Ok(Json(authority.list_keys(&caller, query).await?.into()))
}

/// `GET /v1/keys/{id}`. Needs: the key's owner, or an admin certificate.
pub async fn show(
    State(authority): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<KeyInfo>, ApiError> {
    Ok(Json(authority.show_key(&caller, &id).await?.into()))
}

/// `DELETE /v1/keys/{id}` with an optional `{"reason": ...}`. Needs: the key's owner (its
/// certificate or password), or an admin certificate.
pub async fn revoke(
    State(authority): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    OptionalJson(request): OptionalJson<RevokeRequest>,
) -> Result<Json<KeyInfo>, ApiError> {
    Ok(Json(
        authority.revoke_key(&caller, &id, request).await?.into(),
    ))
}

/// `POST /v1/keys/{id}/renew` with an optional `{"csr": ...}`. Needs: a current certificate
/// of that key, over mTLS.
pub async fn renew(
    State(authority): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    OptionalJson(request): OptionalJson<RenewRequest>,
) -> Result<(StatusCode, Json<EnrollResponse>), ApiError> {
    let issued = authority.renew(&caller, &id, request).await?;
    Ok((StatusCode::CREATED, Json(issued.into())))
}
