//! Reading requests: JSON bodies, query strings and path parameters parsed into the API's
//! typed requests (model newtypes included) at the edge, with problem-document rejections;
//! and the caller's credentials.
//!
//! A value a model type refuses is answered with that field's own stable code (a bad scope
//! is `invalid_scope`, a bad tenant name `invalid_name`), the same code the authority gave
//! when it parsed these strings itself; everything else that does not parse is
//! `invalid_json` (a body) or `invalid_request` (a query or path). Which field answers which
//! code is [the table](#the-table) at the end of this file, and nowhere else.

use axum::body::Bytes;
use axum::extract::{FromRef, FromRequest, FromRequestParts, RawPathParams, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use base64::Engine;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::AppState;
use super::problem::{ApiError, RequestError};
use crate::api::{
    AuditQuery, BulkRevocation, CaQuery, Code, CrlQuery, DeltaQuery, EnrollRequest, IssuerQuery,
    KeyQuery, NewTenant, NewToken, NewTokenBatch, NewUser, NewWebhook, RenewRequest, RevokeRequest,
    TenantChange, TokenQuery, UserChange, WebhookQuery,
};
use crate::authority::{Admin, AuthorityError, Caller, Credential, KeyHolder, Reader};
use crate::model::{KeyId, OwnerName, RevocationReason, ScopeSet, Span, TenantName, UserRef};
use crate::tls::ConnectionInfo;

/// A JSON body whose rejections are problem documents.
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: WireRequest,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if !declares_json(req.headers()) {
            return Err(RequestError::NotJson(
                "Expected request with `Content-Type: application/json`".into(),
            )
            .into());
        }
        // The body was read whole by `body::read_whole_body`; this only takes it.
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| RequestError::BodyUnreadable(e.body_text()))?;
        parse_json(&bytes).map(Self)
    }
}

/// `application/json`, or any `application/…+json`, parameters aside: what axum's `Json`
/// accepts, so that the answer to a body without it stays what it was.
fn declares_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    let suffix = subtype
        .rsplit_once('+')
        .map_or(subtype, |(_, suffix)| suffix);
    kind.eq_ignore_ascii_case("application") && suffix.eq_ignore_ascii_case("json")
}

/// Parses a body as `T`; a refusal names the field that failed.
fn parse_json<T: WireRequest>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = match serde_path_to_error::deserialize::<_, T>(&mut deserializer) {
        Ok(value) => value,
        Err(e) => {
            use serde_json::error::Category;
            return Err(match e.inner().classify() {
                Category::Data => match top_field(e.path()).and_then(|field| {
                    refusal::<T>(field, || {
                        serde_json::from_slice::<Value>(bytes)
                            .ok()
                            .and_then(|body| body.get(field).cloned())
                    })
                }) {
                    Some(refused) => refused,
                    None => RequestError::Json(format!(
                        "Failed to deserialize the JSON body into the target type: {e}"
                    ))
                    .into(),
                },
                Category::Syntax | Category::Eof | Category::Io => RequestError::Json(format!(
                    "Failed to parse the request body as JSON: {}",
                    e.inner()
                ))
                .into(),
            });
        }
    };
    deserializer.end().map_err(|e| {
        ApiError::from(RequestError::Json(format!(
            "Failed to parse the request body as JSON: {e}"
        )))
    })?;
    Ok(value)
}

/// The top-level field a serde path starts at (`scopes` for `scopes[2]`).
fn top_field(path: &serde_path_to_error::Path) -> Option<&str> {
    match path.iter().next()? {
        serde_path_to_error::Segment::Map { key } => Some(key),
        _ => None,
    }
}

/// An optional JSON body: empty means `T::default()`; anything else must be JSON.
pub struct OptionalJson<T>(pub T);

impl<T, S> FromRequest<S> for OptionalJson<T>
where
    T: WireRequest + Default,
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
    T: WireRequest,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        let deserializer =
            serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        match serde_path_to_error::deserialize::<_, T>(deserializer) {
            Ok(value) => Ok(Self(value)),
            Err(e) => {
                let refused = top_field(e.path()).and_then(|field| {
                    refusal::<T>(field, || {
                        form_urlencoded::parse(query.as_bytes())
                            .find(|(name, _)| name == field)
                            .map(|(_, value)| Value::String(value.into_owned()))
                    })
                });
                Err(refused.unwrap_or_else(|| {
                    RequestError::Query(format!("Failed to deserialize query string: {e}")).into()
                }))
            }
        }
    }
}

/// A route's one path parameter, parsed into `T`. A value `T` refuses answers as
/// [`PathParam::REFUSAL`] says.
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: PathParam + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|rejection| RequestError::Path(rejection.body_text()))?;
        let mut params = params.iter();
        let (Some((_, raw)), None) = (params.next(), params.next()) else {
            return Err(AuthorityError::Internal(
                "ApiPath is for routes with exactly one path parameter".into(),
            )
            .into());
        };
        raw.parse::<T>()
            .map(Self)
            .map_err(|e| T::REFUSAL.answer(e.to_string()))
    }
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

/// Authenticates a reader of the key inventory (`authority::Reader`): as a handler's first
/// extractor, before its path, query or body is parsed.
impl<S> FromRequestParts<S> for Reader
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        Ok(AppState::from_ref(state)
            .authenticate_reader(&caller)
            .await?)
    }
}

/// Authenticates the holder of a key certificate (`authority::KeyHolder`), as [`Reader`]'s
/// extractor does.
impl<S> FromRequestParts<S> for KeyHolder
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        Ok(AppState::from_ref(state)
            .authenticate_key_holder(&caller)
            .await?)
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

// # The table
//
// Which field or path parameter answers which code when its value is refused. A field has
// one meaning wherever it appears (`tenant` is always a tenant's name), except `owner`,
// which is `owner@tenant` where a user is meant; each request type lists its own.

/// How the edge answers a value a model type refuses.
#[derive(Debug, Clone, Copy)]
pub enum Refusal {
    /// With this code, and the model type's own reason as the detail.
    Invalid(Code),
    /// Exactly as an object that does not exist is answered: a malformed id says no more
    /// than an unknown one does.
    NotFound(&'static str),
}

impl Refusal {
    /// The code this refusal answers with.
    pub fn code(self) -> Code {
        match self {
            Refusal::Invalid(code) => code,
            Refusal::NotFound(_) => Code::NotFound,
        }
    }

    fn answer(self, detail: String) -> ApiError {
        match self {
            Refusal::Invalid(code) => RequestError::Value { code, detail }.into(),
            Refusal::NotFound(what) => AuthorityError::NotFound(what).into(),
        }
    }
}

/// A field parsed into a model type: what a refusal answers, and the check that tells a
/// refused value (a well-formed string, or list of strings, that the type does not accept)
/// from a malformed request (a number where a string belongs: `invalid_json`). The check
/// gives the type's reason for refusing, the detail the authority used to give.
#[derive(Clone, Copy)]
pub struct Rule {
    refusal: Refusal,
    refused: fn(&Value) -> Option<String>,
}

/// The reason `T` refuses a JSON string, if it is one and `T` refuses it.
fn refuses_text<T: std::str::FromStr>(value: &Value) -> Option<String>
where
    T::Err: std::fmt::Display,
{
    value.as_str()?.parse::<T>().err().map(|e| e.to_string())
}

/// Why a string is not an RFC 3339 time, if it is a string and is not one.
fn refuses_time(value: &Value) -> Option<String> {
    let text = value.as_str()?;
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .err()
        .map(|_| format!("{text:?} is not an RFC 3339 time such as 2026-12-01T00:00:00Z"))
}

/// The reason a JSON list of strings is not a [`ScopeSet`], if it is such a list.
fn refuses_scopes(value: &Value) -> Option<String> {
    let items: Vec<String> = serde_json::from_value(value.clone()).ok()?;
    ScopeSet::parse(items).err().map(|e| e.to_string())
}

const SCOPES: Rule = Rule {
    refusal: Refusal::Invalid(Code::InvalidScope),
    refused: refuses_scopes,
};
const TENANT: Rule = Rule {
    refusal: Refusal::Invalid(Code::InvalidName),
    refused: refuses_text::<TenantName>,
};
const OWNER: Rule = Rule {
    refusal: Refusal::Invalid(Code::InvalidName),
    refused: refuses_text::<OwnerName>,
};
const USER: Rule = Rule {
    refusal: Refusal::Invalid(Code::InvalidName),
    refused: refuses_text::<UserRef>,
};
const TIME: Rule = Rule {
    refusal: Refusal::Invalid(Code::InvalidRequest),
    refused: refuses_time,
};
const SPAN: Rule = Rule {
    refusal: Refusal::Invalid(Code::InvalidRequest),
    refused: refuses_text::<Span>,
};
/// The reason a JSON list of strings is not a set of webhook events, if it is such a list.
fn refuses_events(value: &Value) -> Option<String> {
    let items: Vec<String> = serde_json::from_value(value.clone()).ok()?;
    items
        .iter()
        .find_map(|item| item.parse::<crate::model::WebhookEvent>().err())
        .map(|e| e.to_string())
}

const EVENTS: Rule = Rule {
    refusal: Refusal::Invalid(Code::InvalidRequest),
    refused: refuses_events,
};
const REASON: Rule = Rule {
    refusal: Refusal::Invalid(Code::InvalidReason),
    refused: refuses_text::<RevocationReason>,
};

/// A request body or query string of the API: its fields that parse into model types.
pub trait WireRequest: DeserializeOwned {
    /// Each such field's name and [`Rule`].
    const FIELDS: &'static [(&'static str, Rule)];
}

/// The codes a refused field of `T` answers with (for the OpenAPI document).
pub fn field_codes<T: WireRequest>() -> Vec<Code> {
    T::FIELDS
        .iter()
        .map(|(_, rule)| rule.refusal.code())
        .collect()
}

/// The answer to a serde failure in `field` of a `T`, when that field has a [`Rule`] and its
/// value (`value()`, fetched only then) is one the rule's type refuses; `None` otherwise.
fn refusal<T: WireRequest>(field: &str, value: impl FnOnce() -> Option<Value>) -> Option<ApiError> {
    let (_, rule) = T::FIELDS.iter().find(|(name, _)| *name == field)?;
    let detail = (rule.refused)(&value()?)?;
    Some(rule.refusal.answer(detail))
}

macro_rules! wire_requests {
    ($($request:ty => [$($field:ident: $rule:expr),* $(,)?],)*) => {
        $(impl WireRequest for $request {
            const FIELDS: &'static [(&'static str, Rule)] = &[$((stringify!($field), $rule)),*];
        })*
    };
}

wire_requests! {
    EnrollRequest => [scopes: SCOPES],
    RenewRequest => [],
    RevokeRequest => [reason: REASON],
    KeyQuery => [tenant: TENANT, owner: OWNER, expiring_within: SPAN],
    NewTenant => [name: TENANT],
    TenantChange => [],
    NewUser => [user: USER, scopes: SCOPES],
    UserChange => [scopes: SCOPES],
    NewToken => [owner: USER, scopes: SCOPES],
    NewTokenBatch => [owner: USER, scopes: SCOPES],
    TokenQuery => [tenant: TENANT],
    BulkRevocation => [tenant: TENANT, owner: OWNER, reason: REASON],
    AuditQuery => [since: TIME, until: TIME],
    CrlQuery => [],
    DeltaQuery => [],
    IssuerQuery => [],
    CaQuery => [tenant: TENANT],
    NewWebhook => [tenant: TENANT, events: EVENTS],
    WebhookQuery => [tenant: TENANT],
}

/// A path parameter: parsed with `FromStr`, refused as [`PathParam::REFUSAL`] says.
pub trait PathParam: std::str::FromStr<Err: std::fmt::Display> {
    /// The answer to a value that does not parse.
    const REFUSAL: Refusal;
}

impl PathParam for KeyId {
    const REFUSAL: Refusal = Refusal::NotFound("key");
}

impl PathParam for TenantName {
    const REFUSAL: Refusal = Refusal::Invalid(Code::InvalidName);
}

impl PathParam for UserRef {
    const REFUSAL: Refusal = Refusal::Invalid(Code::InvalidName);
}

impl PathParam for TokenId {
    const REFUSAL: Refusal = Refusal::NotFound("token");
}

/// An enrollment token's id in a path (`/v1/admin/tokens/{token_id}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenId(pub i64);

impl std::str::FromStr for TokenId {
    type Err = std::num::ParseIntError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(Self)
    }
}

/// A webhook's id in a path (`/v1/admin/webhooks/{webhook_id}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebhookId(pub i64);

impl std::str::FromStr for WebhookId {
    type Err = std::num::ParseIntError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(Self)
    }
}

impl PathParam for WebhookId {
    const REFUSAL: Refusal = Refusal::NotFound("webhook");
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;
    use axum::response::IntoResponse;

    use super::*;

    fn code_of<T: WireRequest + std::fmt::Debug>(body: serde_json::Value) -> Code {
        parse_json::<T>(&serde_json::to_vec(&body).unwrap())
            .expect_err("refused")
            .code()
    }

    /// A value its model type refuses answers with the field's code and the type's reason;
    /// a value of the wrong JSON type, an unknown field or broken JSON is `invalid_json`.
    #[test]
    fn a_refused_value_answers_with_its_field_code_and_anything_else_is_invalid_json() {
        let enroll = |scopes: serde_json::Value| serde_json::json!({ "csr": "c", "name": "k", "scopes": scopes });
        let wildcard = parse_json::<EnrollRequest>(
            &serde_json::to_vec(&enroll(serde_json::json!(["read:*"]))).unwrap(),
        )
        .unwrap_err();
        assert_eq!(wildcard.code(), Code::InvalidScope);
        assert_eq!(
            wildcard.to_string(),
            "read:*"
                .parse::<crate::model::Scope>()
                .unwrap_err()
                .to_string()
        );
        let twice = enroll(serde_json::json!(["a:b", "a:b"]));
        assert_eq!(code_of::<EnrollRequest>(twice), Code::InvalidScope);
        for malformed in [
            enroll(serde_json::json!("read:metrics")),
            enroll(serde_json::json!([42])),
            serde_json::json!({ "csr": "c", "name": "k", "scopes": [], "tenant": "Not A Name" }),
            serde_json::json!({ "csr": "c", "name": 7, "scopes": [] }),
        ] {
            assert_eq!(code_of::<EnrollRequest>(malformed), Code::InvalidJson);
        }
        assert_eq!(
            parse_json::<EnrollRequest>(b"{").unwrap_err().code(),
            Code::InvalidJson
        );
        assert_eq!(
            code_of::<NewToken>(serde_json::json!({ "owner": "alice", "scopes": ["a:b"] })),
            Code::InvalidName
        );
        assert_eq!(
            code_of::<NewTenant>(serde_json::json!({ "name": "Bad Name" })),
            Code::InvalidName
        );
        assert_eq!(
            code_of::<RevokeRequest>(serde_json::json!({ "reason": "because" })),
            Code::InvalidReason
        );
        assert_eq!(
            code_of::<RevokeRequest>(serde_json::json!({ "reason": 1 })),
            Code::InvalidJson
        );
        assert_eq!(
            code_of::<BulkRevocation>(serde_json::json!({ "tenant": "acme", "owner": "a@b" })),
            Code::InvalidName
        );
    }

    async fn query<T: WireRequest>(uri: &str) -> Result<T, ApiError> {
        let (mut parts, ()) = axum::http::Request::get(uri).body(()).unwrap().into_parts();
        ApiQuery::<T>::from_request_parts(&mut parts, &())
            .await
            .map(|ApiQuery(q)| q)
    }

    #[tokio::test]
    async fn a_query_names_the_refused_field_or_is_an_invalid_request() {
        let q: KeyQuery = query("/v1/keys?tenant=acme&owner=bob").await.unwrap();
        assert_eq!(q.tenant.unwrap().as_str(), "acme");
        let code = |r: Result<KeyQuery, ApiError>| r.err().map(|e| e.code());
        assert_eq!(
            code(query("/v1/keys?tenant=Acme").await),
            Some(Code::InvalidName)
        );
        assert_eq!(
            code(query("/v1/keys?owner=a%40b").await),
            Some(Code::InvalidName)
        );
        let audit: AuditQuery = query("/v1/admin/audit?since=2026-12-01T00%3A00%3A00Z")
            .await
            .unwrap();
        assert_eq!(audit.since.unwrap().unix_timestamp(), 1_796_083_200);
        let Err(refused) = query::<AuditQuery>("/v1/admin/audit?until=yesterday").await else {
            panic!("yesterday is not an RFC 3339 time");
        };
        assert_eq!(refused.code(), Code::InvalidRequest);
        assert!(refused.to_string().contains("RFC 3339"), "{refused}");
        let q: KeyQuery = query("/v1/keys?expiring_within=14d&status=active")
            .await
            .unwrap();
        assert_eq!(q.expiring_within.map(Span::seconds), Some(14 * 86_400));
        let q: KeyQuery = query("/v1/keys?expiring_within=").await.unwrap();
        assert_eq!(q.expiring_within, None);
        let Err(refused) = query::<KeyQuery>("/v1/keys?expiring_within=2w").await else {
            panic!("2w is not a span");
        };
        assert_eq!(refused.code(), Code::InvalidRequest);
        assert_eq!(
            refused.to_string(),
            "2w".parse::<Span>().unwrap_err().to_string()
        );
        for bad in ["?status=sleeping", "?limit=abc", "?colour=red"] {
            assert_eq!(
                code(query(&format!("/v1/keys{bad}")).await),
                Some(Code::InvalidRequest),
                "{bad}"
            );
        }
    }

    #[test]
    fn json_is_declared_as_axum_declares_it() {
        let declared = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_TYPE, value.parse().unwrap());
            declares_json(&headers)
        };
        assert!(declared("application/json"));
        assert!(declared("application/json; charset=utf-8"));
        assert!(declared("Application/JSON;charset=utf-8"));
        assert!(declared("application/problem+json"));
        assert!(!declared("text/json"));
        assert!(!declared("application/jsonx"));
        assert!(!declared("application/x-www-form-urlencoded"));
        assert!(!declares_json(&HeaderMap::new()));
    }

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
