//! Synthetic keys for scale tests: millions of rows written by the database itself. Going
//! through the CA would take hours and measure issuance, not what scale tests measure (the
//! inventory, the CRL, start-up and memory with a large store). Never used by the CA.

use time::OffsetDateTime;

use super::rows::seconds;
use super::{Backend, Store, StoreError};
use crate::model::TenantId;

/// Rows per transaction: large enough to be fast, small enough to keep the WAL small.
const CHUNK: i64 = 250_000;

impl Store {
    /// Adds `count` keys to the tenant `tenant_id`, each with one 24-hour certificate from
    /// the newest issuer; every `revoke_every`-th key (never, if 0) is revoked with its
    /// certificate. Key ids and serials count up from `first` (in hex; serials start with
    /// 0x7f, so that they are positive 16-byte integers like real ones), so separate loads
    /// with separate ranges never collide. The certificates' DER is 64 random bytes: these
    /// rows exist to be listed and put into CRLs, never to be served as certificates.
    /// SQLite only.
    pub async fn load_synthetic_keys(
        &self,
        tenant_id: TenantId,
        first: i64,
        count: i64,
        revoke_every: i64,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let now = seconds(now);
        if self.backend != Backend::Sqlite {
            return Err(StoreError::Unsupported(
                "synthetic keys are loaded into SQLite only",
            ));
        }
        let mut start = first;
        let end = first + count;
        while start < end {
            let stop = (start + CHUNK).min(end);
            let mut tx = self.begin().await?;
            // $1 first, $2 end (exclusive), $3 tenant, $4 now, $5 revoke_every.
            sqlx::query(
                "WITH RECURSIVE n(i) AS (SELECT $1 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < $2) \
                 INSERT INTO keys (id, tenant_id, owner, name, description, scopes, created_at, \
                 expires_at, revoked_at, revocation_reason) \
                 SELECT printf('%024x', i), $3, 'load-' || (i % 1000), 'synthetic', '', \
                 'bench:issue', $4, $4 + 7776000, \
                 CASE WHEN $5 > 0 AND i % $5 = 0 THEN $4 END, \
                 CASE WHEN $5 > 0 AND i % $5 = 0 THEN 'key_compromise' END FROM n",
            )
            .bind(start)
            .bind(stop)
            .bind(tenant_id.get())
            .bind(now)
            .bind(revoke_every)
            .execute(&mut **tx)
            .await?;
            sqlx::query(
                "WITH RECURSIVE n(i) AS (SELECT $1 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < $2) \
                 INSERT INTO certificates (serial, issuer_id, kind, key_id, subject, \
                 public_key_sha256, not_before, not_after, der, created_at, revoked_at, \
                 revocation_reason, revocation_revision) \
                 SELECT '7f' || printf('%030x', i), (SELECT MAX(issuer_id) FROM certificates), 'key', \
                 printf('%024x', i), 'synthetic', printf('%064x', i), $3 - 60, $3 + 86400, \
                 randomblob(64), $3, \
                 CASE WHEN $4 > 0 AND i % $4 = 0 THEN $3 END, \
                 CASE WHEN $4 > 0 AND i % $4 = 0 THEN 'key_compromise' END, \
                 CASE WHEN $4 > 0 AND i % $4 = 0 THEN 0 END FROM n",
            )
            .bind(start)
            .bind(stop)
            .bind(now)
            .bind(revoke_every)
            .execute(&mut **tx)
            .await?;
            // Stamped as any revocation is, so CRL builders see them.
            super::revocations::bump_crl_revision(&mut tx).await?;
            tx.commit().await?;
            start = stop;
        }
        Ok(())
    }
}
