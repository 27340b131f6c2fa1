//! The rustls side, usable by relying services without the CA's dependencies: the CA's own
//! listener configuration, client configurations, the identity a latchkey certificate
//! carries, and the relying service's verifier with live revocation. With the `axum`
//! feature, serving an axum `Router` over latchkey mTLS with an `Identity` extractor.

mod accept;
#[cfg(feature = "axum")]
pub mod axum;
#[cfg(feature = "server")]
mod ca_listener_verifier;
mod config;
#[cfg(feature = "axum")]
mod forwarded;
mod identity;
#[cfg(feature = "axum")]
mod linger;
#[cfg(feature = "axum")]
mod log_limit;
#[cfg(feature = "axum")]
pub mod proxy_protocol;
mod revocation;
#[cfg(feature = "axum")]
mod serve;
mod verifier;

pub use accept::{AcceptError, Acceptor, ServerStream};
#[cfg(feature = "server")]
pub(crate) use config::ca_listener_config;
pub use config::{
    ConfigError, client_config, load_certificates, load_private_key, provider,
    relying_server_config,
};
#[cfg(feature = "axum")]
pub use forwarded::{ForwardedClientCert, ForwardedHeader, serve_behind_proxy};
pub use identity::{Identity, IdentityError, PeerIdentity};
pub use revocation::{CrlError, RevocationSet, Revocations};
#[cfg(feature = "axum")]
pub use serve::{
    ConnectionInfo, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_CONNECTIONS_PER_SOURCE, ListenerLimits,
    OnRefusal, Refusal, serve, serve_with_limits,
};
pub use verifier::{DEFAULT_GRACE, LatchkeyVerifier, VerifierError};

/// A CRL file's bytes as DER: PEM (`X509 CRL`) is decoded, anything else is taken as DER.
pub fn crl_der(bytes: &[u8]) -> Vec<u8> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateRevocationListDer::from_pem_slice(bytes)
        .map(|c| c.as_ref().to_vec())
        .unwrap_or_else(|_| bytes.to_vec())
}
