//! The issuer registry: which intermediates the CA has, which one signs for whom, and their
//! keys, opened. It follows the store, so an intermediate made at one replica (`latchkey ca
//! rotate`, or the CA by itself when the active one nears its end) signs at every replica
//! within a second, and one retired anywhere stops being published everywhere.
//!
//! The authority asks it which intermediate signs a tenant's next certificate; the CRL
//! publisher asks it which intermediates' CRLs to publish; the HTTP edge asks it what
//! `GET /v1/ca` and `GET /v1/issuers` say. Each reads an [`IssuerSet`], a snapshot that
//! changes as a whole.

mod lifecycle;
mod set;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::watch;

use crate::ca::{IssuerFacts, RootSigner};
use crate::clock::Clock;
use crate::home::{HomeError, IssuerVault};
use crate::store::{IssuerRole, Store, StoreError};

pub use lifecycle::{DEFAULT_ROTATE_BEFORE, Rotation};
pub use set::{IssuerSet, LiveIssuer, LiveRoot};

/// How often the registry looks at the store for issuers made or changed elsewhere.
const FOLLOW_INTERVAL: StdDuration = StdDuration::from_millis(250);

/// Why the registry could not load, rotate or retire.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IssuerError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A key could not be made or opened, or a certificate not read.
    #[error(transparent)]
    Home(#[from] HomeError),
    /// The root could not sign a new intermediate.
    #[error(transparent)]
    Bootstrap(#[from] crate::ca::BootstrapError),
    /// A certificate of the chain does not parse.
    #[error("{what} certificate: {detail}")]
    Certificate {
        /// Which.
        what: &'static str,
        /// The parser's complaint.
        detail: String,
    },
    /// The root's key is not in the CA home, and only the root signs intermediates.
    #[error(
        "the root key is not in the CA home: new intermediates are signed where it is \
         (`latchkey ca rotate` there, with this CA's --database-url)"
    )]
    NoRootKey,
    /// Another process rotated at the same moment; its intermediate stands.
    #[error("another rotation happened at the same time; its intermediate is the active one")]
    RotatedElsewhere,
    /// Making a key or signing ran on a thread that failed.
    #[error("a key task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// The registry. Cheap to share (`Arc`); [`IssuerRegistry::follow`] keeps it current.
pub struct IssuerRegistry {
    store: Store,
    vault: Arc<IssuerVault>,
    /// The first root as a signer, when its key is in the CA home.
    root_signer: Option<Arc<RootSigner>>,
    root_issuer_id: i64,
    clock: Arc<dyn Clock>,
    current: watch::Sender<Arc<IssuerSet>>,
    /// One refresh at a time, so two never open the same key twice.
    refreshing: tokio::sync::Mutex<()>,
    /// `latchkey_issuer_not_after_timestamp_seconds`, set anew at each change.
    not_after: Family<IssuerLabels, Gauge>,
}

/// The labels of an intermediate's metric: its id, status and tenant ("" when shared).
type IssuerLabels = Vec<(&'static str, String)>;

impl std::fmt::Debug for IssuerRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuerRegistry")
            .field("current", &self.current.borrow())
            .finish_non_exhaustive()
    }
}

impl IssuerRegistry {
    /// Records the root and the home's intermediate among the store's issuers (if they are
    /// not yet) and loads every intermediate, opening the keys of those that still sign or
    /// are published. `root_signer` (the root with its key, if the home has it) makes new
    /// intermediates; without it, rotations and dedications are refused.
    pub async fn load(
        store: Store,
        vault: IssuerVault,
        root: rustls_pki_types::CertificateDer<'static>,
        root_signer: Option<Arc<RootSigner>>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, IssuerError> {
        let now = clock.now();
        let home = vault.home_signer().certificate().clone();
        record(&store, &home, IssuerRole::Intermediate, "intermediate", now).await?;
        let root_issuer_id = record(&store, &root, IssuerRole::Root, "root", now).await?;
        let first = LiveRoot::new(
            root_issuer_id,
            root.clone(),
            true,
            true,
            root_signer.clone(),
        )?;
        let empty = IssuerSet::empty(Arc::new(first));
        let registry = Self {
            store,
            vault: Arc::new(vault),
            root_signer,
            root_issuer_id,
            clock,
            current: watch::Sender::new(Arc::new(empty)),
            refreshing: tokio::sync::Mutex::new(()),
            not_after: Family::default(),
        };
        registry.refresh().await?;
        Ok(registry)
    }

    /// The issuers now.
    pub fn current(&self) -> Arc<IssuerSet> {
        self.current.borrow().clone()
    }

    /// The issuers now and every change from here on.
    pub fn watch(&self) -> watch::Receiver<Arc<IssuerSet>> {
        self.current.subscribe()
    }

    /// The first root as a signer, when its key is in the CA home.
    pub fn root_signer(&self) -> Option<&Arc<RootSigner>> {
        self.root_signer.as_ref()
    }

    /// True when the root that signs new intermediates has its key here.
    pub fn can_sign_intermediates(&self) -> bool {
        self.current()
            .active_root()
            .is_some_and(|root| root.signer.is_some())
    }

    /// The SPIFFE trust domain every certificate of this CA names.
    pub fn trust_domain(&self) -> &str {
        self.vault.home_signer().trust_domain()
    }

    /// The first root's id among the store's issuers.
    pub fn root_issuer_id(&self) -> i64 {
        self.root_issuer_id
    }

    /// Reads the store again if its issuers changed, keeping the keys already open. Returns
    /// true when the set changed.
    pub async fn refresh(&self) -> Result<bool, IssuerError> {
        let _one = self.refreshing.lock().await;
        let revision = self.store.issuers_revision().await?;
        let held = self.current();
        if revision == held.revision && !held.issuers().is_empty() {
            return Ok(false);
        }
        let records = self.store.intermediates().await?;
        let opened: HashMap<i64, Arc<LiveIssuer>> =
            held.issuers().iter().map(|i| (i.id, i.clone())).collect();
        let mut issuers = Vec::with_capacity(records.len());
        for record in records {
            let signer = match opened.get(&record.id).and_then(|i| i.signer.clone()) {
                Some(signer) => Some(signer),
                None if record.retired_at.is_some() => None,
                None => {
                    // PBKDF2 and token logins take a moment: off the async threads.
                    let vault = self.vault.clone();
                    let (id, certificate, key) =
                        (record.id, record.certificate.clone(), record.key.clone());
                    let opened =
                        tokio::task::spawn_blocking(move || vault.open(id, &certificate, &key));
                    match opened.await? {
                        Ok(signer) => Some(signer),
                        Err(e) => {
                            tracing::error!(issuer = record.id, error = %e,
                                "CANNOT OPEN AN INTERMEDIATE'S KEY: it cannot sign here");
                            None
                        }
                    }
                }
            };
            issuers.push(LiveIssuer::new(record, signer)?);
        }
        let (roots, crosses) = self.load_roots(&held).await?;
        let set = IssuerSet::new(revision, issuers, roots, crosses);
        let changed = set.differs_from(&held);
        self.set_metrics(&set);
        self.current.send_replace(Arc::new(set));
        Ok(changed)
    }

    /// The roots and cross-certificates as the store records them, each root's key opened
    /// (the first root's is the home's; one a rollover made is sealed in the store).
    async fn load_roots(
        &self,
        held: &IssuerSet,
    ) -> Result<
        (
            Vec<Arc<LiveRoot>>,
            Vec<rustls_pki_types::CertificateDer<'static>>,
        ),
        IssuerError,
    > {
        let mut roots = Vec::new();
        let mut crosses = Vec::new();
        for record in self.store.roots_and_crosses().await? {
            let certificate = rustls_pki_types::CertificateDer::from(record.certificate);
            if record.role == IssuerRole::Cross {
                crosses.push(certificate);
                continue;
            }
            let first = record.id == self.root_issuer_id;
            let active = record.superseded_at.is_none();
            let signer = match (&record.key, held.roots().iter().find(|r| r.id == record.id)) {
                (_, Some(opened)) if opened.signer.is_some() => opened.signer.clone(),
                (_, _) if first => self.root_signer.clone(),
                (crate::model::IssuerKeyLocation::Stored(sealed), _) => {
                    let (vault, id, sealed) = (self.vault.clone(), record.id, sealed.clone());
                    let der = certificate.to_vec();
                    let opened =
                        tokio::task::spawn_blocking(move || vault.open_root(id, &der, &sealed));
                    match opened.await? {
                        Ok(signer) => Some(Arc::new(signer)),
                        Err(e) => {
                            tracing::error!(root = record.id, error = %e,
                                "CANNOT OPEN A ROOT'S KEY: its CRL cannot be signed here");
                            None
                        }
                    }
                }
                _ => None,
            };
            roots.push(Arc::new(LiveRoot::new(
                record.id,
                certificate,
                first,
                active,
                signer,
            )?));
        }
        Ok((roots, crosses))
    }

    /// Registers the registry's metric in `metrics` (the registry `/metrics` serves): the end
    /// of every intermediate still published, so that an alert can fire well before one
    /// runs out (automatic rotation needs the root key in the home).
    pub fn register_metrics(&self, metrics: &mut prometheus_client::registry::Registry) {
        metrics.register(
            "issuer_not_after_timestamp_seconds",
            "End of each issuing intermediate still published (labels: issuer id, status, tenant)",
            self.not_after.clone(),
        );
    }

    fn set_metrics(&self, set: &IssuerSet) {
        self.not_after.clear();
        for issuer in set.published() {
            let labels = vec![
                ("issuer", issuer.id.to_string()),
                ("status", issuer.status.as_str().to_owned()),
                (
                    "tenant",
                    issuer
                        .tenant
                        .as_ref()
                        .map_or_else(String::new, |(_, name)| name.to_string()),
                ),
            ];
            self.not_after
                .get_or_create(&labels)
                .set(issuer.not_after.unix_timestamp());
        }
    }

    /// Follows the store until the process ends: issuers made, superseded or retired by
    /// another process reach this one within a fraction of a second.
    pub fn follow(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let registry = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(FOLLOW_INTERVAL).await;
                match registry.refresh().await {
                    Ok(true) => {
                        let set = registry.current();
                        tracing::info!(revision = set.revision, "issuers changed");
                    }
                    Ok(false) => {}
                    Err(e) => tracing::warn!(error = %e, "cannot follow the store's issuers"),
                }
            }
        })
    }
}

/// The id of `der` among the store's issuers, recorded with `role` if it is not yet.
async fn record(
    store: &Store,
    der: &[u8],
    role: IssuerRole,
    what: &'static str,
    now: time::OffsetDateTime,
) -> Result<i64, IssuerError> {
    let facts = IssuerFacts::of(der).map_err(|detail| IssuerError::Certificate { what, detail })?;
    let (fingerprint, subject) = (&facts.fingerprint, &facts.subject);
    Ok(store
        .ensure_issuer(fingerprint, subject, der, facts.not_after, role, now)
        .await?)
}
