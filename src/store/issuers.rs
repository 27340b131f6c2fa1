//! The CA's issuers: the root and the intermediates that sign, as recorded. Certificates and
//! CRLs reference their issuer, so rotating an intermediate, retiring one or dedicating one
//! to a tenant adds and updates rows here and rewrites nothing else.

use time::OffsetDateTime;

use super::audit::AuditEvent;
use super::rows::{seconds, time};
use super::{Change, Store, StoreError, WriteTx, unique_as};
use crate::model::{IssuerKeyLocation, TenantId, TenantName};

/// What an issuer is in the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssuerRole {
    /// The self-signed root: signs intermediates and the root CRL.
    Root,
    /// An intermediate: signs the CA's certificates and its own CRL.
    Intermediate,
    /// A cross-certificate between two roots of the CA (after a root rollover): signs
    /// nothing; recorded so that every replica serves it.
    Cross,
}

impl IssuerRole {
    fn as_str(self) -> &'static str {
        match self {
            Self::Root => "root",
            Self::Intermediate => "intermediate",
            Self::Cross => "cross",
        }
    }
}

/// A root, or a cross-certificate between roots, as recorded.
#[derive(Debug, Clone)]
pub struct RootRecord {
    /// Its id among the issuers (what root CRLs reference).
    pub id: i64,
    /// [`IssuerRole::Root`] or [`IssuerRole::Cross`].
    pub role: IssuerRole,
    /// Its DER certificate.
    pub certificate: Vec<u8>,
    /// Where a root's key is: the home's `root-key.pem` for the first root, sealed here for
    /// one made by a rollover. (A cross-certificate has no key of its own.)
    pub key: IssuerKeyLocation,
    /// When a newer root took over from it.
    pub superseded_at: Option<OffsetDateTime>,
}

/// A root rollover, recorded at once: the new root (its key sealed), the two
/// cross-certificates, and the new shared intermediate under the new root.
#[derive(Debug, Clone)]
pub struct RootRollover {
    /// The new root.
    pub root: NewIssuer,
    /// The cross-certificates (each root certified by the other).
    pub crosses: Vec<NewIssuer>,
    /// The new shared intermediate, signed by the new root.
    pub intermediate: NewIssuer,
    /// The root it takes over from.
    pub supersedes_root: i64,
    /// The shared intermediate it takes over from.
    pub supersedes_intermediate: Option<i64>,
}

/// An intermediate as recorded.
#[derive(Debug, Clone)]
pub struct IssuerRecord {
    /// Its id: what certificates, CRLs and leases reference.
    pub id: i64,
    /// Its DER certificate.
    pub certificate: Vec<u8>,
    /// The tenant it is dedicated to, if any.
    pub tenant: Option<(TenantId, TenantName)>,
    /// Where its key is.
    pub key: IssuerKeyLocation,
    /// When a newer intermediate took over from it.
    pub superseded_at: Option<OffsetDateTime>,
    /// When it was retired: its certificates have all expired, and its CRL is no longer
    /// published.
    pub retired_at: Option<OffsetDateTime>,
}

/// An intermediate to record: its certificate, whom it signs for and where its key is.
#[derive(Debug, Clone)]
pub struct NewIssuer {
    /// SHA-256 of the certificate, lowercase hex.
    pub fingerprint: String,
    /// Its subject, as printed.
    pub subject: String,
    /// Its DER certificate.
    pub certificate: Vec<u8>,
    /// The end of its validity.
    pub not_after: OffsetDateTime,
    /// The tenant it is dedicated to, if any.
    pub tenant_id: Option<TenantId>,
    /// Where its key is ([`IssuerKeyLocation::Home`] is only for the one made at
    /// initialization, which [`Store::ensure_issuer`] records).
    pub key: IssuerKeyLocation,
}

/// A root's or a cross-certificate's `issuers` row as read: id, role, certificate, sealed
/// key, superseded_at.
type RootSqlRow = (i64, String, Vec<u8>, Option<String>, Option<i64>);

/// One `issuers` row as read.
type IssuerSqlRow = (
    i64,
    Vec<u8>,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<i64>,
);

impl Store {
    /// The id of the issuer with this certificate, recording it on first use with its role
    /// (and naming the role of a row recorded before roles were kept).
    pub async fn ensure_issuer(
        &self,
        fingerprint: &str,
        subject: &str,
        certificate: &[u8],
        not_after: OffsetDateTime,
        role: IssuerRole,
        now: OffsetDateTime,
    ) -> Result<i64, StoreError> {
        let find = "SELECT id, role FROM issuers WHERE fingerprint = $1";
        if let Some((id, stored_role)) = sqlx::query_as::<_, (i64, Option<String>)>(find)
            .bind(fingerprint)
            .fetch_optional(&self.pool)
            .await?
        {
            if stored_role.is_none() {
                sqlx::query("UPDATE issuers SET role = $1 WHERE id = $2 AND role IS NULL")
                    .bind(role.as_str())
                    .bind(id)
                    .execute(&self.pool)
                    .await?;
            }
            return Ok(id);
        }
        let inserted = sqlx::query(
            "INSERT INTO issuers (fingerprint, subject, certificate, not_after, created_at, role) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(fingerprint)
        .bind(subject)
        .bind(certificate)
        .bind(seconds(not_after))
        .bind(seconds(now))
        .bind(role.as_str())
        .execute(&self.pool)
        .await;
        match inserted.map_err(|e| unique_as(e, StoreError::AlreadyExists("issuer"))) {
            // Another replica recorded it first: read its id.
            Ok(_) | Err(StoreError::AlreadyExists(_)) => {
                let (id, _): (i64, Option<String>) = sqlx::query_as(find)
                    .bind(fingerprint)
                    .fetch_one(&self.pool)
                    .await?;
                Ok(id)
            }
            Err(e) => Err(e),
        }
    }

    /// Every intermediate, oldest first.
    pub async fn intermediates(&self) -> Result<Vec<IssuerRecord>, StoreError> {
        let rows: Vec<IssuerSqlRow> = sqlx::query_as(
            "SELECT i.id, i.certificate, i.tenant_id, t.name, i.key_pem, i.key_label, \
             i.superseded_at, i.retired_at \
             FROM issuers i LEFT JOIN tenants t ON t.id = i.tenant_id \
             WHERE i.role = 'intermediate' ORDER BY i.id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(issuer_record).collect()
    }

    /// A number that grows whenever an intermediate is recorded, superseded or retired (rows
    /// are never deleted and those times are set once): cheap to poll, so replicas follow
    /// the issuers within a fraction of a second.
    pub async fn issuers_revision(&self) -> Result<i64, StoreError> {
        let (revision,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) + COUNT(superseded_at) + COUNT(retired_at) FROM issuers \
             WHERE role = 'intermediate'",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(revision)
    }

    /// Records a new intermediate that takes over from `supersedes` (the active one it
    /// replaces, if any), and its cross-certificates by other roots, with its audit event,
    /// in one transaction. When another process superseded it first (two rotations at
    /// once), nothing is written and the answer is [`StoreError::AlreadyExists`]: the other
    /// rotation stands.
    pub async fn record_rotation(
        &self,
        new: &NewIssuer,
        crosses: &[NewIssuer],
        supersedes: Option<i64>,
        now: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<i64, StoreError> {
        self.write(event, async |tx, event| {
            if let Some(old) = supersedes {
                supersede(tx, old, now).await?;
            }
            let id = insert_issuer(tx, new, IssuerRole::Intermediate, now).await?;
            for cross in crosses {
                insert_issuer(tx, cross, IssuerRole::Cross, now).await?;
            }
            event.detail["issuer"] = id.into();
            if let Some(old) = supersedes {
                event.detail["supersedes"] = old.into();
            }
            Ok(Change::Made(id))
        })
        .await
    }

    /// Records a root rollover in one transaction with its audit event: the old root and the
    /// old shared intermediate superseded, the new root, the cross-certificates and the new
    /// intermediate recorded. Returns the new root's and the new intermediate's ids. When
    /// another process rotated first, nothing is written ([`StoreError::AlreadyExists`]).
    pub async fn record_root_rollover(
        &self,
        rollover: &RootRollover,
        now: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<(i64, i64), StoreError> {
        self.write(event, async |tx, event| {
            supersede(tx, rollover.supersedes_root, now).await?;
            if let Some(old) = rollover.supersedes_intermediate {
                supersede(tx, old, now).await?;
            }
            let root = insert_issuer(tx, &rollover.root, IssuerRole::Root, now).await?;
            for cross in &rollover.crosses {
                insert_issuer(tx, cross, IssuerRole::Cross, now).await?;
            }
            let intermediate =
                insert_issuer(tx, &rollover.intermediate, IssuerRole::Intermediate, now).await?;
            event.detail["root"] = root.into();
            event.detail["issuer"] = intermediate.into();
            event.detail["supersedes_root"] = rollover.supersedes_root.into();
            Ok(Change::Made((root, intermediate)))
        })
        .await
    }

    /// Every root and cross-certificate, oldest first.
    pub async fn roots_and_crosses(&self) -> Result<Vec<RootRecord>, StoreError> {
        let rows: Vec<RootSqlRow> = sqlx::query_as(
            "SELECT id, role, certificate, key_pem, superseded_at FROM issuers \
             WHERE role IN ('root', 'cross') ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(id, role, certificate, key_pem, superseded)| {
                Ok(RootRecord {
                    id,
                    role: match role.as_str() {
                        "root" => IssuerRole::Root,
                        "cross" => IssuerRole::Cross,
                        _ => return Err(StoreError::corrupt("issuers", "role", role)),
                    },
                    certificate,
                    key: key_pem.map_or(IssuerKeyLocation::Home, IssuerKeyLocation::Stored),
                    superseded_at: superseded
                        .map(|t| time("issuers", "superseded_at", t))
                        .transpose()?,
                })
            })
            .collect()
    }

    /// Marks an active intermediate superseded without a successor (a tenant's own, when
    /// the tenant goes back to the shared one), with its audit event; false (and nothing
    /// written) when it was superseded already.
    pub async fn supersede_issuer(
        &self,
        id: i64,
        now: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<bool, StoreError> {
        self.update_one_row(SUPERSEDE, now, id, event).await
    }

    /// Retires a superseded intermediate none of whose certificates is valid after
    /// `expired_before`, with its audit event; false (and nothing written) when it still has
    /// one, is active, or was retired already. Decided in one statement, so a renewal racing
    /// it cannot be left without a CRL (it could not be signed by a superseded issuer anyway).
    pub async fn retire_issuer(
        &self,
        id: i64,
        expired_before: OffsetDateTime,
        now: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<bool, StoreError> {
        self.write(event, async |tx, _| {
            let retired = sqlx::query(
                "UPDATE issuers SET retired_at = $1 \
                 WHERE id = $2 AND superseded_at IS NOT NULL AND retired_at IS NULL \
                 AND NOT EXISTS (SELECT 1 FROM certificates \
                                 WHERE issuer_id = $2 AND not_after > $3)",
            )
            .bind(seconds(now))
            .bind(id)
            .bind(seconds(expired_before))
            .execute(tx.conn())
            .await?;
            Ok(Change::one_row(retired.rows_affected()))
        })
        .await
    }
}

/// An `issuers` row parsed; a row that says its key is in two places is corrupt.
fn issuer_record(row: IssuerSqlRow) -> Result<IssuerRecord, StoreError> {
    let (id, certificate, tenant_id, tenant_name, key_pem, key_label, superseded, retired) = row;
    let tenant = match (tenant_id, tenant_name) {
        (None, _) => None,
        (Some(tid), Some(name)) => Some((
            TenantId::new(tid),
            name.parse()
                .map_err(|_| StoreError::corrupt("tenants", "name", &name))?,
        )),
        (Some(tid), None) => return Err(StoreError::corrupt("issuers", "tenant_id", tid)),
    };
    let key = match (key_pem, key_label) {
        (None, None) => IssuerKeyLocation::Home,
        (Some(pem), None) => IssuerKeyLocation::Stored(pem),
        (None, Some(label)) => IssuerKeyLocation::Token(label),
        (Some(_), Some(label)) => return Err(StoreError::corrupt("issuers", "key_label", label)),
    };
    Ok(IssuerRecord {
        id,
        certificate,
        tenant,
        key,
        superseded_at: superseded
            .map(|t| time("issuers", "superseded_at", t))
            .transpose()?,
        retired_at: retired
            .map(|t| time("issuers", "retired_at", t))
            .transpose()?,
    })
}

/// Marks issuer `$2` superseded at `$1`, unless it was already.
const SUPERSEDE: &str =
    "UPDATE issuers SET superseded_at = $1 WHERE id = $2 AND superseded_at IS NULL";

/// Marks issuer `id` superseded at `now`, in a rotation's transaction; another process's
/// rotation that came first makes it [`StoreError::AlreadyExists`].
async fn supersede(tx: &mut WriteTx, id: i64, now: OffsetDateTime) -> Result<(), StoreError> {
    let superseded = sqlx::query(SUPERSEDE)
        .bind(seconds(now))
        .bind(id)
        .execute(tx.conn())
        .await?;
    if superseded.rows_affected() == 0 {
        return Err(StoreError::AlreadyExists("rotation"));
    }
    Ok(())
}

/// Inserts `new` with `role` in a rotation's transaction; its id. The one-active indexes
/// make a rotation another process committed first [`StoreError::AlreadyExists`].
async fn insert_issuer(
    tx: &mut WriteTx,
    new: &NewIssuer,
    role: IssuerRole,
    now: OffsetDateTime,
) -> Result<i64, StoreError> {
    let (key_pem, key_label) = match &new.key {
        IssuerKeyLocation::Home => (None, None),
        IssuerKeyLocation::Stored(pem) => (Some(pem.as_str()), None),
        IssuerKeyLocation::Token(label) => (None, Some(label.as_str())),
    };
    let (id,): (i64,) = sqlx::query_as(
        "INSERT INTO issuers (fingerprint, subject, certificate, not_after, created_at, \
         role, tenant_id, key_pem, key_label) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
    )
    .bind(&new.fingerprint)
    .bind(&new.subject)
    .bind(&new.certificate)
    .bind(seconds(new.not_after))
    .bind(seconds(now))
    .bind(role.as_str())
    .bind(new.tenant_id.map(TenantId::get))
    .bind(key_pem)
    .bind(key_label)
    .fetch_one(tx.conn())
    .await
    .map_err(|e| unique_as(e, StoreError::AlreadyExists("rotation")))?;
    Ok(id)
}
