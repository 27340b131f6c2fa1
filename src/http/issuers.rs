//! `GET /v1/issuers`: the CA's intermediates, with a long poll that answers when they change
//! (a rotation, a retirement), so that relying services follow every issuer's CRL without a
//! restart.

use std::time::Duration;

use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::crl::{LongPolls, MAX_WAIT_SECONDS};
use super::extract::ApiQuery;
use super::{ApiError, AppState};
use crate::api::{IssuerList, IssuerQuery};
use crate::tls::ConnectionInfo;

/// `GET /v1/issuers`. Needs nothing: what it says is in every certificate chain anyway.
#[utoipa::path(
    get, path = "/v1/issuers", tag = "ca",
    params(IssuerQuery),
    responses(
        (status = 200, description = "Every issuing intermediate, oldest first.", body = IssuerList),
        (status = 304, description = "The long poll ended with no revision above `newer_than`."),
    ),
)]
pub async fn issuers(
    State(authority): State<AppState>,
    Extension(long_polls): Extension<LongPolls>,
    connection: Option<Extension<ConnectionInfo>>,
    ApiQuery(query): ApiQuery<IssuerQuery>,
) -> Result<Response, ApiError> {
    let registry = authority.issuers();
    let mut watch = registry.watch();
    let held = watch.borrow_and_update().clone();
    let set = match query.newer_than {
        Some(n) if held.revision <= n => {
            let wait = Duration::from_secs(query.wait.unwrap_or(0).min(MAX_WAIT_SECONDS));
            // Only a poll that will wait takes a share; past it, "busy" at once.
            let _share = long_polls.share(connection, wait)?;
            let newer = match tokio::time::timeout(wait, watch.wait_for(|s| s.revision > n)).await {
                Ok(Ok(set)) => Some(set.clone()),
                _ => None,
            };
            match newer {
                Some(set) => set,
                None => return Ok(StatusCode::NOT_MODIFIED.into_response()),
            }
        }
        _ => held,
    };
    Ok(Json(super::views::issuer_list(&set)).into_response())
}
