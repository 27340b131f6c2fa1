//! The in-process tier: the CA's server (`latchkey::server::Server`, the code `latchkey
//! serve` runs) on an ephemeral loopback port, inside the test binary, deciding every time
//! rule by a [`ManualClock`] the test moves. A test that needs a certificate or a CRL to age
//! moves the clock instead of sleeping; sockets, the store and argon2 keep real time.
//!
//! The server runs on a thread of its own with a single-threaded runtime, so it stops
//! (like a killed process) when the test drops it, whatever the test's runtime does, and so
//! its log can go to `serve.log` as a subprocess's does: the log subscriber is that thread's.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use latchkey::authority::Policy;
use latchkey::clock::ManualClock;
use latchkey::home::InitOptions;
use latchkey::http::EdgeLimits;
use latchkey::server::{ServeOptions, Server};
use latchkey::tls::ListenerLimits;

/// A CA server running in this process. Stops when dropped.
pub struct InProcess {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl InProcess {
    /// Starts the server on the CA home `dir/certs` (made if empty), logging to
    /// `dir/serve.log`, with `policy`, on `database_url` (default: SQLite in the home), its
    /// rules decided by `clock`.
    pub fn start(
        dir: &Path,
        policy: Policy,
        database_url: Option<String>,
        clock: ManualClock,
    ) -> Self {
        let home = dir.join("certs");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("serve.log"))
            .expect("log file");
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let subscriber = tracing_subscriber::fmt()
                .with_writer(Mutex::new(log))
                .with_ansi(false)
                .with_max_level(tracing::Level::INFO)
                .finish();
            // This thread's: the runtime below runs every task of the server here.
            let _log = tracing::subscriber::set_default(subscriber);
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let options = ServeOptions {
                    home: latchkey::home::Home::new(home),
                    listen: "127.0.0.1:0".parse().unwrap(),
                    database_url,
                    init: InitOptions {
                        encrypt_keys: false,
                        pkcs11: None,
                        trust_domain: latchkey::profile::DEFAULT_TRUST_DOMAIN.to_owned(),
                        hostnames: Vec::new(),
                        public_url: None,
                        crl_url: None,
                    },
                    policy,
                    max_connections: None,
                    listener: ListenerLimits::default(),
                    edge: EdgeLimits::default(),
                    crl_http_listen: None,
                    rotate_before: latchkey::issuers::DEFAULT_ROTATE_BEFORE,
                    webhooks: latchkey::server::WebhookSettings::default(),
                    clock: Arc::new(clock),
                };
                let server = match Server::start(options).await {
                    Ok(server) => server,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                let _ = ready_tx.send(server.local_addr().map_err(|e| e.to_string()));
                // Dropping the server's future (and then the runtime) when told to stop
                // ends every connection and task at once, as a killed process would.
                tokio::select! {
                    () = server.run(std::future::pending()) => {}
                    _ = stop_rx => {}
                }
            });
        });
        let addr = match ready_rx.recv_timeout(Duration::from_secs(60)) {
            Ok(Ok(addr)) => addr,
            Ok(Err(e)) => panic!("the in-process CA did not start: {e}"),
            Err(_) => panic!("the in-process CA did not start within 60 s"),
        };
        Self {
            stop: Some(stop_tx),
            thread: Some(thread),
            addr,
        }
    }

    /// Stops the server and waits for its thread.
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The policy `latchkey serve` runs with by default, `--certificate-lifetime` and
/// `--crl-validity` set as given (and the renewal interval following the lifetime, as the
/// command line makes it).
pub fn policy(certificate_lifetime: time::Duration, crl_validity: time::Duration) -> Policy {
    Policy {
        certificate_lifetime,
        crl_validity,
        renew_interval: certificate_lifetime / 24,
        ..Policy::default()
    }
}
