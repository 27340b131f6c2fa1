//! The CRLs: `GET /v1/crl` and `GET /v1/issuers/{id}/crl` (an intermediate's current CRL from
//! memory, in DER or PEM, with an ETag; or, with `newer_than` and `wait`, a long poll that
//! answers as soon as a newer one is published), the root's, and the bundle of all of them.
//!
//! The follow protocol for large CRLs: `GET /v1/issuers/{id}/crl/latest` long-polls for the
//! newest number (a few hundred bytes), then the follower fetches the delta from the CRL it
//! holds, or the whole CRL, from immutable URLs (`/v1/issuers/{id}/crls/{number}` and
//! `.../crls/{number}/delta/{base}`) that a cache in front of the CA can serve.

use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::ApiError;
use super::extract::ApiQuery;
use super::problem::RequestError;
use crate::api::{CrlQuery, DeltaQuery, LatestCrl};
use crate::authority::AuthorityError;
use crate::model::SourceNet;
use crate::per_source::{PerSourceSlots, SourceSlot};
use crate::publisher::{DeltaError, IssuerCrls, PublishedCrl, PublishedCrls};
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
    let issuer = issuer_by_id(&crls, &id)?;
    issuer_crl_response(issuer, long_polls, connection, headers, query).await
}

/// The published intermediate whose id is `id`; 404 for one unknown or retired.
fn issuer_by_id(crls: &PublishedCrls, id: &str) -> Result<IssuerCrls, ApiError> {
    Ok(id
        .parse::<i64>()
        .ok()
        .and_then(|id| crls.issuer(id))
        .ok_or(AuthorityError::NotFound("issuer"))?)
}

/// `GET /v1/issuers/{id}/crl/latest`: the number of the intermediate's newest CRL and the
/// immutable URLs of it and of the delta from the caller's CRL (`newer_than`); with `wait`,
/// a long poll that answers as soon as a CRL newer than `newer_than` is published (or, after
/// `wait`, with the same number). A few hundred bytes: a follower of a million-entry CRL
/// learns of a revocation without fetching anything it holds. Needs nothing.
#[utoipa::path(
    get, path = "/v1/issuers/{id}/crl/latest", tag = "ca",
    params(("id" = i64, Path, description = "The intermediate's id (`GET /v1/issuers`)."), CrlQuery),
    responses(
        (status = 200, description = "The newest CRL number, and the immutable paths of the whole CRL being served and of the delta from `newer_than`.",
         body = LatestCrl, headers(("latchkey-crl-number" = i64, description = "The newest CRL number."))),
    ),
)]
pub async fn latest_crl(
    State(crls): State<PublishedCrls>,
    Path(id): Path<String>,
    Extension(long_polls): Extension<LongPolls>,
    connection: Option<Extension<ConnectionInfo>>,
    ApiQuery(query): ApiQuery<CrlQuery>,
) -> Result<Response, ApiError> {
    let issuer = issuer_by_id(&crls, &id)?;
    let wait = Duration::from_secs(query.wait.unwrap_or(0).min(MAX_WAIT_SECONDS));
    let newest = match (issuer.newest(), query.newer_than) {
        (Some(newest), Some(n)) if newest.number == n => {
            let _share = long_polls.share(connection, wait)?;
            issuer.newest_after(n, wait).await.unwrap_or(newest)
        }
        (Some(newest), _) => newest,
        (None, _) => issuer
            .newest_after(0, wait)
            .await
            .ok_or(RequestError::NoCrl)?,
    };
    // The whole CRL served, which may be older than the newest number while that one's
    // whole CRL is being signed: a follower that holds none starts from it.
    let whole = issuer.current().ok_or(RequestError::NoCrl)?;
    issuer.stale(&whole)?;
    let id = issuer.issuer_id();
    let latest = LatestCrl {
        issuer: id,
        number: newest.number,
        crl: format!("/v1/issuers/{id}/crls/{}", whole.number),
        delta: query
            .newer_than
            .filter(|n| (1..newest.number).contains(n))
            .map(|n| format!("/v1/issuers/{id}/crls/{}/delta/{n}", newest.number)),
    };
    let mut response = axum::Json(latest).into_response();
    let h = response.headers_mut();
    h.insert("latchkey-crl-number", HeaderValue::from(newest.number));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
}

/// `GET /v1/issuers/{id}/crls/{number}`: that CRL whole, while it is the one served (404
/// once a newer one is: ask `.../crl/latest` again). Immutable. Needs nothing.
#[utoipa::path(
    get, path = "/v1/issuers/{id}/crls/{number}", tag = "ca",
    params(("id" = i64, Path, description = "The intermediate's id."), ("number" = i64, Path, description = "The CRL number.")),
    responses(
        (status = 200, description = "The whole CRL of that number: DER, or PEM with `Accept: application/x-pem-file`. Immutable.",
         content(([u8] = "application/pkix-crl"), (String = "application/x-pem-file")),
         headers(("ETag" = String), ("Cache-Control" = String), ("latchkey-crl-kind" = String, description = "`complete`."))),
        (status = 304, description = "The `If-None-Match` tag is current."),
    ),
)]
pub async fn numbered_crl(
    State(crls): State<PublishedCrls>,
    Path((id, number)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let issuer = issuer_by_id(&crls, &id)?;
    let crl = issuer
        .current()
        .filter(|c| number.parse() == Ok(c.number))
        .ok_or(AuthorityError::NotFound("CRL"))?;
    issuer.stale(&crl)?;
    Ok(immutable(&headers, &crl))
}

/// `GET /v1/issuers/{id}/crls/{number}/delta/{base}`: the delta CRL from CRL `base` to CRL
/// `number` of the intermediate; 404 `delta_unavailable` when `base` is unknown here or
/// older than the delta horizon (fetch the whole CRL). Immutable. Needs nothing.
#[utoipa::path(
    get, path = "/v1/issuers/{id}/crls/{number}/delta/{base}", tag = "ca",
    params(("id" = i64, Path, description = "The intermediate's id."), ("number" = i64, Path, description = "The CRL number the delta leads to."), ("base" = i64, Path, description = "The CRL number the follower holds.")),
    responses(
        (status = 200, description = "The delta CRL (RFC 5280: critical Delta CRL Indicator naming `base`; removeFromCRL entries for certificates that expired off it): DER, or PEM with `Accept: application/x-pem-file`. Immutable.",
         content(([u8] = "application/pkix-crl"), (String = "application/x-pem-file")),
         headers(("ETag" = String), ("Cache-Control" = String), ("latchkey-crl-kind" = String, description = "`delta`."), ("latchkey-crl-base" = i64))),
        (status = 304, description = "The `If-None-Match` tag is current."),
    ),
)]
pub async fn delta_crl(
    State(crls): State<PublishedCrls>,
    Path((id, number, base)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let issuer = issuer_by_id(&crls, &id)?;
    let (Ok(number), Ok(base)) = (number.parse(), base.parse()) else {
        return Err(AuthorityError::NotFound("CRL").into());
    };
    let delta = issuer.delta(base, number).await.map_err(delta_error)?;
    Ok(immutable(&headers, &delta))
}

/// `GET /v1/crl/delta?base=N`: for plain tools, the delta CRL from CRL `N` to the newest CRL
/// of `GET /v1/crl`'s intermediate (`Content-Location` names its immutable URL); 404
/// `delta_unavailable` when `N` is unknown here, too old, or the newest. Needs nothing.
#[utoipa::path(
    get, path = "/v1/crl/delta", tag = "ca",
    params(DeltaQuery),
    responses(
        (status = 200, description = "The delta CRL from `base` to the newest CRL of `GET /v1/crl`'s intermediate: DER, or PEM with `Accept: application/x-pem-file`.",
         content(([u8] = "application/pkix-crl"), (String = "application/x-pem-file")),
         headers(("Content-Location" = String, description = "Its immutable path."), ("latchkey-crl-kind" = String, description = "`delta`."), ("latchkey-crl-base" = i64))),
        (status = 304, description = "The `If-None-Match` tag is current."),
    ),
)]
pub async fn default_delta(
    State(crls): State<PublishedCrls>,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<DeltaQuery>,
) -> Result<Response, ApiError> {
    let issuer = crls.default_issuer().ok_or(RequestError::NoCrl)?;
    let current = issuer.current().ok_or(RequestError::NoCrl)?;
    issuer.stale(&current)?;
    let newest = issuer.newest().map_or(current.number, |n| n.number);
    let delta = issuer
        .delta(query.base, newest)
        .await
        .map_err(delta_error)?;
    let mut response = immutable(&headers, &delta);
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    let location = format!(
        "/v1/issuers/{}/crls/{}/delta/{}",
        issuer.issuer_id(),
        delta.number,
        query.base
    );
    if let Ok(v) = HeaderValue::from_str(&location) {
        h.insert(header::CONTENT_LOCATION, v);
    }
    Ok(response)
}

fn delta_error(e: DeltaError) -> ApiError {
    match e {
        DeltaError::Unavailable(why) => RequestError::NoDelta(why).into(),
        DeltaError::Store(e) => AuthorityError::from(e).into(),
        other => AuthorityError::Internal(other.to_string()).into(),
    }
}

/// The header that says whether a CRL answer is a whole CRL or a delta.
pub const KIND_HEADER: &str = "latchkey-crl-kind";

/// A CRL or delta at an immutable URL: DER or PEM by `Accept`, a strong ETag, cacheable by
/// anyone until its nextUpdate.
fn immutable(headers: &HeaderMap, crl: &PublishedCrl) -> Response {
    let pem = wants_pem(headers);
    let etag = match crl.delta_base {
        None => etag(crl, pem),
        // Two replicas sign the same delta with different (randomized) signatures.
        Some(base) => {
            let digest = ring::digest::digest(&ring::digest::SHA256, &crl.der);
            format!(
                "\"delta-{}-{base}-{}{}\"",
                crl.number,
                hex::encode(&digest.as_ref()[..8]),
                if pem { "-pem" } else { "" }
            )
        }
    };
    let (content_type, body) = if pem {
        ("application/x-pem-file", crl.pem())
    } else {
        ("application/pkix-crl", crl.der.clone())
    };
    let mut response = answer(headers, &etag, content_type, body, crl.number);
    let h = response.headers_mut();
    let left = (crl.next_update - time::OffsetDateTime::now_utc())
        .whole_seconds()
        .max(0);
    if let Ok(v) = HeaderValue::from_str(&format!("public, max-age={left}, immutable")) {
        h.insert(header::CACHE_CONTROL, v);
    }
    match crl.delta_base {
        None => {
            h.insert(KIND_HEADER, HeaderValue::from_static("complete"));
        }
        Some(base) => {
            h.insert(KIND_HEADER, HeaderValue::from_static("delta"));
            h.insert("latchkey-crl-base", HeaderValue::from(base));
        }
    }
    response
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
