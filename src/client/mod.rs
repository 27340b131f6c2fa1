//! The client: talks to the CA over HTTPS (with a client certificate when it has one), makes
//! key pairs and CSRs locally, and keeps key directories on disk. The CLI is a thin wrapper
//! over it. Needs no server dependencies.

mod connection;
mod keydir;
mod keygen;
#[cfg(feature = "pkcs12")]
pub mod pkcs12;
#[cfg(feature = "server")]
mod post;
mod renewal;
mod resolver;
#[cfg(feature = "server")]
mod webhooks;

use http::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::api::{
    AuditPage, BulkRevocation, BulkRevocationResult, EnrollRequest, EnrollResponse, IssuerList,
    KeyInfo, KeyPage, KeyQuery, KeyStatus, NewTenant, NewToken, NewTokenBatch, NewUser, Problem,
    RenewRequest, TenantChange, TenantInfo, TokenInfo, UserChange, UserInfo,
};
use crate::model::{OwnerName, ScopeSet, TenantName};
// Raw HTTP to the CA: the client's plumbing. The CA's own tests reach it across the crate
// boundary, so the server build exports it, hidden; the library build does not.
#[cfg(feature = "server")]
#[doc(hidden)]
pub use connection::Connection;
#[cfg(not(feature = "server"))]
use connection::Connection;
pub use keydir::{KeyDir, KeyDirError};
pub use keygen::{KeyType, NewKeyPair, new_key_pair};
#[cfg(feature = "server")]
pub use post::{PostError, Poster};
pub use renewal::{RenewalStatus, Renewer, next_renewal_at};
pub use resolver::AutoRenewingKey;

/// The default CA address.
pub const DEFAULT_SERVER: &str = "https://127.0.0.1:8443";

/// What went wrong talking to the CA.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The server URL is not `https://host[:port]`.
    #[error("invalid server URL {0:?}: expected https://host[:port]")]
    Url(String),
    /// The TLS configuration could not be built.
    #[error(transparent)]
    Tls(#[from] crate::tls::ConfigError),
    /// The CA could not be reached, or the connection failed.
    #[error("cannot reach the CA at {server}: {why}")]
    Connect {
        /// The server.
        server: String,
        /// What failed.
        why: String,
    },
    /// The CA answered with a problem document.
    #[error("{} ({})", .0.detail, .0.code)]
    Problem(Problem),
    /// The CA answered with something that is not the expected JSON.
    #[error("unexpected answer from the CA (HTTP {status}): {body}")]
    Unexpected {
        /// The HTTP status.
        status: u16,
        /// The start of the body.
        body: String,
    },
    /// The key reaches its `expires_at`; renewing cannot go past it.
    #[error("the key expires at {0}; keys cannot be extended, make a new one")]
    KeyEnding(time::OffsetDateTime),
    /// A key directory's certificate is unusable.
    #[error("unusable certificate: {0}")]
    Certificate(String),
    /// Making the key pair or CSR failed.
    #[error("cannot make a key pair: {0}")]
    KeyGen(String),
    /// A key directory could not be read or written.
    #[error(transparent)]
    KeyDir(#[from] KeyDirError),
    /// The scopes asked for in a [`KeyRequest`] are not a set of valid scopes; nothing was
    /// sent.
    #[error(transparent)]
    Scope(#[from] crate::model::ScopeError),
    /// [`Client::issuer_crl`] was given neither an issuer id nor a CRL path of the CA's;
    /// nothing was sent.
    #[error("{0:?} is neither an issuer id nor a CRL path such as /v1/issuers/3/crl")]
    IssuerCrl(String),
}

impl ClientError {
    /// True when the CA answered 404: an unknown (or retired) issuer, or an endpoint this
    /// CA does not have (a CA older than `GET /v1/issuers`).
    pub fn is_not_found(&self) -> bool {
        match self {
            Self::Problem(problem) => problem.status == 404,
            Self::Unexpected { status, .. } => *status == 404,
            _ => false,
        }
    }

    /// The stable code of the CA's problem answer, if it gave one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Problem(problem) => Some(problem.code.as_str()),
            _ => None,
        }
    }
}

/// A credential sent in the `Authorization` header.
#[derive(Clone)]
pub enum Auth {
    /// HTTP Basic with `owner@tenant` and a password.
    Password {
        /// `owner@tenant`.
        user: String,
        /// The password.
        password: String,
    },
    /// An enrollment token.
    Token(String),
}

/// What a key holder asks the CA for in [`Client::enroll_into`]: a name, scopes and a
/// lifetime. The key pair and its CSR are made by `enroll_into`, so there is no field for
/// them here.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyRequest {
    name: String,
    description: String,
    scopes: Vec<String>,
    ttl_seconds: Option<i64>,
    expires_at: Option<time::OffsetDateTime>,
}

impl KeyRequest {
    /// A key named `name` (such as the machine it lives on), with no scopes and the
    /// tenant's default lifetime.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            ..Self::default()
        }
    }

    /// A free-text description.
    pub fn description(mut self, description: &str) -> Self {
        self.description = description.to_owned();
        self
    }

    /// The scopes the key carries: a subset of the caller's grants. The CA checks each.
    pub fn scopes<S: AsRef<str>>(mut self, scopes: impl IntoIterator<Item = S>) -> Self {
        self.scopes = scopes.into_iter().map(|s| s.as_ref().to_owned()).collect();
        self
    }

    /// The key's lifetime (capped by the tenant's maximum), instead of the default.
    pub fn lifetime(mut self, lifetime: time::Duration) -> Self {
        self.ttl_seconds = Some(lifetime.whole_seconds());
        self.expires_at = None;
        self
    }

    /// The key's end, instead of a lifetime.
    pub fn expires_at(mut self, at: time::OffsetDateTime) -> Self {
        self.expires_at = Some(at);
        self.ttl_seconds = None;
        self
    }
}

/// A client of one CA, with or without a client certificate.
#[derive(Clone)]
pub struct Client {
    connection: Connection,
}

impl Client {
    /// A client for `server` that trusts the roots in `ca_pem` and presents `identity`
    /// (certificate chain PEM, private key PEM) if given.
    pub fn new(
        server: &str,
        ca_pem: &[u8],
        identity: Option<(&[u8], &[u8])>,
    ) -> Result<Self, ClientError> {
        Ok(Self {
            connection: Connection::new(server, ca_pem, identity)?,
        })
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        auth: Option<&Auth>,
        body: Option<&impl Serialize>,
    ) -> Result<T, ClientError> {
        let body = body.map(|b| serde_json::to_vec(b).unwrap_or_default());
        let (status, bytes) = self.connection.send(method, path, auth, body).await?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|_| unexpected(status.as_u16(), &bytes));
        }
        Err(problem_or_unexpected(status.as_u16(), &bytes))
    }

    /// `GET /v1/ca`: the CA chain (the issuing intermediates still published, newest first,
    /// then the root; after a root rollover, the cross-certificates, then every root, newest
    /// first).
    pub async fn ca_chain(
        &self,
    ) -> Result<Vec<rustls_pki_types::CertificateDer<'static>>, ClientError> {
        let (status, bytes) = self
            .connection
            .send(Method::GET, "/v1/ca", None, None)
            .await?;
        if !status.is_success() {
            return Err(problem_or_unexpected(status.as_u16(), &bytes));
        }
        Ok(crate::tls::load_certificates(&bytes, "the CA chain")?)
    }

    /// `POST /v1/keys`: gets a key for the CSR in `request`.
    pub async fn enroll(
        &self,
        auth: &Auth,
        request: &EnrollRequest,
    ) -> Result<EnrollResponse, ClientError> {
        self.call(Method::POST, "/v1/keys", Some(auth), Some(request))
            .await
    }

    /// `GET /v1/keys`: one page of keys.
    pub async fn list_keys(
        &self,
        auth: Option<&Auth>,
        query: &KeyQuery,
    ) -> Result<KeyPage, ClientError> {
        let query = serde_urlencoded_query(query);
        self.call(Method::GET, &format!("/v1/keys{query}"), auth, None::<&()>)
            .await
    }

    /// `GET /v1/keys/{id}`.
    pub async fn key(&self, auth: Option<&Auth>, id: &str) -> Result<KeyInfo, ClientError> {
        let id = percent(id);
        self.call(Method::GET, &format!("/v1/keys/{id}"), auth, None::<&()>)
            .await
    }

    /// `POST /v1/admin/tenants`.
    pub async fn add_tenant(&self, request: &NewTenant) -> Result<TenantInfo, ClientError> {
        self.call(Method::POST, "/v1/admin/tenants", None, Some(request))
            .await
    }

    /// `GET /v1/admin/tenants`.
    pub async fn tenants(&self) -> Result<Vec<TenantInfo>, ClientError> {
        self.call(Method::GET, "/v1/admin/tenants", None, None::<&()>)
            .await
    }

    /// `POST /v1/admin/users`.
    pub async fn add_user(&self, request: &NewUser) -> Result<UserInfo, ClientError> {
        self.call(Method::POST, "/v1/admin/users", None, Some(request))
            .await
    }

    /// `GET /v1/admin/tenants/{tenant}/users`.
    pub async fn users(&self, tenant: &str) -> Result<Vec<UserInfo>, ClientError> {
        let path = format!("/v1/admin/tenants/{}/users", percent(tenant));
        self.call(Method::GET, &path, None, None::<&()>).await
    }

    /// `POST /v1/admin/tokens`: the answer holds the secret, once.
    pub async fn create_token(&self, request: &NewToken) -> Result<TokenInfo, ClientError> {
        self.call(Method::POST, "/v1/admin/tokens", None, Some(request))
            .await
    }

    /// `POST /v1/admin/tokens/batch`: `count` tokens alike; the answer holds their secrets,
    /// once.
    pub async fn create_tokens(
        &self,
        request: &NewTokenBatch,
    ) -> Result<Vec<TokenInfo>, ClientError> {
        self.call(Method::POST, "/v1/admin/tokens/batch", None, Some(request))
            .await
    }

    /// `GET /v1/admin/tokens`.
    pub async fn tokens(&self, tenant: Option<&str>) -> Result<Vec<TokenInfo>, ClientError> {
        let path = match tenant {
            Some(t) => format!("/v1/admin/tokens?tenant={}", percent(t)),
            None => "/v1/admin/tokens".to_owned(),
        };
        self.call(Method::GET, &path, None, None::<&()>).await
    }

    /// `DELETE /v1/keys/{id}`: revokes a key.
    pub async fn revoke_key(
        &self,
        auth: Option<&Auth>,
        id: &str,
        reason: Option<&str>,
    ) -> Result<KeyInfo, ClientError> {
        // The reason is sent as given, not parsed here: the CA judges it (`invalid_reason`),
        // and the JSON is what `RevokeRequest` would be.
        let body = match reason {
            Some(reason) => serde_json::json!({ "reason": reason }),
            None => serde_json::json!({}),
        };
        let path = format!("/v1/keys/{}", percent(id));
        self.call(Method::DELETE, &path, auth, Some(&body)).await
    }

    /// `POST /v1/keys/{id}/renew`: a new certificate for the key whose certificate this
    /// client presents; with a CSR, for a new key pair.
    pub async fn renew(
        &self,
        id: &str,
        csr: Option<String>,
    ) -> Result<EnrollResponse, ClientError> {
        let path = format!("/v1/keys/{}/renew", percent(id));
        self.call(Method::POST, &path, None, Some(&RenewRequest { csr }))
            .await
    }

    /// `POST /v1/admin/revocations`.
    pub async fn revoke_many(
        &self,
        request: &BulkRevocation,
    ) -> Result<BulkRevocationResult, ClientError> {
        self.call(Method::POST, "/v1/admin/revocations", None, Some(request))
            .await
    }

    /// `PATCH /v1/admin/tenants/{tenant}`.
    pub async fn change_tenant(
        &self,
        tenant: &str,
        change: &TenantChange,
    ) -> Result<TenantInfo, ClientError> {
        let path = format!("/v1/admin/tenants/{}", percent(tenant));
        self.call(Method::PATCH, &path, None, Some(change)).await
    }

    /// `PATCH /v1/admin/users/{user}`.
    pub async fn change_user(
        &self,
        user: &str,
        change: &UserChange,
    ) -> Result<UserInfo, ClientError> {
        let path = format!("/v1/admin/users/{}", percent(user));
        self.call(Method::PATCH, &path, None, Some(change)).await
    }

    /// `DELETE /v1/admin/tokens/{id}`.
    pub async fn revoke_token(&self, id: i64) -> Result<(), ClientError> {
        self.delete(&format!("/v1/admin/tokens/{id}")).await
    }

    /// A `DELETE` answered with no content.
    async fn delete(&self, path: &str) -> Result<(), ClientError> {
        let (status, bytes) = self
            .connection
            .send(Method::DELETE, path, None, None)
            .await?;
        if status.is_success() {
            return Ok(());
        }
        Err(problem_or_unexpected(status.as_u16(), &bytes))
    }

    /// `GET /v1/admin/audit` with a query string such as `tenant=acme&limit=10`.
    pub async fn audit(&self, query: &[(&str, String)]) -> Result<AuditPage, ClientError> {
        let query: Vec<String> = query
            .iter()
            .map(|(k, v)| format!("{k}={}", percent(v)))
            .collect();
        let path = if query.is_empty() {
            "/v1/admin/audit".to_owned()
        } else {
            format!("/v1/admin/audit?{}", query.join("&"))
        };
        self.call(Method::GET, &path, None, None::<&()>).await
    }

    /// `GET /v1/crl` in DER: the CRL (of the oldest shared issuer the CA still publishes)
    /// and its number; `None` when a long poll (`newer_than` with `wait` seconds) ended
    /// without a newer one.
    pub async fn crl(
        &self,
        newer_than: Option<i64>,
        wait: u64,
    ) -> Result<Option<(i64, Vec<u8>)>, ClientError> {
        self.crl_at("/v1/crl", newer_than, wait).await
    }

    /// `GET /v1/issuers`: every issuing intermediate the CA has had, oldest first, with
    /// where each one's CRL is. With `newer_than`, a long poll of up to `wait` seconds (the
    /// CA allows 60) for a list whose revision is above it: `None` when it ended without
    /// one. A CA older than this endpoint answers 404 ([`ClientError::is_not_found`]).
    pub async fn issuers(
        &self,
        newer_than: Option<i64>,
        wait: u64,
    ) -> Result<Option<IssuerList>, ClientError> {
        let path = match newer_than {
            Some(n) => format!("/v1/issuers?newer_than={n}&wait={wait}"),
            None => "/v1/issuers".to_owned(),
        };
        let (status, _, bytes) = self
            .connection
            .long_poll(&path, std::time::Duration::from_secs(wait))
            .await?;
        if status == http::StatusCode::NOT_MODIFIED {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(problem_or_unexpected(status.as_u16(), &bytes));
        }
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|_| unexpected(status.as_u16(), &bytes))
    }

    /// `GET /v1/issuers/{id}/crl` in DER: the CRL of one issuing intermediate, given by its
    /// id (`3`) or by the CRL path `GET /v1/issuers` names (`/v1/issuers/3/crl`), and its
    /// number; the long poll and answers of [`Client::crl`]. An unknown or retired issuer
    /// is a 404 ([`ClientError::is_not_found`]).
    pub async fn issuer_crl(
        &self,
        issuer: &str,
        newer_than: Option<i64>,
        wait: u64,
    ) -> Result<Option<(i64, Vec<u8>)>, ClientError> {
        let path = self.issuer_crl_path(issuer)?;
        self.crl_at(&path, newer_than, wait).await
    }

    /// `GET /v1/issuers/{id}/crl/latest`: the newest CRL's number of an issuing
    /// intermediate (its CRL path as `GET /v1/issuers` names it, `/v1/issuers/3/crl`) and
    /// where to fetch it whole, or as a delta from `newer_than`; a long poll of up to `wait`
    /// seconds for one newer than `newer_than`. A CA older than this endpoint answers 404
    /// ([`ClientError::is_not_found`]).
    pub async fn latest_crl(
        &self,
        crl_path: &str,
        newer_than: Option<i64>,
        wait: u64,
    ) -> Result<crate::api::LatestCrl, ClientError> {
        let base = self.issuer_crl_path(crl_path)?;
        let path = match newer_than {
            Some(n) => format!("{base}/latest?newer_than={n}&wait={wait}"),
            None => format!("{base}/latest"),
        };
        let (status, _, bytes) = self
            .connection
            .long_poll(&path, std::time::Duration::from_secs(wait))
            .await?;
        if !status.is_success() {
            return Err(problem_or_unexpected(status.as_u16(), &bytes));
        }
        serde_json::from_slice(&bytes).map_err(|_| unexpected(status.as_u16(), &bytes))
    }

    /// A CRL or delta CRL at one of the immutable paths `GET .../crl/latest` names, in DER.
    pub async fn crl_file(&self, path: &str) -> Result<Vec<u8>, ClientError> {
        if !path.starts_with("/v1/issuers/") || !safe_path(path) {
            return Err(ClientError::IssuerCrl(path.to_owned()));
        }
        let (status, _, bytes) = self
            .connection
            .fetch_crl(path, std::time::Duration::ZERO)
            .await?;
        if !status.is_success() {
            return Err(problem_or_unexpected(status.as_u16(), &bytes));
        }
        Ok(bytes.to_vec())
    }

    /// The CRL path of an issuer given by its id (`3`) or its path (`/v1/issuers/3/crl`).
    fn issuer_crl_path(&self, issuer: &str) -> Result<String, ClientError> {
        if !issuer.is_empty() && issuer.bytes().all(|b| b.is_ascii_digit()) {
            Ok(format!("/v1/issuers/{issuer}/crl"))
        } else if issuer.starts_with("/v1/") && safe_path(issuer) {
            Ok(issuer.to_owned())
        } else {
            Err(ClientError::IssuerCrl(issuer.to_owned()))
        }
    }

    /// A CRL at `path` (`/v1/crl` or an issuer's), in DER, with the long poll of
    /// [`Client::crl`].
    async fn crl_at(
        &self,
        path: &str,
        newer_than: Option<i64>,
        wait: u64,
    ) -> Result<Option<(i64, Vec<u8>)>, ClientError> {
        let path = match newer_than {
            Some(n) => format!("{path}?newer_than={n}&wait={wait}"),
            None => path.to_owned(),
        };
        let (status, headers, bytes) = self
            .connection
            .fetch_crl(&path, std::time::Duration::from_secs(wait))
            .await?;
        if status == http::StatusCode::NOT_MODIFIED {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(problem_or_unexpected(status.as_u16(), &bytes));
        }
        let number = headers
            .get("latchkey-crl-number")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| unexpected(status.as_u16(), b"no CRL number header"))?;
        Ok(Some((number, bytes.to_vec())))
    }

    /// `GET /v1/crl/root` in DER: the (first) root's CRL and its number.
    pub async fn root_crl(&self) -> Result<(i64, Vec<u8>), ClientError> {
        self.root_crl_at("/v1/crl/root").await
    }

    /// The CRL of the root whose subject key identifier is `key_id`, in DER, and its number:
    /// `GET /v1/roots/{key id}/crl` (after a root rollover each root has its own), or on a CA
    /// older than that route, `GET /v1/crl/root`: its one root's.
    pub async fn root_crl_of(&self, key_id: &[u8]) -> Result<(i64, Vec<u8>), ClientError> {
        match self
            .root_crl_at(&format!("/v1/roots/{}/crl", hex::encode(key_id)))
            .await
        {
            Err(e) if e.is_not_found() => self.root_crl().await,
            other => other,
        }
    }

    async fn root_crl_at(&self, path: &str) -> Result<(i64, Vec<u8>), ClientError> {
        let (status, headers, bytes) = self
            .connection
            .fetch_crl(path, std::time::Duration::ZERO)
            .await?;
        if !status.is_success() {
            return Err(problem_or_unexpected(status.as_u16(), &bytes));
        }
        let number = headers
            .get("latchkey-crl-number")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| unexpected(status.as_u16(), b"no CRL number header"))?;
        Ok((number, bytes.to_vec()))
    }

    /// Makes a key pair locally, gets a key for it as `request` describes, and writes the
    /// key directory. The private key never leaves this process except into `dir/key.pem`
    /// (mode 0600).
    pub async fn enroll_into(
        &self,
        auth: &Auth,
        dir: &KeyDir,
        key_type: KeyType,
        request: KeyRequest,
    ) -> Result<EnrollResponse, ClientError> {
        let pair = new_key_pair(key_type)?;
        // The key is on disk before the CA certifies it, so a certificate is never issued
        // for a key this machine then fails to keep.
        dir.write_key(&pair.key_pem)?;
        let request = EnrollRequest {
            csr: pair.csr_pem.clone(),
            name: request.name,
            description: request.description,
            scopes: ScopeSet::parse(&request.scopes)?,
            ttl_seconds: request.ttl_seconds,
            expires_at: request.expires_at,
        };
        match self.enroll(auth, &request).await {
            Ok(response) => {
                dir.write_certificates(&response.certificate, &response.chain)?;
                Ok(response)
            }
            Err(e) => {
                // Nothing was issued: leave the directory as it was, ready for another try.
                dir.remove_key();
                Err(e)
            }
        }
    }
}

fn problem_or_unexpected(status: u16, body: &[u8]) -> ClientError {
    match serde_json::from_slice::<Problem>(body) {
        Ok(problem) => ClientError::Problem(problem),
        Err(_) => unexpected(status, body),
    }
}

fn unexpected(status: u16, body: &[u8]) -> ClientError {
    ClientError::Unexpected {
        status,
        body: String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
    }
}

/// Percent-encodes a path segment or query value.
fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn serde_urlencoded_query(query: &KeyQuery) -> String {
    let within = query.expiring_within.map(|w| w.to_string());
    let pairs: Vec<String> = [
        ("tenant", query.tenant.as_ref().map(TenantName::as_str)),
        ("owner", query.owner.as_ref().map(OwnerName::as_str)),
        ("name", query.name.as_deref()),
        ("serial", query.serial.as_deref()),
        ("status", query.status.map(KeyStatus::as_str)),
        ("expiring_within", within.as_deref()),
        ("cursor", query.cursor.as_deref()),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| format!("{k}={}", percent(v))))
    .chain(query.limit.map(|l| format!("limit={l}")))
    .collect();
    if pairs.is_empty() {
        String::new()
    } else {
        format!("?{}", pairs.join("&"))
    }
}

/// True for a path of plain characters, with no `..`: one a CA's answer may name for this
/// client to fetch.
fn safe_path(path: &str) -> bool {
    !path.contains("..")
        && path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/-._~".contains(&b))
}
