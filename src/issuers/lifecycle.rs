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

use super::{IssuerError, IssuerRegistry, LiveIssuer};
use crate::api::AuditAction;
use crate::ca::{IntermediateOrder, IssuerFacts};
use crate::model::{TenantId, TenantName};
use crate::store::{AuditEvent, NewIssuer, StoreError};

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
        let root = self.root_signer.clone().ok_or(IssuerError::NoRootKey)?;
        self.refresh().await?;
        let set = self.current();
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
            root_crl_url: Some(self.vault.root_crl_url()),
        };
        let vault = self.vault.clone();
        // Key generation (maybe in a token), sealing (PBKDF2) and signing: off the async
        // threads.
        let (location, certificate) = tokio::task::spawn_blocking(move || {
            let (key, location) = vault.new_key()?;
            let certificate = root.sign_intermediate(&order, &key)?;
            Ok::<_, IssuerError>((location, certificate))
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
        let id = match self
            .store
            .record_rotation(&new, superseded, now, &event)
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
