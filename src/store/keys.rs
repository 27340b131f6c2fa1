use sqlx::AssertSqlSafe;
use time::OffsetDateTime;

use super::audit::AuditEvent;
use super::filter::Statement;
use super::refusal::Refusal;
use super::rows::{
    CertificateKind, CertificateSqlRow, KeySqlRow, ListedSqlRow, convert_all, convert_optional,
    seconds, whole_second,
};
use super::{Backend, Change, Store, StoreError, unique_as};
use crate::model::{
    CertificateRecord, KeyId, KeyRecord, KeyStatus, OwnerName, RevocationReason, ScopeSet, Serial,
    TenantId, TenantName,
};

/// A key to record with its first certificate.
#[derive(Debug, Clone)]
pub struct NewKey {
    /// The key id.
    pub id: KeyId,
    /// The tenant's internal id.
    pub tenant_id: TenantId,
    /// The owner.
    pub owner: OwnerName,
    /// A short name given by the holder.
    pub name: String,
    /// A longer description.
    pub description: String,
    /// Its scopes.
    pub scopes: ScopeSet,
    /// When it was made.
    pub created_at: OffsetDateTime,
    /// When it stops being renewable and its certificates end.
    pub expires_at: OffsetDateTime,
}

impl NewKey {
    /// The key as a read of it right after recording gives it, for the answer to the
    /// request that made it (`tenant` is the name of `tenant_id`).
    pub fn as_recorded(&self, tenant: TenantName) -> KeyRecord {
        KeyRecord {
            id: self.id.clone(),
            tenant,
            owner: self.owner.clone(),
            name: self.name.clone(),
            description: self.description.clone(),
            scopes: self.scopes.clone(),
            created_at: whole_second(self.created_at),
            expires_at: whole_second(self.expires_at),
            revoked_at: None,
            revocation_reason: None,
        }
    }
}

/// A certificate to record.
#[derive(Debug, Clone)]
pub struct NewCertificate {
    /// Its serial.
    pub serial: Serial,
    /// The issuer's internal id.
    pub issuer_id: i64,
    /// What it is for.
    pub kind: CertificateKind,
    /// The key it certifies, for key certificates.
    pub key_id: Option<KeyId>,
    /// The SPIFFE URI (or the server's first hostname).
    pub subject: String,
    /// SHA-256 of the SubjectPublicKeyInfo, lowercase hex.
    pub public_key_sha256: String,
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
    /// The DER certificate.
    pub der: Vec<u8>,
    /// When it was recorded.
    pub created_at: OffsetDateTime,
}

impl NewCertificate {
    /// The certificate as a read of it right after recording gives it.
    pub fn as_recorded(&self) -> CertificateRecord {
        CertificateRecord {
            serial: self.serial,
            not_before: whole_second(self.not_before),
            not_after: whole_second(self.not_after),
            revoked_at: None,
        }
    }
}

/// A renewal to record: the new certificate and what the authority decided around it.
#[derive(Debug, Clone)]
pub struct Renewal {
    /// The new certificate (of kind `key`).
    pub certificate: NewCertificate,
    /// The time of the renewal.
    pub now: OffsetDateTime,
    /// Refuse (`TooSoon`) if the key's newest certificate was recorded after this: the
    /// renewal interval, checked under the key's lock so that replicas and concurrent
    /// requests cannot both pass.
    pub newest_before: OffsetDateTime,
    /// How many of the key's earlier unexpired, unrevoked certificates stay valid; older ones
    /// are revoked as superseded. 0 for a rekey: the earlier key pair stops working.
    pub keep_earlier: i64,
    /// The key's scopes from now on: the same or fewer.
    pub scopes: ScopeSet,
    /// The key's end from now on; an earlier end stays.
    pub expires_at: OffsetDateTime,
}

/// The use of an enrollment token, consumed in the issuing transaction.
#[derive(Debug, Clone, Copy)]
pub struct TokenUse {
    /// The token's id.
    pub token_id: i64,
}

/// A key as stored: the record, and where the store keeps it.
#[derive(Debug, Clone)]
pub struct KeyRow {
    /// Paging position.
    pub seq: i64,
    /// The tenant's internal id.
    pub tenant_id: TenantId,
    /// The key.
    pub key: KeyRecord,
}

/// A certificate as stored, without its DER.
#[derive(Debug, Clone)]
pub struct CertificateRow {
    /// Its serial.
    pub serial: Serial,
    /// What it is for.
    pub kind: CertificateKind,
    /// The key it certifies, for key certificates.
    pub key_id: Option<KeyId>,
    /// The SPIFFE URI (or the server's first hostname).
    pub subject: String,
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
    /// When it was revoked, if it was.
    pub revoked_at: Option<OffsetDateTime>,
}

/// A certificate as listed with its key: see [`Store::certificates_of`].
#[derive(Debug, Clone)]
pub struct ListedCertificate {
    /// The key it certifies.
    pub key_id: KeyId,
    /// The certificate.
    pub certificate: CertificateRecord,
    /// How many certificates its key has, listed or not.
    pub of_key: i64,
}

/// Which keys to list: one page, newest first.
#[derive(Debug, Clone)]
pub struct KeyFilter {
    /// Only this tenant's.
    pub tenant_id: Option<TenantId>,
    /// Only this owner's.
    pub owner: Option<OwnerName>,
    /// Only keys with exactly this name.
    pub name: Option<String>,
    /// Only the key that holds the certificate with this serial.
    pub serial: Option<Serial>,
    /// Only keys in this status at `now`.
    pub status: Option<KeyStatus>,
    /// The time `status` is judged at.
    pub now: OffsetDateTime,
    /// Only keys whose `expires_at` is at or before this; with `status` active, the keys
    /// expiring between `now` and then.
    pub expires_by: Option<OffsetDateTime>,
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
    /// Records a renewal: a new certificate of an existing key, the key's narrowed scopes and
    /// end, the certificates it supersedes (revoked, reason `superseded`) and the audit event,
    /// in one transaction; returns how many certificates were superseded. Refused with
    /// `KeyNotActive` when the key is revoked or expired, `Disabled` when its tenant or owner
    /// is, `TooSoon` when the key's newest certificate was recorded after
    /// `renewal.newest_before`, and `PublicKeyInUse` when another key has the public key.
    /// Every check runs under the key's row lock (SQLite: the write lock), so a revocation or
    /// another renewal of the key that commits first always counts.
    pub async fn record_renewal(
        &self,
        renewal: &Renewal,
        event: &AuditEvent,
    ) -> Result<u64, StoreError> {
        let certificate = &renewal.certificate;
        let now = seconds(renewal.now);
        let key_id = certificate.key_id.as_ref().map(KeyId::as_str);
        let serial = certificate.serial.to_string();
        self.write(event, async |tx, event| {
            // A no-op update takes the key's row lock on PostgreSQL too (SQLite holds the write
            // lock already), so a revocation either commits before this check or waits for us
            // and then revokes the new certificate with the others.
            let key: Option<(i64, String)> = sqlx::query_as(
                "UPDATE keys SET revoked_at = revoked_at \
                 WHERE id = $1 AND revoked_at IS NULL AND expires_at > $2 \
                 RETURNING tenant_id, owner",
            )
            .bind(key_id)
            .bind(now)
            .fetch_optional(tx.conn())
            .await?;
            let Some((tenant_id, owner)) = key else {
                return Err(StoreError::KeyNotActive);
            };
            if owner_disabled(tx, self.backend(), tenant_id, &owner).await? {
                return Err(StoreError::Disabled);
            }
            let (newest_at, generation): (Option<i64>, i64) = sqlx::query_as(
                "SELECT MAX(created_at), COALESCE(MAX(generation), 0) FROM certificates \
                 WHERE key_id = $1",
            )
            .bind(key_id)
            .fetch_one(tx.conn())
            .await?;
            if let Some(newest_at) = newest_at
                && newest_at > seconds(renewal.newest_before)
            {
                return Err(StoreError::TooSoon {
                    newest_at: super::rows::time("certificates", "created_at", newest_at)?,
                });
            }
            // Refused with `PublicKeyInUse` by the database when another key holds the public
            // key (migration 0009, the one place of that rule).
            insert_certificate(tx, certificate, Some(generation + 1)).await?;
            if let Some(key_id) = key_id {
                super::webhooks::enqueue(
                    tx.conn(),
                    tenant_id,
                    crate::model::WebhookEvent::KeyRenewed,
                    key_id,
                    renewal.now,
                    super::webhooks::renewed_detail(certificate),
                )
                .await?;
            }
            // Narrowing only: scopes the owner lost and a tenant's lowered maximum lifetime.
            sqlx::query(
                "UPDATE keys SET scopes = $1, \
                 expires_at = CASE WHEN expires_at < $2 THEN expires_at ELSE $2 END WHERE id = $3",
            )
            .bind(renewal.scopes.to_stored())
            .bind(seconds(renewal.expires_at))
            .bind(key_id)
            .execute(tx.conn())
            .await?;
            // Every unexpired, unrevoked certificate of the key beyond the newest `keep` (the new
            // one first among them) is superseded; a rekey keeps only the new one.
            let superseded = sqlx::query(
                "UPDATE certificates SET revoked_at = $1, revocation_reason = $2, revocation_revision = 0 \
                 WHERE key_id = $3 AND serial <> $4 AND revoked_at IS NULL AND not_after > $1 \
                 AND serial NOT IN (SELECT serial FROM certificates \
                     WHERE key_id = $3 AND serial <> $4 AND revoked_at IS NULL AND not_after > $1 \
                     ORDER BY COALESCE(generation, 0) DESC, created_at DESC, serial DESC \
                     LIMIT $5)",
            )
            .bind(now)
            .bind(RevocationReason::Superseded.as_str())
            .bind(key_id)
            .bind(&serial)
            .bind(renewal.keep_earlier)
            .execute(tx.conn())
            .await?
            .rows_affected();
            Ok(if superseded > 0 {
                event.detail["superseded"] = superseded.into();
                Change::Revoked(superseded)
            } else {
                Change::Made(superseded)
            })
        })
        .await
    }

    /// Records a certificate the CA issued for itself (its server or an admin certificate).
    pub async fn record_service_certificate(
        &self,
        certificate: &NewCertificate,
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        self.write(event, async |tx, _| {
            insert_certificate(tx, certificate, None).await?;
            Ok(Change::Made(()))
        })
        .await
    }

    /// Revokes (superseded, at `at`) every unrevoked admin certificate for `subject` but the
    /// one with serial `keep`, and records `event`; returns how many were revoked.
    pub async fn supersede_admin_certificates(
        &self,
        subject: &str,
        keep: &Serial,
        at: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<u64, StoreError> {
        self.write(event, async |tx, _| {
            let superseded = sqlx::query(
                "UPDATE certificates SET revoked_at = $1, revocation_reason = $2, revocation_revision = 0 \
                 WHERE kind = $5 AND subject = $3 AND serial <> $4 AND revoked_at IS NULL",
            )
            .bind(seconds(at))
            .bind(RevocationReason::Superseded.as_str())
            .bind(subject)
            .bind(keep.to_string())
            .bind(CertificateKind::Admin.as_str())
            .execute(tx.conn())
            .await?
            .rows_affected();
            Ok(if superseded > 0 {
                Change::Revoked(superseded)
            } else {
                Change::Made(superseded)
            })
        })
        .await
    }

    /// The key with this id.
    pub async fn key(&self, id: &KeyId) -> Result<Option<KeyRow>, StoreError> {
        let sql = AssertSqlSafe(format!(
            "SELECT {KEY_COLUMNS} FROM keys k JOIN tenants t ON t.id = k.tenant_id WHERE k.id = $1"
        ));
        convert_optional(
            sqlx::query_as::<_, KeySqlRow>(sql)
                .bind(id.as_str())
                .fetch_optional(&self.pool)
                .await?,
        )
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
        if filter.name.is_some() {
            sql.push(" AND k.name = $?");
        }
        if filter.serial.is_some() {
            sql.push(" AND k.id IN (SELECT key_id FROM certificates WHERE serial = $?)");
        }
        match filter.status {
            Some(KeyStatus::Active) => sql.push(" AND k.revoked_at IS NULL AND k.expires_at > $?"),
            Some(KeyStatus::Expired) => {
                sql.push(" AND k.revoked_at IS NULL AND k.expires_at <= $?")
            }
            Some(KeyStatus::Revoked) => sql.push(" AND k.revoked_at IS NOT NULL"),
            None => &mut sql,
        };
        // In the statement, not after a page was read: pages stay full, and the cursor
        // keeps meaning the same position.
        if filter.expires_by.is_some() {
            sql.push(" AND k.expires_at <= $?");
        }
        sql.push(" ORDER BY k.seq DESC LIMIT $?");

        let mut query =
            sqlx::query_as::<_, KeySqlRow>(sql.sql()).bind(filter.before_seq.unwrap_or(i64::MAX));
        if let Some(tenant_id) = filter.tenant_id {
            query = query.bind(tenant_id.get());
        }
        if let Some(owner) = &filter.owner {
            query = query.bind(owner.as_str().to_owned());
        }
        if let Some(name) = &filter.name {
            query = query.bind(name.clone());
        }
        if let Some(serial) = filter.serial {
            query = query.bind(serial.to_string());
        }
        if matches!(filter.status, Some(KeyStatus::Active | KeyStatus::Expired)) {
            query = query.bind(seconds(filter.now));
        }
        if let Some(by) = filter.expires_by {
            query = query.bind(seconds(by));
        }
        convert_all(query.bind(filter.limit).fetch_all(&self.pool).await?)
    }

    /// Up to `per_key` certificates of each of the given keys, oldest first, each with the
    /// number of certificates its key has in all: every certificate valid at `now` (a key
    /// has only a few), then the newest of the others. A key renewed thousands of times
    /// lists as few as one renewed once.
    pub async fn certificates_of(
        &self,
        key_ids: &[&KeyId],
        now: OffsetDateTime,
        per_key: i64,
    ) -> Result<Vec<ListedCertificate>, StoreError> {
        if key_ids.is_empty() {
            return Ok(Vec::new());
        }
        let placeholders: Vec<String> = (1..=key_ids.len()).map(|i| format!("${i}")).collect();
        let (now_at, limit_at) = (key_ids.len() + 1, key_ids.len() + 2);
        let sql = AssertSqlSafe(format!(
            "SELECT {CERTIFICATE_COLUMNS}, of_key FROM (SELECT {CERTIFICATE_COLUMNS}, generation, \
             ROW_NUMBER() OVER (PARTITION BY key_id ORDER BY \
                 CASE WHEN revoked_at IS NULL AND not_after > ${now_at} THEN 0 ELSE 1 END, \
                 COALESCE(generation, 0) DESC, not_before DESC, serial DESC) AS place, \
             COUNT(*) OVER (PARTITION BY key_id) AS of_key \
             FROM certificates WHERE key_id IN ({})) AS c WHERE place <= ${limit_at} \
             ORDER BY COALESCE(generation, 0), not_before, serial",
            placeholders.join(", "),
        ));
        let mut query = sqlx::query_as::<_, ListedSqlRow>(sql);
        for id in key_ids {
            query = query.bind(id.as_str());
        }
        convert_all(
            query
                .bind(seconds(now))
                .bind(per_key)
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// The certificate with this serial.
    pub async fn certificate(&self, serial: &Serial) -> Result<Option<CertificateRow>, StoreError> {
        let sql = AssertSqlSafe(format!(
            "SELECT {CERTIFICATE_COLUMNS} FROM certificates WHERE serial = $1"
        ));
        convert_optional(
            sqlx::query_as::<_, CertificateSqlRow>(sql)
                .bind(serial.to_string())
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// The certificate with this serial, if its recorded DER is exactly `der`: a look-alike
    /// with a recorded serial but other bytes is not this CA's certificate. One query, for
    /// the authentication hot path.
    pub async fn recorded_certificate(
        &self,
        serial: &Serial,
        der: &[u8],
    ) -> Result<Option<CertificateRow>, StoreError> {
        let sql = AssertSqlSafe(format!(
            "SELECT {CERTIFICATE_COLUMNS} FROM certificates WHERE serial = $1 AND der = $2"
        ));
        convert_optional(
            sqlx::query_as::<_, CertificateSqlRow>(sql)
                .bind(serial.to_string())
                .bind(der)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// The DER of the certificate with this serial.
    pub async fn certificate_der(&self, serial: &Serial) -> Result<Option<Vec<u8>>, StoreError> {
        let row: Option<(Vec<u8>,)> =
            sqlx::query_as("SELECT der FROM certificates WHERE serial = $1")
                .bind(serial.to_string())
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|(der,)| der))
    }
}

/// Inserts a certificate row, the `generation`-th renewal of its key if it is one; a serial
/// that exists already is a `Collision`, and a key certificate whose public key another key
/// holds is refused by the database (migration 0009) as `PublicKeyInUse`.
async fn insert_certificate(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    c: &NewCertificate,
    generation: Option<i64>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO certificates (serial, issuer_id, kind, key_id, subject, public_key_sha256, \
         not_before, not_after, der, created_at, generation) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(c.serial.to_string())
    .bind(c.issuer_id)
    .bind(c.kind.as_str())
    .bind(c.key_id.as_ref().map(KeyId::as_str))
    .bind(&c.subject)
    .bind(&c.public_key_sha256)
    .bind(seconds(c.not_before))
    .bind(seconds(c.not_after))
    .bind(&c.der)
    .bind(seconds(c.created_at))
    .bind(generation)
    .execute(&mut **tx)
    .await
    .map_err(|e| match Refusal::from_error(&e) {
        Ok(Some(refusal)) => refusal.into(),
        Ok(None) => unique_as(e, StoreError::Collision),
        Err(unknown) => unknown,
    })?;
    Ok(())
}

/// True when the tenant or the owner's user (if the owner is a user) is disabled. On
/// PostgreSQL the rows are read `FOR SHARE`, as in `latchkey_issue`: a disable that comes
/// while this transaction is open waits for it.
async fn owner_disabled(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    backend: Backend,
    tenant_id: i64,
    owner: &str,
) -> Result<bool, StoreError> {
    let (tenant_sql, user_sql) = match backend {
        Backend::Sqlite => (
            "SELECT disabled_at FROM tenants WHERE id = $1",
            "SELECT disabled_at FROM users WHERE tenant_id = $1 AND name = $2",
        ),
        Backend::Postgres => (
            "SELECT disabled_at FROM tenants WHERE id = $1 FOR SHARE",
            "SELECT disabled_at FROM users WHERE tenant_id = $1 AND name = $2 FOR SHARE",
        ),
    };
    let tenant: Option<(Option<i64>,)> = sqlx::query_as(tenant_sql)
        .bind(tenant_id)
        .fetch_optional(&mut **tx)
        .await?;
    let user: Option<(Option<i64>,)> = sqlx::query_as(user_sql)
        .bind(tenant_id)
        .bind(owner)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(matches!(tenant, None | Some((Some(_),))) || matches!(user, Some((Some(_),))))
}
