//! Reading what a console page sends: query strings and forms, with refusals shown as pages.
//! A form that changes something is read only through [`Confirmed`], which checks its token.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::UiError;
use super::guard::{self, Forged, FormToken};
use crate::http::RequestError;
use crate::http::extract::{ApiPath, PathParam};

/// A query string of a page (every field optional: a form sends empty fields as `name=`).
pub struct UiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for UiQuery<T> {
    type Rejection = UiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, UiError> {
        let query = parts.uri.query().unwrap_or_default();
        serde_urlencoded::from_str(query)
            .map(Self)
            .map_err(|e| RequestError::Query(format!("this search does not parse: {e}")).into())
    }
}

/// A page's one path parameter, refused as the API refuses it, shown as a page.
pub struct UiPath<T>(pub T);

impl<T: PathParam + Send, S: Send + Sync> FromRequestParts<S> for UiPath<T> {
    type Rejection = UiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, UiError> {
        ApiPath::<T>::from_request_parts(parts, state)
            .await
            .map(|ApiPath(value)| Self(value))
            .map_err(UiError::from)
    }
}

/// A confirmed change: a form posted from a console page of this session (its `csrf` field
/// is the session's token; the origin was checked by [`guard::guard`]), parsed as `T`.
pub struct Confirmed<T>(pub T);

/// The field every changing form carries.
#[derive(serde::Deserialize)]
struct TokenField {
    csrf: String,
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Confirmed<T> {
    type Rejection = UiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, UiError> {
        let session = request
            .extensions()
            .get::<FormToken>()
            .cloned()
            .ok_or(UiError::Forged(Forged::Token))?;
        // The body was read whole by `body::read_whole_body`; this only takes it.
        let body = Bytes::from_request(request, state)
            .await
            .map_err(|e| RequestError::BodyUnreadable(e.body_text()))?;
        let token: TokenField =
            serde_urlencoded::from_bytes(&body).map_err(|_| UiError::Forged(Forged::Token))?;
        if !guard::matches(&session, &token.csrf) {
            return Err(UiError::Forged(Forged::Token));
        }
        serde_urlencoded::from_bytes(&body)
            .map(Self)
            .map_err(|e| RequestError::Query(format!("this form does not parse: {e}")).into())
    }
}

/// A form field left empty is no value.
pub fn given(field: Option<String>) -> Option<String> {
    field.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

/// Parses a filled-in field as a model type, refused with the code the API gives that field.
pub fn parse<T>(field: Option<String>, code: crate::api::Code) -> Result<Option<T>, UiError>
where
    T: std::str::FromStr<Err: std::fmt::Display>,
{
    given(field)
        .map(|v| {
            v.parse::<T>().map_err(|e| {
                UiError::from(RequestError::Value {
                    code,
                    detail: format!("{v:?}: {e}"),
                })
            })
        })
        .transpose()
}

/// The address of the next page of a list at `path`: the same filters (those filled in)
/// and the cursor the authority gave.
pub fn page_link(path: &str, filters: &[(&str, &String)], cursor: &str) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (name, value) in filters {
        if !value.is_empty() {
            query.append_pair(name, value);
        }
    }
    query.append_pair("cursor", cursor);
    format!("{path}?{}", query.finish())
}
