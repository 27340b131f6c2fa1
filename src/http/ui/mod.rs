//! `/ui/`: the admin console, server-rendered HTML for the administrator's browser.
//!
//! It stands behind the same wall as `/v1/admin` (`super::admin_wall`): only a request with
//! the admin certificate reaches a handler here, and every other gets a 403 page. Handlers
//! are as thin as the API's and call the same authority methods (so every change is decided
//! and audited exactly as its API twin); the pages are askama templates (`templates/ui/`,
//! compiled and type-checked with the crate). Reading needs no JavaScript; the one script,
//! served from here, is a copy button. Every change is shown first and made only by the
//! confirming form, which [`guard`] and [`form::Confirmed`] protect against forgery.

mod changes;
mod form;
mod guard;
mod pages;
mod view;

use askama::Template;
use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;

use super::{ApiError, CaState, RequestError};
use crate::authority::AuthorityError;
use view::{ErrorPage, Frame};

/// Where the console lives.
pub(super) const PREFIX: &str = "/ui";

/// The console's routes, merged into the CA's router behind the admin wall.
pub(super) fn routes() -> Router<CaState> {
    Router::new()
        .route("/ui", get(|| async { Redirect::permanent("/ui/") }))
        .route("/ui/", get(pages::tenants))
        .route("/ui/tenants/{tenant}", get(pages::tenant))
        .route("/ui/keys", get(pages::keys))
        .route("/ui/keys/{key_id}", get(pages::key))
        .route(
            "/ui/keys/{key_id}/revoke",
            get(changes::revoke_key_form).post(changes::revoke_key),
        )
        .route(
            "/ui/revocations",
            get(changes::revoke_many_form).post(changes::revoke_many),
        )
        .route("/ui/tokens/new", get(changes::token_form))
        .route("/ui/tokens", axum::routing::post(changes::create_token))
        .route("/ui/audit", get(pages::audit))
        .route("/ui/static/console.css", get(stylesheet))
        .route("/ui/static/console.js", get(script))
        .layer(middleware::from_fn(guard::guard))
}

/// The wall's answer under `/ui/` to anyone but the administrator: a 403 page, whether the
/// caller sent a key certificate, a password or nothing (the API answers the last 401, for
/// clients that can retry with credentials; a browser without the certificate cannot). A
/// CA that could not check (its store down) says so with its own status.
pub(super) fn refused(error: ApiError) -> Response {
    let mut response = error_page(error);
    if response.status().is_client_error() {
        *response.status_mut() = StatusCode::FORBIDDEN;
    }
    guard::secure(response)
}

/// A page could not be shown, or a change was refused.
#[derive(Debug, thiserror::Error)]
pub enum UiError {
    /// Refused or failed as the API would have answered.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// A change that did not come from this console's own form.
    #[error(transparent)]
    Forged(guard::Forged),
}

impl From<AuthorityError> for UiError {
    fn from(e: AuthorityError) -> Self {
        Self::Api(e.into())
    }
}

impl From<RequestError> for UiError {
    fn from(e: RequestError) -> Self {
        Self::Api(e.into())
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        match self {
            UiError::Api(e) => error_page(e),
            UiError::Forged(forged) => refusal(forged),
        }
    }
}

/// A forged change's answer: 403, saying to reload.
fn refusal(forged: guard::Forged) -> Response {
    let page = ErrorPage {
        status: 403,
        title: "Forbidden".into(),
        code: "form_refused".into(),
        detail: forged.to_string(),
    };
    rendered(StatusCode::FORBIDDEN, &page)
}

/// The API's answer to `error` as a page: the same status and code, the same detail (a
/// generic one for internal failures, whose detail rides to the log as for the API).
fn error_page(error: ApiError) -> Response {
    let told = error.tell();
    let status =
        StatusCode::from_u16(told.problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let page = ErrorPage {
        status: told.problem.status,
        title: told.problem.title,
        code: told.problem.code,
        detail: told.problem.detail,
    };
    let mut response = rendered(status, &page);
    if let Some(failure) = told.failure {
        response.extensions_mut().insert(failure);
    }
    if let Some(after) = told.retry_after
        && let Ok(value) = HeaderValue::from_str(&after.as_secs().max(1).to_string())
    {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// An error page with `status`; if even it cannot be rendered, the status alone.
fn rendered(status: StatusCode, page: &ErrorPage) -> Response {
    match page.render() {
        Ok(body) => (status, Html(body)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "the console's error page did not render");
            status.into_response()
        }
    }
}

/// Renders a page.
fn html<T: Template>(page: &T) -> Result<Html<String>, UiError> {
    page.render()
        .map(Html)
        .map_err(|e| AuthorityError::Internal(format!("a console page did not render: {e}")).into())
}

/// The frame of a page in `section`, with the session's form token.
fn frame(token: guard::FormToken, section: &'static str) -> Frame {
    Frame {
        csrf: token.0,
        section,
    }
}

/// `GET /ui/static/console.css`.
async fn stylesheet() -> Response {
    asset("text/css; charset=utf-8", include_str!("console.css"))
}

/// `GET /ui/static/console.js`.
async fn script() -> Response {
    asset("text/javascript; charset=utf-8", include_str!("console.js"))
}

/// A static file of the console; the browser may keep it for an hour.
fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "private, max-age=3600"),
        ],
        body,
    )
        .into_response()
}
