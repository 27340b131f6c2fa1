//! The CA server process: prepares the CA home and the store, then serves the HTTP API over
//! TLS. Each connection's handshake runs in its own task with a deadline, so a slow client
//! never stalls the others; the client certificate, if any, travels with each request.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::authority::{Authority, AuthorityError, Policy};
use crate::clock::Clock;
use crate::home::{Home, HomeError, InitOptions};
use crate::http::EdgeLimits;
use crate::issuers::{IssuerError, IssuerRegistry};
use crate::publisher::{CrlSchedule, Publisher, PublisherError};
use crate::tls::{Acceptor, ListenerLimits, OnRefusal};
use crate::webhook::WebhookWorker;

/// How long start-up waits for the first CRL.
const FIRST_CRL_WAIT: Duration = Duration::from_secs(10);

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The CA home could not be made or read.
    #[error(transparent)]
    Home(#[from] HomeError),
    /// The authority could not start.
    #[error(transparent)]
    Authority(#[from] AuthorityError),
    /// The CRL publisher could not start.
    #[error(transparent)]
    Publisher(#[from] PublisherError),
    /// The CA's intermediates could not be loaded.
    #[error(transparent)]
    Issuers(#[from] IssuerError),
    /// The TLS configuration was refused.
    #[error(transparent)]
    Tls(#[from] crate::tls::ConfigError),
    /// The listener could not be bound.
    #[error("cannot listen on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
}

/// How to run the CA.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The CA home, with the passphrase of its keys when they are (or are to be) encrypted.
    pub home: Home,
    /// The address to listen on.
    pub listen: SocketAddr,
    /// The database; default SQLite at `<home>/latchkey.db`.
    pub database_url: Option<String>,
    /// How to initialize the CA if the home is empty (and which extra server names to keep).
    pub init: InitOptions,
    /// Lifetimes.
    pub policy: Policy,
    /// Connections at once, all sources together; `None`: as many as the file-descriptor
    /// limit leaves room for, at most [`crate::tls::DEFAULT_MAX_CONNECTIONS`].
    pub max_connections: Option<usize>,
    /// Connections at once per source network, and whether a PROXY header names the client.
    pub listener: ListenerLimits,
    /// What the HTTP edge lets one client hold.
    pub edge: EdgeLimits,
    /// A plain-HTTP listener serving only the CRLs, for relying parties that fetch them from
    /// the distribution points and speak no HTTPS (`openssl -crl_download`, most CRL
    /// fetchers). A new CA initialized with it names it in its distribution points.
    pub crl_http_listen: Option<SocketAddr>,
    /// How long before the active intermediate's end the CA makes the next one by itself
    /// (default [`crate::issuers::DEFAULT_ROTATE_BEFORE`]).
    pub rotate_before: time::Duration,
    /// Webhook deliveries: the expiry notice lead times and the roots HTTPS receivers are
    /// checked against.
    pub webhooks: WebhookSettings,
    /// The time every rule of the CA is decided by: [`crate::clock::SystemClock`] but in tests, which move
    /// a [`crate::clock::ManualClock`] instead of waiting for certificates and CRLs to age.
    pub clock: Arc<dyn Clock>,
}

/// How the CA sends webhooks.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// `key.expiring` lead times before a key's end (none: no expiry notices).
    pub expiry_notice: Vec<crate::model::Span>,
    /// The PEM bundle of roots an https receiver's certificate must chain to.
    pub roots: std::path::PathBuf,
}

/// Where Debian (and most systems) keep the public roots.
pub const SYSTEM_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            expiry_notice: crate::webhook::DEFAULT_EXPIRY_NOTICE.to_vec(),
            roots: SYSTEM_ROOTS.into(),
        }
    }
}

/// The sender of webhooks, trusting the roots in `settings.roots`: a file that cannot be
/// read leaves https receivers untrusted (logged), and plain http to loopback still works.
fn webhook_poster(settings: &WebhookSettings) -> Result<crate::client::Poster, ServeError> {
    let roots = match std::fs::read(&settings.roots) {
        Ok(pem) => crate::tls::load_certificates(&pem, &settings.roots.display().to_string())
            .unwrap_or_default(),
        Err(e) => {
            tracing::warn!(file = %settings.roots.display(), error = %e,
                "cannot read the roots for webhook receivers; https webhooks will fail");
            Vec::new()
        }
    };
    let (config, taken) = crate::tls::public_client_config(roots)?;
    tracing::info!(roots = taken, file = %settings.roots.display(), "webhook receivers are checked against these roots");
    Ok(crate::client::Poster::new(config))
}

/// File descriptors kept back from connections: the store, the CA's files, the log.
fn fd_reserve(limit: u64) -> u64 {
    (limit / 8).max(32)
}

/// Raises the soft file-descriptor limit to the hard one (each connection holds one), and
/// returns the limit now in force.
fn raise_fd_limit() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read or raise the file-descriptor limit");
            rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft)
        }
    }
}

/// The CA, prepared and bound, not yet serving.
pub struct Server {
    listener: TcpListener,
    crl_listener: Option<TcpListener>,
    acceptor: Acceptor,
    limits: ListenerLimits,
    edge: EdgeLimits,
    /// The file-descriptor limit in force (raised to the hard limit at start).
    pub fd_limit: u64,
    authority: Arc<Authority>,
    crls: crate::publisher::PublishedCrls,
    /// The publisher's builders, the issuers' follower and maintainer: aborted when the
    /// server stops.
    background: Vec<tokio::task::JoinHandle<()>>,
    /// True when this start initialized a new CA.
    pub initialized_now: bool,
    /// The CA home.
    pub home: Home,
}

/// What [`prepare`] puts together.
#[derive(Debug)]
pub struct Prepared {
    /// The authority, holding the publisher's poke.
    pub authority: Arc<Authority>,
    /// The CA's intermediates, loaded; [`Server::start`] has them followed and maintained.
    pub issuers: Arc<IssuerRegistry>,
    /// The CRL publisher, not started: [`Server::start`] starts it, one-off commands do not.
    pub publisher: Publisher,
    /// The webhook worker, not started: [`Server::start`] starts it.
    pub webhooks: WebhookWorker,
    /// True when this start made a new CA.
    pub initialized_now: bool,
}

/// Initializes the CA home if it is empty, opens the store, puts the CRL publisher and the
/// authority together on it, and has the authority issue (and record) each of the CA's own
/// certificates that is due before the home writes it: none yet, near its end, lacking a
/// name asked for, or unknown to this store.
pub async fn prepare(
    home: &Home,
    database_url: Option<&str>,
    init: &InitOptions,
    policy: Policy,
    clock: Arc<dyn Clock>,
) -> Result<Prepared, ServeError> {
    let initialized_now = if home.is_initialized() {
        false
    } else {
        home.init(init, clock.now())?;
        true
    };
    let signer = Arc::new(home.signer()?);
    let database_url = database_url
        .map(str::to_owned)
        .unwrap_or_else(|| crate::store::sqlite_url(&home.database()));
    let root = crate::tls::load_certificates(&home.read(&home.ca_cert())?, "ca.pem")?;
    let store = crate::store::Store::connect(&database_url)
        .await
        .map_err(AuthorityError::from)?;
    let issuers = Arc::new(
        IssuerRegistry::load(
            store.clone(),
            home.issuer_vault(signer)?,
            root[0].clone(),
            home.root_signer()?.map(Arc::new),
            clock.clone(),
        )
        .await?,
    );
    let mut metrics = Authority::metrics_registry();
    issuers.register_metrics(&mut metrics);
    let schedule = CrlSchedule {
        validity: policy.crl_validity,
        root_validity: policy.root_crl_validity,
    };
    let publisher = Publisher::new(
        store.revocation_ledger(),
        issuers.watch(),
        clock.clone(),
        schedule,
        &mut metrics,
    );
    let webhooks = WebhookWorker::new(store.webhook_outbox(), clock.clone(), &mut metrics);
    let authority = Arc::new(
        Authority::new(
            store,
            issuers.clone(),
            clock.clone(),
            policy,
            publisher.poke(),
            metrics,
        )
        .await?,
    );
    for file in home.service_certificates(&init.hostnames, clock.now())? {
        let recorded = match &file.current {
            Some(serial) => authority.has_recorded(serial).await?,
            None => false,
        };
        if !recorded {
            let issued = authority.issue_service_certificate(&file.wanted).await?;
            home.write_service_certificate(
                &file.wanted,
                &issued.certificate,
                &issued.chain_pem,
                &issued.key_pem,
            )?;
        }
    }
    if initialized_now && init.encrypt_keys {
        let files = [home.root_key(), home.intermediate_key()].map(|p| p.display().to_string());
        authority.record_keys_encrypted(&files).await?;
    }
    Ok(Prepared {
        authority,
        issuers,
        publisher,
        webhooks,
        initialized_now,
    })
}

/// The certificates a client certificate's path may go through: every intermediate whose
/// CRL is published, and the cross-certificates between roots.
fn path_certificates(
    set: &crate::issuers::IssuerSet,
) -> Vec<rustls_pki_types::CertificateDer<'static>> {
    set.published()
        .map(|i| i.certificate.clone())
        .chain(set.cross_certificates().iter().cloned())
        .collect()
}

impl Server {
    /// Binds the listener, then prepares the CA. Binding comes first so that a start that
    /// cannot listen leaves nothing behind: a CA initialized by a failed start would carry,
    /// in every certificate, a CRL address on a port another service owns.
    pub async fn start(options: ServeOptions) -> Result<Self, ServeError> {
        let listener = TcpListener::bind(options.listen)
            .await
            .map_err(|e| ServeError::Bind(options.listen, e))?;
        let bound = listener
            .local_addr()
            .map_err(|e| ServeError::Bind(options.listen, e))?;
        let crl_listener = match options.crl_http_listen {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|e| ServeError::Bind(addr, e))?,
            ),
            None => None,
        };
        let fd_limit = raise_fd_limit();
        let room = usize::try_from(fd_limit.saturating_sub(fd_reserve(fd_limit)))
            .unwrap_or(usize::MAX)
            .max(1);
        let max_connections = match options.max_connections {
            None => room.min(crate::tls::DEFAULT_MAX_CONNECTIONS),
            Some(asked) if asked == 0 || asked > room => {
                tracing::warn!(
                    asked,
                    fd_limit,
                    "--max-connections is more than the file-descriptor limit leaves room for; \
                     holding {room}"
                );
                room
            }
            Some(asked) => asked,
        };
        let limits = ListenerLimits {
            max_connections,
            ..options.listener
        };
        // The CRL distribution point of a new CA names the port actually bound.
        let mut init = options.init.clone();
        if init.public_url.is_none() {
            let host = init.hostnames.first().map_or("localhost", String::as_str);
            init.public_url = Some(format!("https://{host}:{}", bound.port()));
        }
        // A new CA with a plain-HTTP CRL listener names it: the listener's address when it
        // is a specific one, else the first host name.
        if let (None, Some(crl)) = (&init.crl_url, &crl_listener) {
            let crl = crl.local_addr().map_err(|e| ServeError::Bind(bound, e))?;
            let host = if crl.ip().is_unspecified() {
                init.hostnames
                    .first()
                    .cloned()
                    .unwrap_or_else(|| "localhost".into())
            } else {
                match crl.ip() {
                    std::net::IpAddr::V6(ip) => format!("[{ip}]"),
                    ip => ip.to_string(),
                }
            };
            init.crl_url = Some(format!("http://{host}:{}", crl.port()));
        }
        let home = options.home.clone();
        let Prepared {
            authority,
            issuers,
            publisher,
            webhooks,
            initialized_now,
        } = prepare(
            &home,
            options.database_url.as_deref(),
            &init,
            options.policy,
            options.clock.clone(),
        )
        .await?;
        let chain = crate::tls::load_certificates(&home.read(&home.server_cert())?, "server.pem")?;
        let key = crate::tls::load_private_key(&home.read(&home.server_key())?, "server-key.pem")?;
        let roots = crate::tls::load_certificates(&home.read(&home.ca_cert())?, "ca.pem")?;
        // Client certificates are checked through every published intermediate (and the
        // cross-certificates between roots), as the registry follows them: a key renewed
        // under a new one authenticates at once. The server's own chain carries the
        // cross-certificates too, for clients that trust only the newest root.
        let intermediates = crate::tls::CaIntermediates::new(path_certificates(&issuers.current()));
        let server_chain = crate::tls::CaServerChain::new(
            chain,
            key,
            issuers.current().cross_certificates().to_vec(),
        )
        .map_err(crate::tls::ConfigError::from)?;
        let acceptor = Acceptor::from_config(crate::tls::ca_listener_config(
            server_chain.clone(),
            &roots,
            intermediates.clone(),
            options.clock.clone(),
        )?);
        let follower = issuers.follow();
        let maintainer = issuers.maintain(options.rotate_before, options.policy.crl_validity);
        let mut watch = issuers.watch();
        let intermediates_follower = tokio::spawn(async move {
            while watch.changed().await.is_ok() {
                let set = watch.borrow_and_update().clone();
                intermediates.replace(path_certificates(&set));
                server_chain.set_extra(set.cross_certificates().to_vec());
            }
        });
        // Serve only once a CRL is published (or the builder has had its chance and says
        // why not, loudly, in the log and in /readyz).
        let crls = publisher.crls();
        let key_publisher = publisher.start();
        // The first root CRL before serving, so a CA holding the root key is ready at once.
        if let Err(e) = publisher.refresh_root_crls().await {
            tracing::warn!(error = %e, "cannot refresh the root CRL at start-up");
        }
        let root_publisher = publisher.start_root();
        if !crls.wait_for_all(FIRST_CRL_WAIT).await {
            tracing::error!("no CRL could be published at start-up; /readyz reports not ready");
        }
        let webhook_worker = webhooks.start(
            webhook_poster(&options.webhooks)?,
            options.webhooks.expiry_notice.clone(),
        );
        let background = vec![
            webhook_worker,
            key_publisher,
            root_publisher,
            follower,
            maintainer,
            intermediates_follower,
        ];
        Ok(Self {
            listener,
            crl_listener,
            acceptor,
            limits,
            edge: options.edge,
            fd_limit,
            authority,
            crls,
            background,
            initialized_now,
            home,
        })
    }

    /// The connection limits in force.
    pub fn limits(&self) -> &ListenerLimits {
        &self.limits
    }

    /// The address the listener is bound to (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The address of the plain-HTTP CRL listener, if there is one.
    pub fn crl_http_addr(&self) -> Option<SocketAddr> {
        self.crl_listener.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Serves until `shutdown` completes, then lets open connections finish.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let crl_http = self.crl_listener.map(|listener| {
            let router = crate::http::crl_router(self.crls.clone(), self.edge);
            tokio::spawn(async move {
                let service = router.into_make_service_with_connect_info::<SocketAddr>();
                if let Err(e) = axum::serve(listener, service).await {
                    tracing::error!(error = %e, "the plain-HTTP CRL listener stopped");
                }
            })
        });
        let router = crate::http::router(self.authority.clone(), self.crls.clone(), self.edge);
        let authority = self.authority.clone();
        let on_refusal: OnRefusal =
            Arc::new(move |refusal| authority.count_refused_connection(refusal.as_str()));
        crate::tls::serve_with_limits(
            self.listener,
            self.acceptor,
            router,
            |_| (),
            shutdown,
            self.limits,
            on_refusal,
        )
        .await;
        for task in &self.background {
            task.abort();
        }
        if let Some(crl_http) = crl_http {
            crl_http.abort();
        }
        self.authority.close().await;
    }
}
