//! Copying a whole store into an empty one (`latchkey migrate`, SQLite to PostgreSQL): every
//! table row for row, ids kept, in one transaction on the target, then verified.

use std::collections::BTreeMap;

use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

use super::{Backend, Store, StoreError};

/// The kinds of value the schema holds.
#[derive(Clone, Copy)]
enum Kind {
    Int,
    Text,
    Bytes,
}

use Kind::{Bytes, Int, Text};

/// Every table in foreign-key order, its columns (the first is the key that orders it), and
/// the identity column whose sequence continues after the copied rows.
/// A column: its name and kind.
type Column = (&'static str, Kind);

/// A table: its name, its columns, and its identity column, if any.
type Table = (&'static str, &'static [Column], Option<&'static str>);

const TABLES: &[Table] = &[
    (
        "tenants",
        &[
            ("id", Int),
            ("name", Text),
            ("max_key_days", Int),
            ("disabled_at", Int),
            ("created_at", Int),
        ],
        Some("id"),
    ),
    (
        "issuers",
        &[
            ("id", Int),
            ("fingerprint", Text),
            ("subject", Text),
            ("certificate", Bytes),
            ("not_after", Int),
            ("created_at", Int),
            ("role", Text),
            ("tenant_id", Int),
            ("key_pem", Text),
            ("key_label", Text),
            ("superseded_at", Int),
            ("retired_at", Int),
        ],
        Some("id"),
    ),
    (
        "users",
        &[
            ("id", Int),
            ("tenant_id", Int),
            ("name", Text),
            ("password_hash", Text),
            ("scopes", Text),
            ("disabled_at", Int),
            ("created_at", Int),
        ],
        Some("id"),
    ),
    (
        "keys",
        &[
            ("seq", Int),
            ("id", Text),
            ("tenant_id", Int),
            ("owner", Text),
            ("name", Text),
            ("description", Text),
            ("scopes", Text),
            ("created_at", Int),
            ("expires_at", Int),
            ("revoked_at", Int),
            ("revocation_reason", Text),
        ],
        Some("seq"),
    ),
    (
        "enrollment_tokens",
        &[
            ("id", Int),
            ("token_hash", Text),
            ("tenant_id", Int),
            ("owner", Text),
            ("scopes", Text),
            ("created_by", Text),
            ("created_at", Int),
            ("expires_at", Int),
            ("used_at", Int),
            ("key_id", Text),
            ("revoked_at", Int),
        ],
        Some("id"),
    ),
    (
        "certificates",
        &[
            ("serial", Text),
            ("issuer_id", Int),
            ("kind", Text),
            ("key_id", Text),
            ("subject", Text),
            ("public_key_sha256", Text),
            ("not_before", Int),
            ("not_after", Int),
            ("der", Bytes),
            ("created_at", Int),
            ("revoked_at", Int),
            ("revocation_reason", Text),
            ("generation", Int),
            ("revocation_revision", Int),
        ],
        None,
    ),
    (
        "crls",
        &[
            ("number", Int),
            ("issuer_id", Int),
            ("this_update", Int),
            ("next_update", Int),
            ("entries", Int),
            ("der", Bytes),
            ("created_at", Int),
            ("covers", Int),
            ("cutoff", Int),
            ("has_der", Int),
        ],
        None,
    ),
    (
        "root_crls",
        &[
            ("issuer_id", Int),
            ("number", Int),
            ("this_update", Int),
            ("next_update", Int),
            ("der", Bytes),
            ("created_at", Int),
        ],
        None,
    ),
    ("crl_demand", &[("id", Int), ("revision", Int)], None),
    (
        "audit_events",
        &[
            ("id", Int),
            ("at", Int),
            ("actor", Text),
            ("action", Text),
            ("tenant", Text),
            ("target", Text),
            ("detail", Text),
        ],
        Some("id"),
    ),
    (
        "webhooks",
        &[
            ("id", Int),
            ("tenant_id", Int),
            ("url", Text),
            ("events", Text),
            ("secret", Text),
            ("allow_http", Int),
            ("created_by", Text),
            ("created_at", Int),
            ("removed_at", Int),
        ],
        Some("id"),
    ),
    (
        "webhook_outbox",
        &[
            ("id", Int),
            ("webhook_id", Int),
            ("event_type", Text),
            ("key_id", Text),
            ("occurred_at", Int),
            ("detail", Text),
            ("attempts", Int),
            ("next_attempt_at", Int),
            ("claimed_by", Text),
            ("claimed_until", Int),
            ("delivered_at", Int),
            ("failed_at", Int),
            ("last_status", Int),
            ("last_error", Text),
        ],
        Some("id"),
    ),
    (
        "webhook_expiry_notices",
        &[
            ("id", Int),
            ("webhook_id", Int),
            ("key_id", Text),
            ("lead_seconds", Int),
            ("noticed_at", Int),
        ],
        Some("id"),
    ),
];

/// Rows read per round trip.
const PAGE: i64 = 1000;

/// One value of a row.
enum Value {
    Int(Option<i64>),
    Text(Option<String>),
    Bytes(Option<Vec<u8>>),
}

fn read(row: &AnyRow, columns: &[(&str, Kind)]) -> Result<Vec<Value>, sqlx::Error> {
    columns
        .iter()
        .enumerate()
        .map(|(i, (_, kind))| {
            Ok(match kind {
                Int => Value::Int(row.try_get(i)?),
                Text => Value::Text(row.try_get(i)?),
                Bytes => Value::Bytes(row.try_get(i)?),
            })
        })
        .collect()
}

/// A table's row count and a digest of its rows, for comparing two stores.
async fn fingerprint(
    store: &Store,
    table: &str,
    columns: &[(&str, Kind)],
) -> Result<(i64, String), StoreError> {
    let names: Vec<&str> = columns.iter().map(|(n, _)| *n).collect();
    let sql = format!(
        "SELECT {} FROM {table} ORDER BY {}",
        names.join(", "),
        names[0]
    );
    let rows = sqlx::query(AssertSqlSafe(sql))
        .fetch_all(&store.pool)
        .await?;
    let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
    for row in &rows {
        for value in read(row, columns)? {
            let bytes = match value {
                Value::Int(v) => format!("{v:?}").into_bytes(),
                Value::Text(v) => format!("{v:?}").into_bytes(),
                Value::Bytes(v) => format!("{v:?}").into_bytes(),
            };
            digest.update(&(bytes.len() as u64).to_be_bytes());
            digest.update(&bytes);
        }
    }
    Ok((rows.len() as i64, hex::encode(digest.finish())))
}

impl Store {
    /// A digest of every row of every table but `crls`, whose builder rewrites it on a
    /// schedule of its own: equal digests mean no row a request could touch was added,
    /// removed or changed. For tests and audits; it reads every row.
    pub async fn content_digests(&self) -> Result<BTreeMap<&'static str, String>, StoreError> {
        let mut digests = BTreeMap::new();
        for (table, columns, _) in TABLES
            .iter()
            .filter(|(t, ..)| *t != "crls" && *t != "root_crls")
        {
            let (rows, digest) = fingerprint(self, table, columns).await?;
            digests.insert(*table, format!("{rows} rows, {digest}"));
        }
        Ok(digests)
    }

    /// Copies every row of `self` into `target`, which must be empty, in one transaction, and
    /// then checks that both hold the same rows. Returns the row count of each table and the
    /// number of revoked keys and certificates.
    pub async fn copy_into(
        &self,
        target: &Store,
    ) -> Result<BTreeMap<&'static str, i64>, StoreError> {
        if target.row_counts().await?.values().any(|&n| n > 0) {
            return Err(StoreError::NotEmpty);
        }
        let mut tx = target.begin().await?;
        if target.backend == Backend::Postgres {
            // The public-key rule's trigger (migration 0009) takes an advisory lock per key
            // certificate, held to the end of the transaction: a copy of thousands would
            // exhaust PostgreSQL's lock table. The rows held the rule where they come from,
            // and the copy is verified row for row below. DDL is transactional here: the
            // trigger is back on when this commits, and never off for anyone else.
            sqlx::query("ALTER TABLE certificates DISABLE TRIGGER certificates_public_key_once")
                .execute(&mut **tx)
                .await?;
        }
        for (table, columns, identity) in TABLES {
            let names: Vec<&str> = columns.iter().map(|(n, _)| *n).collect();
            let select = format!(
                "SELECT {} FROM {table} ORDER BY {} LIMIT $1 OFFSET $2",
                names.join(", "),
                names[0]
            );
            let placeholders: Vec<String> = (1..=names.len()).map(|i| format!("${i}")).collect();
            let insert = format!(
                "INSERT INTO {table} ({}) VALUES ({})",
                names.join(", "),
                placeholders.join(", ")
            );
            let mut offset = 0;
            loop {
                let rows = sqlx::query(AssertSqlSafe(select.clone()))
                    .bind(PAGE)
                    .bind(offset)
                    .fetch_all(&self.pool)
                    .await?;
                for row in &rows {
                    let mut query = sqlx::query(AssertSqlSafe(insert.clone()));
                    for value in read(row, columns)? {
                        query = match value {
                            Value::Int(v) => query.bind(v),
                            Value::Text(v) => query.bind(v),
                            Value::Bytes(v) => query.bind(v),
                        };
                    }
                    query.execute(&mut **tx).await?;
                }
                if (rows.len() as i64) < PAGE {
                    break;
                }
                offset += PAGE;
            }
            // New rows continue after the copied ids.
            if let (Some(column), Backend::Postgres) = (identity, target.backend) {
                let sql = format!(
                    "SELECT setval(pg_get_serial_sequence('{table}', '{column}'), \
                     COALESCE((SELECT MAX({column}) FROM {table}), 0) + 1, false)"
                );
                sqlx::query(AssertSqlSafe(sql)).execute(&mut **tx).await?;
            }
        }
        if target.backend == Backend::Postgres {
            sqlx::query("ALTER TABLE certificates ENABLE TRIGGER certificates_public_key_once")
                .execute(&mut **tx)
                .await?;
        }
        tx.commit().await?;

        let mut counts = BTreeMap::new();
        for (table, columns, _) in TABLES {
            let source = fingerprint(self, table, columns).await?;
            let copied = fingerprint(target, table, columns).await?;
            if source != copied {
                return Err(StoreError::CopyMismatch(table));
            }
            counts.insert(*table, source.0);
        }
        // Revocations are columns of the rows compared above; counted on their own too, so
        // the operator sees how many moved.
        let (ours, theirs) = (self.row_counts().await?, target.row_counts().await?);
        for name in ["revoked_keys", "revoked_certificates"] {
            if ours.get(name) != theirs.get(name) {
                return Err(StoreError::CopyMismatch(name));
            }
            counts.insert(name, ours.get(name).copied().unwrap_or(0));
        }
        Ok(counts)
    }
}
