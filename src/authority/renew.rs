//! Renewal: a new certificate for the same key, asked for over mTLS with one of the key's
//! current certificates. The decision reads the store, not a CRL, so a revocation blocks
//! renewal the moment it commits. Keys are never extended: every certificate ends by the
//! key's `expires_at`.

use rustls_pki_types::CertificateDer;

use super::error::RenewalRefusal;
use super::{Authority, AuthorityError, Caller, csr};
use crate::api::{EnrollResponse, RenewRequest};
use crate::ca::{BACKDATE, KeyOrder, PublicKey};
use crate::model::{KeyId, Serial};
use crate::store::StoreError;
use crate::tls::PeerIdentity;

/// How often a random serial collision is retried.
const COLLISION_RETRIES: usize = 3;

impl Authority {
    /// `POST /v1/keys/{id}/renew`.
    pub async fn renew(
        &self,
        caller: &Caller,
        id: &str,
        request: RenewRequest,
    ) -> Result<EnrollResponse, AuthorityError> {
        let refused = AuthorityError::RenewalRefused;
        let Some(presented) = &caller.certificate else {
            return Err(AuthorityError::Unauthenticated);
        };
        let key_id: KeyId = id.parse().map_err(|_| AuthorityError::NotFound("key"))?;
        let (certificate, current_key) = self.presented_certificate(presented).await?;
        if certificate.key_id.as_deref() != Some(key_id.as_str()) {
            return Err(refused(RenewalRefusal::CertificateNotForKey));
        }
        let key = self
            .store
            .key(key_id.as_str())
            .await?
            .ok_or(AuthorityError::NotFound("key"))?;
        let now = self.now();
        if key.revoked_at.is_some() {
            return Err(refused(RenewalRefusal::KeyRevoked));
        }
        if certificate.revoked_at.is_some() {
            return Err(refused(RenewalRefusal::CertificateRevoked));
        }
        if key.expires_at <= now.unix_timestamp() {
            return Err(refused(RenewalRefusal::KeyExpired));
        }
        if certificate.not_after <= now.unix_timestamp() {
            return Err(refused(RenewalRefusal::CertificateExpired));
        }

        let public_key = match &request.csr {
            Some(pem) => {
                let verified = csr::verify_pem(pem)?;
                if self.is_ca_key(&verified) {
                    return Err(AuthorityError::PublicKeyInUse);
                }
                verified.public_key
            }
            None => current_key,
        };
        let tenant: crate::model::TenantName = super::authenticate::parse_stored(&key.tenant)?;
        let owner: crate::model::OwnerName = super::authenticate::parse_stored(&key.owner)?;
        let scopes = super::authenticate::stored_scopes(&key.scopes)?;
        let expires_at = super::from_unix(key.expires_at);
        let not_after = (now + self.policy.certificate_lifetime)
            .min(expires_at)
            .min(self.signer.not_after());
        let mut attempt = 0;
        let issued = loop {
            attempt += 1;
            let order = KeyOrder {
                serial: Serial::random(),
                tenant: tenant.clone(),
                owner: owner.clone(),
                key_id: key_id.clone(),
                scopes: scopes.clone(),
                not_before: now - BACKDATE,
                not_after,
                public_key: public_key.clone(),
            };
            let issued = self
                .signer
                .sign_key_certificate(order)
                .map_err(|e| AuthorityError::Internal(e.to_string()))?;
            let record = self.new_key_certificate(&key_id, &tenant, &issued);
            let event = self.event(
                &format!("key:{key_id}"),
                "key.renew",
                Some(tenant.as_str()),
                Some(key_id.to_string()),
                serde_json::json!({
                    "serial": issued.serial.to_string(),
                    "previous": certificate.serial,
                    "rekeyed": request.csr.is_some(),
                }),
            );
            match self
                .store
                .record_renewal(&record, now.unix_timestamp(), &event)
                .await
            {
                Ok(()) => break issued,
                Err(StoreError::Collision) if attempt < COLLISION_RETRIES => continue,
                Err(e) => return Err(e.into()),
            }
        };
        self.metrics.renewed.inc();
        tracing::info!(key_id = %key_id, serial = %issued.serial, "certificate renewed");
        let certificates = self.store.certificates_of(&[key_id.as_str()]).await?;
        let certificate_pem = issued.pem();
        Ok(EnrollResponse {
            key: self.key_info(key, &certificates),
            chain: format!("{certificate_pem}{}", self.intermediate_pem),
            certificate: certificate_pem,
            expires_in_seconds: (issued.not_after - now).whole_seconds(),
        })
    }

    /// The stored row of the certificate presented over mTLS (it must be this very
    /// certificate, not a look-alike), and its public key.
    async fn presented_certificate(
        &self,
        der: &CertificateDer<'_>,
    ) -> Result<(crate::store::CertificateRow, PublicKey), AuthorityError> {
        let unknown = || AuthorityError::InvalidCertificate("unknown certificate".into());
        let identity = PeerIdentity::from_der(der, self.signer.trust_domain())
            .map_err(|e| AuthorityError::InvalidCertificate(e.to_string()))?;
        let row = self
            .store
            .recorded_certificate(&identity.serial.to_string(), der)
            .await?
            .ok_or_else(unknown)?;
        if row.kind != "key" {
            return Err(AuthorityError::RenewalRefused(
                RenewalRefusal::CertificateNotForKey,
            ));
        }
        let (_, parsed) = x509_parser::parse_x509_certificate(der).map_err(|_| unknown())?;
        let public_key = PublicKey::from_checked_spki(parsed.public_key().raw)
            .map_err(|e| AuthorityError::Internal(e.to_string()))?;
        Ok((row, public_key))
    }
}
