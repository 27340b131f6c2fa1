//! The root's CRLs: signed by the CA when it holds the root key, or by `latchkey crl
//! sign-root` where the root key is kept; served newest first.

use time::OffsetDateTime;

use super::rows::{RootCrlSqlRow, convert_optional, seconds};
use super::{Store, StoreError, unique_as};

/// A root CRL as stored.
#[derive(Debug, Clone)]
pub struct RootCrlRow {
    /// The CRL number.
    pub number: i64,
    /// Its thisUpdate.
    pub this_update: OffsetDateTime,
    /// Its nextUpdate.
    pub next_update: OffsetDateTime,
    /// The signed DER.
    pub der: Vec<u8>,
}

/// Root CRLs kept per root: only the newest is served.
const ROOT_CRLS_KEPT: i64 = 4;

impl Store {
    /// The newest root CRL of the root recorded as `issuer_id`.
    pub async fn latest_root_crl(&self, issuer_id: i64) -> Result<Option<RootCrlRow>, StoreError> {
        convert_optional(
            sqlx::query_as::<_, RootCrlSqlRow>(
                "SELECT number, this_update, next_update, der FROM root_crls \
                 WHERE issuer_id = $1 ORDER BY number DESC LIMIT 1",
            )
            .bind(issuer_id)
            .fetch_optional(&self.pool)
            .await?,
        )
    }

    /// Stores a signed root CRL. `Collision` means one with its number is stored already
    /// (signed by a replica in the same second): the stored one serves as well.
    pub async fn insert_root_crl(
        &self,
        issuer_id: i64,
        crl: &RootCrlRow,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO root_crls (issuer_id, number, this_update, next_update, der, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(issuer_id)
        .bind(crl.number)
        .bind(seconds(crl.this_update))
        .bind(seconds(crl.next_update))
        .bind(&crl.der)
        .bind(seconds(now))
        .execute(&mut **tx)
        .await
        .map_err(|e| unique_as(e, StoreError::Collision))?;
        sqlx::query(
            "DELETE FROM root_crls WHERE issuer_id = $1 AND number < \
             (SELECT MIN(number) FROM (SELECT number FROM root_crls WHERE issuer_id = $1 \
              ORDER BY number DESC LIMIT $2) AS recent)",
        )
        .bind(issuer_id)
        .bind(ROOT_CRLS_KEPT)
        .execute(&mut **tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
