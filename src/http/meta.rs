//! What anyone may read: the CA chain, liveness, readiness; the metrics (admin or allowed
//! addresses); and the answers for unknown routes.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::extract::ApiQuery;
use super::problem::RequestError;
use super::{ApiError, AppState, CaState};
use crate::api::CaQuery;
use crate::authority::Caller;

/// `GET /v1/ca`: every shared intermediate still published (newest first), then the root,
/// PEM; `?tenant=` gives the chain of that tenant's keys.
#[utoipa::path(
    get, path = "/v1/ca", tag = "ca",
    params(CaQuery),
    responses((status = 200, description = "The intermediates still published (newest first), any cross-certificates, then the roots.", content_type = "application/x-pem-file", body = String)),
)]
pub async fn ca_chain(
    State(authority): State<AppState>,
    ApiQuery(query): ApiQuery<CaQuery>,
) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/x-pem-file")],
        authority.ca_chain_pem(query.tenant.as_ref()),
    )
}

/// `GET /v1/ca/root`: the root that signs new intermediates, PEM: after a root rollover,
/// the new root a relying party may trust instead of the old one.
#[utoipa::path(
    get, path = "/v1/ca/root", tag = "ca",
    responses((status = 200, description = "The root that signs new intermediates.", content_type = "application/x-pem-file", body = String)),
)]
pub async fn active_root(State(authority): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/x-pem-file")],
        authority.active_root_pem(),
    )
}

/// `GET /healthz`: the process is alive.
#[utoipa::path(
    get, path = "/healthz", tag = "meta",
    responses((status = 200, description = "`ok`", content_type = "text/plain", body = String)),
)]
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// `GET /readyz`: the store answers, the issuer is valid, and fresh CRLs are served.
#[utoipa::path(
    get, path = "/readyz", tag = "meta",
    responses((status = 200, description = "`ready`", content_type = "text/plain", body = String)),
)]
pub async fn readyz(State(state): State<CaState>) -> Result<&'static str, ApiError> {
    state.authority.ready().await?;
    state.crls.ready()?;
    Ok("ready\n")
}

/// `GET /metrics`: Prometheus text, for the admin certificate or an allowed address.
#[utoipa::path(
    get, path = "/metrics", tag = "meta",
    responses((status = 200, description = "Prometheus text exposition.", content_type = "text/plain; version=0.0.4", body = String)),
    security(("client_certificate" = []), ()),
)]
pub async fn metrics(
    State(authority): State<AppState>,
    caller: Caller,
) -> Result<impl IntoResponse, ApiError> {
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        authority.scrape_metrics(&caller).await?,
    ))
}

/// Any other path.
pub async fn not_found() -> ApiError {
    RequestError::NoSuchEndpoint.into()
}

/// A known path with the wrong method.
pub async fn method_not_allowed() -> ApiError {
    RequestError::MethodNotAllowed.into()
}
