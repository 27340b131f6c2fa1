//! The CRL publisher's view of the store: the revocations it lists, the CRLs it stores and
//! serves, the lease that lets one replica build at a time, and the issuers its CRLs are
//! numbered by. Nothing of keys, tenants or tokens: a publisher cannot issue or revoke.

use super::{
    CrlBasis, CrlMarks, CrlRow, IssuerRole, Revisions, RevokedList, RootCrlRow, Store, StoreError,
};

/// A narrow handle on the [`Store`] for the CRL publisher. Cheap to clone (it shares the
/// store's connection pool); the SQL stays in the store's own modules.
#[derive(Debug, Clone)]
pub struct RevocationLedger {
    store: Store,
}

impl Store {
    /// The view of this store the CRL publisher works with.
    pub fn revocation_ledger(&self) -> RevocationLedger {
        RevocationLedger {
            store: self.clone(),
        }
    }
}

impl RevocationLedger {
    /// See [`Store::ensure_issuer`].
    pub async fn ensure_issuer(
        &self,
        fingerprint: &str,
        subject: &str,
        certificate: &[u8],
        not_after: time::OffsetDateTime,
        role: IssuerRole,
        now: time::OffsetDateTime,
    ) -> Result<i64, StoreError> {
        self.store
            .ensure_issuer(fingerprint, subject, certificate, not_after, role, now)
            .await
    }

    /// See [`Store::revoked_certificates`].
    pub async fn revoked_certificates(
        &self,
        issuer_id: i64,
        revisions: Revisions,
        expired_before: time::OffsetDateTime,
    ) -> Result<RevokedList, StoreError> {
        self.store
            .revoked_certificates(issuer_id, revisions, expired_before)
            .await
    }

    /// See [`Store::expired_revocations`].
    pub async fn expired_revocations(
        &self,
        issuer_id: i64,
        revisions: Revisions,
        after: time::OffsetDateTime,
        until: time::OffsetDateTime,
    ) -> Result<RevokedList, StoreError> {
        self.store
            .expired_revocations(issuer_id, revisions, after, until)
            .await
    }

    /// See [`Store::newest_crl_basis`].
    pub async fn newest_crl_basis(&self, issuer_id: i64) -> Result<Option<CrlBasis>, StoreError> {
        self.store.newest_crl_basis(issuer_id).await
    }

    /// See [`Store::store_crl_bytes`].
    pub async fn store_crl_bytes(
        &self,
        issuer_id: i64,
        number: i64,
        der: &[u8],
    ) -> Result<bool, StoreError> {
        self.store.store_crl_bytes(issuer_id, number, der).await
    }

    /// See [`Store::crl_basis`].
    pub async fn crl_basis(
        &self,
        issuer_id: i64,
        number: i64,
    ) -> Result<Option<CrlBasis>, StoreError> {
        self.store.crl_basis(issuer_id, number).await
    }

    /// See [`Store::latest_crl`].
    pub async fn latest_crl(&self, issuer_id: i64) -> Result<Option<CrlRow>, StoreError> {
        self.store.latest_crl(issuer_id).await
    }

    /// See [`Store::highest_crl_number`].
    pub async fn highest_crl_number(&self) -> Result<i64, StoreError> {
        self.store.highest_crl_number().await
    }

    /// See [`Store::crl_revision`].
    pub async fn crl_revision(&self) -> Result<i64, StoreError> {
        self.store.crl_revision().await
    }

    /// See [`Store::crl_marks`].
    pub async fn crl_marks(&self, issuer_id: i64) -> Result<CrlMarks, StoreError> {
        self.store.crl_marks(issuer_id).await
    }

    /// See [`Store::insert_crl`].
    pub async fn insert_crl(
        &self,
        issuer_id: i64,
        crl: &CrlRow,
        now: time::OffsetDateTime,
        horizon_start: time::OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.store
            .insert_crl(issuer_id, crl, now, horizon_start)
            .await
    }

    /// See [`Store::take_crl_lease`].
    pub async fn take_crl_lease(
        &self,
        issuer_id: i64,
        holder: &str,
        now: time::OffsetDateTime,
        expires_at: time::OffsetDateTime,
    ) -> Result<bool, StoreError> {
        self.store
            .take_crl_lease(issuer_id, holder, now, expires_at)
            .await
    }

    /// See [`Store::release_crl_lease`].
    pub async fn release_crl_lease(&self, issuer_id: i64, holder: &str) -> Result<(), StoreError> {
        self.store.release_crl_lease(issuer_id, holder).await
    }

    /// See [`Store::latest_root_crl`].
    pub async fn latest_root_crl(&self, issuer_id: i64) -> Result<Option<RootCrlRow>, StoreError> {
        self.store.latest_root_crl(issuer_id).await
    }

    /// See [`Store::insert_root_crl`].
    pub async fn insert_root_crl(
        &self,
        issuer_id: i64,
        crl: &RootCrlRow,
        now: time::OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.store.insert_root_crl(issuer_id, crl, now).await
    }
}
