//! An intermediate's life: made by a rotation (by `latchkey ca rotate`, or by the CA when
//! the active one has less than [`DEFAULT_ROTATE_BEFORE`] left), superseded by the next one,
//! retired once its last certificate has expired and one more CRL validity has passed.
//!
//! A rotation is one transaction: the new intermediate's row (with its key, sealed, or the
//! label of its key in the token) and the old one's `superseded_at` commit together, with
//! the audit event, or not at all. A kill -9 at any point leaves the old state or the new
//! one, never an intermediate without its key or a key without its record. (With a PKCS#11
//! token the key is made inside the token first; a rotation killed before its commit leaves
//! an unused key object there, under a label no row names, and nothing else.)

use std::sync::Arc;

use time::{Duration, OffsetDateTime};

use super::{IssuerError, IssuerRegistry, LiveIssuer, LiveRoot};
use crate::api::AuditAction;
use crate::ca::{IntermediateOrder, IssuerFacts, NewRoot, RootSigner};
use crate::model::{TenantId, TenantName};
use crate::store::{AuditEvent, NewIssuer, RootRollover, StoreError};

/// By default the CA rotates by itself when the active intermediate has less than this left
/// (a year of its five).
pub const DEFAULT_ROTATE_BEFORE: Duration = Duration::days(365);

/// How often the CA looks whether an intermediate is due for rotation or retirement.
const MAINTENANCE_INTERVAL: Duration = Duration::minutes(1);

/// What a rotation did.
#[derive(Debug, Clone)]
pub struct Rotation {
    /// The new active intermediate (of its tenant, or the shared one).
    pub issuer: Arc<LiveIssuer>,
    /// The id of the one it took over from.
    pub superseded: Option<i64>,
}

impl IssuerRegistry {
    /// Makes a new intermediate under the root for `scope` (a tenant to dedicate it to, or
    /// `None` for the one all other tenants share) and makes it the active one there: it
    /// signs every certificate and renewal in that scope from the moment this returns (at
    /// every replica within a second), and the one it replaces keeps its CRL until it
    /// retires. A tenant without an intermediate of its own gets one (a dedication). `actor`
    /// and `reason` go to the audit log.
    pub async fn rotate(
        &self,
        scope: Option<(TenantId, TenantName)>,
        actor: &str,
        reason: &str,
    ) -> Result<Rotation, IssuerError> {
        self.refresh().await?;
        let set = self.current();
        let active_root = set.active_root().ok_or(IssuerError::NoRootKey)?;
        let root = active_root.signer.clone().ok_or(IssuerError::NoRootKey)?;
        let root_crl_url = self.root_crl_url(active_root);
        let tenant_id = scope.as_ref().map(|(id, _)| *id);
        let superseded = set.active_in(tenant_id).map(|i| i.id);
        let number = set.issuers().len() + 1;
        let now = self.clock.now();
        let order = IntermediateOrder {
            common_name: match &scope {
                None => format!("latchkey issuing CA {number}"),
                Some((_, tenant)) => format!("latchkey issuing CA {number} for {tenant}"),
            },
            now,
            root_crl_url: Some(root_crl_url),
        };
        // After a root rollover, each other root whose key is here certifies the new
        // intermediate too, so that parties still trusting only that root accept its keys.
        let others: Vec<(Arc<RootSigner>, String)> = set
            .roots()
            .iter()
            .filter(|r| r.id != active_root.id && r.not_after > now)
            .filter_map(|r| Some((r.signer.clone()?, self.root_crl_url(r))))
            .collect();
        let vault = self.vault.clone();
        // Key generation (maybe in a token), sealing (PBKDF2) and signing: off the async
        // threads.
        let (location, certificate, crosses) = tokio::task::spawn_blocking(move || {
            let (key, location) = vault.new_key()?;
            let certificate = root.sign_intermediate(&order, &key)?;
            let crosses = others
                .iter()
                .map(|(other, url)| other.sign_cross(&certificate, now, Some(url)))
                .collect::<Result<Vec<_>, _>>()?;
            Ok::<_, IssuerError>((location, certificate, crosses))
        })
        .await??;
        let facts = IssuerFacts::of(&certificate).map_err(|detail| IssuerError::Certificate {
            what: "new intermediate",
            detail,
        })?;
        let new = NewIssuer {
            fingerprint: facts.fingerprint,
            subject: facts.subject,
            certificate: certificate.to_vec(),
            not_after: facts.not_after,
            tenant_id,
            key: location,
        };
        let action = match (&scope, superseded) {
            (Some(_), None) => AuditAction::CaDedicate,
            _ => AuditAction::CaRotate,
        };
        let event = AuditEvent {
            at: now,
            actor: actor.to_owned(),
            action: action.as_str(),
            tenant: scope.as_ref().map(|(_, name)| name.to_string()),
            target: Some(new.subject.clone()),
            detail: serde_json::json!({
                "reason": reason,
                "not_after": new.not_after.unix_timestamp(),
            }),
        };
        let crosses = crosses
            .iter()
            .map(cross_row)
            .collect::<Result<Vec<_>, _>>()?;
        let id = match self
            .store
            .record_rotation(&new, &crosses, superseded, now, &event)
            .await
        {
            Ok(id) => id,
            Err(StoreError::AlreadyExists(_)) => return Err(IssuerError::RotatedElsewhere),
            Err(e) => return Err(e.into()),
        };
        self.refresh().await?;
        let issuer = self
            .current()
            .by_id(id)
            .cloned()
            .ok_or_else(|| IssuerError::Certificate {
                what: "new intermediate",
                detail: format!("issuer {id} was recorded but does not read back"),
            })?;
        tracing::info!(issuer = id, subject = %issuer.subject, ?superseded, reason,
            "intermediate rotated: the new one signs from now on");
        Ok(Rotation { issuer, superseded })
    }

    /// Where `root`'s CRL is served, as what it signs names it.
    fn root_crl_url(&self, root: &LiveRoot) -> String {
        self.vault
            .root_crl_url((!root.first).then_some(root.key_id.as_slice()))
    }

    /// Rolls the root over: a new root (its key sealed in the store, so every replica can
    /// sign its CRLs and intermediates), a cross-certificate each way between it and the
    /// active root, and a new shared intermediate under it that signs from now on (the old
    /// one retires as after any rotation). A party trusting either root accepts keys of both
    /// (through the cross-certificates `GET /v1/ca` and `GET /v1/issuers` serve). One
    /// transaction, as an intermediate rotation. Returns the new root and the rotation.
    pub async fn rotate_root(&self, actor: &str) -> Result<(Arc<LiveRoot>, Rotation), IssuerError> {
        self.refresh().await?;
        let set = self.current();
        let old_root = set.active_root().cloned().ok_or(IssuerError::NoRootKey)?;
        // The active root must certify the new intermediate: its relying parties are the
        // ones a rollover must not lose.
        old_root.signer.as_ref().ok_or(IssuerError::NoRootKey)?;
        let superseded = set.active_in(None).map(|i| i.id);
        let now = self.clock.now();
        let (roots, intermediates) = (set.roots().len() + 1, set.issuers().len() + 1);
        // Every root still valid whose key is here certifies the new intermediate (after
        // a second rollover, the first root's parties keep accepting new keys too).
        let others: Vec<(Arc<RootSigner>, String)> = set
            .roots()
            .iter()
            .filter(|r| r.not_after > now)
            .filter_map(|r| Some((r.signer.clone()?, self.root_crl_url(r))))
            .collect();
        let (vault, old_root_id) = (self.vault.clone(), old_root.id);
        let published: Vec<_> = set.published().map(|i| i.certificate.clone()).collect();
        let made = tokio::task::spawn_blocking(move || {
            let root = NewRoot::generate(&format!("latchkey root CA {roots}"), now, |key_id| {
                vault.root_crl_url(Some(key_id))
            })?;
            let new_crl_url = vault.root_crl_url(Some(&root.key_id));
            let signer = RootSigner::new(&root.certificate, &root.key.serialize_pem())
                .map_err(crate::ca::BootstrapError::from)?;
            let (key, location) = vault.new_key()?;
            let order = IntermediateOrder {
                common_name: format!("latchkey issuing CA {intermediates}"),
                now,
                root_crl_url: Some(new_crl_url.clone()),
            };
            let intermediate = signer.sign_intermediate(&order, &key)?;
            // The new intermediate certified by the earlier roots, and every intermediate
            // still published (under an earlier root) by the new one.
            let mut crosses = others
                .iter()
                .map(|(other, url)| other.sign_cross(&intermediate, now, Some(url)))
                .collect::<Result<Vec<_>, _>>()?;
            for old in &published {
                crosses.push(signer.sign_cross(old, now, Some(&new_crl_url))?);
            }
            let sealed = vault.seal(&root.key)?;
            Ok::<_, IssuerError>((root.certificate, sealed, crosses, intermediate, location))
        })
        .await??;
        let (root, sealed, crosses, intermediate, location) = made;
        let row = |certificate: &rustls_pki_types::CertificateDer<'_>,
                   key: crate::model::IssuerKeyLocation| {
            let facts =
                IssuerFacts::of(certificate).map_err(|detail| IssuerError::Certificate {
                    what: "new root",
                    detail,
                })?;
            Ok::<_, IssuerError>(NewIssuer {
                fingerprint: facts.fingerprint,
                subject: facts.subject,
                certificate: certificate.to_vec(),
                not_after: facts.not_after,
                tenant_id: None,
                key,
            })
        };
        let rollover = RootRollover {
            root: row(&root, sealed)?,
            crosses: crosses.iter().map(cross_row).collect::<Result<_, _>>()?,
            intermediate: row(&intermediate, location)?,
            supersedes_root: old_root_id,
            supersedes_intermediate: superseded,
        };
        let event = AuditEvent {
            at: now,
            actor: actor.to_owned(),
            action: AuditAction::CaRotateRoot.as_str(),
            tenant: None,
            target: Some(rollover.root.subject.clone()),
            detail: serde_json::json!({ "not_after": rollover.root.not_after.unix_timestamp() }),
        };
        let (root_id, issuer_id) = match self
            .store
            .record_root_rollover(&rollover, now, &event)
            .await
        {
            Ok(ids) => ids,
            Err(StoreError::AlreadyExists(_)) => return Err(IssuerError::RotatedElsewhere),
            Err(e) => return Err(e.into()),
        };
        self.refresh().await?;
        let set = self.current();
        let missing = |what: &'static str, id: i64| IssuerError::Certificate {
            what,
            detail: format!("{id} was recorded but does not read back"),
        };
        let root = set
            .roots()
            .iter()
            .find(|r| r.id == root_id)
            .cloned()
            .ok_or_else(|| missing("new root", root_id))?;
        let issuer = set
            .by_id(issuer_id)
            .cloned()
            .ok_or_else(|| missing("new intermediate", issuer_id))?;
        tracing::info!(
            root = root_id,
            issuer = issuer_id,
            "root rolled over: the new root's intermediate signs from now on"
        );
        Ok((root, Rotation { issuer, superseded }))
    }

    /// Ends `tenant`'s own intermediate: its keys renew under the shared one from now on,
    /// and the dedicated one stays published until its certificates have expired. Returns
    /// the id of the intermediate it ended, `None` when the tenant had none.
    pub async fn undedicate(
        &self,
        tenant: (TenantId, TenantName),
        actor: &str,
    ) -> Result<Option<i64>, IssuerError> {
        self.refresh().await?;
        let Some(issuer) = self.current().active_in(Some(tenant.0)).cloned() else {
            return Ok(None);
        };
        let now = self.clock.now();
        let event = AuditEvent {
            at: now,
            actor: actor.to_owned(),
            action: AuditAction::CaUndedicate.as_str(),
            tenant: Some(tenant.1.to_string()),
            target: Some(issuer.subject.clone()),
            detail: serde_json::json!({ "issuer": issuer.id }),
        };
        if !self.store.supersede_issuer(issuer.id, now, &event).await? {
            return Err(IssuerError::RotatedElsewhere);
        }
        self.refresh().await?;
        Ok(Some(issuer.id))
    }

    /// Retires every superseded intermediate whose certificates have all expired more than
    /// `crl_validity` ago (so each stayed on a published CRL until it expired). Returns the
    /// ids retired.
    pub async fn retire_expired(&self, crl_validity: Duration) -> Result<Vec<i64>, IssuerError> {
        let now = self.clock.now();
        let mut retired = Vec::new();
        for issuer in self.current().issuers() {
            if issuer.status != crate::api::IssuerStatus::Retiring {
                continue;
            }
            let event = AuditEvent {
                at: now,
                actor: "system".into(),
                action: AuditAction::CaRetire.as_str(),
                tenant: issuer.tenant.as_ref().map(|(_, name)| name.to_string()),
                target: Some(issuer.subject.clone()),
                detail: serde_json::json!({ "issuer": issuer.id }),
            };
            if self
                .store
                .retire_issuer(issuer.id, now - crl_validity, now, &event)
                .await?
            {
                tracing::info!(issuer = issuer.id, subject = %issuer.subject,
                    "intermediate retired: its last certificate has expired; its CRL stops");
                retired.push(issuer.id);
            }
        }
        if !retired.is_empty() {
            self.refresh().await?;
        }
        Ok(retired)
    }

    /// Rotates each active intermediate (the shared one, and each tenant's) that has less
    /// than `rotate_before` left, when the root key is here; says once per check, loudly,
    /// when one is due and cannot be. Returns the rotations made.
    pub async fn rotate_if_due(
        &self,
        rotate_before: Duration,
    ) -> Result<Vec<Rotation>, IssuerError> {
        let now = self.clock.now();
        let due: Vec<Arc<LiveIssuer>> = self
            .current()
            .issuers()
            .iter()
            .filter(|i| i.status == crate::api::IssuerStatus::Active)
            .filter(|i| i.not_after - now <= rotate_before)
            .cloned()
            .collect();
        let mut made = Vec::new();
        for active in due {
            if self.root_signer.is_none() {
                tracing::error!(issuer = active.id, not_after = %active.not_after,
                    "an active intermediate is due for rotation, and the root key is not in \
                     the CA home: run `latchkey ca rotate` where the root key is");
                continue;
            }
            let reason = format!(
                "automatic: the active intermediate ends at {}",
                active.not_after
            );
            match self.rotate(active.tenant.clone(), "system", &reason).await {
                Ok(rotation) => made.push(rotation),
                // Another replica saw it due too, and won.
                Err(IssuerError::RotatedElsewhere) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(made)
    }

    /// Runs rotation and retirement checks every minute of the CA's clock until the process
    /// ends.
    pub fn maintain(
        self: &Arc<Self>,
        rotate_before: Duration,
        crl_validity: Duration,
    ) -> tokio::task::JoinHandle<()> {
        let registry = self.clone();
        tokio::spawn(async move {
            loop {
                if let Err(e) = registry.rotate_if_due(rotate_before).await {
                    tracing::error!(error = %e, "cannot rotate the intermediate");
                }
                if let Err(e) = registry.retire_expired(crl_validity).await {
                    tracing::warn!(error = %e, "cannot retire intermediates");
                }
                let next: OffsetDateTime = registry.clock.now() + MAINTENANCE_INTERVAL;
                registry.clock.sleep_until(next).await;
            }
        })
    }
}

/// The row of a cross-certificate (it has no key of its own).
fn cross_row(certificate: &rustls_pki_types::CertificateDer<'_>) -> Result<NewIssuer, IssuerError> {
    let facts = IssuerFacts::of(certificate).map_err(|detail| IssuerError::Certificate {
        what: "cross-certificate",
        detail,
    })?;
    Ok(NewIssuer {
        fingerprint: facts.fingerprint,
        subject: facts.subject,
        certificate: certificate.to_vec(),
        not_after: facts.not_after,
        tenant_id: None,
        key: crate::model::IssuerKeyLocation::Home,
    })
}
