//! `/v1/keys`: get a key, list keys, show a key.
//!
//! Each handler names its proof first: [`Reader`] or [`KeyHolder`], extracted (that is,
//! authenticated) before the path, query or body is parsed, so that a stranger gets 401
//! whatever it sent, and a caller 404 for a malformed key id as for an unknown one.
//! Enrollment is the exception, and says why.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use super::extract::{ApiJson, ApiPath, ApiQuery, OptionalJson};
use super::{ApiError, AppState};
use crate::api::{
    EnrollRequest, EnrollResponse, KeyInfo, KeyPage, KeyQuery, RenewRequest, RevokeRequest,
};
use crate::authority::{Caller, KeyHolder, Reader};
use crate::model::KeyId;

/// `POST /v1/keys`. Needs: Basic (user with the scopes granted) or Bearer (enrollment token).
///
/// The credential is checked after the body is read, not by an extractor before it: a body
/// that cannot be read is refused without an argon2id verification and without counting
/// against the password throttle, as it always was. The check is still one step, at the
/// edge: the [`crate::authority::Enroller`] proof it gives is what `enroll` takes.
#[utoipa::path(
    post, path = "/v1/keys", tag = "keys",
    request_body = EnrollRequest,
    responses((status = 201, description = "The key, its first certificate and the chain.", body = EnrollResponse)),
    security(("password" = []), ("enrollment_token" = [])),
)]
pub async fn enroll(
    State(authority): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<EnrollRequest>,
) -> Result<(StatusCode, Json<EnrollResponse>), ApiError> {
    let enroller = authority.authenticate_enroller(&caller).await?;
    let issued = authority.enroll(&enroller, request).await?;
    Ok((StatusCode::CREATED, Json(issued.into())))
}

/// `GET /v1/keys`. Needs: a key certificate or Basic (own keys), or an admin certificate.
#[utoipa::path(
    get, path = "/v1/keys", tag = "keys",
    params(KeyQuery),
    responses((status = 200, description = "A page of keys, newest first.", body = KeyPage)),
    security(("client_certificate" = []), ("password" = [])),
)]
pub async fn list(
    State(authority): State<AppState>,
    reader: Reader,
    ApiQuery(query): ApiQuery<KeyQuery>,
) -> Result<Json<KeyPage>, ApiError> {
    Ok(Json(authority.list_keys(&reader, query).await?.into()))
}

/// `GET /v1/keys/{key_id}`. Needs: the key's owner, or an admin certificate.
#[utoipa::path(
    get, path = "/v1/keys/{key_id}", tag = "keys",
    params(("key_id" = String, Path, description = "The key's id: 24 lowercase hex digits.")),
    responses((status = 200, description = "The key and its certificates.", body = KeyInfo)),
    security(("client_certificate" = []), ("password" = [])),
)]
pub async fn show(
    State(authority): State<AppState>,
    reader: Reader,
    ApiPath(id): ApiPath<KeyId>,
) -> Result<Json<KeyInfo>, ApiError> {
    Ok(Json(authority.show_key(&reader, &id).await?.into()))
}

/// `DELETE /v1/keys/{key_id}` with an optional `{"reason": ...}`. Needs: the key's owner (its
/// certificate or password), or an admin certificate.
#[utoipa::path(
    delete, path = "/v1/keys/{key_id}", tag = "keys",
    params(("key_id" = String, Path, description = "The key's id: 24 lowercase hex digits.")),
    request_body(content = Option<RevokeRequest>, description = "Optional: why."),
    responses((status = 200, description = "The revoked key; revoking it again answers the same.", body = KeyInfo)),
    security(("client_certificate" = []), ("password" = [])),
)]
pub async fn revoke(
    State(authority): State<AppState>,
    reader: Reader,
    ApiPath(id): ApiPath<KeyId>,
    OptionalJson(request): OptionalJson<RevokeRequest>,
) -> Result<Json<KeyInfo>, ApiError> {
    Ok(Json(
        authority.revoke_key(&reader, &id, request).await?.into(),
    ))
}

/// `POST /v1/keys/{key_id}/renew` with an optional `{"csr": ...}`. Needs: a current
/// certificate of that key, over mTLS.
#[utoipa::path(
    post, path = "/v1/keys/{key_id}/renew", tag = "keys",
    params(("key_id" = String, Path, description = "The key's id: 24 lowercase hex digits.")),
    request_body(content = Option<RenewRequest>, description = "Optional: a CSR to rekey."),
    responses((status = 201, description = "A new certificate of the key, as enrollment answers.", body = EnrollResponse)),
    security(("client_certificate" = [])),
)]
pub async fn renew(
    State(authority): State<AppState>,
    holder: KeyHolder,
    ApiPath(id): ApiPath<KeyId>,
    OptionalJson(request): OptionalJson<RenewRequest>,
) -> Result<(StatusCode, Json<EnrollResponse>), ApiError> {
    let issued = authority.renew(&holder, &id, request).await?;
    Ok((StatusCode::CREATED, Json(issued.into())))
}
