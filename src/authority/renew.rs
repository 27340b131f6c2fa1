//! Renewal: a new certificate for the same key, asked for over mTLS with one of the key's
//! current certificates. The decision reads the store, not a CRL, so a revocation blocks
//! renewal the moment it commits. Keys are never extended: every certificate ends by the
//! key's `expires_at`.
//!
//! Renewal cannot be abused to pile up certificates or to outlive a policy change:
//! - a key gets at most one certificate per `Policy::renew_interval` (429 otherwise);
//! - it keeps at most `Policy::certificates_per_key` valid certificates: older ones are
//!   revoked as superseded in the renewal's transaction, and a rekey supersedes all of them,
//!   so the previous key pair stops working at once;
//! - the current policy applies: a disabled tenant or owner gets 403, scopes the owner (a
//!   user) no longer holds are dropped from the key, and the tenant's maximum key lifetime,
//!   counted from the key's creation, shortens the key.

use crate::api::AuditAction;

use super::error::RenewalRefusal;
use super::{Authority, AuthorityError, KeyHolder, MAX_KEY_DAYS, csr};
use crate::api::RenewRequest;
use crate::ca::{BACKDATE, KeyOrder};
use crate::model::{IssuedKey, KeyId, KeyRecord, Scope, ScopeSet, Serial};
use crate::store::{Renewal, StoreError};

/// How often a random serial collision is retried.
const COLLISION_RETRIES: usize = 3;

impl Authority {
    /// `POST /v1/keys/{id}/renew`: a new certificate for `key_id`, whose holder presented one
    /// of its certificates.
    pub async fn renew(
        &self,
        holder: &KeyHolder,
        key_id: &KeyId,
        request: RenewRequest,
    ) -> Result<IssuedKey, AuthorityError> {
        let refused = AuthorityError::RenewalRefused;
        let certificate = &holder.certificate;
        if certificate.key_id.as_ref() != Some(key_id) {
            return Err(refused(RenewalRefusal::CertificateNotForKey));
        }
        let key = self
            .store
            .key(key_id)
            .await?
            .ok_or(AuthorityError::NotFound("key"))?
            .key;
        let now = self.now();
        if key.revoked_at.is_some() {
            return Err(refused(RenewalRefusal::KeyRevoked));
        }
        if certificate.revoked_at.is_some() {
            return Err(refused(RenewalRefusal::CertificateRevoked));
        }
        if key.expires_at <= now {
            return Err(refused(RenewalRefusal::KeyExpired));
        }
        if certificate.not_after <= now {
            return Err(refused(RenewalRefusal::CertificateExpired));
        }

        let standing = self.standing_policy(&key, now).await?;

        let public_key = match &request.csr {
            Some(pem) => {
                let verified = csr::verify_pem(pem)?;
                if self.is_ca_key(&verified) {
                    return Err(AuthorityError::PublicKeyInUse);
                }
                verified.public_key
            }
            None => holder.public_key.clone(),
        };
        let (tenant, owner) = (key.tenant.clone(), key.owner.clone());
        let scopes = standing.scopes;
        // Renewed under the intermediate that signs now: after a rotation, the new one.
        let signing = self.signing_issuer(Some(standing.tenant_id))?;
        let not_after = (now + self.policy.certificate_lifetime)
            .min(standing.expires_at)
            .min(signing.signer.not_after());
        let mut attempt = 0;
        let (issued, superseded) = loop {
            attempt += 1;
            let order = KeyOrder {
                serial: Serial::generate(),
                tenant: tenant.clone(),
                owner: owner.clone(),
                key_id: key_id.clone(),
                scopes: scopes.clone(),
                not_before: now - BACKDATE,
                not_after,
                public_key: public_key.clone(),
            };
            let issued = signing.signer.sign_key_certificate(order)?;
            let record = self.new_key_certificate(key_id, &tenant, &issued, signing.issuer.id);
            let event = self.event(
                &format!("key:{key_id}"),
                AuditAction::KeyRenew,
                Some(tenant.as_str()),
                Some(key_id.to_string()),
                serde_json::json!({
                    "serial": issued.serial.to_string(),
                    "previous": certificate.serial.to_string(),
                    "rekeyed": request.csr.is_some(),
                    "scopes_dropped": standing.dropped.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
                }),
            );
            let renewal = Renewal {
                certificate: record,
                now,
                newest_before: now - self.policy.renew_interval,
                // The new certificate counts as one of the key's valid certificates.
                keep_earlier: if request.csr.is_some() {
                    0
                } else {
                    self.policy.certificates_per_key - 1
                },
                scopes: scopes.clone(),
                expires_at: standing.expires_at,
            };
            match self.store.record_renewal(&renewal, &event).await {
                Ok(superseded) => break (issued, superseded),
                Err(StoreError::Collision) if attempt < COLLISION_RETRIES => continue,
                Err(StoreError::TooSoon { newest_at }) => {
                    let allowed_at = newest_at + self.policy.renew_interval;
                    return Err(AuthorityError::RenewalTooSoon {
                        retry_after: std::time::Duration::try_from(allowed_at - now)
                            .unwrap_or_default(),
                        interval: std::time::Duration::try_from(self.policy.renew_interval)
                            .unwrap_or_default(),
                    });
                }
                Err(e) => return Err(e.into()),
            }
        };
        if superseded > 0 {
            self.crl.poke();
        }
        self.metrics.renewed.inc();
        tracing::info!(key_id = %key_id, serial = %issued.serial, superseded,
            dropped_scopes = standing.dropped.len(), "certificate renewed");
        // The key as the renewal left it: narrowed scopes, an end never later than before.
        let key = KeyRecord {
            scopes,
            expires_at: key.expires_at.min(standing.expires_at),
            ..key
        };
        let key = self.key_view(key).await?;
        Ok(self.issued_key(key, &issued, &signing.issuer.pem, now))
    }

    /// What the current policy allows a renewal of `key`: refused when its tenant or owner is
    /// disabled, its scopes narrowed to the owner's current grants, its end brought forward
    /// to the tenant's current maximum lifetime. An owner without a user row (a machine
    /// enrolled with a token) has no grants to consult: its key keeps the token's scopes,
    /// and only the tenant applies. The store checks the disables again under its lock.
    async fn standing_policy(
        &self,
        key: &KeyRecord,
        now: time::OffsetDateTime,
    ) -> Result<StandingPolicy, AuthorityError> {
        let stored = self
            .store
            .tenant(&key.tenant)
            .await?
            .ok_or_else(|| AuthorityError::Internal(format!("key {} has no tenant", key.id)))?;
        let tenant = &stored.tenant;
        if tenant.disabled_at.is_some() {
            return Err(AuthorityError::Disabled(format!("tenant {}", tenant.name)));
        }
        let scopes = key.scopes.clone();
        let (scopes, dropped) = match self.store.user(stored.id, &key.owner).await? {
            Some(user) if user.disabled_at.is_some() => {
                return Err(AuthorityError::Disabled(format!(
                    "user {}@{}",
                    key.owner, tenant.name
                )));
            }
            Some(user) => {
                let grants = user.scopes;
                let dropped = scopes.not_in(&grants);
                let kept = ScopeSet::parse(
                    scopes
                        .iter()
                        .filter(|s| grants.contains(s))
                        .map(Scope::as_str),
                )
                .map_err(|e| AuthorityError::Internal(e.to_string()))?;
                if kept.is_empty() {
                    // Nothing the owner may still hold: a certificate with no scope is no key.
                    return Err(AuthorityError::ScopeNotGranted(dropped));
                }
                (kept, dropped)
            }
            None => (scopes, Vec::new()),
        };
        let longest = time::Duration::days(tenant.max_key_days.min(MAX_KEY_DAYS));
        let expires_at = key.expires_at.min(key.created_at + longest);
        if expires_at <= now {
            return Err(AuthorityError::RenewalRefused(RenewalRefusal::KeyExpired));
        }
        Ok(StandingPolicy {
            tenant_id: stored.id,
            scopes,
            dropped,
            expires_at,
        })
    }
}

/// What the current policy allows a renewal: see [`Authority::standing_policy`].
struct StandingPolicy {
    /// The key's tenant: its dedicated intermediate, if it has one, signs.
    tenant_id: crate::model::TenantId,
    /// The key's scopes that its owner still holds.
    scopes: ScopeSet,
    /// The key's scopes that its owner no longer holds.
    dropped: Vec<Scope>,
    /// The key's end under the tenant's current maximum lifetime.
    expires_at: time::OffsetDateTime,
}
