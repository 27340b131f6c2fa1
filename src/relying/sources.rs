//! The two CRL sources that do I/O: the CA's URL (long poll) and a watched file. They live
//! outside `tls` so that the verifier links neither the HTTP client nor the file system; each
//! only fetches bytes and hands them to a [`CrlSink`], which verifies them.

use std::path::PathBuf;
use std::time::Duration;

use crate::client::{Client, ClientError};
use crate::tls::{CrlSink, CrlSource, CrlSourceTask};

/// The first and the longest wait between two attempts while the CA is unreachable or sends
/// a CRL that is refused.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Follows one CRL of the CA, handing each new CRL to the sink once. Retries with backoff
/// while the CA is unreachable.
///
/// For an issuer's CRL (`/v1/issuers/{id}/crl`) it long-polls `.../crl/latest` for the newest
/// number, then fetches the delta CRL from the one it holds and applies it, and fetches the
/// whole CRL only when it holds none, the CA has no delta from its CRL (offline past the
/// horizon), or the delta is refused (a wrong base, a bad signature): a revocation costs the
/// follower a few hundred bytes, not the whole CRL again. A CA without `.../crl/latest`, and
/// `/v1/crl`, are followed with long polls of the whole CRL (`GET <path>?newer_than=N&wait=30`).
pub(crate) struct FollowCa {
    client: Client,
    path: String,
}

impl FollowCa {
    /// Follows the CRL at `path` of the CA `client` talks to.
    pub(crate) fn new(client: Client, path: &str) -> Self {
        Self {
            client,
            path: path.to_owned(),
        }
    }
}

impl CrlSource for FollowCa {
    fn run(self: Box<Self>, sink: CrlSink) -> CrlSourceTask {
        Box::pin(async move {
            let mut backoff = FIRST_BACKOFF;
            let mut deltas = self.path.starts_with("/v1/issuers/");
            loop {
                if deltas {
                    match self.follow_latest(&sink).await {
                        Ok(()) => backoff = FIRST_BACKOFF,
                        Err(e) if e.is_not_found() && sink.held().is_none() => {
                            tracing::info!(
                                path = self.path,
                                "the CA has no CRL deltas: following the whole CRL"
                            );
                            deltas = false;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, path = self.path, retry_in = ?backoff, "cannot fetch the CRL");
                            tokio::time::sleep(backoff).await;
                            backoff = (backoff * 2).min(MAX_BACKOFF);
                        }
                    }
                    continue;
                }
                match self.client.issuer_crl(&self.path, sink.held(), 30).await {
                    Ok(Some((_, der))) => {
                        if sink.take(&der) {
                            backoff = FIRST_BACKOFF;
                        } else {
                            // A CRL we refuse would come back at once: wait before asking.
                            tokio::time::sleep(backoff).await;
                            backoff = (backoff * 2).min(MAX_BACKOFF);
                        }
                    }
                    Ok(None) => backoff = FIRST_BACKOFF,
                    Err(e) => {
                        tracing::warn!(error = %e, path = self.path, retry_in = ?backoff, "cannot fetch the CRL");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                }
            }
        })
    }
}

impl FollowCa {
    /// One round of the delta protocol: waits for a CRL newer than the one held, then takes
    /// the delta from it, or the whole CRL.
    async fn follow_latest(&self, sink: &CrlSink) -> Result<(), ClientError> {
        let held = sink.held();
        let latest = self.client.latest_crl(&self.path, held, 30).await?;
        if held.is_some_and(|n| n >= latest.number) {
            return Ok(());
        }
        if let Some(delta) = &latest.delta {
            match self.client.crl_file(delta).await {
                Ok(der) if sink.take_delta(&der) => return Ok(()),
                Ok(_) => {}
                Err(e) if e.code() == Some(crate::api::Code::DeltaUnavailable.as_str()) => {
                    tracing::info!(
                        held,
                        number = latest.number,
                        "no delta from the CRL held: fetching the whole CRL"
                    );
                }
                Err(e) => return Err(e),
            }
        }
        let der = self.client.crl_file(&latest.crl).await?;
        if !sink.take(&der) {
            // A CRL we refuse would come back at once: wait before asking.
            tokio::time::sleep(FIRST_BACKOFF).await;
        }
        Ok(())
    }
}

/// Watches a CRL file (DER, or PEM holding one CRL or several such as `GET
/// /v1/crl/bundle.pem`), handing it to the sink whenever it changes. Polls once a second.
pub(crate) struct CrlFile {
    path: PathBuf,
}

impl CrlFile {
    /// Watches `path`.
    pub(crate) fn new(path: PathBuf) -> Self {
        Self { path }
    }
}

impl CrlSource for CrlFile {
    fn run(self: Box<Self>, sink: CrlSink) -> CrlSourceTask {
        Box::pin(async move {
            let path = self.path;
            let mut seen = None;
            loop {
                let modified = tokio::fs::metadata(&path)
                    .await
                    .and_then(|m| m.modified())
                    .ok();
                if modified.is_some() && modified != seen {
                    match tokio::fs::read(&path).await {
                        Ok(bytes) => {
                            // Only a CRL taken (or older than held) counts as seen: a file
                            // caught half-written is read again.
                            if sink.take(&bytes) || sink.holds_at_least(&bytes) {
                                seen = modified;
                            }
                        }
                        Err(e) => {
                            tracing::warn!(path = %path.display(), error = %e, "cannot read the CRL file")
                        }
                    }
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    }
}
