//! The key inventory: metadata only, never a secret. A key holder sees its own keys; an
//! administrator sees every key, filtered by tenant and owner. Another tenant's key is
//! "not found", never "forbidden", so existence does not leak across tenants.

use super::authenticate::Principal;
use super::paging::{self, Page};
use super::{Authority, AuthorityError, Reader, from_unix};
use crate::api::{CertificateInfo, KeyInfo, KeyPage, KeyQuery, KeyStatus as WireStatus};
use crate::model::{KeyId, OwnerName};
use crate::store::{KeyFilter, KeyRow, KeyStatus, ListedCertificate};

/// The page size when none is asked for, and the largest allowed.
const DEFAULT_PAGE: i64 = 50;
const MAX_PAGE: i64 = 100;
/// How many certificates of a key an answer lists: the newest ones. A key has at most
/// `Policy::certificates_per_key` valid certificates, so these include every valid one,
/// and an answer's size does not grow with the number of renewals.
pub(super) const CERTIFICATES_LISTED: i64 = 10;

impl Authority {
    /// `GET /v1/keys`: one page of keys the caller may see, newest first.
    pub async fn list_keys(
        &self,
        reader: &Reader,
        query: KeyQuery,
    ) -> Result<KeyPage, AuthorityError> {
        let principal = reader.principal();
        let status = query.status.map(|s| match s {
            WireStatus::Active => KeyStatus::Active,
            WireStatus::Expired => KeyStatus::Expired,
            WireStatus::Revoked => KeyStatus::Revoked,
        });
        let page = Page::parse(query.limit, DEFAULT_PAGE, MAX_PAGE)?;
        let (tenant_id, owner) = match principal {
            Principal::Admin { .. } => {
                let tenant_id = match &query.tenant {
                    Some(name) => Some(self.existing_tenant(name).await?.id),
                    None => None,
                };
                let owner = query.owner.as_ref().map(OwnerName::to_string);
                (tenant_id, owner)
            }
            Principal::User {
                tenant_id, owner, ..
            }
            | Principal::Key {
                tenant_id, owner, ..
            } => {
                if query.tenant.is_some() || query.owner.is_some() {
                    return Err(AuthorityError::AdminRequired);
                }
                (Some(*tenant_id), Some(owner.to_string()))
            }
            Principal::Token { .. } => return Err(AuthorityError::Unauthenticated),
        };
        let before_seq = match paging::given(query.cursor.as_deref()) {
            None => None,
            Some(cursor) => Some(self.key_cursor(principal, cursor).await?),
        };
        let filter = KeyFilter {
            tenant_id,
            owner,
            status,
            now: self.now().unix_timestamp(),
            before_seq,
            limit: page.fetch(),
        };
        let mut rows = self.store.keys(&filter).await?;
        let next_cursor = page.finish(&mut rows, |r| r.id.clone());
        let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
        let certificates = self
            .store
            .certificates_of(&ids, self.now().unix_timestamp(), CERTIFICATES_LISTED)
            .await?;
        let keys = rows
            .into_iter()
            .map(|row| {
                let own: Vec<ListedCertificate> = certificates
                    .iter()
                    .filter(|c| c.certificate.key_id.as_deref() == Some(row.id.as_str()))
                    .cloned()
                    .collect();
                self.key_info(row, &own)
            })
            .collect();
        Ok(KeyPage { keys, next_cursor })
    }

    /// The paging position of the key a cursor names. The cursor is the id of the last key of
    /// the previous page, which the caller has seen; the position behind it (the store's
    /// global sequence) never leaves the CA, so a cursor tells nothing about other tenants'
    /// keys. A key the caller may not see is refused like one that does not exist.
    async fn key_cursor(&self, principal: &Principal, cursor: &str) -> Result<i64, AuthorityError> {
        let id: KeyId = cursor.parse().map_err(|_| paging::invalid_cursor())?;
        let row = self
            .store
            .key(id.as_str())
            .await?
            .ok_or_else(paging::invalid_cursor)?;
        if !self.may_see(principal, &row) {
            return Err(paging::invalid_cursor());
        }
        Ok(row.seq)
    }

    /// Whether `principal` may see the key `row`: an administrator every key, a user or key
    /// holder its own keys only.
    fn may_see(&self, principal: &Principal, row: &KeyRow) -> bool {
        match principal {
            Principal::Admin { .. } => true,
            Principal::User { tenant, owner, .. } | Principal::Key { tenant, owner, .. } => {
                row.tenant == tenant.as_str() && row.owner == owner.as_str()
            }
            Principal::Token { .. } => false,
        }
    }

    /// `GET /v1/keys/{id}`: one key the caller may see.
    pub async fn show_key(&self, reader: &Reader, id: &KeyId) -> Result<KeyInfo, AuthorityError> {
        let row = self
            .store
            .key(id.as_str())
            .await?
            .ok_or(AuthorityError::NotFound("key"))?;
        if !self.may_see(reader.principal(), &row) {
            return Err(AuthorityError::NotFound("key"));
        }
        let certificates = self
            .store
            .certificates_of(
                &[id.as_str()],
                self.now().unix_timestamp(),
                CERTIFICATES_LISTED,
            )
            .await?;
        Ok(self.key_info(row, &certificates))
    }

    /// The API view of a stored key and its listed certificates.
    pub(super) fn key_info(&self, row: KeyRow, certificates: &[ListedCertificate]) -> KeyInfo {
        let now = self.now().unix_timestamp();
        let status = if row.revoked_at.is_some() {
            WireStatus::Revoked
        } else if row.expires_at <= now {
            WireStatus::Expired
        } else {
            WireStatus::Active
        };
        KeyInfo {
            scopes: row.scopes.iter().map(|s| s.to_string()).collect(),
            id: row.id,
            tenant: row.tenant,
            owner: row.owner,
            name: row.name,
            description: row.description,
            created_at: from_unix(row.created_at),
            expires_at: from_unix(row.expires_at),
            status,
            revoked_at: row.revoked_at.map(from_unix),
            older_certificates: certificates
                .first()
                .map_or(0, |c| c.of_key - certificates.len() as i64),
            certificates: certificates
                .iter()
                .map(|c| &c.certificate)
                .map(|c| CertificateInfo {
                    serial: c.serial.clone(),
                    not_before: from_unix(c.not_before),
                    not_after: from_unix(c.not_after),
                    revoked: c.revoked_at.is_some(),
                })
                .collect(),
        }
    }
}
