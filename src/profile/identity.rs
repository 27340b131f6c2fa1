//! The caller a verified key certificate proves: the one type a relying service's handlers
//! see. Its fields are private and it has no public constructor, so holding one means the
//! verifier accepted the certificate it came from.

use time::OffsetDateTime;

use super::read::{IdentityError, PeerIdentity};
use super::spiffe::SpiffeId;
use crate::model::{KeyId, OwnerName, Scope, ScopeSet, Serial, TenantName};

/// The caller behind a verified latchkey key certificate: who, in which tenant, with which
/// scopes, until when. Made only by the verifier (`tls::LatchkeyVerifier`), once per
/// connection; read it through its accessors.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Identity {
    tenant: TenantName,
    owner: OwnerName,
    key_id: KeyId,
    scopes: ScopeSet,
    serial: Serial,
    #[serde(with = "time::serde::rfc3339")]
    not_after: OffsetDateTime,
    /// The SHA-256 of the certificate of the intermediate that issued it, as the verifier
    /// found it on the verified path (never as the certificate claims): the per-request
    /// check reads that issuer's CRL. Set only by the verifier; not part of the JSON.
    #[serde(skip)]
    issuer: Option<[u8; 32]>,
}

impl Identity {
    /// Reads the identity of a key certificate (not an administrator's) issued in
    /// `trust_domain`. Crate-private: the chain and revocation are not checked here, so only
    /// the verifier, which checks both first, may turn a certificate into an `Identity`.
    pub(crate) fn from_der(der: &[u8], trust_domain: &str) -> Result<Self, IdentityError> {
        let peer = PeerIdentity::from_der(der, trust_domain)?;
        let SpiffeId::Key { tenant, key_id } = peer.id else {
            return Err(IdentityError::SpiffeId);
        };
        Ok(Self {
            tenant,
            owner: peer
                .owner
                .parse()
                .map_err(|_| IdentityError::SubjectMismatch)?,
            key_id,
            scopes: peer.scopes,
            serial: peer.serial,
            not_after: peer.not_after,
            issuer: None,
        })
    }

    /// The identity, issued by the intermediate whose certificate hashes (SHA-256) to
    /// `issuer`. Crate-private: only the verifier, which found that intermediate on the
    /// verified path, says which one it is.
    pub(crate) fn issued_by(mut self, issuer: [u8; 32]) -> Self {
        self.issuer = Some(issuer);
        self
    }

    /// The SHA-256 of the issuing intermediate's certificate, once the verifier set it.
    pub(crate) fn issuer(&self) -> Option<&[u8; 32]> {
        self.issuer.as_ref()
    }

    /// The key's tenant.
    pub fn tenant(&self) -> &TenantName {
        &self.tenant
    }

    /// The key's owner.
    pub fn owner(&self) -> &OwnerName {
        &self.owner
    }

    /// The key's id.
    pub fn key_id(&self) -> &KeyId {
        &self.key_id
    }

    /// The scopes the key carries.
    pub fn scopes(&self) -> &ScopeSet {
        &self.scopes
    }

    /// The certificate's serial (what a CRL lists).
    pub fn serial(&self) -> &Serial {
        &self.serial
    }

    /// The certificate's end of validity.
    pub fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }

    /// True when the key carries `scope`. Matched exactly: there is no wildcard.
    pub fn has_scope(&self, scope: &Scope) -> bool {
        self.scopes.contains(scope)
    }
}
