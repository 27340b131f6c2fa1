//! Rows as the database returns them, and their conversion into the types the store hands
//! out. A stored value the CA would not have written is a [`StoreError::Corrupt`] here,
//! never a default further up.

use std::fmt;
use std::str::FromStr;

use super::StoreError;
use super::keys::{CertificateRow, KeyRow, ListedCertificate};
use crate::model::ScopeSet;

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

/// A `keys` row (with its tenant's name) as read, before its values are checked.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct KeyRecord {
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

impl TryFrom<KeyRecord> for KeyRow {
    type Error = StoreError;
    fn try_from(r: KeyRecord) -> Result<Self, StoreError> {
        let scopes = ScopeSet::parse_list(&r.scopes)
            .map_err(|_| StoreError::corrupt("keys", "scopes", &r.scopes))?;
        let revocation_reason = r
            .revocation_reason
            .map(|reason| {
                reason
                    .parse()
                    .map_err(|_| StoreError::corrupt("keys", "revocation_reason", &reason))
            })
            .transpose()?;
        Ok(Self {
            seq: r.seq,
            id: r.id,
            tenant_id: r.tenant_id,
            tenant: r.tenant,
            owner: r.owner,
            name: r.name,
            description: r.description,
            scopes,
            created_at: r.created_at,
            expires_at: r.expires_at,
            revoked_at: r.revoked_at,
            revocation_reason,
        })
    }
}

/// A `certificates` row as read, before its values are checked.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct CertificateRecord {
    serial: String,
    kind: String,
    key_id: Option<String>,
    subject: String,
    not_before: i64,
    not_after: i64,
    revoked_at: Option<i64>,
}

impl TryFrom<CertificateRecord> for CertificateRow {
    type Error = StoreError;
    fn try_from(r: CertificateRecord) -> Result<Self, StoreError> {
        let kind = r
            .kind
            .parse()
            .map_err(|_| StoreError::corrupt("certificates", "kind", &r.kind))?;
        Ok(Self {
            serial: r.serial,
            kind,
            key_id: r.key_id,
            subject: r.subject,
            not_before: r.not_before,
            not_after: r.not_after,
            revoked_at: r.revoked_at,
        })
    }
}

/// A certificate row with the number of certificates of its key.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct ListedRecord {
    #[sqlx(flatten)]
    certificate: CertificateRecord,
    of_key: i64,
}

impl TryFrom<ListedRecord> for ListedCertificate {
    type Error = StoreError;
    fn try_from(r: ListedRecord) -> Result<Self, StoreError> {
        Ok(Self {
            certificate: r.certificate.try_into()?,
            of_key: r.of_key,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn key_record(scopes: &str, reason: Option<&str>) -> KeyRecord {
        KeyRecord {
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

    /// Scopes and reasons come out typed; one the CA never writes is corrupt, not empty or
    /// "unspecified".
    #[test]
    fn key_rows_parse_or_are_corrupt() {
        let row = KeyRow::try_from(key_record("read:metrics", Some("superseded"))).unwrap();
        assert_eq!(row.scopes.to_stored(), "read:metrics");
        assert_eq!(
            row.revocation_reason,
            Some(crate::model::RevocationReason::Superseded)
        );
        for (record, column) in [
            (key_record("not a scope!", None), "scopes"),
            (
                key_record("read:metrics", Some("bogus")),
                "revocation_reason",
            ),
        ] {
            match KeyRow::try_from(record) {
                Err(StoreError::Corrupt { column: c, .. }) => assert_eq!(c, column),
                other => panic!("{column}: {other:?}"),
            }
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
        let record = CertificateRecord {
            serial: "00".into(),
            kind: "root".into(),
            key_id: None,
            subject: String::new(),
            not_before: 0,
            not_after: 0,
            revoked_at: None,
        };
        assert!(matches!(
            CertificateRow::try_from(record),
            Err(StoreError::Corrupt { column: "kind", .. })
        ));
    }
}
