//! Request bodies are read whole, before routing goes any further: at most
//! [`MAX_BODY_BYTES`], and within [`BODY_TIMEOUT`] in total.
//!
//! A per-read timeout (tower-http's) restarts with every frame, so a client sending one byte
//! a second would hold a connection for hours; here the deadline covers the whole body.
//! Every body this API takes is a small JSON document, so buffering it costs nothing.

use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use http_body_util::{BodyExt, LengthLimitError, Limited};

use super::ApiError;
use super::problem::RequestError;

/// The largest request body accepted: a CSR with an RSA-4096 key is under 4 KiB.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// A whole request body must arrive within this.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(20);

fn too_large() -> ApiError {
    RequestError::BodyTooLarge.into()
}

/// Middleware: replaces the streaming body with the bytes read, or answers 413 (too
/// large, without reading it when `Content-Length` says so), 408 (too slow) or 400.
pub async fn read_whole_body(request: Request, next: Next) -> Result<Response, ApiError> {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(too_large());
    }
    let (parts, body) = request.into_parts();
    let read = Limited::new(body, MAX_BODY_BYTES).collect();
    let bytes = match tokio::time::timeout(BODY_TIMEOUT, read).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.is::<LengthLimitError>() => return Err(too_large()),
        Ok(Err(e)) => {
            return Err(RequestError::BodyUnreadable(e.to_string()).into());
        }
        Err(_) => {
            return Err(RequestError::BodyTimeout.into());
        }
    };
    Ok(next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await)
}
