//! axum for relying services: the [`Identity`] extractor and the scope guard. Serve the
//! `Router` with [`crate::relying::Relying::serve`], which wires the verifier of the
//! handshake into these per-request checks; then a handler states what it needs in its
//! signature:
//!
//! ```
//! use latchkey::tls::axum::{Scoped, scope};
//!
//! scope!(ReadMetrics = "read:metrics");
//!
//! async fn metrics(Scoped(identity, _): Scoped<ReadMetrics>) -> String {
//!     format!("hello {}@{}", identity.owner(), identity.tenant())
//! }
//! # let _ = axum::Router::<()>::new().route("/metrics", axum::routing::get(metrics));
//! ```
//!
//! A handler that reads a body must name its scope in its signature with [`Scoped`], before
//! the body extractor: axum runs extractors from the request's parts first and in order,
//! and the body extractor last, so the scope is decided before the body is read or
//! validated. Checking [`Identity::require_scope`] inside the handler of a `Json<T>` route
//! would answer a key without the scope 422 for a malformed body instead of 403: validation
//! before authorization, which tells a caller about a request it may not make.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use std::sync::Arc;

use rustls_pki_types::UnixTime;

use super::{ConnectionInfo, ForwardedClientCert, Identity, LatchkeyVerifier};
use crate::api::Problem;
use crate::model::Scope;

/// Why a request was refused: answered as `application/problem+json`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rejection {
    /// The connection carries no latchkey key identity.
    NoIdentity,
    /// The key lacks this scope.
    MissingScope(String),
    /// The key was good at the handshake but no longer is (revoked or expired since, or the
    /// CRL went stale): a keep-alive connection does not outlive its key.
    NoLongerValid(String),
    /// A forwarded client certificate (see [`super::ForwardedClientCert`]) came from an
    /// address that is not a configured proxy.
    UntrustedForwarder,
    /// The forwarded client certificate is unreadable, or the verifier refuses it (revoked,
    /// expired, another CA's, not a latchkey key).
    BadForwardedCertificate(String),
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        let (status, code, detail) = match &self {
            Rejection::NoIdentity => (
                StatusCode::UNAUTHORIZED,
                "certificate_required",
                "present a latchkey key certificate".to_owned(),
            ),
            Rejection::NoLongerValid(why) => (
                StatusCode::UNAUTHORIZED,
                "certificate_no_longer_valid",
                format!("the key certificate of this connection is no longer accepted: {why}"),
            ),
            Rejection::UntrustedForwarder => (
                StatusCode::FORBIDDEN,
                "forwarded_certificate_untrusted_source",
                "a client certificate header is accepted only from the configured proxies"
                    .to_owned(),
            ),
            Rejection::BadForwardedCertificate(why) => (
                StatusCode::UNAUTHORIZED,
                "forwarded_certificate_invalid",
                format!("the forwarded client certificate is not accepted: {why}"),
            ),
            Rejection::MissingScope(scope) => (
                StatusCode::FORBIDDEN,
                "scope_not_granted",
                format!("this needs the scope {scope}"),
            ),
        };
        let problem = Problem::new(status, code, detail);
        let mut response =
            (status, serde_json::to_vec(&problem).unwrap_or_default()).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        response
    }
}

impl Identity {
    /// Refuses (403, naming the scope) unless the key carries `scope`. No scopes means no
    /// access: there is no wildcard.
    pub fn require_scope(&self, scope: &Scope) -> Result<(), Rejection> {
        if self.has_scope(scope) {
            Ok(())
        } else {
            Err(Rejection::MissingScope(scope.to_string()))
        }
    }
}

/// A scope a handler requires, named as a type so the requirement sits in its signature.
/// Declare one with [`scope!`], which checks the scope's spelling when the service compiles:
///
/// ```compile_fail,E0080
/// latchkey::tls::axum::scope!(ReadMetrics = "Read Metrics"); // not a valid scope
/// ```
pub trait RequiredScope: Send + Sync + 'static {
    /// The scope, such as `read:metrics`.
    const SCOPE: &'static str;
}

/// Declares a [`RequiredScope`] type: `scope!(ReadMetrics = "read:metrics");`. The literal
/// must be a valid scope ([`crate::model::Scope::is_valid`]), or the service does not
/// compile: a typo cannot become a scope no key carries.
#[macro_export]
macro_rules! scope {
    ($name:ident = $scope:literal) => {
        /// A required scope.
        #[derive(Debug, Clone, Copy)]
        pub struct $name;
        // Evaluated whenever the service compiles, used or not.
        const _: () = assert!(
            $crate::model::Scope::is_valid($scope),
            concat!("scope!: not a valid scope: ", $scope)
        );
        impl $crate::tls::axum::RequiredScope for $name {
            const SCOPE: &'static str = $scope;
        }
    };
}
pub use scope;

/// An [`Identity`] whose key carries the scope `S`; anything else is refused before the
/// handler runs (401 without a key, 403 naming the scope).
#[derive(Debug, Clone)]
pub struct Scoped<S: RequiredScope>(pub Identity, pub std::marker::PhantomData<S>);

impl<S: Send + Sync, R: RequiredScope> FromRequestParts<S> for Scoped<R> {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Rejection> {
        let identity = Identity::from_request_parts(parts, state).await?;
        if !identity.scopes().iter().any(|s| s.as_str() == R::SCOPE) {
            return Err(Rejection::MissingScope(R::SCOPE.to_owned()));
        }
        Ok(Self(identity, std::marker::PhantomData))
    }
}

/// What a connection's handshake proved, with the verifier that proved it, so every request
/// can check the key still stands.
#[derive(Clone)]
pub(crate) struct VerifiedConnection {
    identity: Identity,
    verifier: Arc<LatchkeyVerifier>,
}

impl<S: Send + Sync> FromRequestParts<S> for Identity {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Rejection> {
        let connection = parts
            .extensions
            .get::<Option<VerifiedConnection>>()
            .cloned()
            .flatten();
        let Some(connection) = connection else {
            // No handshake identity: behind a TLS-terminating proxy, the certificate it
            // forwards, if this service takes one. The peer is the TCP peer, from this
            // library's listener or from axum's `ConnectInfo`.
            let Some(forwarded) = parts.extensions.get::<ForwardedClientCert>() else {
                return Err(Rejection::NoIdentity);
            };
            let peer = parts
                .extensions
                .get::<ConnectionInfo>()
                .map(|c| c.peer)
                .or_else(|| {
                    parts
                        .extensions
                        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                        .map(|c| c.0)
                })
                .ok_or(Rejection::NoIdentity)?;
            return forwarded.identity(peer.ip(), &parts.headers);
        };
        connection
            .verifier
            .still_valid(&connection.identity, UnixTime::now())
            .map_err(|e| Rejection::NoLongerValid(e.to_string()))?;
        Ok(connection.identity)
    }
}

/// The per-connection step for [`super::serve`]: reads the verified leaf's identity once,
/// with the verifier's trust domain and the intermediate that issued it (whose CRL the
/// per-request checks read), and keeps the verifier for those checks.
/// Crate-private: `relying::Relying::serve` passes it the verifier of the listener, so the
/// two can never differ.
pub(crate) fn identity_per_connection(
    verifier: Arc<LatchkeyVerifier>,
) -> impl Fn(&ConnectionInfo) -> Option<VerifiedConnection> + Clone + Send + Sync + 'static {
    move |info: &ConnectionInfo| {
        let identity = info
            .certificate
            .as_ref()
            .and_then(|c| verifier.identity_after_handshake(c))?;
        Some(VerifiedConnection {
            identity,
            verifier: verifier.clone(),
        })
    }
}
