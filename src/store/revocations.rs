use time::OffsetDateTime;

use super::audit::AuditEvent;
use super::rows::seconds;
use super::{Backend, Change, Store, StoreError, unique_as};
use crate::model::{KeyId, OwnerName, RevocationReason, Serial, TenantId, WebhookEvent};

/// How many CRLs of an issuer the store keeps.
const CRLS_KEPT: i64 = 3;

/// One entry of a CRL: a revoked certificate that has not yet expired (long enough ago).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RevokedCertificate {
    /// Its serial.
    pub serial: Serial,
    /// When it was revoked.
    pub revoked_at: OffsetDateTime,
    /// Why; `Unspecified` when no reason was recorded (NULL), never for an unreadable one.
    pub reason: RevocationReason,
    /// The end of the certificate's validity: its entry leaves the CRL some time after.
    pub not_after: OffsetDateTime,
}

/// Revoked certificates, in no particular order, read as one text value: a million rows read
/// one by one cost seconds of per-row overhead (each row crosses a channel from the
/// database's thread and is converted twice), one value a fraction of that. The text is this
/// module's private encoding; [`RevokedList::iter`] parses it into typed entries.
#[derive(Debug, Default)]
pub struct RevokedList {
    /// `serial revoked_at not_after reason` items joined by commas; empty when there are none.
    text: String,
}

impl RevokedList {
    /// The entries; a value the CA would not have written is a [`StoreError::Corrupt`], so a
    /// CRL is never built from a guess.
    pub fn iter(&self) -> impl Iterator<Item = Result<RevokedCertificate, StoreError>> + '_ {
        self.text
            .split(',')
            .filter(|item| !item.is_empty())
            .map(parse_revoked_item)
    }
}

/// One `serial revoked_at not_after reason` item of a [`RevokedList`].
fn parse_revoked_item(item: &str) -> Result<RevokedCertificate, StoreError> {
    let mut parts = item.splitn(4, ' ');
    let (serial, revoked_at, not_after, reason) =
        (parts.next(), parts.next(), parts.next(), parts.next());
    let serial = serial
        .and_then(|s| s.parse::<Serial>().ok())
        .ok_or_else(|| StoreError::corrupt("certificates", "serial", item))?;
    let time = |column, t: Option<&str>| {
        t.and_then(|t| t.parse::<i64>().ok())
            .and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok())
            .ok_or_else(|| StoreError::corrupt("certificates", column, item))
    };
    let revoked_at = time("revoked_at", revoked_at)?;
    let not_after = time("not_after", not_after)?;
    let reason = match reason {
        None | Some("") => RevocationReason::Unspecified,
        Some(name) => name
            .parse()
            .map_err(|_| StoreError::corrupt("certificates", "revocation_reason", name))?,
    };
    Ok(RevokedCertificate {
        serial,
        revoked_at,
        reason,
        not_after,
    })
}

/// A published CRL as stored.
#[derive(Debug, Clone)]
pub struct CrlRow {
    /// The CRL number.
    pub number: i64,
    /// Its thisUpdate.
    pub this_update: OffsetDateTime,
    /// Its nextUpdate.
    pub next_update: OffsetDateTime,
    /// How many certificates it lists.
    pub entries: i64,
    /// The signed DER.
    pub der: bytes::Bytes,
    /// The revocation revision it was built from: it lists every revocation up to it.
    pub covers: i64,
    /// It lists the revoked certificates (stamped at or below `covers`) whose notAfter is
    /// after this; `None` for a CRL built before revocations were stamped.
    pub cutoff: Option<OffsetDateTime>,
}

/// What a stored CRL listed, without its bytes: what a delta CRL from it is computed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrlBasis {
    /// The CRL number.
    pub number: i64,
    /// Its thisUpdate.
    pub this_update: OffsetDateTime,
    /// Its nextUpdate.
    pub next_update: OffsetDateTime,
    /// The revocation revision it covers.
    pub covers: i64,
    /// Its cutoff (see [`CrlRow::cutoff`]).
    pub cutoff: OffsetDateTime,
}

/// What a CRL builder watches: see [`Store::crl_marks`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrlMarks {
    /// The highest number of the issuer's CRLs, 0 when none is (its whole CRL may still be
    /// being signed).
    pub highest_number: i64,
    /// The highest number of the issuer's CRLs stored whole, 0 when none is.
    pub highest_whole: i64,
    /// The revocation revision.
    pub revision: i64,
}

/// A range of revocation revisions: above `after`, up to and including `up_to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Revisions {
    /// Exclusive; -1 takes every revision from the first.
    pub after: i64,
    /// Inclusive.
    pub up_to: i64,
}

impl Revisions {
    /// Every revision up to and including `up_to`.
    pub fn up_to(up_to: i64) -> Self {
        Self { after: -1, up_to }
    }
}

/// Records, in a transaction that revokes, that the CRLs built so far miss something, and
/// stamps the certificates it revoked (marked pending, revision 0) with the new revision.
/// Called by [`Store::write`] for a [`Change::Revoked`], last in the transaction: the
/// `crl_demand` row stays locked until commit, so revisions commit in the order they are
/// taken and a reader that sees revision R sees every certificate stamped R or less
/// (migration 0011 says why that holds on PostgreSQL too).
pub(super) async fn bump_crl_revision(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
) -> Result<(), StoreError> {
    let (revision,): (i64,) = sqlx::query_as(
        "INSERT INTO crl_demand (id, revision) VALUES (1, 1) \
         ON CONFLICT (id) DO UPDATE SET revision = crl_demand.revision + 1 RETURNING revision",
    )
    .fetch_one(&mut **tx)
    .await?;
    sqlx::query("UPDATE certificates SET revocation_revision = $1 WHERE revocation_revision = 0")
        .bind(revision)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// A `crls` row as read: number, this_update, next_update, entries, der, covers, cutoff.
type StoredCrl = (i64, i64, i64, i64, Vec<u8>, i64, Option<i64>);

/// A time column of `crls`.
fn crl_time(column: &'static str, t: i64) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp(t).map_err(|_| StoreError::corrupt("crls", column, t))
}

/// Which keys a bulk revocation takes.
#[derive(Debug, Clone)]
pub struct RevocationScope {
    /// The tenant's internal id.
    pub tenant_id: TenantId,
    /// Only this owner's keys, if given.
    pub owner: Option<OwnerName>,
}

impl Store {
    /// Revokes a key and every unexpired certificate of it, with the audit event, in one
    /// transaction. Returns the number of certificates revoked, or `None` when the key was
    /// revoked already (nothing changes then, and no event is written).
    pub async fn revoke_key(
        &self,
        key_id: &KeyId,
        reason: RevocationReason,
        now: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<Option<i64>, StoreError> {
        let at = now;
        let now = seconds(now);
        self.write(event, async |tx, event| {
            let key: Option<(i64,)> = sqlx::query_as(
                "UPDATE keys SET revoked_at = $1, revocation_reason = $2 \
                 WHERE id = $3 AND revoked_at IS NULL RETURNING tenant_id",
            )
            .bind(now)
            .bind(reason.as_str())
            .bind(key_id.as_str())
            .fetch_optional(tx.conn())
            .await?;
            if let Some((tenant_id,)) = key {
                super::webhooks::enqueue(
                    tx.conn(),
                    tenant_id,
                    WebhookEvent::KeyRevoked,
                    key_id.as_str(),
                    at,
                    serde_json::json!({ "reason": reason.as_str() }),
                )
                .await?;
            }
            // Swept even when the key was revoked already: nothing of a revoked key stays valid.
            let certificates = sqlx::query(
                "UPDATE certificates SET revoked_at = $1, revocation_reason = $2, revocation_revision = 0 \
                 WHERE key_id = $3 AND revoked_at IS NULL AND not_after > $1",
            )
            .bind(now)
            .bind(reason.as_str())
            .bind(key_id.as_str())
            .execute(tx.conn())
            .await?;
            if key.is_none() && certificates.rows_affected() == 0 {
                return Ok(Change::None(None));
            }
            event.detail["certificates"] = certificates.rows_affected().into();
            Ok(Change::Revoked(Some(certificates.rows_affected() as i64)))
        })
        .await
    }

    /// What [`Store::revoke_keys_of`] would revoke at `now` in `scope`, counted without a
    /// change: `(keys, certificates)`. The certificates are those of every key in scope
    /// that are unrevoked and unexpired, as the bulk revocation sweeps them.
    ///
    /// One statement pair per shape, so each uses its index: an owner's keys through
    /// `keys_by_owner` (`+revoked_at` keeps SQLite from preferring the tenant's state
    /// index, which would read every key of the tenant), a whole tenant's from the state
    /// index alone; the certificates through `certificates_live` (migration 0013).
    pub async fn revocable_in(
        &self,
        scope: &RevocationScope,
        now: OffsetDateTime,
    ) -> Result<(i64, i64), StoreError> {
        let (keys_sql, certificates_sql) = match scope.owner {
            Some(_) => (
                "SELECT COUNT(*) FROM keys \
                 WHERE tenant_id = $1 AND owner = $2 AND +revoked_at IS NULL",
                "SELECT COUNT(*) FROM certificates c JOIN keys k ON k.id = c.key_id \
                 WHERE k.tenant_id = $1 AND k.owner = $2 \
                 AND c.revoked_at IS NULL AND c.not_after > $3",
            ),
            None => (
                "SELECT COUNT(*) FROM keys WHERE tenant_id = $1 AND revoked_at IS NULL",
                "SELECT COUNT(*) FROM certificates c JOIN keys k ON k.id = c.key_id \
                 WHERE k.tenant_id = $1 AND c.revoked_at IS NULL AND c.not_after > $2",
            ),
        };
        let owner = scope.owner.as_ref().map(|o| o.as_str().to_owned());
        let mut keys = sqlx::query_as::<_, (i64,)>(keys_sql).bind(scope.tenant_id.get());
        let mut certificates =
            sqlx::query_as::<_, (i64,)>(certificates_sql).bind(scope.tenant_id.get());
        if let Some(owner) = owner {
            keys = keys.bind(owner.clone());
            certificates = certificates.bind(owner);
        }
        let (keys,) = keys.fetch_one(&self.pool).await?;
        let (certificates,) = certificates
            .bind(seconds(now))
            .fetch_one(&self.pool)
            .await?;
        Ok((keys, certificates))
    }

    /// Revokes every unrevoked key of a tenant (or of one owner in it) and the unexpired
    /// certificates of every revoked key in that scope, in one transaction. Returns
    /// `(keys, certificates)` revoked.
    pub async fn revoke_keys_of(
        &self,
        scope: &RevocationScope,
        reason: RevocationReason,
        now: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<(i64, i64), StoreError> {
        let at = now;
        let now = seconds(now);
        // '' is no owner name, so it stands for "every owner" in the statements.
        let owner = scope
            .owner
            .as_ref()
            .map_or(String::new(), |o| o.as_str().to_owned());
        self.write(event, async |tx, event| {
            // The tenant's webhooks hear of every key about to be revoked, in this transaction.
            super::webhooks::enqueue_bulk_revocation(
                tx.conn(),
                scope.tenant_id.get(),
                &owner,
                at,
                serde_json::json!({ "reason": reason.as_str() }),
            )
            .await?;
            // Keys first (taking their row locks), then every certificate of a revoked key in
            // scope, so a renewal racing this either committed before or is refused after.
            let keys = sqlx::query(
                "UPDATE keys SET revoked_at = $1, revocation_reason = $2 \
                 WHERE tenant_id = $3 AND ($4 = '' OR owner = $4) AND revoked_at IS NULL",
            )
            .bind(now)
            .bind(reason.as_str())
            .bind(scope.tenant_id.get())
            .bind(&owner)
            .execute(tx.conn())
            .await?;
            let certificates = sqlx::query(
                "UPDATE certificates SET revoked_at = $1, revocation_reason = $2, revocation_revision = 0 \
                 WHERE revoked_at IS NULL AND not_after > $1 AND key_id IN \
                 (SELECT id FROM keys WHERE tenant_id = $3 AND ($4 = '' OR owner = $4) \
                  AND revoked_at IS NOT NULL)",
            )
            .bind(now)
            .bind(reason.as_str())
            .bind(scope.tenant_id.get())
            .bind(&owner)
            .execute(tx.conn())
            .await?;
            let counts = (
                keys.rows_affected() as i64,
                certificates.rows_affected() as i64,
            );
            event.detail["keys"] = counts.0.into();
            event.detail["certificates"] = counts.1.into();
            // A bulk revocation that found nothing is still recorded: somebody asked.
            Ok(if counts == (0, 0) {
                Change::Made(counts)
            } else {
                Change::Revoked(counts)
            })
        })
        .await
    }

    /// The revoked certificates of an issuer stamped with a revision in `revisions` (a
    /// revision of `..=R` includes those revoked before revisions were stamped) whose
    /// `not_after` is after `expired_before`: with `..=covers`, the entries of a CRL; with
    /// `(last, covers]`, what a CRL built from `last` lacks.
    pub async fn revoked_certificates(
        &self,
        issuer_id: i64,
        revisions: Revisions,
        expired_before: OffsetDateTime,
    ) -> Result<RevokedList, StoreError> {
        // Read whole, a certificate revoked outside the stamping (a row edited by hand, with
        // no revision) counts as stamped 0: a whole read, and the start-up check, see it.
        let filter = if revisions.after < 0 {
            "issuer_id = $1 AND revoked_at IS NOT NULL AND not_after > $4 \
             AND COALESCE(revocation_revision, 0) > $2 AND COALESCE(revocation_revision, 0) <= $3"
        } else {
            "issuer_id = $1 AND revocation_revision > $2 AND revocation_revision <= $3 \
             AND not_after > $4"
        };
        self.revoked_list(
            filter,
            issuer_id,
            revisions,
            expired_before.unix_timestamp(),
            0,
        )
        .await
    }

    /// The revoked certificates of an issuer stamped with a revision in `revisions` whose
    /// `not_after` is in `(after, until]`: the entries a CRL had that a later one dropped
    /// because they expired.
    pub async fn expired_revocations(
        &self,
        issuer_id: i64,
        revisions: Revisions,
        after: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<RevokedList, StoreError> {
        self.revoked_list(
            "issuer_id = $1 AND revoked_at IS NOT NULL AND COALESCE(revocation_revision, 0) > $2 \
             AND COALESCE(revocation_revision, 0) <= $3 AND not_after > $4 AND not_after <= $5",
            issuer_id,
            revisions,
            after.unix_timestamp(),
            until.unix_timestamp(),
        )
        .await
    }

    /// The revoked certificates matching `filter`, whose parameters are the issuer, the
    /// revision range and two times.
    async fn revoked_list(
        &self,
        filter: &str,
        issuer_id: i64,
        revisions: Revisions,
        t1: i64,
        t2: i64,
    ) -> Result<RevokedList, StoreError> {
        // Serials are hex and reasons are names, so neither holds a space or a comma.
        let aggregate = match self.backend {
            Backend::Sqlite => "group_concat",
            Backend::Postgres => "string_agg",
        };
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {aggregate}(serial || ' ' || revoked_at || ' ' || not_after || ' ' || \
             COALESCE(revocation_reason, ''), ',') FROM certificates WHERE {filter}"
        ));
        let (text,): (Option<String>,) = sqlx::query_as(sql)
            .bind(issuer_id)
            .bind(revisions.after)
            .bind(revisions.up_to)
            .bind(t1)
            .bind(t2)
            .fetch_one(&self.pool)
            .await?;
        Ok(RevokedList {
            text: text.unwrap_or_default(),
        })
    }

    /// The newest whole CRL of an issuer (newer numbers may be decided whose CRL is still
    /// being signed: see [`Store::newest_crl_basis`]).
    pub async fn latest_crl(&self, issuer_id: i64) -> Result<Option<CrlRow>, StoreError> {
        let row: Option<StoredCrl> = sqlx::query_as(
            "SELECT number, this_update, next_update, entries, der, covers, cutoff FROM crls \
             WHERE issuer_id = $1 AND has_der = 1 ORDER BY number DESC LIMIT 1",
        )
        .bind(issuer_id)
        .fetch_optional(&self.pool)
        .await?;
        let Some((number, this_update, next_update, entries, der, covers, cutoff)) = row else {
            return Ok(None);
        };
        Ok(Some(CrlRow {
            number,
            this_update: crl_time("this_update", this_update)?,
            next_update: crl_time("next_update", next_update)?,
            entries,
            der: der.into(),
            covers,
            cutoff: cutoff.map(|t| crl_time("cutoff", t)).transpose()?,
        }))
    }

    /// What the newest CRL number decided for an issuer lists (its whole CRL may still be
    /// being signed), if it was decided with a cutoff.
    pub async fn newest_crl_basis(&self, issuer_id: i64) -> Result<Option<CrlBasis>, StoreError> {
        let (number,): (i64,) =
            sqlx::query_as("SELECT COALESCE(MAX(number), 0) FROM crls WHERE issuer_id = $1")
                .bind(issuer_id)
                .fetch_one(&self.pool)
                .await?;
        self.crl_basis(issuer_id, number).await
    }

    /// What CRL `number` of an issuer listed, if it is still within the delta horizon and was
    /// built with a cutoff.
    pub async fn crl_basis(
        &self,
        issuer_id: i64,
        number: i64,
    ) -> Result<Option<CrlBasis>, StoreError> {
        let row: Option<(i64, i64, i64, i64)> = sqlx::query_as(
            "SELECT this_update, next_update, covers, cutoff FROM crls \
             WHERE issuer_id = $1 AND number = $2 AND cutoff IS NOT NULL",
        )
        .bind(issuer_id)
        .bind(number)
        .fetch_optional(&self.pool)
        .await?;
        let Some((this_update, next_update, covers, cutoff)) = row else {
            return Ok(None);
        };
        Ok(Some(CrlBasis {
            number,
            this_update: crl_time("this_update", this_update)?,
            next_update: crl_time("next_update", next_update)?,
            covers,
            cutoff: crl_time("cutoff", cutoff)?,
        }))
    }

    /// The highest CRL number used by any issuer (CRL numbers never repeat).
    pub async fn highest_crl_number(&self) -> Result<i64, StoreError> {
        let (n,): (i64,) = sqlx::query_as("SELECT COALESCE(MAX(number), 0) FROM crls")
            .fetch_one(&self.pool)
            .await?;
        Ok(n)
    }

    /// The revocation revision: it grows with every transaction that revokes.
    pub async fn crl_revision(&self) -> Result<i64, StoreError> {
        let (n,): (i64,) = sqlx::query_as("SELECT COALESCE(MAX(revision), 0) FROM crl_demand")
            .fetch_one(&self.pool)
            .await?;
        Ok(n)
    }

    /// The highest number of an issuer's CRLs and the revocation revision, in one cheap
    /// query: what a CRL builder watches to learn that another replica published, or that a
    /// revocation is in no CRL yet.
    pub async fn crl_marks(&self, issuer_id: i64) -> Result<CrlMarks, StoreError> {
        let (highest_number, highest_whole, revision): (i64, i64, i64) = sqlx::query_as(
            "SELECT (SELECT COALESCE(MAX(number), 0) FROM crls WHERE issuer_id = $1), \
                    (SELECT COALESCE(MAX(number), 0) FROM crls WHERE issuer_id = $1 AND has_der = 1), \
                    (SELECT COALESCE(MAX(revision), 0) FROM crl_demand)",
        )
        .bind(issuer_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(CrlMarks {
            highest_number,
            highest_whole,
            revision,
        })
    }

    /// Stores a CRL: its number, what it lists and, when `crl.der` is not empty, its bytes
    /// (else they follow with [`Store::store_crl_bytes`]). `Collision` means its number was
    /// taken meanwhile (by another replica): decide again with a higher one. Rows of CRLs
    /// built before `horizon_start` whose bytes are gone leave: no delta starts from them.
    pub async fn insert_crl(
        &self,
        issuer_id: i64,
        crl: &CrlRow,
        now: OffsetDateTime,
        horizon_start: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO crls (number, issuer_id, this_update, next_update, entries, der, \
             created_at, covers, cutoff, has_der) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(crl.number)
        .bind(issuer_id)
        .bind(crl.this_update.unix_timestamp())
        .bind(crl.next_update.unix_timestamp())
        .bind(crl.entries)
        .bind(crl.der.as_ref())
        .bind(now.unix_timestamp())
        .bind(crl.covers)
        .bind(crl.cutoff.map(OffsetDateTime::unix_timestamp))
        .bind(i64::from(!crl.der.is_empty()))
        .execute(&mut **tx)
        .await
        .map_err(|e| unique_as(e, StoreError::Collision))?;
        sqlx::query("DELETE FROM crls WHERE issuer_id = $1 AND created_at < $2 AND has_der = 0")
            .bind(issuer_id)
            .bind(horizon_start.unix_timestamp())
            .execute(&mut **tx)
            .await?;
        if !crl.der.is_empty() {
            prune_crl_bytes(&mut tx, issuer_id).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Stores the signed bytes of CRL `number`, decided with [`Store::insert_crl`] before. False
    /// when it has them already or its row has left.
    pub async fn store_crl_bytes(
        &self,
        issuer_id: i64,
        number: i64,
        der: &[u8],
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let stored = sqlx::query(
            "UPDATE crls SET der = $3, has_der = 1 WHERE issuer_id = $1 AND number = $2 AND has_der = 0",
        )
        .bind(issuer_id)
        .bind(number)
        .bind(der)
        .execute(&mut **tx)
        .await?
        .rows_affected()
            == 1;
        prune_crl_bytes(&mut tx, issuer_id).await?;
        tx.commit().await?;
        Ok(stored)
    }
}

/// Drops the bytes of an issuer's CRLs but the newest few that have them: only those are ever
/// served whole (a million-entry CRL is ~49 MB); the rows stay for deltas.
async fn prune_crl_bytes(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    issuer_id: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE crls SET der = $3, has_der = 0 WHERE issuer_id = $1 AND has_der = 1 AND number < \
         (SELECT MIN(number) FROM (SELECT number FROM crls WHERE issuer_id = $1 \
          AND has_der = 1 ORDER BY number DESC LIMIT $2) AS recent)",
    )
    .bind(issuer_id)
    .bind(CRLS_KEPT)
    .bind(Vec::<u8>::new())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Store {
    /// Takes the CRL builder lease of an issuer for `holder` until `expires_at`, unless another
    /// holder has it and it has not expired. True when `holder` now has it. With it, exactly
    /// one replica builds each CRL.
    pub async fn take_crl_lease(
        &self,
        issuer_id: i64,
        holder: &str,
        now: OffsetDateTime,
        expires_at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let taken: Option<(String,)> = sqlx::query_as(
            "INSERT INTO crl_leases (issuer_id, holder, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (issuer_id) DO UPDATE SET holder = $2, expires_at = $3 \
             WHERE crl_leases.expires_at <= $4 OR crl_leases.holder = $2 \
             RETURNING holder",
        )
        .bind(issuer_id)
        .bind(holder)
        .bind(expires_at.unix_timestamp())
        .bind(now.unix_timestamp())
        .fetch_optional(&mut **tx)
        .await?;
        tx.commit().await?;
        Ok(taken.is_some())
    }

    /// Gives the lease back.
    pub async fn release_crl_lease(&self, issuer_id: i64, holder: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE crl_leases SET expires_at = 0 WHERE issuer_id = $1 AND holder = $2")
            .bind(issuer_id)
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(text: &str) -> Vec<Result<RevokedCertificate, StoreError>> {
        RevokedList { text: text.into() }.iter().collect()
    }

    #[test]
    fn revoked_items_parse_into_typed_entries() {
        let serial = "0123456789abcdef0123456789abcdef";
        let entries = list(&format!(
            "{serial} 1700000000 1700086400 key_compromise,{serial} 1700000001 1700086400 "
        ));
        let first = entries[0].as_ref().unwrap();
        assert_eq!(first.serial, serial.parse().unwrap());
        assert_eq!(first.revoked_at.unix_timestamp(), 1_700_000_000);
        assert_eq!(first.not_after.unix_timestamp(), 1_700_086_400);
        assert_eq!(first.reason, RevocationReason::KeyCompromise);
        // No recorded reason (NULL) is "unspecified".
        assert_eq!(
            entries[1].as_ref().unwrap().reason,
            RevocationReason::Unspecified
        );
        assert!(list("").is_empty());
    }

    /// A value the CA never writes is an error naming the column, not a default.
    #[test]
    fn corrupt_revoked_items_are_errors() {
        let serial = "0123456789abcdef0123456789abcdef";
        for (text, column) in [
            (
                format!("{serial} 1700000000 1700000000 bogus"),
                "revocation_reason",
            ),
            (
                format!("{serial} yesterday 1700000000 superseded"),
                "revoked_at",
            ),
            (format!("{serial} 1700000000 never superseded"), "not_after"),
            ("zz 1700000000 1700000000 superseded".to_owned(), "serial"),
            (serial.to_owned(), "revoked_at"),
        ] {
            match list(&text).remove(0) {
                Err(StoreError::Corrupt { column: c, .. }) => assert_eq!(c, column, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
    }
}
