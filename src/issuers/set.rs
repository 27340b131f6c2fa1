//! A snapshot of the CA's intermediates: what each reader of the registry works from.

use std::sync::Arc;

use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;

use super::IssuerError;
use crate::api::IssuerStatus;
use crate::ca::{RootSigner, Signer};
use crate::model::{TenantId, TenantName};
use crate::store::IssuerRecord;

/// One intermediate as the CA holds it.
pub struct LiveIssuer {
    /// Its id among the store's issuers.
    pub id: i64,
    /// Its signer; `None` once retired, or when its key cannot be opened here (logged).
    pub signer: Option<Arc<Signer>>,
    /// Its certificate.
    pub certificate: CertificateDer<'static>,
    /// Its certificate, PEM.
    pub pem: String,
    /// Its subject, as printed.
    pub subject: String,
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
    /// Its public key (SubjectPublicKeyInfo DER): no key certificate may carry it.
    pub spki: Vec<u8>,
    /// The tenant it is dedicated to, if any.
    pub tenant: Option<(TenantId, TenantName)>,
    /// Where it stands.
    pub status: IssuerStatus,
}

impl std::fmt::Debug for LiveIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveIssuer")
            .field("id", &self.id)
            .field("subject", &self.subject)
            .field("status", &self.status)
            .field("can_sign", &self.signer.is_some())
            .finish_non_exhaustive()
    }
}

impl LiveIssuer {
    pub(super) fn new(
        record: IssuerRecord,
        signer: Option<Arc<Signer>>,
    ) -> Result<Self, IssuerError> {
        let certificate = CertificateDer::from(record.certificate);
        let (_, parsed) = x509_parser::parse_x509_certificate(&certificate).map_err(|e| {
            IssuerError::Certificate {
                what: "intermediate",
                detail: e.to_string(),
            }
        })?;
        let status = match (record.superseded_at, record.retired_at) {
            (_, Some(_)) => IssuerStatus::Retired,
            (Some(_), None) => IssuerStatus::Retiring,
            (None, None) => IssuerStatus::Active,
        };
        Ok(Self {
            id: record.id,
            signer: signer.filter(|_| status != IssuerStatus::Retired),
            pem: crate::pem::encode("CERTIFICATE", &certificate),
            subject: parsed.subject().to_string(),
            not_before: parsed.validity().not_before.to_datetime(),
            not_after: parsed.validity().not_after.to_datetime(),
            spki: parsed.public_key().raw.to_vec(),
            tenant: record.tenant,
            status,
            certificate,
        })
    }

    /// True while its CRL is published: until it is retired.
    pub fn is_published(&self) -> bool {
        self.status != IssuerStatus::Retired
    }

    /// The path of its CRL.
    pub fn crl_path(&self) -> String {
        format!("/v1/issuers/{}/crl", self.id)
    }
}

/// One root of the CA as it holds it: the first one (in the CA home), or one a rollover made.
pub struct LiveRoot {
    /// Its id among the store's issuers (what its CRLs reference).
    pub id: i64,
    /// Its self-signed certificate.
    pub certificate: CertificateDer<'static>,
    /// Its certificate, PEM.
    pub pem: String,
    /// Its public key (SubjectPublicKeyInfo DER).
    pub spki: Vec<u8>,
    /// Its subject key identifier: a rolled-over root's CRL is served under it.
    pub key_id: Vec<u8>,
    /// The end of its validity.
    pub not_after: OffsetDateTime,
    /// True for the root made at initialization (its CRL is `/v1/crl/root`, its key the
    /// home's `root-key.pem`).
    pub first: bool,
    /// True until a rollover supersedes it: the active root signs new intermediates.
    pub active: bool,
    /// Its signer, when its key is here.
    pub signer: Option<Arc<RootSigner>>,
}

impl std::fmt::Debug for LiveRoot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveRoot")
            .field("id", &self.id)
            .field("active", &self.active)
            .field("can_sign", &self.signer.is_some())
            .finish_non_exhaustive()
    }
}

impl LiveRoot {
    pub(super) fn new(
        id: i64,
        certificate: CertificateDer<'static>,
        first: bool,
        active: bool,
        signer: Option<Arc<RootSigner>>,
    ) -> Result<Self, IssuerError> {
        let bad = |detail: String| IssuerError::Certificate {
            what: "root",
            detail,
        };
        let (_, parsed) =
            x509_parser::parse_x509_certificate(&certificate).map_err(|e| bad(e.to_string()))?;
        let key_id = crate::profile::subject_key_identifier(&parsed)
            .ok_or_else(|| bad("no subject key identifier".into()))?;
        Ok(Self {
            id,
            pem: crate::pem::encode("CERTIFICATE", &certificate),
            spki: parsed.public_key().raw.to_vec(),
            not_after: parsed.validity().not_after.to_datetime(),
            key_id,
            first,
            active,
            signer,
            certificate,
        })
    }

    /// The path of its CRL: `/v1/crl/root` for the first root, `/v1/roots/{key id}/crl`
    /// for one a rollover made.
    pub fn crl_path(&self) -> String {
        if self.first {
            "/v1/crl/root".into()
        } else {
            format!("/v1/roots/{}/crl", hex::encode(&self.key_id))
        }
    }
}

/// Every intermediate, oldest first, with the answers readers need precomputed.
#[derive(Debug)]
pub struct IssuerSet {
    /// The store's issuers revision this set was read at.
    pub revision: i64,
    issuers: Vec<Arc<LiveIssuer>>,
    /// Every root, oldest first (one until a rollover).
    roots: Vec<Arc<LiveRoot>>,
    /// The cross-certificates (intermediates certified by a root that did not sign them)
    /// of intermediates still published.
    crosses: Vec<CertificateDer<'static>>,
    /// `GET /v1/ca`: the shared intermediates still published, newest first, then the
    /// cross-certificates and the roots (newest first).
    chain_pem: String,
}

impl IssuerSet {
    /// No intermediate yet: only while the registry loads.
    pub(super) fn empty(root: Arc<LiveRoot>) -> Self {
        Self::new(-1, Vec::new(), vec![root], Vec::new())
    }

    pub(super) fn new(
        revision: i64,
        issuers: Vec<LiveIssuer>,
        roots: Vec<Arc<LiveRoot>>,
        crosses: Vec<CertificateDer<'static>>,
    ) -> Self {
        let issuers: Vec<Arc<LiveIssuer>> = issuers.into_iter().map(Arc::new).collect();
        // A cross-certificate counts while the intermediate it certifies is published.
        let crosses = crosses
            .into_iter()
            .filter(|cross| {
                x509_parser::parse_x509_certificate(cross).is_ok_and(|(_, parsed)| {
                    let spki = parsed.public_key().raw;
                    issuers.iter().any(|i| i.is_published() && i.spki == spki)
                })
            })
            .collect();
        let mut set = Self {
            revision,
            issuers,
            roots,
            crosses,
            chain_pem: String::new(),
        };
        set.chain_pem = set.chain_pem_for(None);
        set
    }

    /// True when `other` holds other issuers or statuses (not merely another revision).
    pub(super) fn differs_from(&self, other: &IssuerSet) -> bool {
        let view = |s: &IssuerSet| {
            let issuers: Vec<_> = s
                .issuers
                .iter()
                .map(|i| (i.id, i.status, i.signer.is_some()))
                .collect();
            let roots: Vec<_> = s.roots.iter().map(|r| (r.id, r.active)).collect();
            (issuers, roots, s.crosses.len())
        };
        view(self) != view(other)
    }

    /// Every intermediate, oldest first.
    pub fn issuers(&self) -> &[Arc<LiveIssuer>] {
        &self.issuers
    }

    /// The intermediate with this id.
    pub fn by_id(&self, id: i64) -> Option<&Arc<LiveIssuer>> {
        self.issuers.iter().find(|i| i.id == id)
    }

    /// The intermediates whose CRLs are published, oldest first.
    pub fn published(&self) -> impl Iterator<Item = &Arc<LiveIssuer>> {
        self.issuers.iter().filter(|i| i.is_published())
    }

    /// The intermediate that signs a certificate for `tenant` now: its dedicated one, if it
    /// has one, else the active shared one.
    pub fn signing_for(&self, tenant: Option<TenantId>) -> Option<&Arc<LiveIssuer>> {
        tenant
            .and_then(|t| self.active_in(Some(t)))
            .or_else(|| self.active_in(None))
    }

    /// The active intermediate dedicated to exactly `tenant` (`None`: the shared one).
    pub fn active_in(&self, tenant: Option<TenantId>) -> Option<&Arc<LiveIssuer>> {
        self.issuers.iter().rev().find(|i| {
            i.status == IssuerStatus::Active && i.tenant.as_ref().map(|(id, _)| *id) == tenant
        })
    }

    /// The chain of the tenant named `tenant` (see [`IssuerSet::chain_pem_for`]); a tenant
    /// that never had an intermediate of its own, or an unknown one, gets the shared chain.
    pub fn chain_pem_for_name(&self, tenant: &TenantName) -> String {
        let id = self
            .issuers
            .iter()
            .find_map(|i| i.tenant.as_ref().filter(|(_, name)| name == tenant))
            .map(|(id, _)| *id);
        match id {
            Some(id) => self.chain_pem_for(Some(id)),
            None => self.chain_pem.clone(),
        }
    }

    /// The intermediate whose CRL `GET /v1/crl` serves: the oldest shared one still
    /// published, which is the one every certificate made before the first rotation names.
    pub fn default_crl_issuer(&self) -> Option<&Arc<LiveIssuer>> {
        self.published().find(|i| i.tenant.is_none())
    }

    /// True when `spki` is the public key of one of the CA's own certificates.
    pub fn is_ca_key(&self, spki: &[u8]) -> bool {
        self.issuers.iter().any(|i| i.spki == spki) || self.roots.iter().any(|r| r.spki == spki)
    }

    /// Every root, oldest first.
    pub fn roots(&self) -> &[Arc<LiveRoot>] {
        &self.roots
    }

    /// The root that signs new intermediates.
    pub fn active_root(&self) -> Option<&Arc<LiveRoot>> {
        self.roots.iter().rev().find(|r| r.active)
    }

    /// The cross-certificates: each intermediate still published certified by the other
    /// roots (none before a root rollover).
    pub fn cross_certificates(&self) -> &[CertificateDer<'static>] {
        &self.crosses
    }

    /// [`IssuerSet::cross_certificates`], PEM.
    pub fn cross_certificates_pem(&self) -> Vec<String> {
        self.crosses
            .iter()
            .map(|c| crate::pem::encode("CERTIFICATE", c))
            .collect()
    }

    /// `GET /v1/ca`: every shared intermediate still published, newest first, then the root.
    pub fn chain_pem(&self) -> &str {
        &self.chain_pem
    }

    /// The chain of `tenant`'s keys, newest intermediate first, then the cross-certificates
    /// and the roots (newest first): the
    /// intermediates dedicated to it still published, and, unless one of them is active,
    /// the shared ones still published (which sign its new keys then). `None`: the shared
    /// chain.
    pub fn chain_pem_for(&self, tenant: Option<TenantId>) -> String {
        let own = |i: &Arc<LiveIssuer>| {
            tenant.is_some() && i.tenant.as_ref().map(|(id, _)| *id) == tenant
        };
        let has_active_own = self
            .issuers
            .iter()
            .any(|i| own(i) && i.status == IssuerStatus::Active);
        let mut pem: String = self
            .issuers
            .iter()
            .rev()
            .filter(|i| i.is_published())
            .filter(|i| own(i) || (!has_active_own && i.tenant.is_none()))
            .map(|i| i.pem.as_str())
            .collect();
        for cross in &self.crosses {
            pem.push_str(&crate::pem::encode("CERTIFICATE", cross));
        }
        for root in self.roots.iter().rev() {
            pem.push_str(&root.pem);
        }
        pem
    }
}
