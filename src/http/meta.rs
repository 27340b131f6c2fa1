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
pub async fn active_root(State(authority): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/x-pem-file")],
        authority.active_root_pem(),
    )
}

/// `GET /healthz`: the process is alive.
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// `GET /readyz`: the store answers, the issuer is valid, and fresh CRLs are served.
pub async fn readyz(State(state): State<CaState>) -> Result<&'static str, ApiError> {
    state.authority.ready().await?;
    state.crls.ready()?;
    Ok("ready\n")
}

/// `GET /metrics`: Prometheus text, for the admin certificate or an allowed address.
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
