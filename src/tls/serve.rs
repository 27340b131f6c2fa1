//! Serving an axum `Router` over TLS: one task per connection, the handshake under a
//! deadline (a slow client never stalls the others), request headers under a deadline, and
//! what the handshake proved attached to every request of the connection.
//!
//! What one client can hold is bounded: connections in all and per source network
//! ([`ListenerLimits`]); a connection past a limit is closed as soon as it is accepted, so
//! the listener keeps accepting (and answering) instead of leaving clients to time out in
//! the kernel's queue or running into the file-descriptor ceiling. Idle keep-alive
//! connections are closed after the header deadline: hyper starts it as soon as a connection
//! waits for its next request.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use rustls_pki_types::CertificateDer;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

use super::Acceptor;
use super::accept::AcceptError;
use super::linger::LingeringClose;
use super::log_limit::LogLimit;
use crate::model::SourceNet;
use crate::per_source::PerSourceSlots;

/// A TLS handshake (and the PROXY header before it, if any) must finish within this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Request headers must arrive within this; also how long a keep-alive connection may idle.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Open connections get this long to finish at shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest pause after a failed `accept()` (out of file descriptors, typically).
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// What the accept loop learned about a connection; in every request's extensions.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    /// The client's address: the TCP peer, or with [`ListenerLimits::proxy_protocol`] the
    /// address the balancer's PROXY header names.
    pub peer: SocketAddr,
    /// The client's leaf certificate, verified by the acceptor's verifier, if it sent one.
    pub certificate: Option<CertificateDer<'static>>,
}

/// How much a listener lets its clients hold, and where it takes their addresses from.
#[derive(Debug, Clone)]
pub struct ListenerLimits {
    /// Connections open at once, all sources together (0: no limit). Keep it below the
    /// process's file-descriptor limit, with room for the store and files.
    pub max_connections: usize,
    /// Connections open at once from one source network: an IPv4 address or an IPv6 /64
    /// (0: no limit).
    pub max_connections_per_source: usize,
    /// Every connection starts with a PROXY protocol v2 header from a TCP load balancer, and
    /// the client's address is taken from it. Never set this on a listener clients reach
    /// directly: they could claim any address.
    pub proxy_protocol: bool,
}

impl Default for ListenerLimits {
    fn default() -> Self {
        Self {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_source: DEFAULT_MAX_CONNECTIONS_PER_SOURCE,
            proxy_protocol: false,
        }
    }
}

/// The default of [`ListenerLimits::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// The default of [`ListenerLimits::max_connections_per_source`].
pub const DEFAULT_MAX_CONNECTIONS_PER_SOURCE: usize = 512;

/// Why the listener turned a connection away before it carried a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Refusal {
    /// The listener holds [`ListenerLimits::max_connections`] already.
    ConnectionLimit,
    /// The client's network holds [`ListenerLimits::max_connections_per_source`] already.
    SourceLimit,
    /// The PROXY header was missing, malformed or late.
    ProxyHeader,
    /// The TLS handshake failed: a refused certificate, a protocol error.
    Handshake,
    /// The client closed the connection during the handshake (port probes, health checks).
    ClosedEarly,
    /// The handshake did not finish in time.
    HandshakeTimeout,
}

impl Refusal {
    /// A short name, for metrics labels and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ConnectionLimit => "connection_limit",
            Self::SourceLimit => "source_limit",
            Self::ProxyHeader => "proxy_header",
            Self::Handshake => "handshake_failed",
            Self::ClosedEarly => "closed_during_handshake",
            Self::HandshakeTimeout => "handshake_timeout",
        }
    }
}

/// Called once for each connection the listener turns away (for metrics).
pub type OnRefusal = Arc<dyn Fn(Refusal) + Send + Sync>;

/// Serves `router` on `listener` until `shutdown` completes, then lets open connections
/// finish (up to 10 s), with the default [`ListenerLimits`]. `on_connection` runs once per
/// connection, after the handshake; its result joins [`ConnectionInfo`] in the extensions of
/// each request on that connection.
pub async fn serve<X, F>(
    listener: TcpListener,
    acceptor: Acceptor,
    router: axum::Router,
    on_connection: F,
    shutdown: impl Future<Output = ()>,
) where
    X: Clone + Send + Sync + 'static,
    F: Fn(&ConnectionInfo) -> X + Clone + Send + Sync + 'static,
{
    let on_refusal: OnRefusal = Arc::new(|_| {});
    serve_with_limits(
        listener,
        acceptor,
        router,
        on_connection,
        shutdown,
        ListenerLimits::default(),
        on_refusal,
    )
    .await;
}

/// [`serve`] with explicit limits, and `on_refusal` told of every connection turned away.
pub async fn serve_with_limits<X, F>(
    listener: TcpListener,
    acceptor: Acceptor,
    router: axum::Router,
    on_connection: F,
    shutdown: impl Future<Output = ()>,
    limits: ListenerLimits,
    on_refusal: OnRefusal,
) where
    X: Clone + Send + Sync + 'static,
    F: Fn(&ConnectionInfo) -> X + Clone + Send + Sync + 'static,
{
    let graceful = GracefulShutdown::new();
    let connections = Arc::new(Semaphore::new(match limits.max_connections {
        0 => Semaphore::MAX_PERMITS,
        n => n,
    }));
    let per_source = PerSourceSlots::new(limits.max_connections_per_source);
    let logs = Arc::new(Logs::default());
    let mut backoff = Duration::ZERO;
    tokio::pin!(shutdown);
    loop {
        let (stream, tcp_peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: back off (up to a second) instead
                    // of spinning, and say so once a second, not at every attempt.
                    backoff = (backoff * 2).clamp(Duration::from_millis(10), MAX_ACCEPT_BACKOFF);
                    logs.accept_failed.log(|left_out| {
                        tracing::warn!(error = %e, left_out, "accept failed; backing off");
                    });
                    tokio::time::sleep(backoff).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        backoff = Duration::ZERO;
        // Taken before anything is read, so a full listener costs nothing but the accept:
        // dropping the stream answers the client at once.
        let Ok(connection_slot) = connections.clone().try_acquire_owned() else {
            on_refusal(Refusal::ConnectionLimit);
            logs.full.log(|left_out| {
                tracing::warn!(
                    peer = %tcp_peer,
                    max_connections = limits.max_connections,
                    left_out,
                    "connection limit reached; closing new connections"
                );
            });
            continue;
        };
        let acceptor = acceptor.clone();
        let router = router.clone();
        let on_connection = on_connection.clone();
        let on_refusal = on_refusal.clone();
        let per_source = per_source.clone();
        let logs = logs.clone();
        let proxy_protocol = limits.proxy_protocol;
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _connection_slot = connection_slot;
            let started = Instant::now();
            let mut stream = stream;
            let peer = if proxy_protocol {
                let header = super::proxy_protocol::read_client_address(&mut stream, tcp_peer);
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, header).await {
                    Ok(Ok(client)) => client,
                    Ok(Err(e)) => {
                        on_refusal(Refusal::ProxyHeader);
                        logs.refused.log(|left_out| {
                            tracing::warn!(peer = %tcp_peer, error = %e, left_out, "PROXY header refused");
                        });
                        return;
                    }
                    Err(_) => {
                        on_refusal(Refusal::ProxyHeader);
                        return;
                    }
                }
            } else {
                tcp_peer
            };
            let source = SourceNet::from(peer.ip());
            let Some(_source_slot) = per_source.try_take(source) else {
                on_refusal(Refusal::SourceLimit);
                logs.source_full.log(|left_out| {
                    tracing::warn!(
                        %source,
                        max_connections_per_source = per_source.cap(),
                        left_out,
                        "per-source connection limit reached; closing its new connections"
                    );
                });
                return;
            };
            let deadline = HANDSHAKE_TIMEOUT.saturating_sub(started.elapsed());
            let (tls, certificate) = match acceptor.accept(stream, deadline).await {
                Ok(accepted) => accepted,
                Err(e) => {
                    let refusal = refusal_of(&e);
                    on_refusal(refusal);
                    let took = started.elapsed();
                    if refusal == Refusal::ClosedEarly {
                        tracing::debug!(%peer, error = %e, "closed during the TLS handshake");
                    } else if acceptor.verifier_logs_refusals() && e.is_certificate_refusal() {
                        // Logged once already, at warn, by the verifier, with the key's
                        // tenant, id and serial: a second line would only repeat it.
                        tracing::debug!(%peer, error = %e, "TLS handshake refused");
                    } else {
                        logs.refused.log(|left_out| {
                            tracing::warn!(
                                %peer,
                                reason = refusal.as_str(),
                                error = %e,
                                took_ms = took.as_millis() as u64,
                                left_out,
                                "TLS handshake refused"
                            );
                        });
                    }
                    return;
                }
            };
            let info = ConnectionInfo { peer, certificate };
            let extra = on_connection(&info);
            let service =
                hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
                    request.extensions_mut().insert(info.clone());
                    request.extensions_mut().insert(extra.clone());
                    router.clone().oneshot(request)
                });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(LingeringClose::new(tls)), service);
            if let Err(e) = watcher.watch(connection).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(DRAIN_TIMEOUT) => {
            tracing::warn!("connections still open after the drain timeout; closing them");
        }
    }
}

/// The warnings a client can trigger, each at most once a second.
#[derive(Debug, Default)]
struct Logs {
    accept_failed: LogLimit,
    full: LogLimit,
    source_full: LogLimit,
    refused: LogLimit,
}

/// The kind of a failed handshake: a client that hung up is a probe, not an attack sign.
fn refusal_of(error: &AcceptError) -> Refusal {
    match error {
        AcceptError::TimedOut => Refusal::HandshakeTimeout,
        AcceptError::Handshake(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::UnexpectedEof
                    | std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::BrokenPipe
            ) =>
        {
            Refusal::ClosedEarly
        }
        AcceptError::Handshake(_) => Refusal::Handshake,
    }
}
