//! Rows as the database returns them, and their conversion into the types the store hands
//! out. A stored value the CA would not have written is a [`StoreError::Corrupt`] here,
//! never a default further up. Times are stored as unix seconds ([`seconds`] writes them,
//! [`time`] reads them back).

use std::fmt;
use std::str::FromStr;

use time::OffsetDateTime;

use super::StoreError;
use super::keys::{CertificateRow, KeyRow, ListedCertificate};
use super::root_crls::RootCrlRow;
use super::tenants::{TenantRow, UserRow};
use super::tokens::{TokenCredential, TokenRow};
use crate::model::{
    AuditRecord, CertificateRecord, KeyRecord, ScopeSet, TenantId, TenantRecord, TokenRecord,
};

/// What a certificate is for; stored in `certificates.kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CertificateKind {
    /// A key certificate: an API key of a tenant's user or machine.
    Key,
    /// The administrator's client certificate.
    Admin,
    /// The CA's own TLS server certificate.
    Server,
}

impl CertificateKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Key => "key",
            Self::Admin => "admin",
            Self::Server => "server",
        }
    }
}

impl fmt::Display for CertificateKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error for a name that is not a certificate kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown certificate kind {0:?}")]
pub struct CertificateKindError(String);

impl FromStr for CertificateKind {
    type Err = CertificateKindError;
    fn from_str(s: &str) -> Result<Self, CertificateKindError> {
        Ok(match s {
            "key" => Self::Key,
            "admin" => Self::Admin,
            "server" => Self::Server,
            other => return Err(CertificateKindError(other.to_owned())),
        })
    }
}

/// A time as stored: whole unix seconds (what is below a second is dropped, as it always
/// was).
pub(super) fn seconds(t: OffsetDateTime) -> i64 {
    t.unix_timestamp()
}

/// A time as it reads back once stored: `t` without what is below a second. For answers
/// built from what was just written, so they say what a later read says.
pub fn whole_second(t: OffsetDateTime) -> OffsetDateTime {
    t - time::Duration::nanoseconds(i64::from(t.nanosecond()))
}

/// A stored time, or `Corrupt` naming `table.column`.
pub(super) fn time(
    table: &'static str,
    column: &'static str,
    t: i64,
) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp(t).map_err(|_| StoreError::corrupt(table, column, t))
}

/// A stored time that may be absent (NULL).
pub(super) fn optional_time(
    table: &'static str,
    column: &'static str,
    t: Option<i64>,
) -> Result<Option<OffsetDateTime>, StoreError> {
    t.map(|t| time(table, column, t)).transpose()
}

/// A stored name (key id, tenant, owner, reason, kind…), or `Corrupt` naming `table.column`.
pub(super) fn parse<T: FromStr>(
    table: &'static str,
    column: &'static str,
    s: &str,
) -> Result<T, StoreError> {
    s.parse().map_err(|_| StoreError::corrupt(table, column, s))
}

/// A stored name that may be absent (NULL).
fn parse_optional<T: FromStr>(
    table: &'static str,
    column: &'static str,
    s: Option<&str>,
) -> Result<Option<T>, StoreError> {
    s.map(|s| parse(table, column, s)).transpose()
}

/// A stored scope list (sorted, space-separated).
fn scopes(table: &'static str, s: &str) -> Result<ScopeSet, StoreError> {
    ScopeSet::parse_list(s).map_err(|_| StoreError::corrupt(table, "scopes", s))
}

/// A `keys` row (with its tenant's name) as read, before its values are checked.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct KeySqlRow {
    seq: i64,
    id: String,
    tenant_id: i64,
    tenant: String,
    owner: String,
    name: String,
    description: String,
    scopes: String,
    created_at: i64,
    expires_at: i64,
    revoked_at: Option<i64>,
    revocation_reason: Option<String>,
}

impl TryFrom<KeySqlRow> for KeyRow {
    type Error = StoreError;
    fn try_from(r: KeySqlRow) -> Result<Self, StoreError> {
        const T: &str = "keys";
        Ok(Self {
            seq: r.seq,
            tenant_id: TenantId::new(r.tenant_id),
            key: KeyRecord {
                id: parse(T, "id", &r.id)?,
                tenant: parse("tenants", "name", &r.tenant)?,
                owner: parse(T, "owner", &r.owner)?,
                name: r.name,
                description: r.description,
                scopes: scopes(T, &r.scopes)?,
                created_at: time(T, "created_at", r.created_at)?,
                expires_at: time(T, "expires_at", r.expires_at)?,
                revoked_at: optional_time(T, "revoked_at", r.revoked_at)?,
                revocation_reason: parse_optional(
                    T,
                    "revocation_reason",
                    r.revocation_reason.as_deref(),
                )?,
            },
        })
    }
}

/// A `certificates` row as read, before its values are checked.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct CertificateSqlRow {
    serial: String,
    kind: String,
    key_id: Option<String>,
    subject: String,
    not_before: i64,
    not_after: i64,
    revoked_at: Option<i64>,
}

impl TryFrom<CertificateSqlRow> for CertificateRow {
    type Error = StoreError;
    fn try_from(r: CertificateSqlRow) -> Result<Self, StoreError> {
        const T: &str = "certificates";
        Ok(Self {
            serial: parse(T, "serial", &r.serial)?,
            kind: parse(T, "kind", &r.kind)?,
            key_id: parse_optional(T, "key_id", r.key_id.as_deref())?,
            subject: r.subject,
            not_before: time(T, "not_before", r.not_before)?,
            not_after: time(T, "not_after", r.not_after)?,
            revoked_at: optional_time(T, "revoked_at", r.revoked_at)?,
        })
    }
}

/// A certificate row with the number of certificates of its key.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct ListedSqlRow {
    #[sqlx(flatten)]
    certificate: CertificateSqlRow,
    of_key: i64,
}

impl TryFrom<ListedSqlRow> for ListedCertificate {
    type Error = StoreError;
    fn try_from(r: ListedSqlRow) -> Result<Self, StoreError> {
        let row = CertificateRow::try_from(r.certificate)?;
        // Listed by key id: a row without one was not selected by it.
        let key_id = row
            .key_id
            .clone()
            .ok_or_else(|| StoreError::corrupt("certificates", "key_id", "NULL"))?;
        Ok(Self {
            key_id,
            certificate: CertificateRecord {
                serial: row.serial,
                not_before: row.not_before,
                not_after: row.not_after,
                revoked_at: row.revoked_at,
            },
            of_key: r.of_key,
        })
    }
}

/// An `enrollment_tokens` row (with its tenant's name) as read.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct TokenSqlRow {
    id: i64,
    tenant_id: i64,
    tenant: String,
    owner: String,
    scopes: String,
    created_by: String,
    created_at: i64,
    expires_at: i64,
    used_at: Option<i64>,
    key_id: Option<String>,
    revoked_at: Option<i64>,
}

impl TryFrom<TokenSqlRow> for TokenRow {
    type Error = StoreError;
    fn try_from(r: TokenSqlRow) -> Result<Self, StoreError> {
        const T: &str = "enrollment_tokens";
        Ok(Self {
            tenant_id: TenantId::new(r.tenant_id),
            token: TokenRecord {
                id: r.id,
                tenant: parse("tenants", "name", &r.tenant)?,
                owner: parse(T, "owner", &r.owner)?,
                scopes: scopes(T, &r.scopes)?,
                created_by: r.created_by,
                created_at: time(T, "created_at", r.created_at)?,
                expires_at: time(T, "expires_at", r.expires_at)?,
                used_at: optional_time(T, "used_at", r.used_at)?,
                key_id: parse_optional(T, "key_id", r.key_id.as_deref())?,
                revoked_at: optional_time(T, "revoked_at", r.revoked_at)?,
            },
        })
    }
}

/// A token with its tenant's and owner's state, as read.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct TokenCredentialSqlRow {
    #[sqlx(flatten)]
    token: TokenSqlRow,
    max_key_days: i64,
    tenant_disabled_at: Option<i64>,
    owner_disabled_at: Option<i64>,
}

impl TokenCredentialSqlRow {
    /// The row as the embedded database's direct read gives it (`embedded.rs`), by the
    /// same column names.
    pub(super) fn from_sqlite(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            token: TokenSqlRow {
                id: row.get("id")?,
                tenant_id: row.get("tenant_id")?,
                tenant: row.get("tenant")?,
                owner: row.get("owner")?,
                scopes: row.get("scopes")?,
                created_by: row.get("created_by")?,
                created_at: row.get("created_at")?,
                expires_at: row.get("expires_at")?,
                used_at: row.get("used_at")?,
                key_id: row.get("key_id")?,
                revoked_at: row.get("revoked_at")?,
            },
            max_key_days: row.get("max_key_days")?,
            tenant_disabled_at: row.get("tenant_disabled_at")?,
            owner_disabled_at: row.get("owner_disabled_at")?,
        })
    }
}

impl TryFrom<TokenCredentialSqlRow> for TokenCredential {
    type Error = StoreError;
    fn try_from(r: TokenCredentialSqlRow) -> Result<Self, StoreError> {
        Ok(Self {
            token: r.token.try_into()?,
            max_key_days: r.max_key_days,
            tenant_disabled_at: optional_time("tenants", "disabled_at", r.tenant_disabled_at)?,
            owner_disabled_at: optional_time("users", "disabled_at", r.owner_disabled_at)?,
        })
    }
}

/// A `tenants` row as read.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct TenantSqlRow {
    id: i64,
    name: String,
    max_key_days: i64,
    disabled_at: Option<i64>,
    created_at: i64,
}

impl TryFrom<TenantSqlRow> for TenantRow {
    type Error = StoreError;
    fn try_from(r: TenantSqlRow) -> Result<Self, StoreError> {
        const T: &str = "tenants";
        Ok(Self {
            id: TenantId::new(r.id),
            tenant: TenantRecord {
                name: parse(T, "name", &r.name)?,
                max_key_days: r.max_key_days,
                disabled_at: optional_time(T, "disabled_at", r.disabled_at)?,
                created_at: time(T, "created_at", r.created_at)?,
            },
        })
    }
}

/// A `users` row as read.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct UserSqlRow {
    id: i64,
    tenant_id: i64,
    name: String,
    password_hash: String,
    scopes: String,
    disabled_at: Option<i64>,
    created_at: i64,
}

impl TryFrom<UserSqlRow> for UserRow {
    type Error = StoreError;
    fn try_from(r: UserSqlRow) -> Result<Self, StoreError> {
        const T: &str = "users";
        Ok(Self {
            id: r.id,
            tenant_id: TenantId::new(r.tenant_id),
            name: parse(T, "name", &r.name)?,
            password_hash: r.password_hash,
            scopes: scopes(T, &r.scopes)?,
            disabled_at: optional_time(T, "disabled_at", r.disabled_at)?,
            created_at: time(T, "created_at", r.created_at)?,
        })
    }
}

/// An `audit_events` row as read.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct AuditSqlRow {
    id: i64,
    at: i64,
    actor: String,
    action: String,
    tenant: Option<String>,
    target: Option<String>,
    detail: String,
}

impl TryFrom<AuditSqlRow> for AuditRecord {
    type Error = StoreError;
    fn try_from(r: AuditSqlRow) -> Result<Self, StoreError> {
        const T: &str = "audit_events";
        Ok(Self {
            id: r.id,
            at: time(T, "at", r.at)?,
            detail: serde_json::from_str(&r.detail)
                .map_err(|_| StoreError::corrupt(T, "detail", &r.detail))?,
            actor: r.actor,
            action: r.action,
            tenant: r.tenant,
            target: r.target,
        })
    }
}

/// A `root_crls` row as read.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct RootCrlSqlRow {
    number: i64,
    this_update: i64,
    next_update: i64,
    der: Vec<u8>,
}

impl TryFrom<RootCrlSqlRow> for RootCrlRow {
    type Error = StoreError;
    fn try_from(r: RootCrlSqlRow) -> Result<Self, StoreError> {
        const T: &str = "root_crls";
        Ok(Self {
            number: r.number,
            this_update: time(T, "this_update", r.this_update)?,
            next_update: time(T, "next_update", r.next_update)?,
            der: r.der,
        })
    }
}

/// Converts every row, failing on the first corrupt one.
pub(super) fn convert_all<R, T>(rows: Vec<R>) -> Result<Vec<T>, StoreError>
where
    T: TryFrom<R, Error = StoreError>,
{
    rows.into_iter().map(T::try_from).collect()
}

/// Converts a row that may be absent.
pub(super) fn convert_optional<R, T>(row: Option<R>) -> Result<Option<T>, StoreError>
where
    T: TryFrom<R, Error = StoreError>,
{
    row.map(T::try_from).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_row(scopes: &str, reason: Option<&str>) -> KeySqlRow {
        KeySqlRow {
            seq: 1,
            id: "0000000000000000000000a1".into(),
            tenant_id: 1,
            tenant: "acme".into(),
            owner: "alice".into(),
            name: "k".into(),
            description: String::new(),
            scopes: scopes.into(),
            created_at: 0,
            expires_at: 0,
            revoked_at: reason.map(|_| 0),
            revocation_reason: reason.map(str::to_owned),
        }
    }

    fn column_of(result: Result<KeyRow, StoreError>) -> &'static str {
        match result {
            Err(StoreError::Corrupt { column, .. }) => column,
            other => panic!("{other:?}"),
        }
    }

    /// Scopes, reasons, ids, names and times come out typed; one the CA never writes is
    /// corrupt, not empty, "unspecified" or the epoch.
    #[test]
    fn key_rows_parse_or_are_corrupt() {
        let row = KeyRow::try_from(key_row("read:metrics", Some("superseded"))).unwrap();
        assert_eq!(row.key.scopes.to_stored(), "read:metrics");
        assert_eq!(
            row.key.revocation_reason,
            Some(crate::model::RevocationReason::Superseded)
        );
        assert_eq!(row.tenant_id, TenantId::new(1));
        for (record, column) in [
            (key_row("not a scope!", None), "scopes"),
            (key_row("read:metrics", Some("bogus")), "revocation_reason"),
            (
                KeySqlRow {
                    id: "not-a-key-id".into(),
                    ..key_row("read:metrics", None)
                },
                "id",
            ),
            (
                KeySqlRow {
                    owner: "no such\nowner".into(),
                    ..key_row("read:metrics", None)
                },
                "owner",
            ),
            (
                KeySqlRow {
                    expires_at: i64::MAX,
                    ..key_row("read:metrics", None)
                },
                "expires_at",
            ),
        ] {
            assert_eq!(column_of(KeyRow::try_from(record)), column);
        }
    }

    fn certificate_row(kind: &str, serial: &str) -> CertificateSqlRow {
        CertificateSqlRow {
            serial: serial.into(),
            kind: kind.into(),
            key_id: None,
            subject: String::new(),
            not_before: 0,
            not_after: 0,
            revoked_at: None,
        }
    }

    #[test]
    fn kinds_round_trip_and_unknown_ones_are_corrupt() {
        for kind in [
            CertificateKind::Key,
            CertificateKind::Admin,
            CertificateKind::Server,
        ] {
            assert_eq!(kind.as_str().parse::<CertificateKind>(), Ok(kind));
        }
        let serial = "40112233445566778899aabbccddeeff";
        assert!(CertificateRow::try_from(certificate_row("admin", serial)).is_ok());
        assert!(matches!(
            CertificateRow::try_from(certificate_row("root", serial)),
            Err(StoreError::Corrupt { column: "kind", .. })
        ));
        assert!(matches!(
            CertificateRow::try_from(certificate_row("key", "00")),
            Err(StoreError::Corrupt {
                column: "serial",
                ..
            })
        ));
    }

    /// An audit detail that is not JSON is corrupt, not `null`.
    #[test]
    fn audit_details_are_json_or_corrupt() {
        let row = |detail: &str| AuditSqlRow {
            id: 1,
            at: 0,
            actor: "system".into(),
            action: "key.issue".into(),
            tenant: None,
            target: None,
            detail: detail.into(),
        };
        let record = AuditRecord::try_from(row(r#"{"a":1}"#)).unwrap();
        assert_eq!(record.detail["a"], 1);
        assert!(matches!(
            AuditRecord::try_from(row("{not json")),
            Err(StoreError::Corrupt {
                column: "detail",
                ..
            })
        ));
    }

    #[test]
    fn whole_second_drops_what_the_store_drops() {
        let t = OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_999_999_999).unwrap();
        assert_eq!(
            whole_second(t).unix_timestamp_nanos(),
            1_700_000_000_000_000_000
        );
        assert_eq!(seconds(t), whole_second(t).unix_timestamp());
    }
}
