//! The key inventory: metadata only, never a secret. A key holder sees its own keys; an
//! administrator sees every key, filtered by tenant and owner. Another tenant's key is
//! "not found", never "forbidden", so existence does not leak across tenants.

use super::authenticate::Principal;
use super::paging::{self, Page};
use super::{Authority, AuthorityError, Reader};
use crate::api::{Code, KeyQuery, KeyStatus as WireStatus};
use crate::model::{KeyId, KeyRecord, KeyStatus, KeyView, Listing, Serial};
use crate::store::{KeyFilter, ListedCertificate};

/// The page size when none is asked for, and the largest allowed.
const DEFAULT_PAGE: i64 = 50;
const MAX_PAGE: i64 = 100;
/// How many certificates of a key an answer lists: the newest ones. A key has at most
/// `Policy::certificates_per_key` valid certificates, so these include every valid one,
/// and an answer's size does not grow with the number of renewals.
pub(super) const CERTIFICATES_LISTED: i64 = 10;

impl Authority {
    /// `GET /v1/keys`: one page of keys the caller may see, newest first; with
    /// `expiring_within`, only the active ones whose end is within that span of now.
    pub async fn list_keys(
        &self,
        reader: &Reader,
        query: KeyQuery,
    ) -> Result<Listing<KeyView>, AuthorityError> {
        let principal = reader.principal();
        let status = match (query.status, query.expiring_within) {
            (Some(refused @ (WireStatus::Expired | WireStatus::Revoked)), Some(_)) => {
                return Err(AuthorityError::invalid(
                    Code::InvalidRequest,
                    format!(
                        "expiring_within lists active keys only, so it cannot be combined \
                         with status={}: drop one of the two",
                        refused.as_str()
                    ),
                ));
            }
            // Expiring means active: not revoked, not expired yet.
            (_, Some(_)) | (Some(WireStatus::Active), None) => Some(KeyStatus::Active),
            (Some(WireStatus::Expired), None) => Some(KeyStatus::Expired),
            (Some(WireStatus::Revoked), None) => Some(KeyStatus::Revoked),
            (None, None) => None,
        };
        let page = Page::parse(query.limit, DEFAULT_PAGE, MAX_PAGE)?;
        let (tenant_id, owner) = match principal {
            Principal::Admin { .. } => {
                let tenant_id = match &query.tenant {
                    Some(name) => Some(self.existing_tenant(name).await?.id),
                    None => None,
                };
                let owner = query.owner.clone();
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
                (Some(*tenant_id), Some(owner.clone()))
            }
            Principal::Token { .. } => return Err(AuthorityError::Unauthenticated),
        };
        let before_seq = match paging::given(query.cursor.as_deref()) {
            None => None,
            Some(cursor) => Some(self.key_cursor(principal, cursor).await?),
        };
        let now = self.now();
        // A span beyond the last representable time covers every active key.
        let expires_by = query.expiring_within.map(|within| {
            now.checked_add(within.duration())
                .unwrap_or(time::PrimitiveDateTime::MAX.assume_utc())
        });
        let serial = query.serial.as_deref().map(parse_serial).transpose()?;
        let filter = KeyFilter {
            tenant_id,
            owner,
            name: query.name,
            serial,
            status,
            now,
            expires_by,
            before_seq,
            limit: page.fetch(),
        };
        let mut rows = self.store.keys(&filter).await?;
        let next_cursor = page.finish(&mut rows, |r| r.key.id.to_string());
        let ids: Vec<&KeyId> = rows.iter().map(|r| &r.key.id).collect();
        let certificates = self
            .store
            .certificates_of(&ids, now, CERTIFICATES_LISTED)
            .await?;
        let items = rows
            .into_iter()
            .map(|row| {
                let own: Vec<ListedCertificate> = certificates
                    .iter()
                    .filter(|c| c.key_id == row.key.id)
                    .cloned()
                    .collect();
                key_view(row.key, own, now)
            })
            .collect();
        Ok(Listing { items, next_cursor })
    }

    /// The paging position of the key a cursor names. The cursor is the id of the last key of
    /// the previous page, which the caller has seen; the position behind it (the store's
    /// global sequence) never leaves the CA, so a cursor tells nothing about other tenants'
    /// keys. A key the caller may not see is refused like one that does not exist.
    async fn key_cursor(&self, principal: &Principal, cursor: &str) -> Result<i64, AuthorityError> {
        let id: KeyId = cursor.parse().map_err(|_| paging::invalid_cursor())?;
        let row = self
            .store
            .key(&id)
            .await?
            .ok_or_else(paging::invalid_cursor)?;
        if !self.may_see(principal, &row.key) {
            return Err(paging::invalid_cursor());
        }
        Ok(row.seq)
    }

    /// Whether `principal` may see `key`: an administrator every key, a user or key holder
    /// its own keys only.
    fn may_see(&self, principal: &Principal, key: &KeyRecord) -> bool {
        match principal {
            Principal::Admin { .. } => true,
            Principal::User { tenant, owner, .. } | Principal::Key { tenant, owner, .. } => {
                &key.tenant == tenant && &key.owner == owner
            }
            Principal::Token { .. } => false,
        }
    }

    /// `GET /v1/keys/{id}`: one key the caller may see.
    pub async fn show_key(&self, reader: &Reader, id: &KeyId) -> Result<KeyView, AuthorityError> {
        let row = self
            .store
            .key(id)
            .await?
            .ok_or(AuthorityError::NotFound("key"))?;
        if !self.may_see(reader.principal(), &row.key) {
            return Err(AuthorityError::NotFound("key"));
        }
        self.key_view(row.key).await
    }

    /// The view of `key` now, with its newest certificates read from the store.
    pub(super) async fn key_view(&self, key: KeyRecord) -> Result<KeyView, AuthorityError> {
        let now = self.now();
        let certificates = self
            .store
            .certificates_of(&[&key.id], now, CERTIFICATES_LISTED)
            .await?;
        Ok(key_view(key, certificates, now))
    }
}

/// A serial as a person copies it: lowercase hex as the CA writes it, or as `openssl x509`
/// prints it (upper case, `-text` with colons between the bytes).
fn parse_serial(text: &str) -> Result<Serial, AuthorityError> {
    text.trim()
        .replace(':', "")
        .to_ascii_lowercase()
        .parse()
        .map_err(|_| {
            AuthorityError::invalid(
                Code::InvalidRequest,
                "serial must be the 16-byte serial in hex (32 digits)",
            )
        })
}

/// The view at `now` of `key` with its listed certificates (each carries the count of all
/// of the key's certificates).
pub(super) fn key_view(
    key: KeyRecord,
    certificates: Vec<ListedCertificate>,
    now: time::OffsetDateTime,
) -> KeyView {
    let total = certificates.first().map_or(0, |c| c.of_key);
    let certificates = certificates.into_iter().map(|c| c.certificate).collect();
    KeyView::new(key, certificates, total, now)
}
