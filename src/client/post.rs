//! One POST to a URL of a third party (a webhook receiver): http or https, one connection per
//! message, a deadline on the whole exchange, and no redirect followed (a 3xx is an answer
//! like any other, which the caller counts as not delivered).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio_rustls::TlsConnector;

/// At most this much of an answer is read (and then dropped: only the status counts).
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Why a POST got no answer.
#[derive(Debug, thiserror::Error)]
pub enum PostError {
    /// The URL is not `http(s)://host[:port]/…`.
    #[error("invalid URL {0:?}")]
    Url(String),
    /// No TCP connection.
    #[error("cannot connect to {address}: {why}")]
    Connect {
        /// Where.
        address: String,
        /// Why.
        why: String,
    },
    /// The TLS handshake failed (an untrusted certificate, a wrong name).
    #[error("TLS: {0}")]
    Tls(String),
    /// The HTTP exchange failed.
    #[error("HTTP: {0}")]
    Http(String),
    /// No answer within the deadline.
    #[error("no answer within {0:?}")]
    TimedOut(Duration),
}

/// Sends POSTs to http and https URLs, trusting the roots it was made with.
#[derive(Clone)]
pub struct Poster {
    tls: TlsConnector,
}

impl std::fmt::Debug for Poster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Poster").finish_non_exhaustive()
    }
}

impl Poster {
    /// A poster whose https connections trust `config`'s roots
    /// (`crate::tls::public_client_config`).
    pub fn new(config: rustls::ClientConfig) -> Self {
        Self {
            tls: TlsConnector::from(Arc::new(config)),
        }
    }

    /// POSTs `body` (JSON) with `headers` to `url`; the answer's status, within `deadline`.
    pub async fn post(
        &self,
        url: &str,
        headers: &[(&'static str, String)],
        body: Bytes,
        deadline: Duration,
    ) -> Result<u16, PostError> {
        tokio::time::timeout(deadline, self.post_inner(url, headers, body))
            .await
            .map_err(|_| PostError::TimedOut(deadline))?
    }

    async fn post_inner(
        &self,
        url: &str,
        headers: &[(&'static str, String)],
        body: Bytes,
    ) -> Result<u16, PostError> {
        let bad_url = || PostError::Url(url.to_owned());
        let uri: Uri = url.parse().map_err(|_| bad_url())?;
        let authority = uri.authority().ok_or_else(bad_url)?.clone();
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(bad_url()),
        };
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        let address = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let tcp = tokio::net::TcpStream::connect(&address)
            .await
            .map_err(|e| PostError::Connect {
                address: address.clone(),
                why: e.to_string(),
            })?;
        let _ = tcp.set_nodelay(true);
        let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(header::HOST, authority.as_str())
            .header(header::CONTENT_TYPE, "application/json")
            .header(
                header::USER_AGENT,
                concat!("latchkey/", env!("CARGO_PKG_VERSION")),
            );
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let request = request
            .body(Full::new(body))
            .map_err(|e| PostError::Http(e.to_string()))?;
        if https {
            let name = ServerName::try_from(host).map_err(|_| bad_url())?;
            let tls = self
                .tls
                .connect(name, tcp)
                .await
                .map_err(|e| PostError::Tls(e.to_string()))?;
            exchange(TokioIo::new(tls), request).await
        } else {
            exchange(TokioIo::new(tcp), request).await
        }
    }
}

/// One request on a fresh connection; the status of the answer.
async fn exchange<T>(io: T, request: Request<Full<Bytes>>) -> Result<u16, PostError>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let http = |e: hyper::Error| PostError::Http(e.to_string());
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(http)?;
    tokio::spawn(connection);
    let response = sender.send_request(request).await.map_err(http)?;
    let status = response.status().as_u16();
    // Read (a bounded part of) the answer so the receiver sees its answer taken; its
    // content does not matter.
    let _ = http_body_util::Limited::new(response.into_body(), MAX_ANSWER_BYTES)
        .collect()
        .await;
    Ok(status)
}
