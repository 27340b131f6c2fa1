//! The HTTP edge: parse, call the authority, render. Handlers are a few lines each and
//! never touch the store or the signer.

mod admin;
mod body;
mod crl;
mod extract;
mod issuers;
mod keys;
mod meta;
mod problem;
mod ui;
mod views;

use std::sync::Arc;

use axum::extract::{FromRef, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post};
use axum::{RequestExt, Router};

use crate::authority::Authority;
use crate::per_source::PerSourceSlots;
use crate::publisher::PublishedCrls;
pub use body::{BODY_TIMEOUT, MAX_BODY_BYTES};
pub use problem::{ApiError, RequestError, status};

/// The authority, as the handlers that call it take it from [`CaState`].
pub type AppState = Arc<Authority>;

/// The state the CA's router holds: the authority, which decides, and the CRLs its
/// publisher serves. Each handler takes the part it needs (axum's `FromRef`).
#[derive(Debug, Clone)]
pub struct CaState {
    /// The authority.
    pub authority: Arc<Authority>,
    /// The CRLs being served.
    pub crls: PublishedCrls,
}

impl FromRef<CaState> for Arc<Authority> {
    fn from_ref(state: &CaState) -> Self {
        state.authority.clone()
    }
}

impl FromRef<CaState> for PublishedCrls {
    fn from_ref(state: &CaState) -> Self {
        state.crls.clone()
    }
}

/// What the edge lets one client hold.
#[derive(Debug, Clone, Copy)]
pub struct EdgeLimits {
    /// CRL long polls one source network may hold open at once (0: no limit).
    pub long_polls_per_source: usize,
}

impl Default for EdgeLimits {
    fn default() -> Self {
        Self {
            long_polls_per_source: DEFAULT_LONG_POLLS_PER_SOURCE,
        }
    }
}

/// The default of [`EdgeLimits::long_polls_per_source`].
pub const DEFAULT_LONG_POLLS_PER_SOURCE: usize = 64;

/// The CA's HTTP API: the authority's routes, and the CRLs `crls` serves.
pub fn router(authority: Arc<Authority>, crls: PublishedCrls, limits: EdgeLimits) -> Router {
    let admin = Router::new()
        .route(
            "/v1/admin/tenants",
            post(admin::add_tenant).get(admin::tenants),
        )
        .route("/v1/admin/tenants/{tenant}", patch(admin::change_tenant))
        .route("/v1/admin/tenants/{tenant}/users", get(admin::users))
        .route("/v1/admin/users", post(admin::add_user))
        .route("/v1/admin/users/{user}", patch(admin::change_user))
        .route(
            "/v1/admin/tokens",
            post(admin::create_token).get(admin::tokens),
        )
        .route("/v1/admin/tokens/{token_id}", delete(admin::revoke_token))
        .route("/v1/admin/revocations", post(admin::revoke_many))
        .route("/v1/admin/audit", get(admin::audit));
    Router::new()
        .route("/v1/keys", post(keys::enroll).get(keys::list))
        .route("/v1/keys/{key_id}", get(keys::show).delete(keys::revoke))
        .route("/v1/keys/{key_id}/renew", post(keys::renew))
        .route("/v1/ca", get(meta::ca_chain))
        .route("/v1/issuers", get(issuers::issuers))
        .route("/v1/issuers/{id}/crl", get(crl::issuer_crl))
        .route("/v1/crl", get(crl::crl))
        .route("/v1/crl/root", get(crl::root_crl))
        .route("/v1/roots/{key_id}/crl", get(crl::root_crl_by_key_id))
        .route("/v1/crl/bundle.pem", get(crl::crl_bundle))
        .route("/v1/ca/root", get(meta::active_root))
        .merge(admin)
        .merge(ui::routes())
        .route("/healthz", get(meta::healthz))
        .route("/readyz", get(meta::readyz))
        .route("/metrics", get(meta::metrics))
        .fallback(meta::not_found)
        .method_not_allowed_fallback(meta::method_not_allowed)
        // The admin wall stands before routing and before the admin routes' extractors: a
        // caller without an admin certificate learns nothing under /v1/admin, not which
        // paths or methods exist, nor whether its body would have parsed.
        .layer(middleware::from_fn_with_state(
            authority.clone(),
            admin_wall,
        ))
        .layer(middleware::from_fn(body::read_whole_body))
        .layer(axum::Extension(crl::LongPolls(PerSourceSlots::new(
            limits.long_polls_per_source,
        ))))
        .layer(middleware::from_fn(problem::log_failures))
        .with_state(CaState { authority, crls })
}

/// The CRL routes alone, for the plain-HTTP listener (`serve --crl-http-listen`): CRLs are
/// signed, so they need no TLS, and nothing else is served without it.
pub fn crl_router(crls: PublishedCrls, limits: EdgeLimits) -> Router {
    Router::new()
        .route("/v1/crl", get(crl::crl))
        .route("/v1/issuers/{id}/crl", get(crl::issuer_crl))
        .route("/v1/crl/root", get(crl::root_crl))
        .route("/v1/roots/{key_id}/crl", get(crl::root_crl_by_key_id))
        .route("/v1/crl/bundle.pem", get(crl::crl_bundle))
        .fallback(meta::not_found)
        .method_not_allowed_fallback(meta::method_not_allowed)
        .layer(middleware::from_fn(crl::plain_connection))
        .layer(axum::Extension(crl::LongPolls(PerSourceSlots::new(
            limits.long_polls_per_source,
        ))))
        .layer(middleware::from_fn(problem::log_failures))
        .with_state(crls)
}

/// Lets only callers with an administrator certificate anywhere under `/v1/admin` and the
/// console's `/ui`, and puts the proof ([`crate::authority::Admin`]) into the request's
/// extensions: the admin handlers take it from there, so the certificate is parsed and
/// looked up once per request. The API refuses with a problem document, the console with
/// a 403 page.
async fn admin_wall(
    State(authority): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    let under = |prefix: &str| {
        path.strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    };
    let console = under(ui::PREFIX);
    if console || under(ADMIN_PREFIX) {
        let admin = match request.extract_parts::<crate::authority::Caller>().await {
            Ok(caller) => authority
                .authenticate_admin(&caller)
                .await
                .map_err(ApiError::from),
            Err(refused) => Err(refused),
        };
        match admin {
            Ok(admin) => {
                request.extensions_mut().insert(admin);
            }
            Err(refused) if console => return ui::refused(refused),
            Err(refused) => return refused.into_response(),
        }
    }
    next.run(request).await
}

/// Where the admin API lives.
const ADMIN_PREFIX: &str = "/v1/admin";
