//! Connections to the server under test: TCP (Nagle off) and TLS, and HTTP/1.1 over them.
//! Every mode of the load generator connects this way.

use std::sync::Arc;

use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// The error of a connection attempt.
pub(crate) type Error = Box<dyn std::error::Error + Send + Sync>;

/// A new TCP connection to `host:port` with a full TLS handshake over it.
pub(crate) async fn tls(
    config: &Arc<rustls::ClientConfig>,
    host: &str,
    port: u16,
) -> Result<TlsStream<TcpStream>, Error> {
    let tcp = TcpStream::connect((host, port)).await?;
    tcp.set_nodelay(true)?;
    let name = rustls_pki_types::ServerName::try_from(host.to_owned())?;
    Ok(tokio_rustls::TlsConnector::from(config.clone())
        .connect(name, tcp)
        .await?)
}

/// A new HTTPS connection, ready for HTTP/1.1 requests with bodies of type `B`.
pub(crate) async fn https<B>(
    config: &Arc<rustls::ClientConfig>,
    host: &str,
    port: u16,
) -> Result<SendRequest<B>, Error>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Error>,
{
    let tls = tls(config, host, port).await?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
    tokio::spawn(connection);
    Ok(sender)
}
