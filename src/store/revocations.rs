use time::OffsetDateTime;

use super::audit::AuditEvent;
use super::rows::seconds;
use super::{Backend, Change, Store, StoreError, unique_as};
use crate::model::{KeyId, OwnerName, RevocationReason, Serial, TenantId};

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
}

/// The entries of the next CRL, in no particular order, read as one text value: a million
/// rows read one by one cost seconds of per-row overhead (each row crosses a channel from
/// the database's thread and is converted twice), one value a fraction of that. The text is
/// this module's private encoding; [`RevokedList::iter`] parses it into typed entries.
#[derive(Debug, Default)]
pub struct RevokedList {
    /// `serial revoked_at reason` items joined by commas; empty when there are none.
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

/// One `serial revoked_at reason` item of a [`RevokedList`].
fn parse_revoked_item(item: &str) -> Result<RevokedCertificate, StoreError> {
    let mut parts = item.splitn(3, ' ');
    let (serial, revoked_at, reason) = (parts.next(), parts.next(), parts.next());
    let serial = serial
        .and_then(|s| s.parse::<Serial>().ok())
        .ok_or_else(|| StoreError::corrupt("certificates", "serial", item))?;
    let revoked_at = revoked_at
        .and_then(|t| t.parse::<i64>().ok())
        .and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok())
        .ok_or_else(|| StoreError::corrupt("certificates", "revoked_at", item))?;
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
    pub der: Vec<u8>,
    /// The revocation revision it was built from: it lists every revocation up to it.
    pub covers: i64,
}

/// What a CRL builder watches: see [`Store::crl_marks`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrlMarks {
    /// The highest number of the issuer's stored CRLs, 0 when none is.
    pub highest_number: i64,
    /// The revocation revision.
    pub revision: i64,
}

/// Records, in a transaction that revokes, that the CRLs built so far miss something. Called
/// by [`Store::write`] for a [`Change::Revoked`], last in the transaction: the row stays locked until commit, so revisions commit in order
/// and a CRL built from revision R lists every revocation up to R.
pub(super) async fn bump_crl_revision(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO crl_demand (id, revision) VALUES (1, 1) \
         ON CONFLICT (id) DO UPDATE SET revision = crl_demand.revision + 1",
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
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
        let now = seconds(now);
        self.write(event, async |tx, event| {
            let key = sqlx::query(
                "UPDATE keys SET revoked_at = $1, revocation_reason = $2 \
                 WHERE id = $3 AND revoked_at IS NULL",
            )
            .bind(now)
            .bind(reason.as_str())
            .bind(key_id.as_str())
            .execute(tx.conn())
            .await?;
            // Swept even when the key was revoked already: nothing of a revoked key stays valid.
            let certificates = sqlx::query(
                "UPDATE certificates SET revoked_at = $1, revocation_reason = $2 \
                 WHERE key_id = $3 AND revoked_at IS NULL AND not_after > $1",
            )
            .bind(now)
            .bind(reason.as_str())
            .bind(key_id.as_str())
            .execute(tx.conn())
            .await?;
            if key.rows_affected() == 0 && certificates.rows_affected() == 0 {
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
        let now = seconds(now);
        // '' is no owner name, so it stands for "every owner" in the statements.
        let owner = scope
            .owner
            .as_ref()
            .map_or(String::new(), |o| o.as_str().to_owned());
        self.write(event, async |tx, event| {
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
                "UPDATE certificates SET revoked_at = $1, revocation_reason = $2 \
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

    /// The revoked certificates of an issuer whose `not_after` is after `expired_before`:
    /// the entries of the next CRL.
    pub async fn revoked_certificates(
        &self,
        issuer_id: i64,
        expired_before: OffsetDateTime,
    ) -> Result<RevokedList, StoreError> {
        // Serials are hex and reasons are names, so neither holds a space or a comma.
        let aggregate = match self.backend {
            Backend::Sqlite => "group_concat",
            Backend::Postgres => "string_agg",
        };
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {aggregate}(serial || ' ' || revoked_at || ' ' || \
             COALESCE(revocation_reason, ''), ',') FROM certificates \
             WHERE issuer_id = $1 AND revoked_at IS NOT NULL AND not_after > $2"
        ));
        let (text,): (Option<String>,) = sqlx::query_as(sql)
            .bind(issuer_id)
            .bind(expired_before.unix_timestamp())
            .fetch_one(&self.pool)
            .await?;
        Ok(RevokedList {
            text: text.unwrap_or_default(),
        })
    }

    /// The newest CRL of an issuer.
    pub async fn latest_crl(&self, issuer_id: i64) -> Result<Option<CrlRow>, StoreError> {
        let row: Option<(i64, i64, i64, i64, Vec<u8>, i64)> = sqlx::query_as(
            "SELECT number, this_update, next_update, entries, der, covers FROM crls \
             WHERE issuer_id = $1 ORDER BY number DESC LIMIT 1",
        )
        .bind(issuer_id)
        .fetch_optional(&self.pool)
        .await?;
        let Some((number, this_update, next_update, entries, der, covers)) = row else {
            return Ok(None);
        };
        let time = |column, t: i64| {
            OffsetDateTime::from_unix_timestamp(t)
                .map_err(|_| StoreError::corrupt("crls", column, t))
        };
        Ok(Some(CrlRow {
            number,
            this_update: time("this_update", this_update)?,
            next_update: time("next_update", next_update)?,
            entries,
            der,
            covers,
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
        let (highest_number, revision): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT COALESCE(MAX(number), 0) FROM crls WHERE issuer_id = $1), \
                    (SELECT COALESCE(MAX(revision), 0) FROM crl_demand)",
        )
        .bind(issuer_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(CrlMarks {
            highest_number,
            revision,
        })
    }

    /// Stores a signed CRL. `Collision` means its number was taken meanwhile (by another
    /// replica): build again with a higher one.
    pub async fn insert_crl(
        &self,
        issuer_id: i64,
        crl: &CrlRow,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO crls (number, issuer_id, this_update, next_update, entries, der, \
             created_at, covers) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(crl.number)
        .bind(issuer_id)
        .bind(crl.this_update.unix_timestamp())
        .bind(crl.next_update.unix_timestamp())
        .bind(crl.entries)
        .bind(&crl.der)
        .bind(now.unix_timestamp())
        .bind(crl.covers)
        .execute(&mut **tx)
        .await
        .map_err(|e| unique_as(e, StoreError::Collision))?;
        // Only the newest few are ever served; a million-entry CRL is ~49 MB.
        sqlx::query(
            "DELETE FROM crls WHERE issuer_id = $1 AND number < \
             (SELECT MIN(number) FROM (SELECT number FROM crls WHERE issuer_id = $1 \
              ORDER BY number DESC LIMIT $2) AS recent)",
        )
        .bind(issuer_id)
        .bind(CRLS_KEPT)
        .execute(&mut **tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
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
            "{serial} 1700000000 key_compromise,{serial} 1700000001 "
        ));
        let first = entries[0].as_ref().unwrap();
        assert_eq!(first.serial, serial.parse().unwrap());
        assert_eq!(first.revoked_at.unix_timestamp(), 1_700_000_000);
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
            (format!("{serial} 1700000000 bogus"), "revocation_reason"),
            (format!("{serial} yesterday superseded"), "revoked_at"),
            ("zz 1700000000 superseded".to_owned(), "serial"),
            (serial.to_owned(), "revoked_at"),
        ] {
            match list(&text).remove(0) {
                Err(StoreError::Corrupt { column: c, .. }) => assert_eq!(c, column, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
    }
}
