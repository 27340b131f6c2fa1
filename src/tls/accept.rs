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

impl AcceptError {
    /// True when the handshake failed because the client verifier refused the client's
    /// certificate (or its proof of holding the key), rather than for a protocol error.
    pub(crate) fn is_certificate_refusal(&self) -> bool {
        match self {
            Self::Handshake(e) => e
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                .is_some_and(|e| matches!(e, rustls::Error::InvalidCertificate(_))),
            Self::TimedOut => false,
        }
    }
}

/// The server side of a TLS listener: a relying service's (see
/// [`super::relying_server_config`]) or the CA's own.
#[derive(Clone)]
pub(crate) struct Acceptor {
    tls: tokio_rustls::TlsAcceptor,
    verifier_logs_refusals: bool,
}

impl Acceptor {
    /// An acceptor for a server configuration whose client verifier does not log the
    /// certificates it refuses (the CA's own listener): the accept loop logs them.
    pub(crate) fn from_config(config: rustls::ServerConfig) -> Self {
        Self {
            tls: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
            verifier_logs_refusals: false,
        }
    }

    /// An acceptor for a relying service's configuration (see
    /// [`super::relying_server_config`]), whose `LatchkeyVerifier` logs every certificate it
    /// refuses with its reason and the key's identity: the accept loop then counts the
    /// refusal but does not log it a second time.
    pub(crate) fn from_relying_config(config: rustls::ServerConfig) -> Self {
        Self {
            verifier_logs_refusals: true,
            ..Self::from_config(config)
        }
    }

    /// Whether this acceptor's client verifier logs the certificates it refuses.
    pub(crate) fn verifier_logs_refusals(&self) -> bool {
        self.verifier_logs_refusals
    }

    /// Runs the handshake on `stream` within `deadline`. Returns the session and the client's
    /// leaf certificate, if it presented one, as the configuration's client verifier passed
    /// it (the CA's own listener leaves its dates to the authority).
    pub(crate) async fn accept(
        &self,
        stream: TcpStream,
        deadline: Duration,
    ) -> Result<(ServerStream, Option<CertificateDer<'static>>), AcceptError> {
        let tls = tokio::time::timeout(deadline, self.tls.accept(stream))
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
