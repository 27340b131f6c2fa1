//! Serving an axum `Router` over TLS: one task per connection, the handshake under a
//! deadline (a slow client never stalls the others), request headers under a deadline, and
//! what the handshake proved attached to every request of the connection.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use rustls_pki_types::CertificateDer;
use tokio::net::TcpListener;
use tower::ServiceExt;

use super::Acceptor;
use super::linger::LingeringClose;

/// A TLS handshake must finish within this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Request headers must arrive within this.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Open connections get this long to finish at shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// What the accept loop learned about a connection; in every request's extensions.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    /// The client's address.
    pub peer: SocketAddr,
    /// The client's leaf certificate, verified by the acceptor's verifier, if it sent one.
    pub certificate: Option<CertificateDer<'static>>,
}

/// Serves `router` on `listener` until `shutdown` completes, then lets open connections
/// finish (up to 10 s). `on_connection` runs once per connection, after the handshake; its
/// result joins [`ConnectionInfo`] in the extensions of each request on that connection.
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
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let acceptor = acceptor.clone();
        let router = router.clone();
        let on_connection = on_connection.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let (tls, certificate) = match acceptor.accept(stream, HANDSHAKE_TIMEOUT).await {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "no TLS session");
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
