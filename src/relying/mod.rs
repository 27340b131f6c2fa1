//! Configuring a relying service: one builder takes the CA, the tenants to accept and where
//! the CRLs come from, fetches the CA's issuing intermediates if asked (`GET /v1/issuers`,
//! followed from then on: a rotation needs no restart), starts following each one's CRL,
//! **waits for the first verified CRLs**, and hands back a [`Relying`] holding ONE verifier.
//! Both places that need it (the TLS listener's handshake check and the per-request check
//! that a keep-alive connection's key still stands) get it from there, so they can never
//! differ.
//!
//! ```no_run
//! # #[cfg(feature = "axum")]
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use latchkey::relying::Relying;
//! use latchkey::tls::axum::{Scoped, scope};
//!
//! scope!(ReadMetrics = "read:metrics");
//!
//! async fn metrics(Scoped(identity, _): Scoped<ReadMetrics>) -> String {
//!     format!("hello {}@{}", identity.owner(), identity.tenant())
//! }
//!
//! let relying = Relying::builder("latchkey.internal")
//!     .tenants(["acme".parse()?])                  // or .any_tenant(): a choice is required
//!     .follow_ca("https://127.0.0.1:8443", &std::fs::read("certs/ca.pem")?)
//!     .build()                                     // fetches the issuers, waits for CRLs
//!     .await?;
//!
//! // This service's own certificate and key.
//! let cert = latchkey::tls::load_certificates(&std::fs::read("service.pem")?, "service.pem")?;
//! let key = latchkey::tls::load_private_key(&std::fs::read("service-key.pem")?, "service-key.pem")?;
//! let router = axum::Router::new().route("/api/v1/metrics", axum::routing::get(metrics));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:9443").await?;
//! relying
//!     .serve(listener, cert, key, router, async {
//!         let _ = tokio::signal::ctrl_c().await;
//!     })
//!     .await?;
//! # Ok(())
//! # }
//! ```

mod follow;
mod sources;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use time::Duration;

use crate::client::{Client, ClientError};
use crate::model::TenantName;
use crate::tls::{
    Chain, ConfigError, CrlSink, CrlSource, LatchkeyVerifier, Tenants, VerifierError, anchored,
};
use follow::Discovery;
pub(crate) use sources::CrlFile;

/// How long [`RelyingBuilder::build`] waits for the first CRL by default.
pub const DEFAULT_FIRST_CRL_WITHIN: std::time::Duration = std::time::Duration::from_secs(10);

/// Why a relying service could not be configured.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RelyingError {
    /// Neither a chain ([`RelyingBuilder::ca_chain`]) nor a CA to fetch it from
    /// ([`RelyingBuilder::follow_ca`]) was given.
    #[error("no CA chain: give the CA with follow_ca, or the chain with ca_chain")]
    NoChain,
    /// No revocation source was given: without CRLs every key is refused.
    #[error("no revocation source: give follow_ca, crl_file or crl_source")]
    NoCrlSource,
    /// The root certificate given to [`RelyingBuilder::follow_ca`] is unreadable.
    #[error("the CA root certificate: {0}")]
    Root(#[from] ConfigError),
    /// The CA could not be asked for its issuing intermediates (or, on a CA older than
    /// `GET /v1/issuers`, its chain).
    #[error("fetching the CA chain: {0}")]
    Client(#[from] ClientError),
    /// The CA answered `GET /v1/ca` with no certificate.
    #[error("the CA sent an empty chain")]
    EmptyChain,
    /// The verifier refused the configuration (a chain without the intermediate, a grace out
    /// of range, an invalid trust domain, an empty tenant list).
    #[error(transparent)]
    Verifier(#[from] VerifierError),
    /// No CRL signed by any of the CA's intermediates arrived in time; every key would be
    /// refused.
    #[error("no valid CRL within {0:?}: is the CA reachable, and is the chain its own?")]
    NoCrl(std::time::Duration),
}

/// The builder's state before a tenant choice: [`RelyingBuilder::build`] exists only once
/// [`RelyingBuilder::tenants`] or [`RelyingBuilder::any_tenant`] was called.
#[derive(Debug)]
pub struct TenantsNotChosen;

/// The builder's state after a tenant choice.
#[derive(Debug)]
pub struct TenantsChosen(Tenants);

/// Where the CRLs come from.
enum Revocation {
    None,
    FollowCa,
    Source(Box<dyn CrlSource>),
}

/// Configures a relying service: see the [module documentation](self).
pub struct RelyingBuilder<T> {
    trust_domain: String,
    tenants: T,
    ca: Option<(String, Vec<u8>)>,
    chain: Option<Vec<CertificateDer<'static>>>,
    revocation: Revocation,
    grace: Option<Duration>,
    insecure_allow_stale_crl: bool,
    first_crl_within: std::time::Duration,
}

impl<T: std::fmt::Debug> std::fmt::Debug for RelyingBuilder<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelyingBuilder")
            .field("trust_domain", &self.trust_domain)
            .field("tenants", &self.tenants)
            .field("ca", &self.ca.as_ref().map(|(url, _)| url))
            .field("grace", &self.grace)
            .field("insecure_allow_stale_crl", &self.insecure_allow_stale_crl)
            .finish_non_exhaustive()
    }
}

impl<T> RelyingBuilder<T> {
    fn with_tenants<U>(self, tenants: U) -> RelyingBuilder<U> {
        RelyingBuilder {
            trust_domain: self.trust_domain,
            tenants,
            ca: self.ca,
            chain: self.chain,
            revocation: self.revocation,
            grace: self.grace,
            insecure_allow_stale_crl: self.insecure_allow_stale_crl,
            first_crl_within: self.first_crl_within,
        }
    }

    /// The CA at `url` (`https://host:port`), trusted through its root certificate
    /// `root_pem` (PEM): its issuing intermediates are fetched from `GET /v1/issuers` and
    /// anchored at this root (never at a root the CA sends; an intermediate the root did not
    /// sign is logged and skipped), and followed by long poll: a new one (after the CA
    /// rotates) is added, a retired one dropped, without a restart. After a root rollover
    /// the list carries cross-certificates: the one this root signed is taken too, so the
    /// other root's intermediates (signed by the key it certifies) are followed like the
    /// others and a service given the old root accepts keys of the new one's. Each
    /// intermediate's CRL is followed by long poll, each new one verified once against that
    /// intermediate and swapped in. A CA older than `/v1/issuers` has one intermediate (`GET
    /// /v1/ca`) and one CRL (`GET /v1/crl`): then those are followed. Replaces any other
    /// revocation source.
    pub fn follow_ca(mut self, url: &str, root_pem: &[u8]) -> Self {
        self.ca = Some((url.to_owned(), root_pem.to_vec()));
        self.revocation = Revocation::FollowCa;
        self
    }

    /// The CA chain (the issuing intermediates, then the root; after a root rollover, as `GET
    /// /v1/ca` serves it, the cross-certificates and every root too: each root is a trust
    /// anchor, and an intermediate may be signed by a root or by the key of another root
    /// that a cross-certificate a root signed certifies), when it is not fetched from the
    /// CA: required with [`Self::crl_file`] or [`Self::crl_source`]. With
    /// [`Self::follow_ca`], the intermediates to start with (so building needs the CA only
    /// for the CRLs); the CA's list replaces them once it is fetched.
    pub fn ca_chain(mut self, chain: Vec<CertificateDer<'static>>) -> Self {
        self.chain = Some(chain);
        self
    }

    /// Takes the CRLs from a file (DER, or PEM holding one CRL or several, such as `GET
    /// /v1/crl/bundle.pem`: each is filed under the intermediate of the chain that signed
    /// it), read again whenever it changes; `latchkey crl sync` keeps it current. Replaces
    /// any other revocation source.
    pub fn crl_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.revocation = Revocation::Source(Box::new(CrlFile::new(path.into())));
        self
    }

    /// Takes CRLs from a source of your own. Each is verified against the intermediate of
    /// the chain that signed it before it counts for that intermediate. Replaces any other
    /// revocation source.
    pub fn crl_source(mut self, source: impl CrlSource) -> Self {
        self.revocation = Revocation::Source(Box::new(source));
        self
    }

    /// How long past a CRL's `nextUpdate` handshakes still pass (default
    /// [`crate::tls::DEFAULT_GRACE`]); [`RelyingBuilder::build`] refuses a value below zero
    /// or above [`crate::tls::MAX_GRACE`].
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = Some(grace);
        self
    }

    /// DANGER: accepts handshakes with a CRL past `nextUpdate` plus the grace. Revocations
    /// may then be missed; logged whenever it matters.
    pub fn insecure_allow_stale_crl(mut self) -> Self {
        self.insecure_allow_stale_crl = true;
        self
    }

    /// How long [`RelyingBuilder::build`] waits for the first verified CRL of every
    /// intermediate (default [`DEFAULT_FIRST_CRL_WITHIN`]). If none has one by then, it
    /// gives up with [`RelyingError::NoCrl`]; if only some have, it starts, logging an error
    /// for each of the others, whose keys are refused until their CRL comes.
    pub fn first_crl_within(mut self, wait: std::time::Duration) -> Self {
        self.first_crl_within = wait;
        self
    }
}

impl RelyingBuilder<TenantsNotChosen> {
    /// Accepts keys of these tenants only.
    pub fn tenants(
        self,
        tenants: impl IntoIterator<Item = TenantName>,
    ) -> RelyingBuilder<TenantsChosen> {
        let tenants: HashSet<TenantName> = tenants.into_iter().collect();
        self.with_tenants(TenantsChosen(Tenants::Only(tenants)))
    }

    /// Accepts keys of every tenant of the CA: say so, because on a multi-tenant CA that
    /// includes other organisations' keys.
    pub fn any_tenant(self) -> RelyingBuilder<TenantsChosen> {
        self.with_tenants(TenantsChosen(Tenants::Any))
    }
}

impl RelyingBuilder<TenantsChosen> {
    /// Fetches the CA's intermediates if asked, builds the verifier (refusing a
    /// configuration that could never accept a key), starts the revocation sources and waits
    /// for their first verified CRLs. The sources run until the returned [`Relying`] is
    /// dropped.
    pub async fn build(self) -> Result<Relying, RelyingError> {
        let client = match &self.ca {
            Some((url, root_pem)) => Some(Client::new(url, root_pem, None)?),
            None => None,
        };
        let (chain, known) = match (self.chain, &self.ca, &client) {
            (Some(chain), _, _) => (Chain::sort(&chain)?, None),
            (None, Some((_, root_pem)), Some(client)) => {
                let root = crate::tls::load_certificates(root_pem, "the CA root certificate")?;
                let mut chain = Chain::sort(&root)?;
                let discovery = Discovery::ask(client).await?;
                // Anchored at the root we were given, not at whatever root the CA sends.
                match &discovery {
                    // Only the cross-certificates the root signed, then the intermediates it
                    // signed directly or through one of them: the follower logs the others.
                    Discovery::Issuers(list) => {
                        let crosses = follow::crosses(list, &chain.roots);
                        chain.intermediates.extend(
                            follow::published(list)
                                .into_iter()
                                .map(|p| p.certificate)
                                .filter(|c| anchored(c, &chain.roots, &crosses).is_ok()),
                        );
                        chain.crosses.extend(crosses);
                    }
                    Discovery::Legacy => chain.intermediates.push(
                        client
                            .ca_chain()
                            .await?
                            .into_iter()
                            .next()
                            .ok_or(RelyingError::EmptyChain)?,
                    ),
                };
                (chain, Some(discovery))
            }
            _ => return Err(RelyingError::NoChain),
        };
        let mut verifier = LatchkeyVerifier::new(chain, &self.trust_domain, self.tenants.0)?;
        if let Some(grace) = self.grace {
            verifier = verifier.grace(grace)?;
        }
        if self.insecure_allow_stale_crl {
            verifier = verifier.insecure_allow_stale_crl();
        }
        let issuers = verifier.issuer_set().clone();
        let task = match (self.revocation, client) {
            (Revocation::FollowCa, Some(client)) => {
                // The chain passed the verifier's checks, so it holds an intermediate.
                let Some(first) = verifier.issuers().into_iter().next() else {
                    return Err(VerifierError::NoIntermediate.into());
                };
                tokio::spawn(follow::follow(client, issuers.clone(), first, known))
            }
            (Revocation::Source(source), _) => {
                tokio::spawn(source.run(CrlSink::by_signer(issuers.clone())))
            }
            _ => return Err(RelyingError::NoCrlSource),
        };
        let task = AbortOnDrop(task);
        first_crls(&verifier, self.first_crl_within).await?;
        Ok(Relying {
            verifier: Arc::new(verifier),
            _source: Arc::new(task),
        })
    }
}

/// Waits until every intermediate of `verifier` holds a CRL, or `within` passed: then
/// refuses if none holds one, and otherwise says which ones do not.
async fn first_crls(
    verifier: &LatchkeyVerifier,
    within: std::time::Duration,
) -> Result<(), RelyingError> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let set = verifier.issuer_set().load();
        let without: Vec<&str> = set
            .iter()
            .filter(|(_, i)| i.revocations.current().is_none())
            .map(|(_, i)| i.subject.as_str())
            .collect();
        let some = without.len() < set.iter().count();
        if some && without.is_empty() {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            if !some {
                return Err(RelyingError::NoCrl(within));
            }
            for issuer in without {
                tracing::error!(
                    %issuer,
                    "no CRL of this issuer yet: its keys are refused until one is verified"
                );
            }
            return Ok(());
        }
        drop(set);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Aborts a revocation source when the last [`Relying`] holding it goes (or, for one
/// intermediate's CRL, when its follower drops it).
#[derive(Debug)]
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A configured relying service: one verifier, its revocation source running. Serve with it
/// (`Relying::serve`, `Relying::serve_behind_proxy`, with the `axum` feature), or build the
/// TLS configuration with [`Relying::server_config`] and check each request's key with
/// [`Relying::verifier`].
#[derive(Debug, Clone)]
pub struct Relying {
    verifier: Arc<LatchkeyVerifier>,
    _source: Arc<AbortOnDrop>,
}

impl Relying {
    /// Starts configuring a relying service for keys of the CA whose SPIFFE trust domain is
    /// `trust_domain` (`latchkey.internal` unless the CA was set up otherwise).
    pub fn builder(trust_domain: &str) -> RelyingBuilder<TenantsNotChosen> {
        RelyingBuilder {
            trust_domain: trust_domain.to_owned(),
            tenants: TenantsNotChosen,
            ca: None,
            chain: None,
            revocation: Revocation::None,
            grace: None,
            insecure_allow_stale_crl: false,
            first_crl_within: DEFAULT_FIRST_CRL_WITHIN,
        }
    }

    /// The verifier: the handshake check of [`Relying::server_config`], and
    /// [`LatchkeyVerifier::still_valid`] for the per-request check.
    pub fn verifier(&self) -> &LatchkeyVerifier {
        &self.verifier
    }

    /// A rustls server configuration presenting `cert_chain` and `key`, requiring a client
    /// certificate this verifier accepts, and never resuming a session (a resumed session
    /// would skip the verifier, letting a key revoked since its first connection back in).
    pub fn server_config(
        &self,
        cert_chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<rustls::ServerConfig, ConfigError> {
        crate::tls::relying_server_config(cert_chain, key, self.verifier.clone())
    }
}

#[cfg(feature = "axum")]
impl Relying {
    /// Serves `router` over latchkey mTLS on `listener`, presenting `cert_chain` and `key`,
    /// until `shutdown` completes (then open connections get up to 10 s to finish). Each
    /// handshake and each request is checked with this one verifier: handlers take
    /// [`crate::tls::Identity`] or [`crate::tls::axum::Scoped`].
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        cert_chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        router: axum::Router,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), ConfigError> {
        let config = self.server_config(cert_chain, key)?;
        crate::tls::serve(
            listener,
            crate::tls::Acceptor::from_relying_config(config),
            router,
            crate::tls::axum::identity_per_connection(self.verifier.clone()),
            shutdown,
        )
        .await;
        Ok(())
    }

    /// Where a service behind a TLS-terminating proxy takes client certificates from: the
    /// `header` the proxy sets, only from connections whose TCP peer is in `proxies`,
    /// verified again by this verifier. Give it to `axum` as an `Extension` yourself, or use
    /// [`Relying::serve_behind_proxy`].
    pub fn forwarded(
        &self,
        header: crate::tls::ForwardedHeader,
        proxies: impl IntoIterator<Item = crate::model::IpNet>,
    ) -> crate::tls::ForwardedClientCert {
        crate::tls::ForwardedClientCert::new(header, proxies, self.verifier.clone())
    }

    /// Serves `router` over plain HTTP on `listener`, for the hop from a TLS-terminating
    /// proxy: see [`Relying::forwarded`]. Bind `listener` where only the proxy reaches it.
    pub async fn serve_behind_proxy(
        self,
        listener: tokio::net::TcpListener,
        header: crate::tls::ForwardedHeader,
        proxies: impl IntoIterator<Item = crate::model::IpNet>,
        router: axum::Router,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let forwarded = self.forwarded(header, proxies);
        // The source keeps running for as long as the service does.
        let _relying = self;
        crate::tls::serve_behind_proxy(listener, router, forwarded, shutdown).await
    }
}
