use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::NoServerSessionStorage;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

#[cfg(feature = "server")]
use super::ca_listener_verifier::CaListenerVerifier;

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A PEM file held no certificate, or an unreadable one.
    #[error("no certificate found in {0}")]
    NoCertificate(String),
    /// A PEM file held no private key, or an unreadable one.
    #[error("no private key found in {0}")]
    NoPrivateKey(String),
    /// rustls refused the configuration.
    #[error("TLS configuration refused: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client-certificate verifier could not be built.
    #[error("client verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

/// A client configuration for calling third-party HTTPS servers (the CA's webhook
/// receivers): `roots` are the trust anchors (a system bundle; certificates in it that
/// webpki cannot use are passed over), no client certificate, no resumption. Returns it and
/// how many roots were taken.
#[cfg(feature = "server")]
pub fn public_client_config(
    roots: Vec<CertificateDer<'static>>,
) -> Result<(ClientConfig, usize), ConfigError> {
    let mut store = RootCertStore::empty();
    let (taken, _passed_over) = store.add_parsable_certificates(roots);
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(store)
        .with_no_client_auth();
    config.resumption = rustls::client::Resumption::disabled();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((config, taken))
}

/// The one crypto provider latchkey uses: ring, named explicitly so that no dependency can
/// make the choice ambiguous.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Every certificate in a PEM text, in order. `what` names the source in errors.
pub fn load_certificates(
    pem: &[u8],
    what: &str,
) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|_| ConfigError::NoCertificate(what.to_owned()))?;
    if certs.is_empty() {
        return Err(ConfigError::NoCertificate(what.to_owned()));
    }
    Ok(certs)
}

/// The private key in a PEM text (PKCS#8, SEC1 or PKCS#1).
pub fn load_private_key(pem: &[u8], what: &str) -> Result<PrivateKeyDer<'static>, ConfigError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|_| ConfigError::NoPrivateKey(what.to_owned()))
}

/// The CA's HTTPS listener: presents `chain`, asks for a client certificate issued under
/// `client_roots` but lets clients without one in (password and token enrollment need none).
/// Only for the CA, which decides on every certificate against its store: the handshake alone
/// proves neither that a certificate is unexpired nor that it is unrevoked. Relying services
/// use [`relying_server_config`].
///
/// Paths are built only through `intermediates`, the CA's own, whatever a client sends, and
/// a presented certificate's dates are left to the authority, which answers an expired one
/// with a 403 that says so instead of a bare handshake failure (see `CaListenerVerifier`).
/// What the handshake does check of them, it checks at the time `clock` (the authority's)
/// reads.
///
/// Session resumption is off: a resumed TLS session skips the client-certificate verifier,
/// so a key revoked after its first connection could come back in on a resumed one.
#[cfg(feature = "server")]
pub(crate) fn ca_listener_config(
    chain: super::CaServerChain,
    client_roots: &[CertificateDer<'static>],
    intermediates: super::CaIntermediates,
    clock: Arc<dyn crate::clock::Clock>,
) -> Result<ServerConfig, ConfigError> {
    let mut roots = RootCertStore::empty();
    for root in client_roots {
        roots.add(root.clone())?;
    }
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
            .allow_unauthenticated()
            .build()?;
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(Arc::new(CaListenerVerifier::new(
            verifier,
            intermediates,
            clock,
        )))
        .with_cert_resolver(Arc::new(chain));
    Ok(never_resumed(config))
}

/// A TLS server configuration for a relying service: presents `chain`, requires a client
/// certificate that `verifier` accepts, and never resumes a session (a resumed session
/// would skip the verifier, letting a key revoked since its first connection back in).
pub(crate) fn relying_server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    verifier: Arc<super::LatchkeyVerifier>,
) -> Result<ServerConfig, ConfigError> {
    without_resumption(chain, key, verifier)
}

/// Every server configuration latchkey builds: ring, HTTP/1.1, and no session resumption,
/// because a resumed session skips the client-certificate verifier.
fn without_resumption(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    verifier: Arc<dyn rustls::server::danger::ClientCertVerifier>,
) -> Result<ServerConfig, ConfigError> {
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    Ok(never_resumed(config))
}

/// `config` with session resumption off (no session storage, no TLS 1.3 tickets) and
/// HTTP/1.1 only.
fn never_resumed(mut config: ServerConfig) -> ServerConfig {
    config.session_storage = Arc::new(NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
}

/// A client that trusts `roots` and, if given, presents `identity` (chain and key).
pub fn client_config(
    roots: &[CertificateDer<'static>],
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> Result<ClientConfig, ConfigError> {
    let mut store = RootCertStore::empty();
    for root in roots {
        store.add(root.clone())?;
    }
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(store);
    let mut config = match identity {
        Some((chain, key)) => builder.with_client_auth_cert(chain, key)?,
        None => builder.with_no_client_auth(),
    };
    // The CA refuses resumption anyway; not offering it keeps every connection verified.
    config.resumption = rustls::client::Resumption::disabled();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}
