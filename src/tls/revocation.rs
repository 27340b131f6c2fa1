//! What a relying service knows about revocation: a set of revoked serials taken from a CRL
//! whose signature, issuer and number were checked once, swapped in atomically as newer CRLs
//! arrive. A handshake's revocation check is one hash lookup, whatever the CRL's size.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;

use crate::model::Serial;

/// Why a CRL was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CrlError {
    /// Not a DER CRL.
    #[error("not a CRL")]
    Malformed,
    /// Not issued by the issuing CA, or its signature does not verify.
    #[error("the CRL is not signed by the issuing CA")]
    BadSignature,
    /// A delta, partial or otherwise unsupported CRL (the extension's OID).
    #[error("unsupported CRL extension {0}: only complete, direct CRLs are taken")]
    Unsupported(String),
    /// It lacks a CRL number or a nextUpdate.
    #[error("the CRL lacks a CRL number or nextUpdate")]
    Incomplete,
    /// Its number is not above the one held.
    #[error("CRL number {got} is not newer than the {held} held")]
    NotNewer {
        /// The number offered.
        got: i64,
        /// The number held.
        held: i64,
    },
}

/// The revoked serials of one verified CRL.
#[derive(Debug, Clone)]
pub struct RevocationSet {
    /// The CRL number.
    pub number: i64,
    /// thisUpdate.
    pub this_update: OffsetDateTime,
    /// nextUpdate: past it (plus the verifier's grace) the set is stale and handshakes fail.
    pub next_update: OffsetDateTime,
    serials: HashSet<[u8; 16]>,
}

impl RevocationSet {
    /// Reads a DER CRL, checking that `issuer` (the issuing CA's certificate) signed it.
    pub fn from_crl(der: &[u8], issuer: &CertificateDer<'_>) -> Result<Self, CrlError> {
        let (_, issuer) =
            x509_parser::parse_x509_certificate(issuer).map_err(|_| CrlError::BadSignature)?;
        let (rest, crl) = x509_parser::parse_x509_crl(der).map_err(|_| CrlError::Malformed)?;
        if !rest.is_empty() {
            return Err(CrlError::Malformed);
        }
        if crl.issuer() != issuer.subject() {
            return Err(CrlError::BadSignature);
        }
        crl.verify_signature(issuer.public_key())
            .map_err(|_| CrlError::BadSignature)?;
        // A complete, direct CRL only: no delta CRL, no issuing distribution point that would
        // narrow its scope, no critical extension this reader does not understand.
        for ext in crl.extensions() {
            let oid = ext.oid.to_id_string();
            let understood = matches!(oid.as_str(), "2.5.29.20" | "2.5.29.35");
            if matches!(oid.as_str(), "2.5.29.27" | "2.5.29.28") || (ext.critical && !understood) {
                return Err(CrlError::Unsupported(oid));
            }
        }
        let number = crl
            .crl_number()
            .and_then(|n| i64::try_from(n).ok())
            .ok_or(CrlError::Incomplete)?;
        let next_update = crl.next_update().ok_or(CrlError::Incomplete)?.to_datetime();
        let serials = crl
            .iter_revoked_certificates()
            // Serials of other lengths were never issued by latchkey; nothing can match them.
            .filter_map(|r| <[u8; 16]>::try_from(r.raw_serial()).ok())
            .collect();
        Ok(Self {
            number,
            this_update: crl.last_update().to_datetime(),
            next_update,
            serials,
        })
    }

    /// A set from a list, for tests: number 1, valid for `validity`.
    pub fn from_serials(
        serials: impl IntoIterator<Item = Serial>,
        validity: time::Duration,
    ) -> Self {
        let now = OffsetDateTime::now_utc();
        Self {
            number: 1,
            this_update: now,
            next_update: now + validity,
            serials: serials.into_iter().map(|s| *s.as_bytes()).collect(),
        }
    }

    /// True when `serial` is revoked.
    pub fn is_revoked(&self, serial: &[u8]) -> bool {
        <[u8; 16]>::try_from(serial).is_ok_and(|s| self.serials.contains(&s))
    }

    /// How many serials are revoked.
    pub fn len(&self) -> usize {
        self.serials.len()
    }

    /// True when nothing is revoked.
    pub fn is_empty(&self) -> bool {
        self.serials.is_empty()
    }
}

/// The revocation state a verifier reads on every handshake, and its sources write.
#[derive(Debug, Clone, Default)]
pub struct Revocations {
    current: Arc<ArcSwapOption<RevocationSet>>,
}

impl Revocations {
    /// An empty state: no CRL yet, so every handshake is refused until one arrives.
    pub fn new() -> Self {
        Self::default()
    }

    /// A state holding `set` from the start (a static list).
    pub fn fixed(set: RevocationSet) -> Self {
        let r = Self::new();
        r.current.store(Some(Arc::new(set)));
        r
    }

    /// The set in force, if any.
    pub fn current(&self) -> Option<Arc<RevocationSet>> {
        self.current.load_full()
    }

    /// Takes a newer set. A set whose number is not above the held one is refused (the
    /// newer one is kept, and the caller warns).
    pub fn offer(&self, set: RevocationSet) -> Result<(), CrlError> {
        let offered = Arc::new(set);
        let mut refused = None;
        // Compare and swap in one step: two sources at once never let an older CRL win.
        self.current.rcu(|held| match held {
            Some(held) if offered.number <= held.number => {
                refused = Some(held.number);
                Some(held.clone())
            }
            _ => {
                refused = None;
                Some(offered.clone())
            }
        });
        match refused {
            Some(held) => Err(CrlError::NotNewer {
                got: offered.number,
                held,
            }),
            None => Ok(()),
        }
    }

    /// Follows the CA's CRL with long polls (`GET /v1/crl?newer_than=N&wait=30`), verifying
    /// each new CRL once and swapping it in. Retries with backoff while the CA is unreachable.
    /// Runs until the returned task is aborted.
    pub fn follow_ca(
        &self,
        client: crate::client::Client,
        issuer: CertificateDer<'static>,
    ) -> tokio::task::JoinHandle<()> {
        let state = self.clone();
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(500);
            loop {
                let held = state.current().map(|c| c.number);
                match client.crl(held, 30).await {
                    Ok(Some((_, der))) => {
                        if state.take(&der, &issuer) {
                            backoff = Duration::from_millis(500);
                        } else {
                            // A CRL we refuse would come back at once: wait before asking.
                            tokio::time::sleep(backoff).await;
                            backoff = (backoff * 2).min(Duration::from_secs(30));
                        }
                    }
                    Ok(None) => backoff = Duration::from_millis(500),
                    Err(e) => {
                        tracing::warn!(error = %e, retry_in = ?backoff, "cannot fetch the CRL");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(30));
                    }
                }
            }
        })
    }

    /// Watches a CRL file (DER or PEM), taking it whenever it changes. Polls once a second.
    pub fn watch_file(
        &self,
        path: PathBuf,
        issuer: CertificateDer<'static>,
    ) -> tokio::task::JoinHandle<()> {
        let state = self.clone();
        tokio::spawn(async move {
            let mut seen = None;
            loop {
                let modified = tokio::fs::metadata(&path)
                    .await
                    .and_then(|m| m.modified())
                    .ok();
                if modified.is_some() && modified != seen {
                    match tokio::fs::read(&path).await {
                        Ok(bytes) => {
                            let der = crate::tls::crl_der(&bytes);
                            // Only a CRL taken (or older than held) counts as seen: a file
                            // caught half-written is read again.
                            if state.take(&der, &issuer) || state.holds_at_least(&der) {
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

    /// Verifies and takes a CRL; true when it is now the one held.
    fn take(&self, der: &[u8], issuer: &CertificateDer<'_>) -> bool {
        match RevocationSet::from_crl(der, issuer).and_then(|set| {
            let (number, entries) = (set.number, set.len());
            self.offer(set).map(|()| (number, entries))
        }) {
            Ok((number, entries)) => {
                tracing::info!(number, entries, "CRL taken");
                true
            }
            Err(e @ CrlError::NotNewer { .. }) => {
                tracing::warn!(error = %e, "CRL ignored: keeping the newer one held");
                false
            }
            Err(e) => {
                tracing::error!(error = %e, "CRL rejected");
                false
            }
        }
    }

    /// True when the held CRL's number is at least that of the CRL in `der`.
    fn holds_at_least(&self, der: &[u8]) -> bool {
        let number = x509_parser::parse_x509_crl(der)
            .ok()
            .and_then(|(_, crl)| crl.crl_number().and_then(|n| i64::try_from(n).ok()));
        matches!((self.current(), number), (Some(held), Some(n)) if held.number >= n)
    }
}
