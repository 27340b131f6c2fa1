//! The CRLs: `GET /v1/crl` and `GET /v1/issuers/{id}/crl` (an intermediate's current CRL from
//! memory, in DER or PEM, with an ETag; or, with `newer_than` and `wait`, a long poll that
//! answers as soon as a newer one is published), the root's, and the bundle of all of them.

use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::ApiError;
use super::extract::ApiQuery;
use super::problem::RequestError;
use crate::api::CrlQuery;
use crate::authority::AuthorityError;
use crate::model::SourceNet;
use crate::per_source::{PerSourceSlots, SourceSlot};
use crate::publisher::{IssuerCrls, PublishedCrl, PublishedCrls};
use crate::tls::ConnectionInfo;

/// The longest long poll.
pub const MAX_WAIT_SECONDS: u64 = 60;

/// The long polls each source network holds: a poll is a connection held for up to a
/// minute, so without a share one client could hold every socket the CA has.
#[derive(Debug, Clone)]
pub struct LongPolls(pub Arc<PerSourceSlots>);

impl LongPolls {
    /// The share a poll that will `wait` takes for the caller's source network, held until
    /// it is dropped; none for a poll that will not wait (or without connection facts);
    /// "busy" at once when the source's shares are all taken.
    pub(super) fn share(
        &self,
        connection: Option<Extension<ConnectionInfo>>,
        wait: Duration,
    ) -> Result<Option<SourceSlot>, AuthorityError> {
        match connection {
            Some(Extension(info)) if !wait.is_zero() => self
                .0
                .try_take(SourceNet::from(info.peer.ip()))
                .map(Some)
                .ok_or(AuthorityError::Busy),
            _ => Ok(None),
        }
    }
}

/// `GET /v1/crl`: the CRL of the oldest shared intermediate still published (the one every
/// certificate made before the first rotation names). Needs nothing.
#[utoipa::path(
    get, path = "/v1/crl", tag = "ca",
    params(CrlQuery),
    responses(
        (status = 200, description = "The oldest shared intermediate's CRL: DER, or PEM with `Accept: application/x-pem-file`.",
         content(([u8] = "application/pkix-crl"), (String = "application/x-pem-file")),
         headers(("ETag" = String), ("latchkey-crl-number" = i64, description = "The CRL's number."))),
        (status = 304, description = "The `If-None-Match` tag is current, or the long poll ended with nothing newer than `newer_than`."),
    ),
)]
pub async fn crl(
    State(crls): State<PublishedCrls>,
    long_polls: Extension<LongPolls>,
    connection: Option<Extension<ConnectionInfo>>,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<CrlQuery>,
) -> Result<Response, ApiError> {
    let issuer = crls.default_issuer().ok_or(RequestError::NoCrl)?;
    issuer_crl_response(issuer, long_polls, connection, headers, query).await
}

/// `GET /v1/issuers/{id}/crl`: one intermediate's CRL, as `GET /v1/crl` serves its own;
/// 404 for an intermediate that is unknown or retired. Needs nothing.
#[utoipa::path(
    get, path = "/v1/issuers/{id}/crl", tag = "ca",
    params(("id" = i64, Path, description = "The intermediate's id (`GET /v1/issuers`)."), CrlQuery),
    responses(
        (status = 200, description = "That intermediate's CRL: DER, or PEM with `Accept: application/x-pem-file`.",
         content(([u8] = "application/pkix-crl"), (String = "application/x-pem-file")),
         headers(("ETag" = String), ("latchkey-crl-number" = i64, description = "The CRL's number."))),
        (status = 304, description = "The `If-None-Match` tag is current, or the long poll ended with nothing newer than `newer_than`."),
    ),
)]
pub async fn issuer_crl(
    State(crls): State<PublishedCrls>,
    Path(id): Path<String>,
    long_polls: Extension<LongPolls>,
    connection: Option<Extension<ConnectionInfo>>,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<CrlQuery>,
) -> Result<Response, ApiError> {
    let issuer = id
        .parse::<i64>()
        .ok()
        .and_then(|id| crls.issuer(id))
        .ok_or(AuthorityError::NotFound("issuer"))?;
    issuer_crl_response(issuer, long_polls, connection, headers, query).await
}

/// The CRL of one intermediate, in DER or PEM, with an ETag; or, with `newer_than` and
/// `wait`, a long poll that answers as soon as a newer one is published.
async fn issuer_crl_response(
    crls: IssuerCrls,
    Extension(long_polls): Extension<LongPolls>,
    connection: Option<Extension<ConnectionInfo>>,
    headers: HeaderMap,
    query: CrlQuery,
) -> Result<Response, ApiError> {
    let pem = wants_pem(&headers);
    let unavailable = || ApiError::from(RequestError::NoCrl);
    let wait = Duration::from_secs(query.wait.unwrap_or(0).min(MAX_WAIT_SECONDS));
    let crl = match (crls.current(), query.newer_than) {
        // Nothing newer than asked for yet: wait for it, or say "not modified".
        (Some(current), Some(n)) if current.number == n => {
            // Only a poll that will wait takes a share; past it, "busy" at once.
            let _share = long_polls.share(connection, wait)?;
            match crls.newer_than(n, wait).await {
                Some(newer) => newer,
                None => {
                    let stale = crls.stale(&current)?;
                    return Ok(not_modified(&current, pem, stale));
                }
            }
        }
        // Older than the caller's, or newer: the current one at once. A caller ahead of this
        // CA (a restored database) must still get what the CA serves.
        (Some(current), _) => current,
        (None, n) => crls
            .newer_than(n.unwrap_or(0).min(0), wait)
            .await
            .ok_or_else(unavailable)?,
    };
    let stale = crls.stale(&crl)?;
    let etag = etag(&crl, pem);
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| if_none_match(v, &etag))
    {
        return Ok(not_modified(&crl, pem, stale));
    }
    let (content_type, body) = if pem {
        ("application/x-pem-file", crl.pem())
    } else {
        ("application/pkix-crl", crl.der.clone())
    };
    let mut response = (StatusCode::OK, body).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    set_common(h, &crl, &etag, stale);
    Ok(response)
}

/// RFC 9110 §13.1.2: `*`, or any listed tag equal to ours under weak comparison.
pub(super) fn if_none_match(header: &str, etag: &str) -> bool {
    header
        .split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
}

fn etag(crl: &PublishedCrl, pem: bool) -> String {
    format!("\"crl-{}{}\"", crl.number, if pem { "-pem" } else { "" })
}

fn not_modified(crl: &PublishedCrl, pem: bool, stale: bool) -> Response {
    let mut response = StatusCode::NOT_MODIFIED.into_response();
    set_common(response.headers_mut(), crl, &etag(crl, pem), stale);
    response
}

/// The header a CRL answer carries while the CA cannot publish a newer one.
pub const STALE_HEADER: &str = "latchkey-crl-stale";

fn set_common(h: &mut HeaderMap, crl: &PublishedCrl, etag: &str, stale: bool) {
    if stale {
        // Still signed and before its nextUpdate, so still served; but not silently.
        h.insert(
            STALE_HEADER,
            HeaderValue::from_static("the CA cannot publish a newer CRL; see its log"),
        );
    }
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    h.insert("latchkey-crl-number", HeaderValue::from(crl.number));
    // One URL, two encodings chosen by Accept.
    h.insert(header::VARY, HeaderValue::from_static("accept"));
    // Caches may keep it until a newer one could exist; clients that need promptness poll.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
}

/// `GET /v1/crl/root`: the first root's CRL (the intermediates it revoked), DER or PEM by
/// `Accept`, with an ETag. Needs nothing.
#[utoipa::path(
    get, path = "/v1/crl/root", tag = "ca",
    responses(
        (status = 200, description = "The first root's CRL: DER, or PEM with `Accept: application/x-pem-file`.",
         content(([u8] = "application/pkix-crl"), (String = "application/x-pem-file")),
         headers(("ETag" = String), ("latchkey-crl-number" = i64, description = "The CRL's number."))),
        (status = 304, description = "The `If-None-Match` tag is current."),
    ),
)]
pub async fn root_crl(
    State(crls): State<PublishedCrls>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let crl = crls.current_root().ok_or_else(no_root_crl)?;
    root_crl_response(&crls, &crl, &headers)
}

/// `GET /v1/roots/{key id}/crl`: the CRL of the root with that subject key identifier (hex),
/// as `GET /v1/crl/root` serves the first root's; a root a rollover made names it. Needs
/// nothing.
#[utoipa::path(
    get, path = "/v1/roots/{key_id}/crl", tag = "ca",
    params(("key_id" = String, Path, description = "The root's subject key identifier, hex.")),
    responses(
        (status = 200, description = "That root's CRL: DER, or PEM with `Accept: application/x-pem-file`.",
         content(([u8] = "application/pkix-crl"), (String = "application/x-pem-file")),
         headers(("ETag" = String), ("latchkey-crl-number" = i64, description = "The CRL's number."))),
        (status = 304, description = "The `If-None-Match` tag is current."),
    ),
)]
pub async fn root_crl_by_key_id(
    State(crls): State<PublishedCrls>,
    Path(key_id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let crl = crls
        .root_by_key_id(&key_id)
        .ok_or(AuthorityError::NotFound("root"))?;
    root_crl_response(&crls, &crl, &headers)
}

fn root_crl_response(
    crls: &PublishedCrls,
    crl: &PublishedCrl,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let pem = wants_pem(headers);
    crls.root_stale(crl)?;
    let etag = format!(
        "\"root-crl-{}{}\"",
        crl.number,
        if pem { "-pem" } else { "" }
    );
    let (content_type, body) = if pem {
        ("application/x-pem-file", crl.pem())
    } else {
        ("application/pkix-crl", crl.der.clone())
    };
    Ok(answer(headers, &etag, content_type, body, crl.number))
}

/// `GET /v1/crl/bundle.pem`: every published intermediate's CRL, then every root's, in one
/// PEM file: what nginx `ssl_crl` and HAProxy `crl-file` take when they check the whole
/// chain (each finds the CRL of a certificate's issuer by the issuer's name).
#[utoipa::path(
    get, path = "/v1/crl/bundle.pem", tag = "ca",
    responses(
        (status = 200, description = "Every published intermediate's CRL, then every root's, PEM.",
         content_type = "application/x-pem-file", body = String,
         headers(("ETag" = String), ("latchkey-crl-number" = i64, description = "The newest intermediate CRL's number."))),
        (status = 304, description = "The `If-None-Match` tag is current."),
    ),
)]
pub async fn crl_bundle(
    State(crls): State<PublishedCrls>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let mut issued = Vec::new();
    for issuer in crls.issuers() {
        let crl = issuer.current().ok_or(RequestError::NoCrl)?;
        issuer.stale(&crl)?;
        issued.push(crl);
    }
    let newest = issued
        .iter()
        .map(|c| c.number)
        .max()
        .ok_or(RequestError::NoCrl)?;
    let roots = crls.all_roots();
    if roots.is_empty() {
        return Err(no_root_crl());
    }
    for root in &roots {
        crls.root_stale(root)?;
    }
    let numbers: Vec<String> = issued
        .iter()
        .chain(&roots)
        .map(|c| c.number.to_string())
        .collect();
    let etag = format!("\"crl-bundle-{}\"", numbers.join("-"));
    let mut body = Vec::new();
    for crl in issued.iter().chain(&roots) {
        body.extend_from_slice(&crl.pem());
    }
    Ok(answer(
        &headers,
        &etag,
        "application/x-pem-file",
        body.into(),
        newest,
    ))
}

fn no_root_crl() -> ApiError {
    RequestError::NoRootCrl.into()
}

fn wants_pem(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|a| a.to_str().ok())
        .is_some_and(|a| a.contains("application/x-pem-file"))
}

/// A CRL answer: 304 when the caller holds `etag`, else the body.
fn answer(
    headers: &HeaderMap,
    etag: &str,
    content_type: &'static str,
    body: bytes::Bytes,
    number: i64,
) -> Response {
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| if_none_match(v, etag));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut r = (StatusCode::OK, body).into_response();
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        r
    };
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    h.insert("latchkey-crl-number", HeaderValue::from(number));
    h.insert(header::VARY, HeaderValue::from_static("accept"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// Gives requests on the plain-HTTP CRL listener the connection facts the handlers read
/// (the peer's address, for the long-poll share; never a certificate).
pub async fn plain_connection(
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    request.extensions_mut().insert(ConnectionInfo {
        peer,
        certificate: None,
    });
    next.run(request).await
}
