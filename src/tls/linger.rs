//! Lingering close: before a connection is dropped, read and discard what the client is
//! still sending, for a bounded time and amount.
//!
//! A server that answers early (413 for a body it will not read, 408 for one too slow) and
//! closes a socket with unread bytes in it makes the kernel send a TCP reset, and a reset
//! can destroy the answer before the client has read it: the client sees "connection
//! reset" instead of the reason. Draining for a moment after sending close_notify and FIN
//! (as nginx's `lingering_close` does) lets the answer arrive. The bounds keep a client that
//! never stops sending from holding the connection.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// How long a closing connection keeps reading.
const LINGER_TIME: Duration = Duration::from_secs(2);
/// How much a closing connection reads at most.
const LINGER_BYTES: usize = 4 << 20;

/// A stream whose shutdown sends its own close first, then drains the peer for a while.
pub(crate) struct LingeringClose<S> {
    inner: S,
    linger: Option<Linger>,
}

struct Linger {
    deadline: Pin<Box<Sleep>>,
    left: usize,
}

impl<S> LingeringClose<S> {
    pub(crate) fn new(inner: S) -> Self {
        Self {
            inner,
            linger: None,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for LingeringClose<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for LingeringClose<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.linger.is_none() {
            ready!(Pin::new(&mut this.inner).poll_shutdown(cx))?;
            this.linger = Some(Linger {
                deadline: Box::pin(tokio::time::sleep(LINGER_TIME)),
                left: LINGER_BYTES,
            });
        }
        let linger = this.linger.as_mut().expect("set above");
        let mut scratch = [0u8; 8192];
        loop {
            if linger.left == 0 || linger.deadline.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Ok(()));
            }
            let mut buf = ReadBuf::new(&mut scratch);
            match ready!(Pin::new(&mut this.inner).poll_read(cx, &mut buf)) {
                Ok(()) if buf.filled().is_empty() => return Poll::Ready(Ok(())),
                Ok(()) => linger.left = linger.left.saturating_sub(buf.filled().len()),
                // The peer is gone already: nothing is left to protect.
                Err(_) => return Poll::Ready(Ok(())),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn shutdown_drains_the_peer_until_it_closes() {
        let (client, server) = tokio::io::duplex(1024);
        let mut server = LingeringClose::new(server);
        let (mut client_read, mut client_write) = tokio::io::split(client);
        let writer = tokio::spawn(async move {
            // Far more than the pipe holds: without the drain this would block forever.
            for _ in 0..64 {
                client_write.write_all(&[0u8; 1024]).await.unwrap();
            }
            client_write.shutdown().await.unwrap();
        });
        server.write_all(b"413").await.unwrap();
        server.shutdown().await.unwrap();
        writer.await.unwrap();
        let mut answer = Vec::new();
        client_read.read_to_end(&mut answer).await.unwrap();
        assert_eq!(answer, b"413");
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_gives_up_on_a_peer_that_never_stops() {
        let (client, server) = tokio::io::duplex(1024);
        let mut server = LingeringClose::new(server);
        let writer = tokio::spawn(async move {
            let mut client = client;
            loop {
                if client.write_all(&[0u8; 512]).await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        let started = tokio::time::Instant::now();
        server.shutdown().await.unwrap();
        assert!(started.elapsed() >= LINGER_TIME);
        assert!(started.elapsed() < LINGER_TIME + Duration::from_secs(1));
        drop(server);
        writer.await.unwrap();
    }
}
