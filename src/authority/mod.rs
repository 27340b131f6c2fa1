//! The authority: decides who may get what. Authentication, CSR checks, scope policy and
//! lifetimes live here and nowhere else; it is the only module that has certificates signed
//! by the [`crate::ca`] and records them in the [`crate::store`]. Of CRLs it knows one thing:
//! after a revocation it pokes the publisher ([`crate::publisher::CrlPoke`]), which builds,
//! stores and serves them.

mod admin;
mod admin_change;
mod authenticate;
pub mod csr;
mod enroll;
mod error;
mod inventory;
mod metrics;
mod paging;
mod password;
mod renew;
mod revoke;
mod throttle;
mod token;
mod webhook;

use crate::api::AuditAction;
use std::sync::Arc;

use time::{Duration, OffsetDateTime};

use crate::ca::Signer;
use crate::clock::Clock;
use crate::issuers::{IssuerRegistry, LiveIssuer};
use crate::model::TenantId;
use crate::publisher::CrlPoke;
use crate::store::{AuditEvent, CertificateKind, Store};

pub use authenticate::{Admin, Caller, Credential, Enroller, KeyHolder, Principal, Reader};
pub use error::{AuthorityError, RenewalRefusal};
pub use password::Passwords;

/// The lifetimes the authority applies.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// A certificate's lifetime (default 24 h); never beyond its key's or its issuer's end.
    pub certificate_lifetime: Duration,
    /// A key's lifetime when the request names none (default 90 days, or the tenant's
    /// maximum if that is shorter).
    pub default_key_lifetime: Duration,
    /// How far ahead each CRL's `nextUpdate` lies (default 1 h); a new one is built when
    /// half of it has passed. The authority does not read it: the server hands it, with
    /// `root_crl_validity`, to the CRL publisher (`crate::publisher::CrlSchedule`), so that
    /// one `Policy` still configures the whole CA.
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
pub use admin::MAX_TOKEN_BATCH;

impl Default for Policy {
    fn default() -> Self {
        Self {
            certificate_lifetime: Duration::hours(24),
            default_key_lifetime: Duration::days(90),
            crl_validity: crate::publisher::DEFAULT_CRL_VALIDITY,
            metrics_allow: &[],
            renew_interval: Duration::hours(1),
            certificates_per_key: 3,
            root_crl_validity: crate::publisher::DEFAULT_ROOT_CRL_VALIDITY,
        }
    }
}

/// The authority: the store, the issuers, the clock and the policy, in one place.
pub struct Authority {
    store: Store,
    /// The CA's intermediates: which one signs for whom, followed across replicas.
    issuers: Arc<IssuerRegistry>,
    /// The SPIFFE trust domain every certificate of this CA names.
    trust_domain: String,
    clock: Arc<dyn Clock>,
    passwords: Passwords,
    throttle: throttle::PasswordThrottle,
    policy: Policy,
    /// Tells the CRL publisher that revocations changed: all the authority knows of CRLs.
    crl: CrlPoke,
    metrics: metrics::Metrics,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority")
            .field("issuers", &self.issuers)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// A certificate the CA issued for its own use: what `home` writes.
#[derive(Debug)]
pub struct IssuedServiceCertificate {
    /// The certificate.
    pub certificate: crate::ca::IssuedCertificate,
    /// It and the intermediate that signed it, PEM.
    pub chain_pem: String,
    /// Its new key, PKCS#8 PEM.
    pub key_pem: String,
}

impl Authority {
    /// Puts the authority together. `issuers` says which intermediate signs; `crl` is the
    /// CRL publisher's poke, rung after every revocation; `metrics` is the registry
    /// `/metrics` serves, to which the authority adds its own.
    pub async fn new(
        store: Store,
        issuers: Arc<IssuerRegistry>,
        clock: Arc<dyn Clock>,
        policy: Policy,
        crl: CrlPoke,
        metrics: prometheus_client::registry::Registry,
    ) -> Result<Self, AuthorityError> {
        let passwords = tokio::task::spawn_blocking(Passwords::new)
            .await
            .map_err(|e| AuthorityError::Internal(e.to_string()))??;
        Ok(Self {
            store,
            trust_domain: issuers.trust_domain().to_owned(),
            issuers,
            clock,
            passwords,
            throttle: throttle::PasswordThrottle::default(),
            policy,
            crl,
            metrics: metrics::Metrics::new(metrics),
        })
    }

    /// An empty registry for the CA's metrics (all named `latchkey_…`): the CRL publisher
    /// registers its own in it, then [`Authority::new`] adds the authority's and serves it.
    pub fn metrics_registry() -> prometheus_client::registry::Registry {
        prometheus_client::registry::Registry::with_prefix("latchkey")
    }

    /// True when the CSR's key is one of the CA's own: a key certificate for it would let
    /// whoever holds the CA key pose as a client, and would say the CA key is a client's.
    fn is_ca_key(&self, csr: &csr::VerifiedCsr) -> bool {
        self.issuers.current().is_ca_key(csr.public_key.spki_der())
    }

    /// The intermediate that signs `tenant`'s next certificate, with its signer: its
    /// dedicated one, else the active shared one. Not ready when it cannot sign here.
    fn signing_issuer(&self, tenant: Option<TenantId>) -> Result<SigningIssuer, AuthorityError> {
        let set = self.issuers.current();
        let issuer = set
            .signing_for(tenant)
            .cloned()
            .ok_or_else(|| AuthorityError::NotReady("the CA has no active intermediate".into()))?;
        let signer = issuer.signer.clone().ok_or_else(|| {
            AuthorityError::NotReady(format!(
                "the key of the active intermediate (issuer {}) cannot be opened here; see the log",
                issuer.id
            ))
        })?;
        Ok(SigningIssuer { issuer, signer })
    }

    /// The CA's intermediates (for `GET /v1/issuers`, and to follow their changes).
    pub fn issuers(&self) -> &Arc<IssuerRegistry> {
        &self.issuers
    }

    /// `GET /v1/ca/root`: the root that signs new intermediates, PEM.
    pub fn active_root_pem(&self) -> String {
        self.issuers
            .current()
            .active_root()
            .map(|root| root.pem.clone())
            .unwrap_or_default()
    }

    /// `GET /v1/ca`: every shared intermediate still published, newest first, then the root;
    /// with a tenant, the chain of its keys (its own intermediates when it has them).
    pub fn ca_chain_pem(&self, tenant: Option<&crate::model::TenantName>) -> String {
        let set = self.issuers.current();
        match tenant {
            None => set.chain_pem().to_owned(),
            Some(name) => set.chain_pem_for_name(name),
        }
    }

    /// Ready to decide: the store answers and the active intermediate can sign and is valid.
    /// (Whether fresh CRLs are served is the publisher's to say: `/readyz` asks both.)
    pub async fn ready(&self) -> Result<(), AuthorityError> {
        self.store.ping().await?;
        let signing = self.signing_issuer(None)?;
        if signing.signer.not_after() <= self.now() {
            return Err(AuthorityError::NotReady(
                "the issuing CA has expired".into(),
            ));
        }
        Ok(())
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
    ) -> Result<IssuedServiceCertificate, AuthorityError> {
        let signing = self.signing_issuer(None)?;
        let (issued, key_pem) = which
            .issue(&signing.signer, self.now())
            .map_err(|e| AuthorityError::Internal(format!("issuing a service certificate: {e}")))?;
        let (kind, subject) = match which {
            crate::ca::ServiceCertificate::Server { .. } => {
                (CertificateKind::Server, "latchkey server".to_owned())
            }
            crate::ca::ServiceCertificate::Admin { name } => (
                CertificateKind::Admin,
                crate::profile::SpiffeId::Admin { name: name.clone() }.to_uri(&self.trust_domain),
            ),
        };
        self.record_service_certificate(kind, &subject, signing.issuer.id, &issued)
            .await?;
        Ok(IssuedServiceCertificate {
            chain_pem: format!("{}{}", issued.pem(), signing.issuer.pem),
            certificate: issued,
            key_pem,
        })
    }

    /// True when the certificate with this serial is recorded: at start-up, a service
    /// certificate on disk that the store does not know (a home moved to a new database) is
    /// replaced rather than used unrecorded.
    pub async fn has_recorded(
        &self,
        serial: &crate::model::Serial,
    ) -> Result<bool, AuthorityError> {
        Ok(self.store.certificate(serial).await?.is_some())
    }

    async fn record_service_certificate(
        &self,
        kind: CertificateKind,
        subject: &str,
        issuer_id: i64,
        issued: &crate::ca::IssuedCertificate,
    ) -> Result<(), AuthorityError> {
        let certificate = crate::store::NewCertificate {
            serial: issued.serial,
            issuer_id,
            kind,
            key_id: None,
            subject: subject.to_owned(),
            public_key_sha256: issued.public_key_fingerprint.clone(),
            not_before: issued.not_before,
            not_after: issued.not_after,
            der: issued.der.to_vec(),
            created_at: self.now(),
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
        let trust_domain = &self.trust_domain;
        let identity = crate::profile::PeerIdentity::from_der(&new.der, trust_domain)
            .map_err(|e| AuthorityError::Internal(format!("the new admin certificate: {e}")))?;
        let subject = identity.id.to_uri(trust_domain);
        let serial = identity.serial;
        let event = self.event(
            "system",
            AuditAction::AdminCertificateRotate,
            None,
            Some(serial.to_string()),
            serde_json::json!({ "subject": subject }),
        );
        let superseded = self
            .store
            .supersede_admin_certificates(&subject, &serial, self.now(), &event)
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
            .tenant(name)
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
            at: self.now(),
            actor: actor.to_owned(),
            action: action.as_str(),
            tenant: tenant.map(str::to_owned),
            target,
            detail,
        }
    }
}

/// The intermediate chosen to sign one certificate, and its signer.
struct SigningIssuer {
    issuer: Arc<LiveIssuer>,
    signer: Arc<Signer>,
}
