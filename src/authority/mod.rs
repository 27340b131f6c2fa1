//! The authority: decides who may get what. Authentication, CSR checks, scope policy and
//! lifetimes live here and nowhere else; it is the only module that calls both the signer
//! ([`crate::ca`]) and the [`crate::store`].

mod admin;
mod admin_change;
mod authenticate;
mod crl;
pub mod csr;
mod enroll;
mod error;
mod inventory;
mod metrics;
mod paging;
mod password;
mod renew;
mod revoke;
mod root_crl;
mod throttle;
mod token;

use crate::api::AuditAction;
use std::sync::Arc;

use time::{Duration, OffsetDateTime};

use crate::ca::Signer;
use crate::clock::Clock;
use crate::store::{AuditEvent, CertificateKind, Store};

pub use authenticate::{Admin, Caller, Credential, Enroller, KeyHolder, Principal, Reader};
pub use crl::{CrlHealth, DEFAULT_CRL_VALIDITY, PublishedCrl};
pub use error::{AuthorityError, RenewalRefusal};
pub use password::Passwords;
pub use root_crl::{
    DEFAULT_ROOT_CRL_VALIDITY, newest_root_crl_number, sign_root_crl, store_root_crl,
};

/// The lifetimes the authority applies.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// A certificate's lifetime (default 24 h); never beyond its key's or its issuer's end.
    pub certificate_lifetime: Duration,
    /// A key's lifetime when the request names none (default 90 days, or the tenant's
    /// maximum if that is shorter).
    pub default_key_lifetime: Duration,
    /// How far ahead each CRL's `nextUpdate` lies (default 1 h); a new one is built when
    /// half of it has passed.
    pub crl_validity: Duration,
    /// The addresses that may read `/metrics` without the admin certificate (default none).
    /// A `'static` slice keeps the policy `Copy`; the list is fixed for the process's life.
    pub metrics_allow: &'static [crate::model::IpNet],
    /// The shortest time between two certificates of one key (default 1 h, a 24th of the
    /// default certificate lifetime): renewing early is allowed, renewing in a loop is 429.
    pub renew_interval: Duration,
    /// How many unexpired, unrevoked certificates a key keeps (default 3, at least 2): a
    /// renewal beyond that revokes the oldest ones as superseded.
    pub certificates_per_key: i64,
    /// How far ahead the root CRL's `nextUpdate` lies (default 30 days); a CA holding the
    /// root key signs a new one when half of it has passed.
    pub root_crl_validity: Duration,
}

/// No tenant may allow keys to live longer than this.
pub const MAX_KEY_DAYS: i64 = 180;

impl Default for Policy {
    fn default() -> Self {
        Self {
            certificate_lifetime: Duration::hours(24),
            default_key_lifetime: Duration::days(90),
            crl_validity: crl::DEFAULT_CRL_VALIDITY,
            metrics_allow: &[],
            renew_interval: Duration::hours(1),
            certificates_per_key: 3,
            root_crl_validity: root_crl::DEFAULT_ROOT_CRL_VALIDITY,
        }
    }
}

/// The authority: the store, the signer, the clock and the policy, in one place.
pub struct Authority {
    store: Store,
    signer: Arc<Signer>,
    issuer_id: i64,
    /// The CA's own public keys (intermediate and root), which no key certificate may carry.
    ca_spkis: [Vec<u8>; 2],
    /// The issuing intermediate and the root, PEM: `GET /v1/ca`.
    ca_chain_pem: String,
    /// The issuing intermediate, PEM: appended to every leaf to form its chain.
    intermediate_pem: String,
    clock: Arc<dyn Clock>,
    passwords: Passwords,
    throttle: throttle::PasswordThrottle,
    policy: Policy,
    crl: crl::CrlState,
    /// The root, as recorded among the issuers: its CRLs are numbered on their own.
    root_issuer_id: i64,
    /// The root CRL being served.
    root_crl: tokio::sync::watch::Sender<Option<Arc<PublishedCrl>>>,
    metrics: metrics::Metrics,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority")
            .field("signer", &self.signer)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl Authority {
    /// Connects to the store at `database_url` (applying migrations) and puts the
    /// authority together.
    pub async fn connect(
        database_url: &str,
        signer: Signer,
        root_der: &[u8],
        clock: Arc<dyn Clock>,
        policy: Policy,
    ) -> Result<Self, AuthorityError> {
        let store = Store::connect(database_url).await?;
        Self::new(store, signer, root_der, clock, policy).await
    }

    /// Puts the authority together. `root_der` is the root the intermediate chains to.
    pub async fn new(
        store: Store,
        signer: Signer,
        root_der: &[u8],
        clock: Arc<dyn Clock>,
        policy: Policy,
    ) -> Result<Self, AuthorityError> {
        let intermediate = signer.certificate().to_vec();
        let (_, parsed) = x509_parser::parse_x509_certificate(&intermediate)
            .map_err(|e| AuthorityError::Internal(format!("issuer certificate: {e}")))?;
        let issuer_id = store
            .ensure_issuer(
                &hex::encode(ring::digest::digest(&ring::digest::SHA256, &intermediate)),
                &parsed.subject().to_string(),
                &intermediate,
                signer.not_after().unix_timestamp(),
                clock.now().unix_timestamp(),
            )
            .await?;
        let (_, root) = x509_parser::parse_x509_certificate(root_der)
            .map_err(|e| AuthorityError::Internal(format!("root certificate: {e}")))?;
        let root_issuer_id = store
            .ensure_issuer(
                &hex::encode(ring::digest::digest(&ring::digest::SHA256, root_der)),
                &root.subject().to_string(),
                root_der,
                root.validity().not_after.timestamp(),
                clock.now().unix_timestamp(),
            )
            .await?;
        let ca_spkis = [
            parsed.public_key().raw.to_vec(),
            root.public_key().raw.to_vec(),
        ];
        let passwords = tokio::task::spawn_blocking(Passwords::new)
            .await
            .map_err(|e| AuthorityError::Internal(e.to_string()))??;
        Ok(Self {
            store,
            ca_chain_pem: crate::pem::encode_certificates([intermediate.as_slice(), root_der]),
            intermediate_pem: crate::pem::encode("CERTIFICATE", &intermediate),
            signer: Arc::new(signer),
            issuer_id,
            ca_spkis,
            clock,
            passwords,
            throttle: throttle::PasswordThrottle::default(),
            policy,
            crl: crl::CrlState::new(),
            root_issuer_id,
            root_crl: tokio::sync::watch::Sender::new(None),
            metrics: metrics::Metrics::new(),
        })
    }

    /// True when the CSR's key is one of the CA's own: a key certificate for it would let
    /// whoever holds the CA key pose as a client, and would say the CA key is a client's.
    fn is_ca_key(&self, csr: &csr::VerifiedCsr) -> bool {
        self.ca_spkis
            .iter()
            .any(|spki| spki.as_slice() == csr.public_key.spki_der())
    }

    /// The CA chain clients and relying services trust: issuing intermediate, then root.
    pub fn ca_chain_pem(&self) -> &str {
        &self.ca_chain_pem
    }

    /// Ready to serve: the store answers, the issuer is valid, and a CRL is published, fresh,
    /// and its builder is not failing.
    pub async fn ready(&self) -> Result<(), AuthorityError> {
        self.store.ping().await?;
        if self.signer.not_after() <= self.now() {
            return Err(AuthorityError::NotReady(
                "the issuing CA has expired".into(),
            ));
        }
        let crl = self.crl_health();
        match crl.next_update {
            None => Err(AuthorityError::NotReady(
                "no CRL has been published yet".into(),
            )),
            Some(next) if next <= self.now() => Err(AuthorityError::NotReady(
                "the published CRL is past its nextUpdate".into(),
            )),
            _ if crl.failing => Err(AuthorityError::NotReady(
                "the CA cannot publish a new CRL; see its log".into(),
            )),
            _ => match self.root_crl_problem() {
                Some(problem) => Err(AuthorityError::NotReady(problem)),
                None => Ok(()),
            },
        }
    }

    /// Issues a certificate for the CA's own use (its TLS server certificate or an
    /// administrator's) with a new key, and records it with its audit event before returning
    /// it. This is the only way such a certificate is made: the caller writes it to files only
    /// after this returns, so no certificate the CA signed is ever held anywhere unrecorded.
    /// A crash after the record and before the files leaves a recorded certificate that nothing
    /// holds, which is harmless; the next start issues another.
    ///
    /// Returns the certificate and its key's PKCS#8 PEM.
    pub async fn issue_service_certificate(
        &self,
        which: &crate::ca::ServiceCertificate,
    ) -> Result<(crate::ca::IssuedCertificate, String), AuthorityError> {
        let (issued, key_pem) = which
            .issue(&self.signer, self.now())
            .map_err(|e| AuthorityError::Internal(format!("issuing a service certificate: {e}")))?;
        let (kind, subject) = match which {
            crate::ca::ServiceCertificate::Server { .. } => {
                (CertificateKind::Server, "latchkey server".to_owned())
            }
            crate::ca::ServiceCertificate::Admin { name } => (
                CertificateKind::Admin,
                crate::profile::SpiffeId::Admin { name: name.clone() }
                    .to_uri(self.signer.trust_domain()),
            ),
        };
        self.record_service_certificate(kind, &subject, &issued)
            .await?;
        Ok((issued, key_pem))
    }

    /// True when the certificate with this serial is recorded: at start-up, a service
    /// certificate on disk that the store does not know (a home moved to a new database) is
    /// replaced rather than used unrecorded.
    pub async fn has_recorded(
        &self,
        serial: &crate::model::Serial,
    ) -> Result<bool, AuthorityError> {
        Ok(self.store.certificate(&serial.to_string()).await?.is_some())
    }

    async fn record_service_certificate(
        &self,
        kind: CertificateKind,
        subject: &str,
        issued: &crate::ca::IssuedCertificate,
    ) -> Result<(), AuthorityError> {
        let now = self.now().unix_timestamp();
        let certificate = crate::store::NewCertificate {
            serial: issued.serial.to_string(),
            issuer_id: self.issuer_id,
            kind,
            key_id: None,
            subject: subject.to_owned(),
            public_key_sha256: issued.public_key_fingerprint.clone(),
            not_before: issued.not_before.unix_timestamp(),
            not_after: issued.not_after.unix_timestamp(),
            der: issued.der.to_vec(),
            created_at: now,
        };
        let event = self.event(
            "system",
            match kind {
                CertificateKind::Admin => AuditAction::AdminCertificateIssue,
                CertificateKind::Server | CertificateKind::Key => {
                    AuditAction::ServerCertificateIssue
                }
            },
            None,
            Some(issued.serial.to_string()),
            serde_json::json!({ "subject": subject }),
        );
        // A new random serial; a collision is as unlikely as for any key certificate and is
        // reported, not retried: a start-up that fails says so and the next one issues again.
        Ok(self
            .store
            .record_service_certificate(&certificate, &event)
            .await?)
    }

    /// `latchkey rotate-admin`, after the new admin certificate is issued and written:
    /// revokes every earlier admin certificate of the same administrator (superseded), so a
    /// leaked one stops working at once. Returns how many were revoked.
    ///
    /// Only an explicit rotation does this. A start-up renewal of an admin certificate near
    /// its end leaves the earlier ones to expire: replicas that hold copies of the home renew
    /// their own, and one replica's restart must not lock out the administrator on another.
    pub async fn rotate_admin_certificate(
        &self,
        new: &crate::ca::IssuedCertificate,
    ) -> Result<u64, AuthorityError> {
        let trust_domain = self.signer.trust_domain();
        let identity = crate::profile::PeerIdentity::from_der(&new.der, trust_domain)
            .map_err(|e| AuthorityError::Internal(format!("the new admin certificate: {e}")))?;
        let subject = identity.id.to_uri(trust_domain);
        let serial = identity.serial.to_string();
        let event = self.event(
            "system",
            AuditAction::AdminCertificateRotate,
            None,
            Some(serial.clone()),
            serde_json::json!({ "subject": subject }),
        );
        let superseded = self
            .store
            .supersede_admin_certificates(&subject, &serial, self.now().unix_timestamp(), &event)
            .await?;
        tracing::info!(
            superseded,
            subject,
            "earlier admin certificates revoked (superseded)"
        );
        self.crl.poke();
        Ok(superseded)
    }

    /// Records in the audit log that the CA's key files were encrypted at rest (`init
    /// --encrypt-keys`, `ca encrypt-keys`); `files` names them.
    pub async fn record_keys_encrypted(&self, files: &[String]) -> Result<(), AuthorityError> {
        let event = self.event(
            "system",
            AuditAction::CaKeysEncrypt,
            None,
            None,
            serde_json::json!({ "files": files, "scheme": "PKCS#8 PBES2 PBKDF2-HMAC-SHA256 AES-256-CBC" }),
        );
        Ok(self.store.record_event(&event).await?)
    }

    /// Counts a connection the listener turned away, by reason (see `tls::Refusal`).
    pub fn count_refused_connection(&self, reason: &'static str) {
        self.metrics
            .connections_refused
            .get_or_create(&vec![("reason", reason)])
            .inc();
    }

    /// `GET /metrics`: the metrics, for the administrator certificate or an address the
    /// policy allows. Issuance and revocation counts are the whole CA's, across tenants:
    /// not something a tenant's user, or anyone who can reach the port, should read.
    pub async fn scrape_metrics(&self, caller: &Caller) -> Result<String, AuthorityError> {
        let allowed = caller
            .source
            .is_some_and(|ip| self.policy.metrics_allow.iter().any(|net| net.contains(ip)));
        if !allowed {
            match self.authenticate_admin(caller).await {
                Ok(_) => {}
                Err(AuthorityError::Unauthenticated | AuthorityError::AdminRequired) => {
                    return Err(AuthorityError::MetricsForbidden);
                }
                // A certificate that is not (or no longer) good, or a store that does not
                // answer, says so as everywhere else.
                Err(e) => return Err(e),
            }
        }
        Ok(self.metrics.encode())
    }

    /// Closes the store's connections; pending work finishes first.
    pub async fn close(&self) {
        self.store.close().await;
    }

    /// The tenant with this name, or `NotFound`.
    async fn existing_tenant(
        &self,
        name: &crate::model::TenantName,
    ) -> Result<crate::store::TenantRow, AuthorityError> {
        self.store
            .tenant(name.as_str())
            .await?
            .ok_or(AuthorityError::NotFound("tenant"))
    }

    fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    fn event(
        &self,
        actor: &str,
        action: AuditAction,
        tenant: Option<&str>,
        target: Option<String>,
        detail: serde_json::Value,
    ) -> AuditEvent {
        AuditEvent {
            at: self.now().unix_timestamp(),
            actor: actor.to_owned(),
            action: action.as_str(),
            tenant: tenant.map(str::to_owned),
            target,
            detail,
        }
    }
}

/// A unix timestamp from the store as a time.
pub(crate) fn from_unix(t: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(t).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}
