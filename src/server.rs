//! The CA server process: prepares the CA home and the store, then serves the HTTP API over
//! TLS. Each connection's handshake runs in its own task with a deadline, so a slow client
//! never stalls the others; the client certificate, if any, travels with each request.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::authority::{Authority, AuthorityError, Policy};
use crate::clock::{Clock, SystemClock};
use crate::home::{Home, HomeError, InitOptions};
use crate::tls::Acceptor;

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
    /// The CA home.
    pub home: PathBuf,
    /// The address to listen on.
    pub listen: SocketAddr,
    /// The database; default SQLite at `<home>/latchkey.db`.
    pub database_url: Option<String>,
    /// How to initialize the CA if the home is empty (and which extra server names to keep).
    pub init: InitOptions,
    /// Lifetimes.
    pub policy: Policy,
}

/// The CA, prepared and bound, not yet serving.
pub struct Server {
    listener: TcpListener,
    acceptor: Acceptor,
    authority: Arc<Authority>,
    publisher: tokio::task::JoinHandle<()>,
    /// True when this start initialized a new CA.
    pub initialized_now: bool,
    /// The CA home.
    pub home: Home,
}

/// Initializes the CA home if it is empty, renews the CA's own certificates when due, opens
/// the store, and makes sure every certificate the CA issued for itself is recorded. Returns
/// the authority and whether a new CA was made.
pub async fn prepare(
    home: &Home,
    database_url: Option<&str>,
    init: &InitOptions,
    policy: Policy,
    clock: Arc<dyn Clock>,
) -> Result<(Arc<Authority>, bool), ServeError> {
    let initialized_now = if home.is_initialized() {
        false
    } else {
        home.init(init, clock.now())?;
        true
    };
    let signer = home.signer()?;
    home.refresh_service_certificates(&signer, &init.hostnames, clock.now())?;
    let database_url = database_url
        .map(str::to_owned)
        .unwrap_or_else(|| crate::store::sqlite_url(&home.database()));
    let root = crate::tls::load_certificates(&home.read(&home.ca_cert())?, "ca.pem")?;
    let authority =
        Arc::new(Authority::connect(&database_url, signer, &root[0], clock, policy).await?);
    for file in [home.admin_dir().join("cert.pem"), home.server_cert()] {
        let leaf = crate::tls::load_certificates(&home.read(&file)?, &file.display().to_string())?;
        authority
            .ensure_service_certificate_recorded(leaf[0].clone())
            .await?;
    }
    Ok((authority, initialized_now))
}

impl Server {
    /// Prepares the CA and binds the listener.
    pub async fn start(options: ServeOptions) -> Result<Self, ServeError> {
        let home = Home::new(&options.home);
        let (authority, initialized_now) = prepare(
            &home,
            options.database_url.as_deref(),
            &options.init,
            options.policy,
            Arc::new(SystemClock),
        )
        .await?;
        let chain = crate::tls::load_certificates(&home.read(&home.server_cert())?, "server.pem")?;
        let key = crate::tls::load_private_key(&home.read(&home.server_key())?, "server-key.pem")?;
        let roots = crate::tls::load_certificates(&home.read(&home.ca_cert())?, "ca.pem")?;
        let acceptor = Acceptor::from_config(crate::tls::ca_listener_config(chain, key, &roots)?);
        // Serve only once a CRL is published (or the builder has had its chance and says
        // why not, loudly, in the log and in /readyz).
        let publisher = authority.start_crl_publisher();
        if authority.crl_newer_than(0, FIRST_CRL_WAIT).await.is_none() {
            tracing::error!("no CRL could be published at start-up; /readyz reports not ready");
        }
        let listener = TcpListener::bind(options.listen)
            .await
            .map_err(|e| ServeError::Bind(options.listen, e))?;
        Ok(Self {
            listener,
            acceptor,
            authority,
            publisher,
            initialized_now,
            home,
        })
    }

    /// The address the listener is bound to (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` completes, then lets open connections finish.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let router = crate::http::router(self.authority.clone());
        crate::tls::serve(self.listener, self.acceptor, router, |_| (), shutdown).await;
        self.publisher.abort();
        self.authority.close().await;
    }
}
