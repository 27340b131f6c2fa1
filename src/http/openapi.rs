//! `GET /v1/openapi.json`: the OpenAPI 3.1 document of the API, made from the table the
//! router is made from (`super::routes`), so the two cannot name different routes.
//!
//! Each operation's description comes from its handler's `#[utoipa::path]` (path, method,
//! parameters, body, success answers, who may call it) and from the wire types' derived
//! schemas; its problem answers come from [`Problems`], given beside the handler in the
//! table: one `application/problem+json` answer per status, its `code` enumerated.

use axum::Extension;
use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use utoipa::Modify;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::schema::{AllOfBuilder, ObjectBuilder, Ref, Type};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{ContentBuilder, HeaderBuilder, OpenApi, ResponseBuilder};
use utoipa_axum::router::UtoipaMethodRouter;

use super::extract::{PathParam, WireRequest};
use super::problem::status;
use crate::api::{AuditAction, Code, KeyStatus, Problem};
use crate::model::{OwnerName, Span, TenantName};

/// The security schemes' names, as handlers' `security(...)` name them.
pub(super) const CLIENT_CERTIFICATE: &str = "client_certificate";
/// HTTP Basic: `owner@tenant` and the user's password.
pub(super) const PASSWORD: &str = "password";
/// `Authorization: Bearer` with an enrollment token.
pub(super) const ENROLLMENT_TOKEN: &str = "enrollment_token";

/// The document's frame: its description, tags, the problem schema and the security schemes.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "latchkey",
        description = "A mutual-TLS certificate authority whose client certificates are the API keys. \
            Every error is an RFC 9457 problem document with a stable `code`; each operation lists the codes \
            it may answer. The CRL routes are also served without TLS on `serve --crl-http-listen`."
    ),
    // Schemas that only query parameters name: `IntoParams` does not collect them.
    components(schemas(Problem, Code, AuditAction, KeyStatus, Span, TenantName, OwnerName)),
    modifiers(&SecuritySchemes),
    tags(
        (name = "keys", description = "Getting, listing, renewing and revoking keys."),
        (name = "admin", description = "Tenants, users, enrollment tokens, bulk revocation and the audit log: the administrator certificate only."),
        (name = "ca", description = "The CA's certificates and CRLs: public."),
        (name = "meta", description = "Liveness, readiness, metrics and this document."),
    )
)]
pub(super) struct Frame;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            CLIENT_CERTIFICATE,
            SecurityScheme::MutualTls {
                description: Some(
                    "A client certificate this CA issued, presented in the TLS handshake: a \
                     key's current certificate, or the administrator's."
                        .into(),
                ),
                extensions: None,
            },
        );
        let mut basic = Http::new(HttpAuthScheme::Basic);
        basic.description = Some("`owner@tenant` and the user's password.".into());
        components.add_security_scheme(PASSWORD, SecurityScheme::Http(basic));
        let mut bearer = Http::new(HttpAuthScheme::Bearer);
        bearer.description = Some(
            "A one-time enrollment token (`POST /v1/admin/tokens`); it enrolls one key.".into(),
        );
        components.add_security_scheme(ENROLLMENT_TOKEN, SecurityScheme::Http(bearer));
    }
}

/// The problem codes one operation may answer: what the edge answers around every request,
/// what its handler's proof and parsed parts refuse, and the refusals of its authority call.
#[derive(Debug, Clone, Default)]
pub(super) struct Problems(Vec<Code>);

impl Problems {
    /// Any request: its body read whole (`body.rs`: too large, too slow, unreadable), and a
    /// bug anywhere.
    pub(super) fn public() -> Self {
        Self::default().and(&[
            Code::BodyTooLarge,
            Code::RequestTimeout,
            Code::InvalidRequest,
            Code::Internal,
        ])
    }

    /// A request that reaches the authority: its store may be out of reach.
    fn authority() -> Self {
        Self::public().and(&[Code::StoreUnavailable])
    }

    /// A handler taking [`crate::authority::Reader`]: a password (throttled, checked in a
    /// bounded queue) or a client certificate.
    pub(super) fn reader() -> Self {
        Self::authority().and(&[
            Code::Unauthenticated,
            Code::InvalidCredentials,
            Code::TooManyAttempts,
            Code::Busy,
            Code::Disabled,
            Code::InvalidCertificate,
        ])
    }

    /// A handler checking an [`crate::authority::Enroller`]: a password or a token.
    pub(super) fn enroller() -> Self {
        Self::authority().and(&[
            Code::Unauthenticated,
            Code::InvalidCredentials,
            Code::InvalidToken,
            Code::TooManyAttempts,
            Code::Busy,
            Code::Disabled,
        ])
    }

    /// A handler taking [`crate::authority::KeyHolder`]: a key's certificate over mTLS.
    pub(super) fn key_holder() -> Self {
        Self::authority().and(&[
            Code::Unauthenticated,
            Code::InvalidCertificate,
            Code::CertificateNotForKey,
        ])
    }

    /// Behind the admin wall (`super::admin_wall`): the administrator certificate.
    pub(super) fn admin() -> Self {
        Self::authority().and(&[
            Code::Unauthenticated,
            Code::InvalidCertificate,
            Code::AdminRequired,
        ])
    }

    /// A JSON body `T` (`extract::ApiJson`, `OptionalJson`): not JSON, not `T`, or a field
    /// its model type refuses.
    pub(super) fn json<T: WireRequest>(self) -> Self {
        self.and(&[Code::UnsupportedMediaType, Code::InvalidJson])
            .and(&super::extract::field_codes::<T>())
    }

    /// A query string `T` (`extract::ApiQuery`).
    pub(super) fn query<T: WireRequest>(self) -> Self {
        self.and(&[Code::InvalidRequest])
            .and(&super::extract::field_codes::<T>())
    }

    /// A path parameter `T` (`extract::ApiPath`).
    pub(super) fn path<T: PathParam>(self) -> Self {
        self.and(&[Code::InvalidRequest, T::REFUSAL.code()])
    }

    /// And these: the refusals of the handler's authority call, or of its own.
    pub(super) fn and(mut self, codes: &[Code]) -> Self {
        for code in codes {
            if !self.0.contains(code) {
                self.0.push(*code);
            }
        }
        self
    }

    /// The codes, grouped by status, each group in the order of [`Code::ALL`].
    fn by_status(&self) -> Vec<(StatusCode, Vec<Code>)> {
        let mut groups: Vec<(StatusCode, Vec<Code>)> = Vec::new();
        for code in Code::ALL.iter().filter(|c| self.0.contains(c)) {
            let status = status(*code);
            match groups.iter_mut().find(|(s, _)| *s == status) {
                Some((_, codes)) => codes.push(*code),
                None => groups.push((status, vec![*code])),
            }
        }
        groups.sort_by_key(|(status, _)| *status);
        groups
    }
}

/// Adds the problem answers of `problems` to every operation of `routes` (one
/// `routes!(handler)`): what the router table calls for each handler.
pub(super) fn with_problems<S>(
    (schemas, mut paths, router): UtoipaMethodRouter<S>,
    problems: Problems,
) -> UtoipaMethodRouter<S> {
    for item in paths.paths.values_mut() {
        for operation in operations(item) {
            for (status, codes) in problems.by_status() {
                operation.responses.responses.insert(
                    status.as_str().to_owned(),
                    problem_answer(status, &codes).into(),
                );
            }
        }
    }
    (schemas, paths, router)
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

/// A problem document of `status` whose `code` is one of `codes`.
fn problem_answer(status: StatusCode, codes: &[Code]) -> utoipa::openapi::Response {
    let names: Vec<&str> = codes.iter().map(|c| c.as_str()).collect();
    let narrowed = ObjectBuilder::new()
        .property(
            "code",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(names.clone())),
        )
        .property(
            "status",
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .enum_values(Some([status.as_u16()])),
        );
    let schema = AllOfBuilder::new()
        .item(Ref::from_schema_name("Problem"))
        .item(narrowed);
    let mut answer = ResponseBuilder::new()
        .description(format!(
            "{}: `{}`.",
            status.canonical_reason().unwrap_or("Problem"),
            names.join("`, `")
        ))
        .content(
            "application/problem+json",
            ContentBuilder::new().schema(Some(schema)).build(),
        );
    let header = |description: &str, kind: Type| {
        HeaderBuilder::new()
            .schema(ObjectBuilder::new().schema_type(kind))
            .description(Some(description))
            .build()
    };
    if status == StatusCode::UNAUTHORIZED {
        answer = answer.header(
            "WWW-Authenticate",
            header("`Basic realm=\"latchkey\"`.", Type::String),
        );
    }
    if status == StatusCode::TOO_MANY_REQUESTS {
        answer = answer.header(
            "Retry-After",
            header("Seconds until the request may succeed.", Type::Integer),
        );
    }
    answer.build()
}

/// The document as served: its JSON, made once with the router, and its tag.
#[derive(Debug, Clone)]
pub struct Document {
    json: Bytes,
    etag: String,
}

impl Document {
    /// Serialises `openapi`.
    pub(super) fn new(openapi: &OpenApi) -> Self {
        // A document of strings and maps always serialises.
        let json = serde_json::to_vec(openapi).unwrap_or_default();
        let digest = ring::digest::digest(&ring::digest::SHA256, &json);
        let etag = format!("\"{}\"", hex::encode(&digest.as_ref()[..16]));
        Self {
            json: json.into(),
            etag,
        }
    }
}

/// How long a cache may keep the document without asking again: it changes only when the
/// CA is upgraded.
const MAX_AGE: &str = "public, max-age=3600";

/// `GET /v1/openapi.json`. Needs nothing: it describes what anyone may read in the source.
#[utoipa::path(
    get,
    path = "/v1/openapi.json",
    tag = "meta",
    responses(
        (status = 200, description = "This document (OpenAPI 3.1), with an `ETag`; cacheable for an hour.",
         content_type = "application/json", body = Object),
        (status = 304, description = "The `If-None-Match` tag is this document's."),
    )
)]
pub async fn document(Extension(document): Extension<Document>, headers: HeaderMap) -> Response {
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| super::crl::if_none_match(v, &document.etag));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(header::CONTENT_TYPE, "application/json")],
            document.json.clone(),
        )
            .into_response()
    };
    let h = response.headers_mut();
    if let Ok(etag) = HeaderValue::from_str(&document.etag) {
        h.insert(header::ETAG, etag);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(MAX_AGE));
    response
}
