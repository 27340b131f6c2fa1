//! The one table from errors to HTTP status codes. Bodies are RFC 9457 problem documents
//! with a stable [`Code`]; internal errors get a generic body, and the detail travels in a
//! response extension to [`log_failures`], which logs it.

use std::sync::Arc;

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::api::{Code, Problem};
use crate::authority::AuthorityError;
use crate::publisher::CrlProblem;

/// An error on its way to the client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Refused or failed by the authority.
    #[error(transparent)]
    Authority(#[from] AuthorityError),
    /// The request could not be read, or names nothing the API has.
    #[error(transparent)]
    Request(#[from] RequestError),
    /// No CRL fit to serve, or the CA is not ready for want of one.
    #[error(transparent)]
    Crl(#[from] CrlProblem),
}

/// Why the HTTP edge refused a request before the authority saw it.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The query string does not parse as the endpoint's query.
    #[error("{0}")]
    Query(String),
    /// A path parameter does not parse.
    #[error("{0}")]
    Path(String),
    /// The body is not the JSON the endpoint takes.
    #[error("{0}")]
    Json(String),
    /// A field or path parameter holds a well-formed value that its model type refuses
    /// (a scope with a wildcard, a tenant name with capitals): answered with the field's own
    /// code, as `http::extract`'s table says.
    #[error("{detail}")]
    Value {
        /// The field's code, such as [`Code::InvalidScope`].
        code: Code,
        /// The model type's reason.
        detail: String,
    },
    /// The body is not declared as `application/json`.
    #[error("{0}")]
    NotJson(String),
    /// The `Authorization` header cannot be used.
    #[error("unusable Authorization header: {0}")]
    Authorization(&'static str),
    /// The body is over [`super::MAX_BODY_BYTES`].
    #[error("request bodies are limited to {} bytes", super::MAX_BODY_BYTES)]
    BodyTooLarge,
    /// The body could not be read.
    #[error("the request body could not be read: {0}")]
    BodyUnreadable(String),
    /// The body did not arrive within [`super::BODY_TIMEOUT`].
    #[error("the request body did not arrive within {} s", super::BODY_TIMEOUT.as_secs())]
    BodyTimeout,
    /// No route matches the path.
    #[error("no such endpoint")]
    NoSuchEndpoint,
    /// The path exists but not with that method.
    #[error("this endpoint does not take that method")]
    MethodNotAllowed,
    /// No CRL of the issuing intermediate has been published yet.
    #[error("no CRL has been published yet")]
    NoCrl,
    /// No CRL of the root is stored.
    #[error(
        "no root CRL is available: the root key is kept offline and no CRL it signed is \
         stored; see the CA's log"
    )]
    NoRootCrl,
    /// No delta CRL from the base asked for.
    #[error("{0}; fetch the whole CRL")]
    NoDelta(crate::publisher::DeltaUnavailable),
}

impl RequestError {
    /// The stable code a client sees.
    pub fn code(&self) -> Code {
        match self {
            Self::Query(_) | Self::Path(_) | Self::BodyUnreadable(_) => Code::InvalidRequest,
            Self::Json(_) => Code::InvalidJson,
            Self::Value { code, .. } => *code,
            Self::NotJson(_) => Code::UnsupportedMediaType,
            Self::Authorization(_) => Code::Unauthenticated,
            Self::BodyTooLarge => Code::BodyTooLarge,
            Self::BodyTimeout => Code::RequestTimeout,
            Self::NoSuchEndpoint => Code::NotFound,
            Self::MethodNotAllowed => Code::MethodNotAllowed,
            Self::NoCrl | Self::NoRootCrl => Code::CrlUnavailable,
            Self::NoDelta(_) => Code::DeltaUnavailable,
        }
    }
}

impl ApiError {
    /// The stable code a client sees.
    pub fn code(&self) -> Code {
        match self {
            Self::Authority(e) => e.code(),
            Self::Request(e) => e.code(),
            Self::Crl(CrlProblem::Expired { .. }) => Code::CrlExpired,
            Self::Crl(CrlProblem::NotReady(_)) => Code::NotReady,
        }
    }
}

/// The one table: every stable code travels with exactly one status.
pub fn status(code: Code) -> StatusCode {
    use Code as C;
    match code {
        C::InvalidRequest | C::InvalidJson => StatusCode::BAD_REQUEST,
        C::Unauthenticated | C::InvalidCredentials | C::InvalidToken | C::InvalidCertificate => {
            StatusCode::UNAUTHORIZED
        }
        C::AdminRequired
        | C::MetricsForbidden
        | C::Disabled
        | C::ScopeNotGranted
        | C::NotKeyOwner
        | C::KeyNotActive
        | C::CertificateNotForKey
        | C::KeyRevoked
        | C::KeyExpired
        | C::CertificateRevoked
        | C::CertificateExpired => StatusCode::FORBIDDEN,
        C::NotFound | C::DeltaUnavailable => StatusCode::NOT_FOUND,
        C::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        C::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
        C::PublicKeyInUse | C::AlreadyExists => StatusCode::CONFLICT,
        C::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        C::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        C::TtlOutOfRange
        | C::CsrMalformed
        | C::CsrSignatureInvalid
        | C::WeakSignature
        | C::UnsupportedKey
        | C::WeakKey
        | C::CsrExtensionForbidden
        | C::InvalidScope
        | C::InvalidName
        | C::InvalidCharacters
        | C::InvalidReason
        | C::InvalidWebhookUrl
        | C::WeakPassword
        | C::TokenNotRevocable => StatusCode::UNPROCESSABLE_ENTITY,
        C::TooManyAttempts | C::RenewalTooSoon => StatusCode::TOO_MANY_REQUESTS,
        C::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        C::CrlUnavailable | C::CrlExpired | C::NotReady | C::Busy | C::StoreUnavailable => {
            StatusCode::SERVICE_UNAVAILABLE
        }
    }
}

/// A failure whose detail is for the CA's log, not the client: [`ApiError::into_response`]
/// attaches it to the response and [`log_failures`] logs it, so that the conversion stays
/// pure (as in axum's error-handling example).
#[derive(Debug, Clone)]
pub struct Failure(pub Arc<AuthorityError>);

/// Middleware: logs the [`Failure`] a response carries, once, at error.
pub async fn log_failures(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    if let Some(Failure(e)) = response.extensions().get::<Failure>() {
        tracing::error!(error = %e, source = ?std::error::Error::source(e.as_ref()), "request failed");
    }
    response
}

/// What a client is told of an error (the problem document), and what only the log sees.
pub(crate) struct Told {
    /// The body: code, status and a detail fit for the client.
    pub(crate) problem: Problem,
    /// The detail for the log, when the client gets a generic one.
    pub(crate) failure: Option<Failure>,
    /// When to try again, for a throttled request.
    pub(crate) retry_after: Option<std::time::Duration>,
}

impl ApiError {
    /// Splits the error into what the client may read and what goes to the log: the one
    /// place that decides it, for the API's problem documents and the console's pages.
    pub(crate) fn tell(self) -> Told {
        let code = self.code();
        let status = status(code);
        let retry_after = match &self {
            ApiError::Authority(
                AuthorityError::TooManyAttempts { retry_after }
                | AuthorityError::RenewalTooSoon { retry_after, .. },
            ) => Some(*retry_after),
            _ => None,
        };
        let (detail, failure) = match self {
            ApiError::Authority(e @ AuthorityError::Unavailable(_)) => (
                "the CA's store is unavailable; nothing was changed, try again".to_owned(),
                Some(e),
            ),
            ApiError::Authority(
                e @ (AuthorityError::Internal(_)
                | AuthorityError::Store(_)
                | AuthorityError::Signer(_)),
            ) => (
                "internal error; the CA's log has the details".to_owned(),
                Some(e),
            ),
            other => (other.to_string(), None),
        };
        Told {
            problem: Problem::new(status, code.as_str(), detail),
            failure: failure.map(|e| Failure(Arc::new(e))),
            retry_after,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let Told {
            problem,
            failure,
            retry_after,
        } = self.tell();
        let status =
            StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut response = (status, body).into_response();
        if let Some(failure) = failure {
            response.extensions_mut().insert(failure);
        }
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(retry_after) = retry_after
            && let Ok(value) = HeaderValue::from_str(&retry_after.as_secs().max(1).to_string())
        {
            headers.insert(header::RETRY_AFTER, value);
        }
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"latchkey\", charset=\"UTF-8\""),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The README's "The HTTP API" section lists every code the CA answers; the list and
    /// the enum must be the same set, so that the catalogue never drifts from the docs.
    #[test]
    fn readme_lists_exactly_the_codes() {
        let readme = include_str!("../../README.md");
        let start = readme
            .find("Error codes:")
            .expect("README has an \"Error codes:\" paragraph");
        let rest = &readme[start..];
        let end = rest
            .find("A relying service built with the library")
            .expect("the CA's list ends where the library's codes begin");
        let mut listed: Vec<&str> = rest[..end]
            .split('`')
            .skip(1)
            .step_by(2)
            .filter(|s| s.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
            .collect();
        listed.sort_unstable();
        listed.dedup();
        let mut all: Vec<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
        all.sort_unstable();
        assert_eq!(listed, all);
    }

    #[test]
    fn every_code_parses_back_and_has_a_client_or_server_error_status() {
        for &code in Code::ALL {
            assert_eq!(code.as_str().parse::<Code>(), Ok(code));
            let status = status(code);
            assert!(
                status.is_client_error() || status.is_server_error(),
                "{code}"
            );
        }
        assert!("no_such_code".parse::<Code>().is_err());
    }

    #[test]
    fn internal_detail_stays_out_of_the_body_and_rides_to_the_log() {
        let response =
            ApiError::Authority(AuthorityError::Internal("secret detail".into())).into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let failure = response.extensions().get::<Failure>().expect("a Failure");
        assert!(failure.0.to_string().contains("secret detail"));
        let refused = ApiError::Authority(AuthorityError::AdminRequired).into_response();
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);
        assert!(refused.extensions().get::<Failure>().is_none());
    }
}
