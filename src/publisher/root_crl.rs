//! The root's CRL. The root signs a CRL of its own (the intermediates it revoked; normally
//! none), long-lived (default 30 days), so that relying parties checking every level of the
//! chain (`openssl verify -crl_check_all`, nginx and HAProxy with a CRL file) find one for
//! the intermediate too. It lives in the store: a CA holding the root key signs a new one
//! when half of the newest one's validity has passed (one signature per period across
//! replicas and restarts, since all of them read the same row first); a CA whose root key is
//! kept offline serves the newest one `latchkey crl sign-root` stored, and says loudly (log,
//! `/readyz`) when none is fresh.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use time::{Duration, OffsetDateTime};

use super::reader::RootSlot;
use super::{PublishedCrl, Publisher, PublisherError, recorded_issuer};
use crate::ca::{CrlOrder, RootSigner};
use crate::store::{RevocationLedger, RootCrlRow, StoreError, whole_second};

/// How often the root CRL publisher looks at the store: the root CRL changes rarely, and a
/// CRL stored by `latchkey crl sign-root` should be served within seconds.
const ROOT_FOLLOW_INTERVAL: StdDuration = StdDuration::from_secs(5);
/// How often, at most, the log repeats that no fresh root CRL exists.
const ROOT_COMPLAINT_INTERVAL: StdDuration = StdDuration::from_secs(60);

/// Signs a root CRL (no entries: intermediates are not revoked yet) valid for `validity`
/// from `now`, numbered by `now` in seconds unless `after` is higher. For the CA and for
/// `latchkey crl sign-root`.
pub fn sign_root_crl(
    signer: &RootSigner,
    now: OffsetDateTime,
    validity: Duration,
    after: i64,
) -> Result<RootCrlRow, PublisherError> {
    let number = now.unix_timestamp().max(after + 1);
    let this_update = now - crate::ca::BACKDATE;
    let next_update = now + validity;
    let der = signer.sign(&CrlOrder {
        number: number as u64,
        this_update,
        next_update,
        entries: Vec::new(),
    })?;
    Ok(RootCrlRow {
        number,
        // As the signed CRL says them, and the store keeps them: whole seconds.
        this_update: whole_second(this_update),
        next_update: whole_second(next_update),
        der,
    })
}

impl Publisher {
    /// Looks once at every root's stored CRL (one root until a rollover; the issuer
    /// registry says which, and holds their keys): signs a new one where it is missing or
    /// half through its validity and this CA holds that root's key, then publishes the
    /// newest stored one of each. A root that fails is logged; the others go on.
    pub async fn refresh_root_crls(&self) -> Result<(), PublisherError> {
        let set = self.inner.issuers.borrow().clone();
        let mut slots = Vec::new();
        let mut failed = None;
        for root in set.roots() {
            let crl = match self.refresh_root_crl(root.id, root.signer.as_ref()).await {
                Ok(row) => row.map(|row| Arc::new(PublishedCrl::from_root_row(row))),
                Err(e) => {
                    tracing::warn!(root = root.id, error = %e, "cannot refresh a root's CRL");
                    failed = Some(e);
                    None
                }
            };
            slots.push(RootSlot {
                id: root.id,
                first: root.first,
                key_id: hex::encode(&root.key_id),
                crl,
            });
        }
        self.inner.board.publish_roots(slots);
        failed.map_or(Ok(()), Err)
    }

    /// The newest CRL of root `root_id`, signed anew first when it is due and `signer` is
    /// its key.
    async fn refresh_root_crl(
        &self,
        root_id: i64,
        signer: Option<&Arc<RootSigner>>,
    ) -> Result<Option<RootCrlRow>, PublisherError> {
        let inner = &self.inner;
        let stored = inner.ledger.latest_root_crl(root_id).await?;
        let now = inner.clock.now();
        let validity = inner.schedule.root_validity;
        let due = stored
            .as_ref()
            .is_none_or(|row| row.next_update - validity / 2 <= now);
        Ok(match (due, signer) {
            (true, Some(signer)) => {
                let after = stored.as_ref().map_or(0, |row| row.number);
                let signer = signer.clone();
                let row = tokio::task::spawn_blocking(move || {
                    sign_root_crl(&signer, now, validity, after)
                })
                .await??;
                match inner.ledger.insert_root_crl(root_id, &row, now).await {
                    Ok(()) => {
                        tracing::info!(root = root_id, number = row.number, "root CRL signed");
                        Some(row)
                    }
                    // A replica signed one in the same second: serve the stored one.
                    Err(StoreError::Collision) => inner.ledger.latest_root_crl(root_id).await?,
                    Err(e) => return Err(e.into()),
                }
            }
            _ => stored,
        })
    }

    /// Keeps the root CRL current until the process ends (see the module's documentation).
    pub fn start_root(&self) -> tokio::task::JoinHandle<()> {
        let publisher = self.clone();
        tokio::spawn(async move {
            let crls = publisher.crls();
            let mut issuers = publisher.inner.issuers.clone();
            let mut complained: Option<tokio::time::Instant> = None;
            loop {
                if let Err(e) = publisher.refresh_root_crls().await {
                    tracing::warn!(error = %e, "cannot refresh the root CRLs");
                }
                match crls.root_problem() {
                    Some(problem)
                        if complained.is_none_or(|t| t.elapsed() >= ROOT_COMPLAINT_INTERVAL) =>
                    {
                        tracing::error!("NO FRESH ROOT CRL: {problem}");
                        complained = Some(tokio::time::Instant::now());
                    }
                    Some(_) => {}
                    None => complained = None,
                }
                // A rollover adds a root: its CRL is signed at once, not at the next look.
                tokio::select! {
                    () = tokio::time::sleep(ROOT_FOLLOW_INTERVAL) => {}
                    _ = issuers.changed() => {}
                }
            }
        })
    }
}

/// Stores a root CRL signed elsewhere (`latchkey crl sign-root` where the root key is kept):
/// checks that the root in `root_der` signed it, records the root among the issuers, and
/// stores it; the CA serves it within seconds. Returns its number.
pub async fn store_root_crl(
    ledger: &RevocationLedger,
    root_der: &[u8],
    crl_der: &[u8],
    now: OffsetDateTime,
) -> Result<i64, PublisherError> {
    let root = rustls_pki_types::CertificateDer::from(root_der.to_vec());
    let set = crate::profile::RevocationSet::from_crl(crl_der, &root)
        .map_err(|e| PublisherError::RootCrlRefused(e.to_string()))?;
    let issuer_id = recorded_issuer(ledger, root_der, "root", now).await?;
    let row = RootCrlRow {
        number: set.number(),
        this_update: set.this_update(),
        next_update: set.next_update(),
        der: crl_der.to_vec(),
    };
    ledger.insert_root_crl(issuer_id, &row, now).await?;
    Ok(row.number)
}

/// The newest stored root CRL's number for the root in `root_der`, 0 when none is: a CRL
/// signed for the store is numbered above it.
pub async fn newest_root_crl_number(
    ledger: &RevocationLedger,
    root_der: &[u8],
    now: OffsetDateTime,
) -> Result<i64, PublisherError> {
    let issuer_id = recorded_issuer(ledger, root_der, "root", now).await?;
    Ok(ledger
        .latest_root_crl(issuer_id)
        .await?
        .map_or(0, |row| row.number))
}
