use sqlx::AssertSqlSafe;

use super::audit::{self, AuditEvent};
use super::filter::Statement;
use super::{Backend, Store, StoreError, changed_one, unique_as};
use crate::model::RevocationReason;

/// A key to record with its first certificate.
#[derive(Debug, Clone)]
pub struct NewKey {
    /// The key id.
    pub id: String,
    /// The tenant's internal id.
    pub tenant_id: i64,
    /// The owner.
    pub owner: String,
    /// A short name given by the holder.
    pub name: String,
    /// A longer description.
    pub description: String,
    /// Scopes, sorted, space-separated.
    pub scopes: String,
    /// When it was made.
    pub created_at: i64,
    /// When it stops being renewable and its certificates end.
    pub expires_at: i64,
}

/// A certificate to record.
#[derive(Debug, Clone)]
pub struct NewCertificate {
    /// Lowercase hex serial.
    pub serial: String,
    /// The issuer's internal id.
    pub issuer_id: i64,
    /// `key`, `admin` or `server`.
    pub kind: &'static str,
    /// The key it certifies, for key certificates.
    pub key_id: Option<String>,
    /// The SPIFFE URI (or the server's first hostname).
    pub subject: String,
    /// SHA-256 of the SubjectPublicKeyInfo, lowercase hex.
    pub public_key_sha256: String,
    /// Start of validity.
    pub not_before: i64,
    /// End of validity.
    pub not_after: i64,
    /// The DER certificate.
    pub der: Vec<u8>,
    /// When it was recorded.
    pub created_at: i64,
}

/// The use of an enrollment token, consumed in the issuing transaction.
#[derive(Debug, Clone, Copy)]
pub struct TokenUse {
    /// The token's id.
    pub token_id: i64,
}

/// A key as stored, with its tenant's name.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct KeyRow {
    /// Paging position.
    pub seq: i64,
    /// The key id.
    pub id: String,
    /// The tenant's internal id.
    pub tenant_id: i64,
    /// The tenant's name.
    pub tenant: String,
    /// The owner.
    pub owner: String,
    /// Its name.
    pub name: String,
    /// Its description.
    pub description: String,
    /// Scopes, sorted, space-separated.
    pub scopes: String,
    /// When it was made.
    pub created_at: i64,
    /// When it expires.
    pub expires_at: i64,
    /// When it was revoked, if it was.
    pub revoked_at: Option<i64>,
    /// Why it was revoked.
    pub revocation_reason: Option<String>,
}

/// A certificate as stored, without its DER.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CertificateRow {
    /// Lowercase hex serial.
    pub serial: String,
    /// `key`, `admin` or `server`.
    pub kind: String,
    /// The key it certifies, for key certificates.
    pub key_id: Option<String>,
    /// The SPIFFE URI (or the server's first hostname).
    pub subject: String,
    /// Start of validity.
    pub not_before: i64,
    /// End of validity.
    pub not_after: i64,
    /// When it was revoked, if it was.
    pub revoked_at: Option<i64>,
}

/// A key's status, as filtered on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyStatus {
    /// Not revoked and not past `expires_at`.
    Active,
    /// Past `expires_at`, not revoked.
    Expired,
    /// Revoked.
    Revoked,
}

/// Which keys to list: one page, newest first.
#[derive(Debug, Clone)]
pub struct KeyFilter {
    /// Only this tenant's.
    pub tenant_id: Option<i64>,
    /// Only this owner's.
    pub owner: Option<String>,
    /// Only keys in this status at `now`.
    pub status: Option<KeyStatus>,
    /// The time `status` is judged at.
    pub now: i64,
    /// Only keys older than this paging position.
    pub before_seq: Option<i64>,
    /// At most this many.
    pub limit: i64,
}

const KEY_COLUMNS: &str = "k.seq, k.id, k.tenant_id, t.name AS tenant, k.owner, k.name, k.description, \
     k.scopes, k.created_at, k.expires_at, k.revoked_at, k.revocation_reason";
const CERTIFICATE_COLUMNS: &str =
    "serial, kind, key_id, subject, not_before, not_after, revoked_at";

impl Store {
    /// Records a renewal: a new certificate of an existing key, with its audit event, only
    /// while the key is neither revoked nor expired (`KeyNotActive` otherwise). The check runs
    /// under the write lock, so a revocation that commits first always wins.
    pub async fn record_renewal(
        &self,
        certificate: &NewCertificate,
        now: i64,
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        // A no-op update takes the key's row lock on PostgreSQL too (SQLite holds the write
        // lock already), so a revocation either commits before this check or waits for us
        // and then revokes the new certificate with the others.
        let active = sqlx::query(
            "UPDATE keys SET revoked_at = revoked_at \
             WHERE id = $1 AND revoked_at IS NULL AND expires_at > $2",
        )
        .bind(&certificate.key_id)
        .bind(now)
        .execute(&mut **tx)
        .await?;
        if !changed_one(&active) {
            return Err(StoreError::KeyNotActive);
        }
        if self.backend() == Backend::Postgres {
            // As in `latchkey_issue` (migrations/postgres/0005): replicas write at once, and
            // this serializes the check below with every other use of the same public key.
            sqlx::query("SELECT 1 FROM pg_advisory_xact_lock(hashtextextended($1, 0))")
                .bind(&certificate.public_key_sha256)
                .execute(&mut **tx)
                .await?;
        }
        let (other_keys,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM certificates \
             WHERE public_key_sha256 = $1 AND (key_id IS NULL OR key_id <> $2)",
        )
        .bind(&certificate.public_key_sha256)
        .bind(&certificate.key_id)
        .fetch_one(&mut **tx)
        .await?;
        if other_keys > 0 {
            return Err(StoreError::PublicKeyInUse);
        }
        insert_certificate(&mut tx, certificate).await?;
        audit::insert(&mut tx, event).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records a certificate the CA issued for itself (its server or an admin certificate).
    pub async fn record_service_certificate(
        &self,
        certificate: &NewCertificate,
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        insert_certificate(&mut tx, certificate).await?;
        audit::insert(&mut tx, event).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Revokes (superseded, at `at`) every unrevoked admin certificate for `subject` but the
    /// one with serial `keep`, and records `event`; returns how many were revoked.
    pub async fn supersede_admin_certificates(
        &self,
        subject: &str,
        keep: &str,
        at: i64,
        event: &AuditEvent,
    ) -> Result<u64, StoreError> {
        let mut tx = self.begin().await?;
        let superseded = sqlx::query(
            "UPDATE certificates SET revoked_at = $1, revocation_reason = $2 \
             WHERE kind = 'admin' AND subject = $3 AND serial <> $4 AND revoked_at IS NULL",
        )
        .bind(at)
        .bind(RevocationReason::Superseded.as_str())
        .bind(subject)
        .bind(keep)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        audit::insert(&mut tx, event).await?;
        if superseded > 0 {
            super::revocations::bump_crl_revision(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(superseded)
    }

    /// The key with this id.
    pub async fn key(&self, id: &str) -> Result<Option<KeyRow>, StoreError> {
        let sql = AssertSqlSafe(format!(
            "SELECT {KEY_COLUMNS} FROM keys k JOIN tenants t ON t.id = k.tenant_id WHERE k.id = $1"
        ));
        Ok(sqlx::query_as(sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// One page of keys, newest first.
    pub async fn keys(&self, filter: &KeyFilter) -> Result<Vec<KeyRow>, StoreError> {
        let mut sql = Statement::new(&format!(
            "SELECT {KEY_COLUMNS} FROM keys k JOIN tenants t ON t.id = k.tenant_id WHERE TRUE"
        ));
        sql.push(" AND k.seq < $?");
        if filter.tenant_id.is_some() {
            sql.push(" AND k.tenant_id = $?");
        }
        if filter.owner.is_some() {
            sql.push(" AND k.owner = $?");
        }
        match filter.status {
            Some(KeyStatus::Active) => sql.push(" AND k.revoked_at IS NULL AND k.expires_at > $?"),
            Some(KeyStatus::Expired) => {
                sql.push(" AND k.revoked_at IS NULL AND k.expires_at <= $?")
            }
            Some(KeyStatus::Revoked) => sql.push(" AND k.revoked_at IS NOT NULL"),
            None => &mut sql,
        };
        sql.push(" ORDER BY k.seq DESC LIMIT $?");

        let mut query = sqlx::query_as(sql.sql()).bind(filter.before_seq.unwrap_or(i64::MAX));
        if let Some(tenant_id) = filter.tenant_id {
            query = query.bind(tenant_id);
        }
        if let Some(owner) = &filter.owner {
            query = query.bind(owner.clone());
        }
        if matches!(filter.status, Some(KeyStatus::Active | KeyStatus::Expired)) {
            query = query.bind(filter.now);
        }
        Ok(query.bind(filter.limit).fetch_all(&self.pool).await?)
    }

    /// The certificates of the given keys, oldest first.
    pub async fn certificates_of(
        &self,
        key_ids: &[&str],
    ) -> Result<Vec<CertificateRow>, StoreError> {
        if key_ids.is_empty() {
            return Ok(Vec::new());
        }
        let placeholders: Vec<String> = (1..=key_ids.len()).map(|i| format!("${i}")).collect();
        let sql = AssertSqlSafe(format!(
            "SELECT {CERTIFICATE_COLUMNS} FROM certificates WHERE key_id IN ({}) \
             ORDER BY not_before, serial",
            placeholders.join(", ")
        ));
        let mut query = sqlx::query_as(sql);
        for id in key_ids {
            query = query.bind(*id);
        }
        Ok(query.fetch_all(&self.pool).await?)
    }

    /// The certificate with this serial.
    pub async fn certificate(&self, serial: &str) -> Result<Option<CertificateRow>, StoreError> {
        let sql = AssertSqlSafe(format!(
            "SELECT {CERTIFICATE_COLUMNS} FROM certificates WHERE serial = $1"
        ));
        Ok(sqlx::query_as(sql)
            .bind(serial)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// The certificate with this serial, if its recorded DER is exactly `der`: a look-alike
    /// with a recorded serial but other bytes is not this CA's certificate. One query, for
    /// the authentication hot path.
    pub async fn recorded_certificate(
        &self,
        serial: &str,
        der: &[u8],
    ) -> Result<Option<CertificateRow>, StoreError> {
        let sql = AssertSqlSafe(format!(
            "SELECT {CERTIFICATE_COLUMNS} FROM certificates WHERE serial = $1 AND der = $2"
        ));
        Ok(sqlx::query_as(sql)
            .bind(serial)
            .bind(der)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// The DER of the certificate with this serial.
    pub async fn certificate_der(&self, serial: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let row: Option<(Vec<u8>,)> =
            sqlx::query_as("SELECT der FROM certificates WHERE serial = $1")
                .bind(serial)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|(der,)| der))
    }
}

/// Inserts a certificate row; a serial that exists already is a `Collision`.
async fn insert_certificate(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    c: &NewCertificate,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO certificates (serial, issuer_id, kind, key_id, subject, public_key_sha256, \
         not_before, not_after, der, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(&c.serial)
    .bind(c.issuer_id)
    .bind(c.kind)
    .bind(&c.key_id)
    .bind(&c.subject)
    .bind(&c.public_key_sha256)
    .bind(c.not_before)
    .bind(c.not_after)
    .bind(&c.der)
    .bind(c.created_at)
    .execute(&mut **tx)
    .await
    .map_err(|e| unique_as(e, StoreError::Collision))?;
    Ok(())
}
