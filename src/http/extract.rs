//! Reading requests: JSON bodies with problem-document rejections, and the caller's
//! credentials.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::extract::{Path, Query};
use axum::http::header;
use axum::http::request::Parts;
use base64::Engine;

use super::problem::{ApiError, RequestError};
use crate::authority::{Admin, AuthorityError, Caller, Credential};
use crate::tls::ConnectionInfo;

/// A JSON body whose rejections are problem documents.
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_problem(rejection)),
        }
    }
}

/// An optional JSON body: empty means `T::default()`; anything else must be JSON.
pub struct OptionalJson<T>(pub T);

impl<T, S> FromRequest<S> for OptionalJson<T>
where
    T: serde::de::DeserializeOwned + Default,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let has_body = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .is_some_and(|len| len.as_bytes() != b"0")
            || req.headers().contains_key(header::TRANSFER_ENCODING);
        if !has_body {
            return Ok(Self(T::default()));
        }
        ApiJson::<T>::from_request(req, state)
            .await
            .map(|ApiJson(v)| Self(v))
    }
}

/// A query string whose rejections are problem documents.
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(value)) => Ok(Self(value)),
            Err(rejection) => Err(RequestError::Query(rejection.body_text()).into()),
        }
    }
}

/// A path parameter whose rejections are problem documents.
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: serde::de::DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(Self(value)),
            Err(rejection) => Err(RequestError::Path(rejection.body_text()).into()),
        }
    }
}

fn json_problem(rejection: JsonRejection) -> ApiError {
    match &rejection {
        JsonRejection::MissingJsonContentType(_) => RequestError::NotJson(rejection.body_text()),
        _ => RequestError::Json(rejection.body_text()),
    }
    .into()
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let connection = parts.extensions.get::<ConnectionInfo>();
        let certificate = connection.and_then(|c| c.certificate.clone());
        let source = connection.map(|c| c.peer.ip());
        let authorization = match parts.headers.get(header::AUTHORIZATION) {
            None => None,
            Some(value) => Some(parse_authorization(value.as_bytes())?),
        };
        Ok(Caller {
            authorization,
            certificate,
            source,
        })
    }
}

/// The admin wall's proof. Only the wall puts one into a request, so a handler that takes
/// it runs behind the wall or not at all: outside it, this fails closed, as the bug it is.
impl<S: Send + Sync> FromRequestParts<S> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts.extensions.remove::<Admin>().ok_or_else(|| {
            AuthorityError::Internal("an admin handler was routed around the admin wall".into())
                .into()
        })
    }
}

fn parse_authorization(value: &[u8]) -> Result<Credential, ApiError> {
    let bad = |detail: &'static str| ApiError::from(RequestError::Authorization(detail));
    let value = std::str::from_utf8(value).map_err(|_| bad("not UTF-8"))?;
    let (scheme, rest) = value.split_once(' ').ok_or_else(|| bad("no scheme"))?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .map_err(|_| bad("invalid base64"))?;
        let decoded = String::from_utf8(decoded).map_err(|_| bad("not UTF-8"))?;
        let (user, password) = decoded
            .split_once(':')
            .ok_or_else(|| bad("expected user@tenant:password"))?;
        Ok(Credential::Password {
            user: user.to_owned(),
            password: password.to_owned(),
        })
    } else if scheme.eq_ignore_ascii_case("bearer") {
        Ok(Credential::Token(rest.to_owned()))
    } else {
        Err(bad("use Basic or Bearer"))
    }
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;
    use axum::response::IntoResponse;

    use super::*;

    /// A handler that needs the proof, reached without the wall, answers 500 rather than
    /// running: the proof cannot come from anywhere but the wall.
    #[tokio::test]
    async fn admin_without_the_wall_fails_closed() {
        let (mut parts, ()) = axum::http::Request::new(()).into_parts();
        let Err(rejection) = Admin::from_request_parts(&mut parts, &()).await else {
            panic!("an Admin came out of a request the wall never saw");
        };
        assert_eq!(
            rejection.into_response().status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
}
