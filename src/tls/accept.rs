use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::CertificateDer;
use tokio::net::TcpStream;

/// A TLS stream accepted by [`Acceptor`].
pub(crate) type ServerStream = tokio_rustls::server::TlsStream<TcpStream>;

/// Why a connection did not become a TLS session.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AcceptError {
    /// The handshake failed (a refused client certificate, a protocol error, a reset).
    #[error("TLS handshake failed: {0}")]
    Handshake(#[from] std::io::Error),
    /// The client did not finish the handshake in time.
    #[error("TLS handshake timed out")]
    TimedOut,
}

/// The server side of a TLS listener: a relying service's (see
/// [`super::relying_server_config`]) or the CA's own.
#[derive(Clone)]
pub(crate) struct Acceptor(tokio_rustls::TlsAcceptor);

impl Acceptor {
    /// An acceptor for a server configuration (such as [`super::relying_server_config`]).
    pub(crate) fn from_config(config: rustls::ServerConfig) -> Self {
        Self(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
    }

    /// Runs the handshake on `stream` within `deadline`. Returns the session and the client's
    /// leaf certificate, if it presented one, as the configuration's client verifier passed
    /// it (the CA's own listener leaves its dates to the authority).
    pub(crate) async fn accept(
        &self,
        stream: TcpStream,
        deadline: Duration,
    ) -> Result<(ServerStream, Option<CertificateDer<'static>>), AcceptError> {
        let tls = tokio::time::timeout(deadline, self.0.accept(stream))
            .await
            .map_err(|_| AcceptError::TimedOut)??;
        let leaf = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first())
            .map(|c| c.clone().into_owned());
        Ok((tls, leaf))
    }
}
