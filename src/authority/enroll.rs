//! Getting a key. The issuance procedure, numbered as in README's architecture section:
//!
//! 1. Authenticate the caller by password or enrollment token
//!    ([`Authority::authenticate_enroller`], called by the edge once the request body has
//!    been read: a request that cannot be read costs no password check and does not count
//!    against the password throttle), which gives the [`Enroller`] proof `enroll` takes.
//! 2. Check the request: name, scopes (a subset of the grants), key lifetime (within the
//!    tenant's maximum).
//! 3. Verify the CSR and take its public key, refusing one that another key already uses.
//! 4. Decide the certificate: fresh key id and serial, validity capped by the key and issuer.
//! 5. Sign it (in memory only: nobody sees it yet).
//! 6. Record key, certificate, token use and audit event in one transaction. A colliding
//!    serial or key id goes back to step 4; a token spent meanwhile fails the request.
//! 7. Answer. A crash before 6 commits leaves neither a record nor a certificate anywhere.

use crate::api::AuditAction;
use crate::api::Code;
use time::{Duration, OffsetDateTime};

use super::{Authority, AuthorityError, Enroller, MAX_KEY_DAYS, csr};
use crate::api::EnrollRequest;
use crate::ca::{BACKDATE, IssuedCertificate, KeyOrder};
use crate::model::{IssuedKey, KeyId, KeyView, Serial, TenantName};
use crate::store::{NewCertificate, NewKey, StoreError};

/// How often a random serial or key id collision is retried before giving up.
const COLLISION_RETRIES: usize = 3;
/// The longest key name and description accepted.
const MAX_NAME: usize = 100;
const MAX_DESCRIPTION: usize = 1000;

impl Authority {
    /// `POST /v1/keys`: makes a key and its first certificate for `enroller` (step 1, the
    /// authentication, made that proof: [`Authority::authenticate_enroller`]).
    pub async fn enroll(
        &self,
        enroller: &Enroller,
        request: EnrollRequest,
    ) -> Result<IssuedKey, AuthorityError> {
        // 2. Check the request.
        let now = self.now();
        // Checked before trimming, so that a separator at either end is refused, not dropped.
        printable("name", &request.name)?;
        printable("description", &request.description)?;
        let name = request.name.trim().to_owned();
        if name.is_empty() || name.chars().count() > MAX_NAME {
            return Err(AuthorityError::invalid(
                Code::InvalidRequest,
                format!("name must be 1 to {MAX_NAME} printable characters"),
            ));
        }
        if request.description.chars().count() > MAX_DESCRIPTION {
            return Err(AuthorityError::invalid(
                Code::InvalidRequest,
                format!("description must be at most {MAX_DESCRIPTION} characters"),
            ));
        }
        // Each scope was parsed at the edge (`invalid_scope`); what is left is policy.
        let scopes = request.scopes.clone();
        let scopes = match (scopes.is_empty(), enroller.token.is_some()) {
            // A token names its scopes; asking for none means all of them.
            (true, true) => enroller.grants.clone(),
            (true, false) => {
                return Err(AuthorityError::invalid(
                    Code::InvalidScope,
                    "name at least one scope for the key",
                ));
            }
            (false, _) => scopes,
        };
        let missing = scopes.not_in(&enroller.grants);
        if !missing.is_empty() {
            return Err(AuthorityError::ScopeNotGranted(missing));
        }
        let expires_at = self.key_expiry(&request, enroller.max_key_days, now)?;

        // 3. Verify the CSR. Whether another key has its public key is checked when it is
        // recorded (step 6), under the write lock.
        let verified = csr::verify_pem(&request.csr)?;
        if self.is_ca_key(&verified) {
            return Err(AuthorityError::PublicKeyInUse);
        }

        let signing = self.signing_issuer(Some(enroller.tenant_id))?;
        let not_after = (now + self.policy.certificate_lifetime)
            .min(expires_at)
            .min(signing.signer.not_after());
        let mut attempt = 0;
        loop {
            attempt += 1;
            // 4. Decide.
            let key_id = KeyId::generate();
            let order = KeyOrder {
                serial: Serial::generate(),
                tenant: enroller.tenant.clone(),
                owner: enroller.owner.clone(),
                key_id: key_id.clone(),
                scopes: scopes.clone(),
                not_before: now - BACKDATE,
                not_after,
                public_key: verified.public_key.clone(),
            };
            // 5. Sign.
            let issued = signing.signer.sign_key_certificate(order)?;
            let key = NewKey {
                id: key_id.clone(),
                tenant_id: enroller.tenant_id,
                owner: enroller.owner.clone(),
                name: name.clone(),
                description: request.description.clone(),
                scopes: scopes.clone(),
                created_at: now,
                expires_at,
            };
            let certificate =
                self.new_key_certificate(&key_id, &enroller.tenant, &issued, signing.issuer.id);
            let event = self.event(
                &enroller.actor,
                AuditAction::KeyIssue,
                Some(enroller.tenant.as_str()),
                Some(key_id.to_string()),
                serde_json::json!({
                    "owner": enroller.owner.as_str(),
                    "serial": issued.serial.to_string(),
                    "scopes": scopes.to_stored(),
                    "expires_at": expires_at.unix_timestamp(),
                }),
            );
            // 6. Record.
            match self
                .store
                .record_key_issuance(&key, &certificate, enroller.token, now, &event)
                .await
            {
                Ok(()) => {}
                Err(StoreError::Collision) if attempt < COLLISION_RETRIES => continue,
                Err(e) => return Err(e.into()),
            }
            self.metrics.enrolled.inc();
            tracing::info!(key_id = %key_id, tenant = %enroller.tenant, owner = %enroller.owner,
                serial = %issued.serial, "key issued");

            // 7. Answer: the key as recorded, with its one certificate.
            let key = KeyView::new(
                key.as_recorded(enroller.tenant.clone()),
                vec![certificate.as_recorded()],
                1,
                now,
            );
            return Ok(self.issued_key(key, &issued, &signing.issuer.pem, now));
        }
    }

    /// The key's end: `ttl_seconds` or `expires_at` (not both), else the default, within
    /// the tenant's maximum. Over the maximum is an error, never silently shortened.
    fn key_expiry(
        &self,
        request: &EnrollRequest,
        max_key_days: i64,
        now: OffsetDateTime,
    ) -> Result<OffsetDateTime, AuthorityError> {
        let max = Duration::days(max_key_days.min(MAX_KEY_DAYS));
        let out_of_range = |what: String| {
            AuthorityError::TtlOutOfRange(format!(
                "{what}; keys in this tenant live from 1 second to {} days",
                max.whole_days()
            ))
        };
        let lifetime = match (request.ttl_seconds, request.expires_at) {
            (Some(_), Some(_)) => {
                return Err(AuthorityError::invalid(
                    Code::InvalidRequest,
                    "give ttl_seconds or expires_at, not both",
                ));
            }
            (Some(ttl), None) => {
                if ttl <= 0 || ttl > max.whole_seconds() {
                    return Err(out_of_range(format!("ttl_seconds {ttl} is out of range")));
                }
                Duration::seconds(ttl)
            }
            (None, Some(at)) => {
                let lifetime = at - now;
                if lifetime <= Duration::ZERO || lifetime > max {
                    return Err(out_of_range(format!("expires_at {at} is out of range")));
                }
                lifetime
            }
            (None, None) => self.policy.default_key_lifetime.min(max),
        };
        Ok(now + Duration::seconds(lifetime.whole_seconds()))
    }

    pub(super) fn new_key_certificate(
        &self,
        key_id: &KeyId,
        tenant: &TenantName,
        issued: &IssuedCertificate,
        issuer_id: i64,
    ) -> NewCertificate {
        NewCertificate {
            serial: issued.serial,
            issuer_id,
            kind: crate::store::CertificateKind::Key,
            key_id: Some(key_id.clone()),
            subject: crate::profile::SpiffeId::Key {
                tenant: tenant.clone(),
                key_id: key_id.clone(),
            }
            .to_uri(&self.trust_domain),
            public_key_sha256: issued.public_key_fingerprint.clone(),
            not_before: issued.not_before,
            not_after: issued.not_after,
            der: issued.der.to_vec(),
            created_at: self.now(),
        }
    }

    /// The answer to an enrollment or renewal at `now`: the key, and the new certificate
    /// with its chain (it and `issuer_pem`, the intermediate that signed it).
    pub(super) fn issued_key(
        &self,
        key: KeyView,
        issued: &IssuedCertificate,
        issuer_pem: &str,
        now: OffsetDateTime,
    ) -> IssuedKey {
        let certificate_pem = issued.pem();
        IssuedKey {
            key,
            chain_pem: format!("{certificate_pem}{issuer_pem}"),
            certificate_pem,
            expires_in: issued.not_after - now,
        }
    }
}

/// Refuses free text that an administrator's terminal would act on instead of showing: a
/// key's name and description are printed by `latchkey keys`, and only its owner chose them.
fn printable(field: &str, text: &str) -> Result<(), AuthorityError> {
    match crate::model::text::first_unsafe(text) {
        None => Ok(()),
        Some(c) => Err(AuthorityError::invalid(
            Code::InvalidCharacters,
            format!(
                "{field} contains U+{:04X}, a control, format (such as a bidi override) or \
                 separator character; use printable text",
                u32::from(c)
            ),
        )),
    }
}
