//! The rustls side, usable by relying services without the CA's dependencies: the verifier
//! with live revocation, the TLS configurations latchkey builds, and (with the `axum`
//! feature) serving an axum `Router` over latchkey mTLS with an [`Identity`] extractor.
//! A relying service configures all of it through [`crate::relying::Relying`]; what it
//! reads a certificate's profile with is [`crate::profile`]. Nothing here fetches a CRL
//! over the network or from a file: that is a [`CrlSource`]'s job, outside this module.

#[cfg(feature = "axum")]
mod accept;
#[cfg(feature = "axum")]
pub mod axum;
#[cfg(feature = "server")]
mod ca_listener_verifier;
mod config;
#[cfg(feature = "axum")]
mod forwarded;
mod issuers;
#[cfg(feature = "axum")]
mod linger;
mod log_limit;
#[cfg(feature = "axum")]
pub mod proxy_protocol;
mod revocation;
#[cfg(feature = "axum")]
mod serve;
mod verifier;

#[cfg(feature = "axum")]
pub(crate) use accept::Acceptor;
#[cfg(feature = "server")]
pub(crate) use ca_listener_verifier::{CaIntermediates, CaServerChain};
#[cfg(feature = "server")]
pub(crate) use config::ca_listener_config;
pub(crate) use config::provider;
#[cfg(feature = "server")]
pub use config::public_client_config;
pub(crate) use config::relying_server_config;
pub use config::{ConfigError, client_config, load_certificates, load_private_key};
#[cfg(feature = "axum")]
pub(crate) use forwarded::serve_behind_proxy;
#[cfg(feature = "axum")]
pub use forwarded::{ForwardedClientCert, ForwardedHeader};
pub(crate) use issuers::{Issuers, anchored, certifies_a_root, cross_certified};
pub use revocation::{CrlSink, CrlSource, CrlSourceTask, Revocations};
#[cfg(feature = "axum")]
pub use serve::ConnectionInfo;
#[cfg(feature = "axum")]
pub(crate) use serve::serve;
// The CA binary (`src/cli`) sets its listener's limits across the crate boundary; relying
// services take the defaults through `relying::Relying::serve`.
#[cfg(feature = "server")]
#[doc(hidden)]
pub use serve::{DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_CONNECTIONS_PER_SOURCE, ListenerLimits};
#[cfg(feature = "server")]
pub(crate) use serve::{OnRefusal, serve_with_limits};
pub(crate) use verifier::{Chain, Tenants};
pub use verifier::{DEFAULT_GRACE, LatchkeyVerifier, MAX_GRACE, VerifierError};

pub use crate::profile::{CrlError, Identity, IdentityError, RevocationSet};
