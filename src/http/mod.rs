//! The HTTP edge: parse, call the authority, render. Handlers are a few lines each and
//! never touch the store or the signer. Every route is in one table, `routes()`, from which
//! both the router and the OpenAPI document (`GET /v1/openapi.json`) are made; its doc
//! comment says how to add one.

mod admin;
mod body;
mod crl;
mod extract;
mod issuers;
mod keys;
mod meta;
mod openapi;
mod problem;
mod schema;
mod ui;
mod views;

use std::sync::Arc;

use axum::extract::{FromRef, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{RequestExt, Router};
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::{
    AuditQuery, BulkRevocation, CaQuery, Code, CrlQuery, DeltaQuery, EnrollRequest, IssuerQuery,
    KeyQuery, NewTenant, NewToken, NewTokenBatch, NewUser, NewWebhook, RenewRequest, RevokeRequest,
    TenantChange, TokenQuery, UserChange, WebhookQuery,
};
use crate::authority::Authority;
use crate::per_source::PerSourceSlots;
use crate::publisher::PublishedCrls;
pub use body::{BODY_TIMEOUT, MAX_BODY_BYTES};
use openapi::{Problems, with_problems};
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
    let (routes, openapi) = routes().split_for_parts();
    // Only fallbacks and layers from here on: a route added here would be missing from the
    // document, and from the test comparing the two. Routes go into `routes()`.
    routes
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
        .layer(axum::Extension(openapi::Document::new(&openapi)))
        .layer(middleware::from_fn(problem::log_failures))
        .with_state(CaState { authority, crls })
}

/// The CRL routes alone, for the plain-HTTP listener (`serve --crl-http-listen`): CRLs are
/// signed, so they need no TLS, and nothing else is served without it.
pub fn crl_router(crls: PublishedCrls, limits: EdgeLimits) -> Router {
    Router::from(crl_routes())
        .fallback(meta::not_found)
        .method_not_allowed_fallback(meta::method_not_allowed)
        .layer(middleware::from_fn(crl::plain_connection))
        .layer(axum::Extension(crl::LongPolls(PerSourceSlots::new(
            limits.long_polls_per_source,
        ))))
        .layer(middleware::from_fn(problem::log_failures))
        .with_state(crls)
}

/// Every route of the API with its OpenAPI description: the one table that both the router
/// and `GET /v1/openapi.json` are made from.
///
/// A new route is two steps. Annotate its handler with `#[utoipa::path(...)]`: method, path,
/// tag, `params(...)` (a query type, or a tuple per path parameter), `request_body`, the
/// success answers, and `security(...)` (who may call it: `client_certificate`, `password`,
/// `enrollment_token`; none for a public route), as `keys.rs` does. Then add one line here,
/// `.routes(with_problems(routes!(module::handler), problems))`, where `problems` names what
/// the handler refuses: its proof (`P::reader()`, `P::admin()`, … or `P::public()`), the
/// parts it parses (`.json::<T>()`, `.query::<T>()`, `.path::<T>()`), and its authority
/// call's own refusals (`.and(&[…])`). A route added any other way (axum's `.route`) is
/// missing from the document, and `tests::the_document_names_exactly_the_routers_routes`
/// fails. HTML pages (`/ui/`) are not API: merge them into this table as a plain axum router
/// (`.merge(OpenApiRouter::from(ui::router()))`), undescribed; that test leaves `/ui` out.
fn routes() -> OpenApiRouter<CaState> {
    use crate::model::{KeyId, TenantName, UserRef};
    use Code as C;
    use Problems as P;
    use extract::{TokenId, WebhookId};
    const CSR: &[Code] = &[
        C::CsrMalformed,
        C::CsrSignatureInvalid,
        C::WeakSignature,
        C::UnsupportedKey,
        C::WeakKey,
        C::CsrExtensionForbidden,
        C::PublicKeyInUse,
    ];
    // Signing needs a valid intermediate (`not_ready`); a value drawn again after every
    // retry (`busy`).
    const SIGNING: &[Code] = &[C::NotReady, C::Busy];
    OpenApiRouter::with_openapi(openapi::Frame::openapi())
        .routes(with_problems(
            routes!(keys::enroll),
            P::enroller()
                .json::<EnrollRequest>()
                .and(&[C::ScopeNotGranted, C::TtlOutOfRange, C::InvalidCharacters])
                .and(CSR)
                .and(SIGNING),
        ))
        .routes(with_problems(
            routes!(keys::list),
            // An administrator's `tenant` filter naming no tenant: `not_found`.
            P::reader()
                .query::<KeyQuery>()
                .and(&[C::AdminRequired, C::NotFound]),
        ))
        .routes(with_problems(
            routes!(keys::show),
            P::reader().path::<KeyId>().and(&[C::NotFound]),
        ))
        .routes(with_problems(
            routes!(keys::revoke),
            P::reader()
                .path::<KeyId>()
                .json::<RevokeRequest>()
                .and(&[C::NotFound, C::NotKeyOwner]),
        ))
        .routes(with_problems(
            routes!(keys::renew),
            P::key_holder()
                .path::<KeyId>()
                .json::<RenewRequest>()
                .and(&[
                    C::NotFound,
                    C::KeyNotActive,
                    C::KeyRevoked,
                    C::KeyExpired,
                    C::CertificateRevoked,
                    C::CertificateExpired,
                    C::RenewalTooSoon,
                    C::Disabled,
                    C::ScopeNotGranted,
                ])
                .and(CSR)
                .and(SIGNING),
        ))
        .routes(with_problems(
            routes!(meta::ca_chain),
            P::public().query::<CaQuery>(),
        ))
        .routes(with_problems(routes!(meta::active_root), P::public()))
        .routes(with_problems(
            routes!(issuers::issuers),
            P::public().query::<IssuerQuery>().and(&[C::Busy]),
        ))
        .merge(crl_routes())
        .routes(with_problems(
            routes!(admin::add_tenant),
            P::admin()
                .json::<NewTenant>()
                .and(&[C::TtlOutOfRange, C::AlreadyExists])
                .and(SIGNING),
        ))
        .routes(with_problems(routes!(admin::tenants), P::admin()))
        .routes(with_problems(
            routes!(admin::change_tenant),
            P::admin()
                .path::<TenantName>()
                .json::<TenantChange>()
                .and(&[C::TtlOutOfRange, C::NotFound])
                .and(SIGNING),
        ))
        .routes(with_problems(
            routes!(admin::users),
            P::admin().path::<TenantName>().and(&[C::NotFound]),
        ))
        .routes(with_problems(
            routes!(admin::add_user),
            P::admin().json::<NewUser>().and(&[
                C::InvalidScope,
                C::NotFound,
                C::WeakPassword,
                C::AlreadyExists,
                C::Busy,
            ]),
        ))
        .routes(with_problems(
            routes!(admin::change_user),
            P::admin().path::<UserRef>().json::<UserChange>().and(&[
                C::InvalidScope,
                C::NotFound,
                C::WeakPassword,
                C::Busy,
            ]),
        ))
        .routes(with_problems(
            routes!(admin::create_token),
            P::admin()
                .json::<NewToken>()
                .and(&[C::InvalidScope, C::TtlOutOfRange, C::NotFound]),
        ))
        .routes(with_problems(
            routes!(admin::create_tokens),
            P::admin().json::<NewTokenBatch>().and(&[
                C::InvalidRequest,
                C::InvalidScope,
                C::TtlOutOfRange,
                C::NotFound,
            ]),
        ))
        .routes(with_problems(
            routes!(admin::tokens),
            P::admin().query::<TokenQuery>().and(&[C::NotFound]),
        ))
        .routes(with_problems(
            routes!(admin::revoke_token),
            P::admin()
                .path::<TokenId>()
                .and(&[C::NotFound, C::TokenNotRevocable]),
        ))
        .routes(with_problems(
            routes!(admin::revoke_many),
            P::admin().json::<BulkRevocation>().and(&[C::NotFound]),
        ))
        .routes(with_problems(
            routes!(admin::audit),
            P::admin().query::<AuditQuery>(),
        ))
        .routes(with_problems(
            routes!(admin::add_webhook),
            P::admin()
                .json::<NewWebhook>()
                .and(&[C::InvalidWebhookUrl, C::NotFound]),
        ))
        .routes(with_problems(
            routes!(admin::webhooks),
            P::admin().query::<WebhookQuery>().and(&[C::NotFound]),
        ))
        .routes(with_problems(
            routes!(admin::webhook_deliveries),
            P::admin().query::<WebhookQuery>().and(&[C::NotFound]),
        ))
        .routes(with_problems(
            routes!(admin::remove_webhook),
            P::admin().path::<WebhookId>().and(&[C::NotFound]),
        ))
        .routes(with_problems(routes!(meta::healthz), P::public()))
        .routes(with_problems(
            routes!(meta::readyz),
            P::public().and(&[C::NotReady, C::StoreUnavailable, C::CrlExpired]),
        ))
        .routes(with_problems(
            routes!(meta::metrics),
            P::public().and(&[
                C::Unauthenticated,
                C::InvalidCertificate,
                C::MetricsForbidden,
                C::StoreUnavailable,
            ]),
        ))
        .routes(with_problems(routes!(openapi::document), P::public()))
        // The console's HTML pages: not API, so undescribed (see above).
        .merge(OpenApiRouter::from(ui::routes()))
}

/// The CRL routes, served by both routers.
fn crl_routes<S>() -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    PublishedCrls: FromRef<S>,
{
    use Code as C;
    use Problems as P;
    let issuer_crl =
        P::public()
            .query::<CrlQuery>()
            .and(&[C::CrlUnavailable, C::CrlExpired, C::Busy]);
    OpenApiRouter::new()
        .routes(with_problems(routes!(crl::crl), issuer_crl.clone()))
        .routes(with_problems(
            routes!(crl::issuer_crl),
            issuer_crl.and(&[C::NotFound]),
        ))
        .routes(with_problems(
            routes!(crl::latest_crl),
            P::public().query::<CrlQuery>().and(&[
                C::NotFound,
                C::CrlUnavailable,
                C::CrlExpired,
                C::Busy,
            ]),
        ))
        .routes(with_problems(
            routes!(crl::numbered_crl),
            P::public().and(&[C::NotFound, C::CrlExpired]),
        ))
        .routes(with_problems(
            routes!(crl::delta_crl),
            P::public().and(&[C::NotFound, C::DeltaUnavailable, C::StoreUnavailable]),
        ))
        .routes(with_problems(
            routes!(crl::default_delta),
            P::public().query::<DeltaQuery>().and(&[
                C::CrlUnavailable,
                C::CrlExpired,
                C::DeltaUnavailable,
                C::StoreUnavailable,
            ]),
        ))
        .routes(with_problems(
            routes!(crl::root_crl),
            P::public().and(&[C::CrlUnavailable, C::CrlExpired]),
        ))
        .routes(with_problems(
            routes!(crl::root_crl_by_key_id),
            P::public().and(&[C::NotFound, C::CrlExpired]),
        ))
        .routes(with_problems(
            routes!(crl::crl_bundle),
            P::public().and(&[C::CrlUnavailable, C::CrlExpired]),
        ))
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// Pages under this prefix are HTML for people, not API: not in the document.
    const NOT_API: &str = "/ui";

    /// A router's routes, each path with a method it takes, read from its `Debug` output:
    /// axum lists its routes nowhere else. A route served by a whole service (not a method
    /// router) is listed with the method `*`.
    fn listed<S>(router: &Router<S>) -> BTreeSet<(String, String)> {
        let debug = format!("{router:?}");
        let paths_at = debug.find("paths: {").expect("axum's Debug lists paths") + 8;
        // Paths hold `{`/`}` but never `"`: the section ends at the first `"}`.
        let section = &debug[paths_at..];
        let section = &section[..section.find("\"}").expect("end of paths")];
        let mut paths = std::collections::HashMap::new();
        for entry in section.split("RouteId(").skip(1) {
            let (number, path) = entry.split_once("): \"").expect("RouteId(n): \"path\"");
            paths.insert(
                number.to_owned(),
                path.split('"').next().unwrap_or_default(),
            );
        }
        let routes = debug[..paths_at].split_once("routes: {").expect("routes").1;
        let mut listed = BTreeSet::new();
        for entry in routes.split("RouteId(").skip(1) {
            let (number, endpoint) = entry.split_once("): ").expect("RouteId(n): endpoint");
            let path = paths[number].to_owned();
            if !endpoint.starts_with("MethodRouter(") {
                listed.insert((path, "*".to_owned()));
                continue;
            }
            let methods = endpoint.split_once(", fallback:").expect("methods").0;
            for field in methods
                .trim_start_matches("MethodRouter(MethodRouter { ")
                .split(", ")
            {
                let (method, handler) = field.split_once(": ").expect("method: handler");
                if handler != "None" {
                    listed.insert((path.clone(), method.to_owned()));
                }
            }
        }
        listed
    }

    /// Each path of the document with each method it describes.
    fn documented(openapi: &utoipa::openapi::OpenApi) -> BTreeSet<(String, String)> {
        let json = serde_json::to_value(openapi).unwrap();
        let mut documented = BTreeSet::new();
        for (path, item) in json["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                documented.insert((path.clone(), method.clone()));
            }
        }
        documented
    }

    #[test]
    fn the_document_names_exactly_the_routers_routes() {
        let (router, openapi) = routes().split_for_parts();
        let listed: BTreeSet<_> = listed(&router)
            .into_iter()
            .filter(|(path, _)| !path.starts_with(NOT_API))
            .collect();
        assert!(
            listed.contains(&("/v1/keys".to_owned(), "post".to_owned())),
            "axum's Debug output is not read right: {listed:?}"
        );
        let documented = documented(&openapi);
        let undocumented: Vec<_> = listed.difference(&documented).collect();
        let unrouted: Vec<_> = documented.difference(&listed).collect();
        assert!(
            undocumented.is_empty() && unrouted.is_empty(),
            "routed but not in the document: {undocumented:?}; in the document but not routed: {unrouted:?}"
        );
        // The plain-HTTP listener serves only documented routes.
        let crl = listed_crl();
        assert!(crl.len() >= 5 && crl.is_subset(&listed), "{crl:?}");
    }

    fn listed_crl() -> BTreeSet<(String, String)> {
        listed(&Router::<PublishedCrls>::from(crl_routes()))
    }
}
