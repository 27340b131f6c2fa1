//! One HTTPS request per connection: the CLI makes a handful of calls, and a fresh
//! connection always presents the current client certificate.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http::{Method, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio_rustls::TlsConnector;

use super::{Auth, ClientError};

/// Connecting must succeed within this.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A whole request must be answered within this.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Answers larger than this are refused; CRLs (~49 MB at a million entries) may be larger.
const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;
const MAX_CRL_BYTES: usize = 512 * 1024 * 1024;

/// Where the CA is and how to talk to it.
#[derive(Clone)]
pub struct Connection {
    server: String,
    authority: String,
    address: String,
    server_name: ServerName<'static>,
    connector: TlsConnector,
}

impl Connection {
    /// A connection to `server` (`https://host[:port]`).
    pub fn new(
        server: &str,
        ca_pem: &[u8],
        identity: Option<(&[u8], &[u8])>,
    ) -> Result<Self, ClientError> {
        let url_error = || ClientError::Url(server.to_owned());
        let uri: Uri = server
            .trim_end_matches('/')
            .parse()
            .map_err(|_| url_error())?;
        if uri.scheme_str() != Some("https") || uri.path() != "/" && !uri.path().is_empty() {
            return Err(url_error());
        }
        let authority = uri.authority().ok_or_else(url_error)?;
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = authority.port_u16().unwrap_or(443);
        let server_name = ServerName::try_from(host.clone()).map_err(|_| url_error())?;
        let address = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let roots = crate::tls::load_certificates(ca_pem, "the CA certificate")?;
        let identity = match identity {
            Some((chain, key)) => Some((
                crate::tls::load_certificates(chain, "the client certificate")?,
                crate::tls::load_private_key(key, "the client key")?,
            )),
            None => None,
        };
        let config = crate::tls::client_config(&roots, identity)?;
        Ok(Self {
            server: server.to_owned(),
            authority: authority.to_string(),
            address,
            server_name,
            connector: TlsConnector::from(Arc::new(config)),
        })
    }

    /// Sends one request and reads the whole answer.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        auth: Option<&Auth>,
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        let (status, _, bytes) = self.exchange(method, path, auth, body).await?;
        Ok((status, bytes))
    }

    /// [`Connection::send`], returning the answer's headers too (for the CA's tests, which
    /// check headers of raw answers).
    #[cfg(feature = "server")]
    pub async fn send_with_headers(
        &self,
        method: Method,
        path: &str,
        auth: Option<&Auth>,
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, http::HeaderMap, Bytes), ClientError> {
        self.exchange(method, path, auth, body).await
    }

    /// Fetches a CRL: a large answer, after a long poll of up to `wait`.
    pub async fn fetch_crl(
        &self,
        path: &str,
        wait: Duration,
    ) -> Result<(StatusCode, http::HeaderMap, Bytes), ClientError> {
        self.get_after(path, wait, MAX_CRL_BYTES).await
    }

    /// GETs `path`, answered after a long poll of up to `wait`.
    pub async fn long_poll(
        &self,
        path: &str,
        wait: Duration,
    ) -> Result<(StatusCode, http::HeaderMap, Bytes), ClientError> {
        self.get_after(path, wait, MAX_RESPONSE_BYTES).await
    }

    async fn get_after(
        &self,
        path: &str,
        wait: Duration,
        limit: usize,
    ) -> Result<(StatusCode, http::HeaderMap, Bytes), ClientError> {
        let deadline = REQUEST_TIMEOUT + wait;
        tokio::time::timeout(
            deadline,
            self.send_inner(Method::GET, path, None, None, limit),
        )
        .await
        .map_err(|_| self.failed("timed out"))?
    }

    async fn exchange(
        &self,
        method: Method,
        path: &str,
        auth: Option<&Auth>,
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, http::HeaderMap, Bytes), ClientError> {
        tokio::time::timeout(
            REQUEST_TIMEOUT,
            self.send_inner(method, path, auth, body, MAX_RESPONSE_BYTES),
        )
        .await
        .map_err(|_| self.failed("timed out"))?
    }

    fn failed(&self, why: impl ToString) -> ClientError {
        ClientError::Connect {
            server: self.server.clone(),
            why: why.to_string(),
        }
    }

    async fn send_inner(
        &self,
        method: Method,
        path: &str,
        auth: Option<&Auth>,
        body: Option<Vec<u8>>,
        limit: usize,
    ) -> Result<(StatusCode, http::HeaderMap, Bytes), ClientError> {
        let tcp = tokio::time::timeout(
            CONNECT_TIMEOUT,
            tokio::net::TcpStream::connect(&self.address),
        )
        .await
        .map_err(|_| self.failed("connection timed out"))?
        .map_err(|e| self.failed(e))?;
        tcp.set_nodelay(true).map_err(|e| self.failed(e))?;
        let tls = self
            .connector
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(|e| self.failed(format!("TLS: {e}")))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| self.failed(e))?;
        tokio::spawn(connection);

        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, &self.authority)
            .header(header::ACCEPT, "application/json");
        match auth {
            Some(Auth::Password { user, password }) => {
                let encoded =
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
                request = request.header(header::AUTHORIZATION, format!("Basic {encoded}"));
            }
            Some(Auth::Token(token)) => {
                request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
            }
            None => {}
        }
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| self.failed(e))?;
        // With TLS 1.3 a refused client certificate shows only here, on the first read.
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| self.failed(e))?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = http_body_util::Limited::new(response.into_body(), limit)
            .collect()
            .await
            .map_err(|e| self.failed(e))?
            .to_bytes();
        Ok((status, headers, body))
    }
}
