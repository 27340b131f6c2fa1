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

use bytes::Bytes;
use time::{Duration, OffsetDateTime};

use super::{Authority, AuthorityError, PublishedCrl};
use crate::ca::{CrlOrder, RootCrlSigner};
use crate::store::{RootCrlRow, StoreError, whole_second};

/// How often the root CRL publisher looks at the store: the root CRL changes rarely, and a
/// CRL stored by `latchkey crl sign-root` should be served within seconds.
const ROOT_FOLLOW_INTERVAL: StdDuration = StdDuration::from_secs(5);
/// How often, at most, the log repeats that no fresh root CRL exists.
const ROOT_COMPLAINT_INTERVAL: StdDuration = StdDuration::from_secs(60);

/// How long a root CRL is valid by default.
pub const DEFAULT_ROOT_CRL_VALIDITY: Duration = Duration::days(30);

impl PublishedCrl {
    fn from_root_row(row: RootCrlRow) -> Self {
        Self {
            number: row.number,
            covers: 0,
            this_update: row.this_update,
            next_update: row.next_update,
            entries: 0,
            der: Bytes::from(row.der),
            pem: std::sync::OnceLock::new(),
        }
    }
}

/// Signs a root CRL (no entries: intermediates are not revoked yet) valid for `validity`
/// from `now`, numbered by `now` in seconds unless `after` is higher. For the CA and for
/// `latchkey crl sign-root`.
pub fn sign_root_crl(
    signer: &RootCrlSigner,
    now: OffsetDateTime,
    validity: Duration,
    after: i64,
) -> Result<RootCrlRow, AuthorityError> {
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

impl Authority {
    /// The root CRL being served, if a fresh-enough one was ever found.
    pub fn current_root_crl(&self) -> Option<Arc<PublishedCrl>> {
        self.root_crl.borrow().clone()
    }

    /// Why the root CRL is not fit to serve, if it is not: for `/readyz`.
    pub(super) fn root_crl_problem(&self) -> Option<String> {
        match self.current_root_crl() {
            None => Some(
                "no root CRL is stored: the root key is not in the CA home; run \
                 `latchkey crl sign-root` where it is"
                    .into(),
            ),
            Some(crl) if crl.next_update <= self.now() => Some(format!(
                "the root CRL (number {}) is past its nextUpdate; run `latchkey crl sign-root` \
                 where the root key is",
                crl.number
            )),
            _ => None,
        }
    }

    /// Looks once at the stored root CRL: signs a new one if it is missing or half through
    /// its validity and this CA holds the root key, then publishes the newest stored one.
    pub async fn refresh_root_crl(
        self: &Arc<Self>,
        signer: Option<&Arc<RootCrlSigner>>,
    ) -> Result<(), AuthorityError> {
        let stored = self.store.latest_root_crl(self.root_issuer_id).await?;
        let now = self.now();
        let due = stored
            .as_ref()
            .is_none_or(|row| row.next_update - self.policy.root_crl_validity / 2 <= now);
        let newest = match (due, signer) {
            (true, Some(signer)) => {
                let after = stored.as_ref().map_or(0, |row| row.number);
                let (signer, validity) = (signer.clone(), self.policy.root_crl_validity);
                let row = tokio::task::spawn_blocking(move || {
                    sign_root_crl(&signer, now, validity, after)
                })
                .await
                .map_err(|e| AuthorityError::Internal(e.to_string()))??;
                match self
                    .store
                    .insert_root_crl(self.root_issuer_id, &row, now)
                    .await
                {
                    Ok(()) => {
                        tracing::info!(number = row.number, "root CRL signed");
                        Some(row)
                    }
                    // A replica signed one in the same second: serve the stored one.
                    Err(StoreError::Collision) => {
                        self.store.latest_root_crl(self.root_issuer_id).await?
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            _ => stored,
        };
        if let Some(row) = newest
            && self
                .current_root_crl()
                .is_none_or(|c| c.number < row.number)
        {
            self.root_crl
                .send_replace(Some(Arc::new(PublishedCrl::from_root_row(row))));
        }
        Ok(())
    }

    /// Keeps the root CRL current until the process ends (see the module's documentation).
    pub fn start_root_crl_publisher(
        self: &Arc<Self>,
        signer: Option<Arc<RootCrlSigner>>,
    ) -> tokio::task::JoinHandle<()> {
        let authority = self.clone();
        tokio::spawn(async move {
            let mut complained: Option<tokio::time::Instant> = None;
            loop {
                if let Err(e) = authority.refresh_root_crl(signer.as_ref()).await {
                    tracing::warn!(error = %e, "cannot refresh the root CRL");
                }
                match authority.root_crl_problem() {
                    Some(problem)
                        if complained.is_none_or(|t| t.elapsed() >= ROOT_COMPLAINT_INTERVAL) =>
                    {
                        tracing::error!("NO FRESH ROOT CRL: {problem}");
                        complained = Some(tokio::time::Instant::now());
                    }
                    Some(_) => {}
                    None => complained = None,
                }
                tokio::time::sleep(ROOT_FOLLOW_INTERVAL).await;
            }
        })
    }
}

/// Stores a root CRL signed elsewhere (`latchkey crl sign-root` where the root key is kept):
/// checks that the root in `root_der` signed it, records the root among the issuers, and
/// stores it; the CA serves it within seconds. Returns its number.
pub async fn store_root_crl(
    store: &crate::store::Store,
    root_der: &[u8],
    crl_der: &[u8],
    now: OffsetDateTime,
) -> Result<i64, AuthorityError> {
    let root = rustls_pki_types::CertificateDer::from(root_der.to_vec());
    let set = crate::profile::RevocationSet::from_crl(crl_der, &root)
        .map_err(|e| AuthorityError::Internal(format!("root CRL: {e}")))?;
    let issuer_id = root_issuer_id(store, root_der, now).await?;
    let row = RootCrlRow {
        number: set.number(),
        this_update: set.this_update(),
        next_update: set.next_update(),
        der: crl_der.to_vec(),
    };
    store.insert_root_crl(issuer_id, &row, now).await?;
    Ok(row.number)
}

/// The issuers row of the root in `root_der`, recorded if it is not yet.
async fn root_issuer_id(
    store: &crate::store::Store,
    root_der: &[u8],
    now: OffsetDateTime,
) -> Result<i64, AuthorityError> {
    let (_, parsed) = x509_parser::parse_x509_certificate(root_der)
        .map_err(|e| AuthorityError::Internal(format!("root certificate: {e}")))?;
    Ok(store
        .ensure_issuer(
            &hex::encode(ring::digest::digest(&ring::digest::SHA256, root_der)),
            &parsed.subject().to_string(),
            root_der,
            parsed.validity().not_after.to_datetime(),
            now,
        )
        .await?)
}

/// The newest stored root CRL's number for the root in `root_der`, 0 when none is: a CRL
/// signed for the store is numbered above it.
pub async fn newest_root_crl_number(
    store: &crate::store::Store,
    root_der: &[u8],
    now: OffsetDateTime,
) -> Result<i64, AuthorityError> {
    let issuer_id = root_issuer_id(store, root_der, now).await?;
    Ok(store
        .latest_root_crl(issuer_id)
        .await?
        .map_or(0, |row| row.number))
}
