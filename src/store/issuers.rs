use time::OffsetDateTime;

use super::rows::seconds;
use super::{Store, StoreError, unique_as};

impl Store {
    /// The id of the issuer with this certificate, recording it on first use. Certificates
    /// reference their issuer so that per-tenant issuing CAs and rotation need no data rewrite.
    pub async fn ensure_issuer(
        &self,
        fingerprint: &str,
        subject: &str,
        certificate: &[u8],
        not_after: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<i64, StoreError> {
        let find = "SELECT id FROM issuers WHERE fingerprint = $1";
        if let Some((id,)) = sqlx::query_as(find)
            .bind(fingerprint)
            .fetch_optional(&self.pool)
            .await?
        {
            return Ok(id);
        }
        let inserted = sqlx::query(
            "INSERT INTO issuers (fingerprint, subject, certificate, not_after, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(fingerprint)
        .bind(subject)
        .bind(certificate)
        .bind(seconds(not_after))
        .bind(seconds(now))
        .execute(&self.pool)
        .await;
        match inserted.map_err(|e| unique_as(e, StoreError::AlreadyExists("issuer"))) {
            // Another replica recorded it first: read its id.
            Ok(_) | Err(StoreError::AlreadyExists(_)) => {
                let (id,) = sqlx::query_as(find)
                    .bind(fingerprint)
                    .fetch_one(&self.pool)
                    .await?;
                Ok(id)
            }
            Err(e) => Err(e),
        }
    }
}
