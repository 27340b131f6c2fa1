//! The test harness: a real `latchkey serve` process on an ephemeral loopback port, in a
//! temporary CA home, plus helpers to drive it with the library client, the CLI, openssl
//! and curl, and to read its store.
//!
//! Two tiers. [`Ca::start`] and its kin run the process: for what needs one (crashes,
//! replicas, the CLI, third-party programs on real time). [`Ca::in_process`] runs the same
//! server inside the test on a clock the test moves ([`Ca::advance`]): for rules that wait
//! on time (certificate lifetimes, CRL schedules), so no test sleeps for a CRL to age.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use base64::Engine;
use latchkey::api::{EnrollRequest, EnrollResponse, NewTenant, NewToken, NewUser};
use latchkey::client::{Auth, Client, Connection, KeyType, new_key_pair};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tempfile::TempDir;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::client::TlsStream;

pub mod browser;
mod in_process;

pub use in_process::policy;

pub const BIN: &str = env!("CARGO_BIN_EXE_latchkey");
pub const PASSWORD: &str = "correct-horse-battery";

/// A running CA in its own temporary directory. Killed when dropped.
pub struct Ca {
    pub dir: TempDir,
    pub url: String,
    server: Running,
    /// The clock of an in-process CA ([`Ca::in_process`]); `None` for a process.
    clock: Option<latchkey::clock::ManualClock>,
    /// The database, when not the embedded SQLite.
    pub database_url: Option<String>,
    extra: Vec<String>,
    /// Environment variables every start of the server gets (a PKCS#11 module's settings).
    env: Vec<(String, String)>,
}

impl Ca {
    /// Starts a CA with a fresh home.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts a CA with extra `serve` arguments.
    pub fn start_with(extra: &[&str]) -> Self {
        Self::start_in(tempfile::tempdir().expect("tempdir"), extra, &[])
    }

    /// Starts a CA in this process (see [`in_process`]) with `policy`, on SQLite in its
    /// home, its rules decided by a clock the test moves with [`Ca::advance`].
    pub fn in_process(policy: latchkey::authority::Policy) -> Self {
        Self::in_process_with(policy, None)
    }

    /// [`Ca::in_process`] on the PostgreSQL database at `database_url`.
    pub fn in_process_on(database_url: &str, policy: latchkey::authority::Policy) -> Self {
        Self::in_process_with(policy, Some(database_url.to_owned()))
    }

    fn in_process_with(policy: latchkey::authority::Policy, database_url: Option<String>) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = latchkey::clock::ManualClock::new();
        let server =
            in_process::InProcess::start(dir.path(), policy, database_url.clone(), clock.clone());
        Self {
            url: format!("https://{}", server.addr),
            dir,
            server: Running::InProcess(server),
            clock: Some(clock),
            database_url,
            extra: Vec::new(),
            env: Vec::new(),
        }
    }

    /// The clock of an in-process CA.
    pub fn clock(&self) -> &latchkey::clock::ManualClock {
        self.clock
            .as_ref()
            .expect("only an in-process CA (Ca::in_process) has a clock to move")
    }

    /// Now, by the CA's clock (the system's for a process).
    pub fn now(&self) -> time::OffsetDateTime {
        use latchkey::clock::Clock;
        match &self.clock {
            Some(clock) => clock.now(),
            None => latchkey::clock::SystemClock.now(),
        }
    }

    /// Moves an in-process CA's clock forward by `by`: certificates and CRLs age at once.
    pub fn advance(&self, by: time::Duration) {
        self.clock().advance(by);
    }

    /// Lets `by` pass for the CA: moves an in-process CA's clock (whole seconds, rounded up),
    /// waits in real time for a process.
    pub async fn wait_or_advance(&self, by: time::Duration) {
        match &self.clock {
            Some(clock) => clock.advance(time::Duration::seconds(
                by.whole_seconds() + i64::from(by.subsec_nanoseconds() > 0),
            )),
            None => tokio::time::sleep(by.try_into().expect("a positive wait")).await,
        }
    }

    /// Starts a CA in `dir` (whose `certs/` a test may have initialized) with extra `serve`
    /// arguments and environment variables, which every restart keeps.
    pub fn start_in(dir: tempfile::TempDir, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let server = spawn_serve(dir.path(), ANY_PORT, &extra, &env);
        Self {
            dir,
            url: server.url.clone(),
            server: Running::Process(server),
            clock: None,
            database_url: None,
            extra,
            env,
        }
    }

    /// Starts a CA on the PostgreSQL database at `database_url`.
    pub fn start_on(database_url: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let extra = vec!["--database-url".to_owned(), database_url.to_owned()];
        let server = spawn_serve(dir.path(), ANY_PORT, &extra, &[]);
        Self {
            dir,
            url: server.url.clone(),
            server: Running::Process(server),
            clock: None,
            database_url: Some(database_url.to_owned()),
            extra,
            env: Vec::new(),
        }
    }

    /// Starts a CA on the PostgreSQL database at `database_url`, with extra `serve` arguments.
    pub fn start_on_with(database_url: &str, extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut args = vec!["--database-url".to_owned(), database_url.to_owned()];
        args.extend(extra.iter().map(|s| s.to_string()));
        let server = spawn_serve(dir.path(), ANY_PORT, &args, &[]);
        Self {
            dir,
            url: server.url.clone(),
            server: Running::Process(server),
            clock: None,
            database_url: Some(database_url.to_owned()),
            extra: args,
            env: Vec::new(),
        }
    }

    /// Another `latchkey serve` on the same CA home and database (a replica), on its own
    /// port. Killed when dropped.
    pub fn replica(&self) -> Replica {
        let server = spawn_serve(self.dir.path(), ANY_PORT, &self.extra, &self.env);
        Replica {
            url: server.url.clone(),
            _server: server,
        }
    }

    /// A client of a replica, presenting the admin certificate.
    pub fn admin_at(&self, url: &str) -> Client {
        let dir = self.home().join("admin");
        let chain = std::fs::read(dir.join("chain.pem")).unwrap();
        let key = std::fs::read(dir.join("key.pem")).unwrap();
        Client::new(url, &self.ca_pem(), Some((&chain, &key))).expect("client")
    }

    /// The store the server writes, opened from the test.
    pub async fn store(&self) -> latchkey::store::Store {
        let url = self
            .database_url
            .clone()
            .unwrap_or_else(|| latchkey::store::sqlite_url(&self.home().join("latchkey.db")));
        latchkey::store::Store::connect(&url)
            .await
            .expect("open store")
    }

    /// Stops the server process (SIGKILL) and starts it again on the same home.
    pub fn restart(&mut self) -> String {
        self.stop();
        let server = spawn_serve(self.dir.path(), ANY_PORT, &self.extra, &self.env);
        self.url = server.url.clone();
        self.server = Running::Process(server);
        self.url.clone()
    }

    /// Restarts the server on the same home with other `serve` arguments.
    pub fn restart_with(&mut self, extra: &[&str]) -> String {
        self.extra = extra.iter().map(|s| s.to_string()).collect();
        self.restart()
    }

    /// Starts a stopped server again on the same home and the same address: a CA that was
    /// down for a while and came back, as its clients see it.
    pub fn start_again(&mut self) {
        let listen = self
            .url
            .strip_prefix("https://")
            .expect("an https URL")
            .to_owned();
        let server = spawn_serve(self.dir.path(), &listen, &self.extra, &self.env);
        assert_eq!(server.url, self.url, "back at the same address");
        self.server = Running::Process(server);
    }

    /// Restarts the server on another database (after `latchkey migrate`).
    pub fn restart_on(&mut self, database_url: &str) -> String {
        // Other `serve` arguments stay; only the database changes.
        if let Some(i) = self.extra.iter().position(|a| a == "--database-url") {
            self.extra.drain(i..(i + 2).min(self.extra.len()));
        }
        self.extra
            .extend(["--database-url".to_owned(), database_url.to_owned()]);
        self.database_url = Some(database_url.to_owned());
        self.restart()
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        match &self.server {
            Running::Process(server) => server.child.id(),
            Running::InProcess(_) => panic!("an in-process CA has no process of its own"),
        }
    }

    /// What the server has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("serve.log")).unwrap_or_default()
    }

    /// Stops the server process.
    pub fn stop(&mut self) {
        match &mut self.server {
            Running::Process(server) => server.kill(),
            Running::InProcess(server) => server.stop(),
        }
    }

    pub fn home(&self) -> PathBuf {
        self.dir.path().join("certs")
    }

    pub fn ca_pem(&self) -> Vec<u8> {
        std::fs::read(self.home().join("ca.pem")).expect("ca.pem")
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// The CLI, pointed at this CA and run in its directory.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.cli_with_env(args, &[])
    }

    pub fn cli_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .current_dir(self.dir.path())
            .env("LATCHKEY_SERVER", &self.url)
            .env("LATCHKEY_HOME", self.home())
            .env_remove("LATCHKEY_PASSWORD")
            .env_remove("LATCHKEY_TOKEN")
            .stdin(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().expect("run latchkey")
    }

    pub fn anonymous(&self) -> Client {
        Client::new(&self.url, &self.ca_pem(), None).expect("client")
    }

    pub fn admin(&self) -> Client {
        self.with_identity(&self.home().join("admin"))
    }

    /// A client presenting the certificate in a key directory.
    pub fn with_identity(&self, dir: &Path) -> Client {
        let chain = std::fs::read(dir.join("chain.pem")).expect("chain.pem");
        let key = std::fs::read(dir.join("key.pem")).expect("key.pem");
        Client::new(&self.url, &self.ca_pem(), Some((&chain, &key))).expect("client")
    }

    /// A raw connection, for requests the library client would never send.
    pub fn raw(&self, identity: Option<&Path>) -> Connection {
        let files = identity.map(|d| {
            (
                std::fs::read(d.join("chain.pem")).unwrap(),
                std::fs::read(d.join("key.pem")).unwrap(),
            )
        });
        Connection::new(
            &self.url,
            &self.ca_pem(),
            files.as_ref().map(|(c, k)| (c.as_slice(), k.as_slice())),
        )
        .expect("connection")
    }

    /// An anonymous TLS stream to the CA, for writing HTTP by hand (slowly, or too much).
    pub async fn tls_stream(&self) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
        let roots = latchkey::tls::load_certificates(&self.ca_pem(), "ca.pem").unwrap();
        let config = latchkey::tls::client_config(&roots, None).unwrap();
        let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
        let address = self.url.trim_start_matches("https://");
        let tcp = tokio::net::TcpStream::connect(address).await.unwrap();
        let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
        connector.connect(name, tcp).await.unwrap()
    }

    /// A digest of every row the server's requests can write: compare two to prove that
    /// nothing was added, removed or changed in between.
    pub async fn snapshot(&self) -> BTreeMap<&'static str, String> {
        let store = self.store().await;
        let digests = store.content_digests().await.expect("digests");
        store.close().await;
        digests
    }

    /// Row counts of every table, read from the store the server writes.
    pub async fn counts(&self) -> BTreeMap<&'static str, i64> {
        let store = self.store().await;
        let counts = store.row_counts().await.expect("counts");
        store.close().await;
        counts
    }

    /// The DER of a recorded certificate.
    pub async fn recorded_der(&self, serial: &str) -> Option<Vec<u8>> {
        let store = self.store().await;
        let serial = serial.parse().expect("a serial as the CA writes it");
        let der = store.certificate_der(&serial).await.expect("query");
        store.close().await;
        der
    }

    /// Adds a tenant and a user with `scopes`, password [`PASSWORD`].
    pub async fn tenant_with_user(&self, tenant: &str, user: &str, scopes: &[&str]) {
        let admin = self.admin();
        admin
            .add_tenant(&NewTenant {
                name: tenant.parse().expect("a valid tenant name"),
                max_key_days: None,
                dedicated_issuer: false,
            })
            .await
            .expect("add tenant");
        self.user(user, scopes).await;
    }

    pub async fn user(&self, user: &str, scopes: &[&str]) {
        self.admin()
            .add_user(&NewUser {
                user: user.parse().expect("owner@tenant"),
                password: PASSWORD.into(),
                scopes: scope_set(scopes),
            })
            .await
            .expect("add user");
    }

    pub async fn token(&self, owner: &str, scopes: &[&str]) -> String {
        self.admin()
            .create_token(&NewToken {
                owner: owner.parse().expect("owner@tenant"),
                scopes: scope_set(scopes),
                ttl_seconds: None,
            })
            .await
            .expect("create token")
            .token
            .expect("secret")
            .into_inner()
    }

    /// A key directory `<dir>/<name>/` holding a key of `user` that lived one second and has
    /// expired by the time this returns: by moving the clock two seconds on for an in-process
    /// CA, by waiting for a process.
    pub async fn expired_key(&self, user: &str, scopes: &[&str], name: &str) -> EnrollResponse {
        let pair = new_key_pair(KeyType::P256).expect("keygen");
        let mut brief = request(&pair.csr_pem, scopes, name);
        brief.ttl_seconds = Some(1);
        let answer = self
            .anonymous()
            .enroll(&password(user), &brief)
            .await
            .expect("enroll");
        let dir = latchkey::client::KeyDir::new(self.path(name));
        dir.write_key(&pair.key_pem).expect("key.pem");
        dir.write_certificates(&answer.certificate, &answer.chain)
            .expect("cert.pem");
        self.wait_or_advance(time::Duration::milliseconds(2100))
            .await;
        answer
    }

    /// Enrolls a key for `user` into `<dir>/<name>/` and returns the answer.
    pub async fn enroll_into(&self, user: &str, scopes: &[&str], name: &str) -> EnrollResponse {
        let dir = latchkey::client::KeyDir::new(self.path(name));
        self.anonymous()
            .enroll_into(
                &password(user),
                &dir,
                KeyType::P256,
                latchkey::client::KeyRequest::new(name).scopes(scopes),
            )
            .await
            .expect("enroll")
    }
}

/// Tenant `acme`, alice (`read:metrics`, `write:events`) with a key in `<dir>/alice/`, and a
/// second key in `<dir>/gone/` revoked for key compromise: the DER of the first CRL that
/// lists it.
pub async fn alice_and_a_revoked_key(ca: &Ca) -> Vec<u8> {
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics", "write:events"])
        .await;
    ca.enroll_into("alice@acme", &["write:events", "read:metrics"], "alice")
        .await;
    let gone = ca
        .enroll_into("alice@acme", &["read:metrics"], "gone")
        .await;
    let (before, _) = ca.anonymous().crl(None, 0).await.unwrap().unwrap();
    ca.admin()
        .revoke_key(None, &gone.key.id, Some("key_compromise"))
        .await
        .unwrap();
    let (_, der) = ca
        .anonymous()
        .crl(Some(before), 10)
        .await
        .unwrap()
        .expect("a new CRL");
    der
}

/// A CA's server: a `latchkey serve` process, or the same server in this process.
enum Running {
    Process(Serve),
    InProcess(in_process::InProcess),
}

/// A second server process on a CA's home and database. Killed when dropped.
pub struct Replica {
    _server: Serve,
    pub url: String,
}

/// A schema of its own in the test PostgreSQL (`LATCHKEY_TEST_POSTGRES_URL`), dropped
/// afterwards; `None` (and a line saying the test is skipped) when the variable is unset.
pub struct PgSchema {
    base: String,
    /// The schema's name, also the connections' application_name.
    pub name: String,
    /// A URL whose connections use this schema.
    pub url: String,
}

impl PgSchema {
    pub async fn create(test: &str) -> Option<Self> {
        let Ok(base) = std::env::var("LATCHKEY_TEST_POSTGRES_URL") else {
            // CI never skips: a PostgreSQL test that did not run there fails, so a run
            // without the server cannot pass for a run that tested it.
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{test}: LATCHKEY_TEST_POSTGRES_URL is not set and CI=true: PostgreSQL tests \
                 never skip in CI"
            );
            // Written to stderr directly, past the test harness's capture, so a skip is
            // always visible, on its own line.
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {test}: LATCHKEY_TEST_POSTGRES_URL is not set (PostgreSQL tests need a server)"
            );
            return None;
        };
        let bytes: [u8; 6] = rand_bytes();
        let name = format!("lk_{}", hex::encode(bytes));
        let pool = sqlx::PgPool::connect(&base)
            .await
            .expect("connect to the test PostgreSQL");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {name}")))
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}options=-csearch_path%3D{name}&application_name={name}");
        Some(Self { base, name, url })
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let (base, name) = (self.base.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(pool) = sqlx::PgPool::connect(&base).await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {name} CASCADE")))
                        .execute(&pool)
                        .await;
                    pool.close().await;
                }
            })
        })
        .join();
    }
}

fn rand_bytes<const N: usize>() -> [u8; N] {
    let pair = new_key_pair(KeyType::Ed25519).unwrap();
    let digest = ring::digest::digest(&ring::digest::SHA256, pair.key_pem.as_bytes());
    digest.as_ref()[..N].try_into().unwrap()
}

/// `--listen` for a fresh server: any free loopback port.
const ANY_PORT: &str = "127.0.0.1:0";

/// A `latchkey serve` process and what it printed on start-up. Killed when dropped.
pub struct Serve {
    child: Child,
    /// Where it listens (`https://…`).
    pub url: String,
    /// Its start-up block, line by line.
    pub lines: Vec<String>,
}

impl Serve {
    /// Kills the process and waits for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs `latchkey serve ARGS` in `dir` (home `dir/certs`, log appended to `dir/serve.log`)
/// with `env` on top of an environment without latchkey's variables, and waits for its
/// start-up block, which ends with the `enroll` command to try.
pub fn serve(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Serve {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("serve.log"))
        .expect("log file");
    let mut cmd = Command::new(BIN);
    cmd.arg("serve")
        .args(args)
        .current_dir(dir)
        .env("LATCHKEY_HOME", dir.join("certs"))
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log));
    for (k, _) in std::env::vars() {
        if k.starts_with("LATCHKEY_") && k != "LATCHKEY_TEST_POSTGRES_URL" {
            cmd.env_remove(k);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn latchkey serve");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    // Keeps reading after start-up, so the server never writes into a closed pipe.
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut lines: Vec<String> = Vec::new();
    while !lines.last().is_some_and(|l| l.contains(" enroll ")) {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => lines.push(line),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                let log = std::fs::read_to_string(dir.join("serve.log")).unwrap_or_default();
                panic!("latchkey serve did not start; printed {lines:?}\n{log}");
            }
        }
    }
    let url = lines
        .iter()
        .find_map(|l| l.strip_prefix("latchkey: listening on "))
        .unwrap_or_else(|| panic!("no 'listening on' line in {lines:?}"))
        .trim()
        .to_owned();
    Serve { child, url, lines }
}

/// `latchkey serve --listen LISTEN EXTRA…` for a [`Ca`].
fn spawn_serve(dir: &Path, listen: &str, extra: &[String], env: &[(String, String)]) -> Serve {
    let mut args = vec!["--listen", listen];
    args.extend(extra.iter().map(String::as_str));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    serve(dir, &args, &env)
}

/// A free loopback port (bound and released: another process could take it in between, but
/// nothing else here binds fixed ports).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn password(user: &str) -> Auth {
    Auth::Password {
        user: user.into(),
        password: PASSWORD.into(),
    }
}

/// `scopes` as a set; the test names valid, distinct scopes.
pub fn scope_set(scopes: &[&str]) -> latchkey::model::ScopeSet {
    latchkey::model::ScopeSet::parse(scopes).expect("valid, distinct scopes")
}

pub fn request(csr: &str, scopes: &[&str], name: &str) -> EnrollRequest {
    EnrollRequest {
        csr: csr.into(),
        name: name.into(),
        description: String::new(),
        scopes: scope_set(scopes),
        ttl_seconds: None,
        expires_at: None,
    }
}

/// A fresh P-256 CSR made by the library.
pub fn csr() -> String {
    new_key_pair(KeyType::P256).expect("keygen").csr_pem
}

/// Runs openssl with `args` in `dir`, panicking with its stderr on failure.
pub fn openssl(dir: &Path, args: &[&str]) -> Output {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is installed");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A CSR made by openssl: `newkey` is what follows `-newkey` (e.g. `rsa:2048`, `ed25519`,
/// `ec -pkeyopt ec_paramgen_curve:P-384`), `extra` more `req` arguments.
pub fn openssl_csr(dir: &Path, name: &str, newkey: &[&str], extra: &[&str]) -> String {
    let key = format!("{name}.key");
    let csr = format!("{name}.csr");
    let mut args = vec![
        "req",
        "-new",
        "-nodes",
        "-subj",
        "/CN=ignored/O=other-tenant",
        "-keyout",
        &key,
        "-out",
        &csr,
        "-newkey",
    ];
    args.extend_from_slice(newkey);
    args.extend_from_slice(extra);
    openssl(dir, &args);
    std::fs::read_to_string(dir.join(csr)).expect("csr")
}

/// A problem document's code, from a failed client call.
pub fn problem_code(err: latchkey::client::ClientError) -> String {
    match err {
        latchkey::client::ClientError::Problem(p) => p.code,
        other => panic!("expected a problem document, got {other}"),
    }
}

// Raw connections, for what the library client cannot do: present any chain, connect from
// another loopback address, or come in through a (simulated) TCP load balancer.

/// A TLS client of `ca` presenting `identity` (any chain and its leaf's key) or nothing.
pub fn connector(
    ca: &Ca,
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> tokio_rustls::TlsConnector {
    let roots = latchkey::tls::load_certificates(&ca.ca_pem(), "ca.pem").unwrap();
    let config = latchkey::tls::client_config(&roots, identity).unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

pub fn ca_address(ca: &Ca) -> SocketAddr {
    ca.url.trim_start_matches("https://").parse().unwrap()
}

/// A TCP connection to `ca` from the loopback address `from` (127.0.0.0/8 is all ours).
pub async fn tcp_from(ca: &Ca, from: IpAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from, 0))?;
    socket.connect(ca_address(ca)).await
}

/// The TLS handshake on `tcp`, anonymous.
pub async fn tls(ca: &Ca, tcp: TcpStream) -> std::io::Result<TlsStream<TcpStream>> {
    let name = ServerName::try_from("localhost").unwrap();
    connector(ca, None).connect(name, tcp).await
}

/// A PROXY protocol v2 header naming `client` as the source, as HAProxy sends it.
pub fn proxy_header(client: SocketAddr, server: SocketAddr) -> Vec<u8> {
    let (client, server) = match (client, server) {
        (SocketAddr::V6(_), SocketAddr::V4(s)) => (
            client,
            SocketAddr::new(IpAddr::V6(s.ip().to_ipv6_mapped()), s.port()),
        ),
        pair => pair,
    };
    ppp::v2::Builder::with_addresses(
        ppp::v2::Version::Two | ppp::v2::Command::Proxy,
        ppp::v2::Protocol::Stream,
        (client, server),
    )
    .build()
    .unwrap()
}

/// A connection through a (simulated) TCP load balancer for `client`: the PROXY header,
/// then TLS.
pub async fn tls_as(ca: &Ca, client: SocketAddr) -> std::io::Result<TlsStream<TcpStream>> {
    let mut tcp = TcpStream::connect(ca_address(ca)).await?;
    tcp.write_all(&proxy_header(client, ca_address(ca))).await?;
    tls(ca, tcp).await
}

/// Sends one request (`Connection: close`) and returns the status and the whole answer.
pub async fn exchange(
    mut stream: impl AsyncRead + AsyncWrite + Unpin,
    request: &str,
) -> (u16, String) {
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(60), stream.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    (status, text)
}

pub fn basic(user: &str, password: &str) -> String {
    format!(
        "GET /v1/keys HTTP/1.1\r\nHost: localhost\r\nAuthorization: Basic {}\r\nConnection: close\r\n\r\n",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// The `Retry-After` of an answer, in seconds.
pub fn retry_after(answer: &str) -> u64 {
    answer
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("retry-after: ")
                .map(str::to_owned)
        })
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no Retry-After in {answer}"))
}

/// Log events captured in memory, for a test that must see the library say something.
#[derive(Clone, Default)]
pub struct CapturedLog(Arc<std::sync::Mutex<Vec<u8>>>);

impl CapturedLog {
    /// Captures this thread's events (with a single-threaded runtime, those of every task
    /// it spawns) until the guard is dropped.
    pub fn capture(&self) -> tracing::subscriber::DefaultGuard {
        let sink = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || sink.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    /// What was captured so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for CapturedLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
