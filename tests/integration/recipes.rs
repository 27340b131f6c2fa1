//! The recipes of `docs/relying-parties.md`, run as written against a real CA and the real
//! programs from Debian's packages: a good key is accepted and the service sees who it is,
//! a revoked key is refused within 3 seconds of the `DELETE` (with `crl sync` keeping the
//! proxy's CRL fresh), a look-alike from another CA is refused, and so is an expired key.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{BIN, Ca, free_port};

/// A plain-HTTP upstream that answers every request with the request's head, so a test sees
/// exactly which headers a proxy passed on.
struct EchoUpstream {
    port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl EchoUpstream {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        head.len()
                    );
                    let _ = stream.write_all(answer.as_bytes()).await;
                    let _ = stream.write_all(&head).await;
                });
            }
        });
        Self { port, task }
    }
}

impl Drop for EchoUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A child process killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A server that forks workers (nginx, haproxy), started in a process group of its own and
/// killed as a group when dropped, on a panic too. Killing the master alone leaves its
/// workers running; a worker outliving the test once kept a file descriptor it inherited
/// (the build lock) open for good.
struct Group(Child);

impl Group {
    fn spawn(command: &mut Command) -> std::io::Result<Self> {
        use std::os::unix::process::CommandExt;
        command.process_group(0).spawn().map(Self)
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        // The group's id is the leader's pid (process_group(0)); "-ID" names the group.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.0.id())])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `latchkey crl sync` for `ca`, writing the PEM bundle (both CRLs) to `out` and running
/// `on_change` after each change.
fn crl_sync(ca: &Ca, out: &Path, on_change: &str) -> Running {
    crl_sync_with(ca, out, &["--bundle", "--on-change", on_change])
}

fn crl_sync_with(ca: &Ca, out: &Path, extra: &[&str]) -> Running {
    let child = Command::new(BIN)
        .args(["crl", "sync", "--server", &ca.url, "--ca-cert"])
        .arg(ca.home().join("ca.pem"))
        .arg("--out")
        .arg(out)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("latchkey crl sync");
    Running(child)
}

/// Waits until `path` exists and is not empty.
fn wait_for_file(path: &Path) {
    let started = Instant::now();
    while std::fs::metadata(path).map_or(true, |m| m.len() == 0) {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{path:?} never appeared"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `curl` through `url` with a key directory's leaf and key (as a user would: `cert.pem`):
/// the HTTP status (0 when no HTTP answer came) and the body.
fn curl(ca_file: &Path, key_dir: &Path, url: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-sS", "-m", "10", "-w", "\n%{http_code}", "--cacert"])
        .arg(ca_file)
        .arg("--cert")
        .arg(key_dir.join("cert.pem"))
        .arg("--key")
        .arg(key_dir.join("key.pem"))
        .arg(url)
        .output()
        .expect("curl is installed");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    (status.trim().parse().unwrap_or(0), body.to_owned())
}

/// Polls `check` until it is true, for at most `limit`; how long it took.
fn within(limit: Duration, mut check: impl FnMut() -> bool) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if check() {
            return Some(started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

/// The nginx recipe's configuration, with the test's paths and ports.
fn nginx_conf(dir: &Path, ca: &Ca, port: u16, upstream: u16) -> String {
    nginx_recipe("nginx.conf", dir, ca, port, upstream)
}

/// The nginx recipe `name` (in docs/recipes/), with the test's paths and ports.
fn nginx_recipe(name: &str, dir: &Path, ca: &Ca, port: u16, upstream: u16) -> String {
    let home = ca.home();
    let recipe = std::fs::read_to_string(recipe(name)).expect("an nginx recipe");
    recipe
        .replace(
            "/etc/nginx/latchkey/server.pem",
            &home.join("server.pem").display().to_string(),
        )
        .replace(
            "/etc/nginx/latchkey/server-key.pem",
            &home.join("server-key.pem").display().to_string(),
        )
        .replace(
            "/etc/nginx/latchkey/ca-chain.pem",
            &dir.join("ca-chain.pem").display().to_string(),
        )
        .replace(
            "/etc/nginx/latchkey/crl.pem",
            &dir.join("crl.pem").display().to_string(),
        )
        .replace("listen 443 ssl;", &format!("listen 127.0.0.1:{port} ssl;"))
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{upstream}"))
}

/// nginx from Debian's package, run in the foreground from `dir`, master and workers
/// killed together when dropped.
fn start_nginx(dir: &Path) -> Group {
    for sub in ["logs", "tmp"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    Group::spawn(
        Command::new("nginx")
            .args(nginx_args(dir))
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
    .expect("nginx is installed (.ci/run installs it)")
}

fn nginx_args(dir: &Path) -> Vec<String> {
    vec![
        "-p".into(),
        format!("{}/", dir.display()),
        "-e".into(),
        dir.join("logs/error.log").display().to_string(),
        "-c".into(),
        dir.join("nginx.conf").display().to_string(),
    ]
}

/// The CA chain nginx verifies client certificates with: the intermediate and the root.
fn ca_chain(ca: &Ca) -> Vec<u8> {
    let mut chain = std::fs::read(ca.home().join("intermediate.pem")).unwrap();
    chain.extend(ca.ca_pem());
    chain
}

// Multi-threaded: the echo upstream runs while the test blocks on curl.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_accepts_a_key_passes_its_identity_and_refuses_revoked_foreign_and_expired_ones() {
    let (ca, other, alice) = cast().await;
    let expired = "expired";
    let upstream = EchoUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let port = free_port();
    std::fs::write(dir.join("ca-chain.pem"), ca_chain(&ca)).unwrap();
    std::fs::write(
        dir.join("nginx.conf"),
        nginx_conf(dir, &ca, port, upstream.port),
    )
    .unwrap();
    let reload = format!("nginx {} -s reload", nginx_args(dir).join(" "));
    let _sync = crl_sync(&ca, &dir.join("crl.pem"), &reload);
    wait_for_file(&dir.join("crl.pem"));
    let _nginx = start_nginx(dir);
    let url = format!("https://localhost:{port}/api/v1/whoami");
    let ca_file = ca.home().join("ca.pem");

    // A good key: accepted, and the upstream sees who it is.
    let started = within(Duration::from_secs(10), || {
        curl(&ca_file, &ca.path("alice"), &url).0 == 200
    });
    assert!(
        started.is_some(),
        "nginx never served alice: {}",
        nginx_log(dir)
    );
    let (_, seen) = curl(&ca_file, &ca.path("alice"), &url);
    println!("the upstream saw:\n{seen}");
    let header = |name: &str| header_of(&seen, name);
    assert_eq!(header("X-Client-Verify"), "SUCCESS");
    let dn = header("X-Client-DN");
    for part in ["CN=alice", "O=acme", "OU=read:metrics", "OU=write:events"] {
        assert!(dn.split(',').any(|p| p == part), "{part} not in {dn}");
    }
    assert_eq!(header("X-Client-Key-Id"), alice.key.id);

    // Refusals, with no hand on nginx; a refused certificate is nginx's 400 page.
    let passes = |dir: &Path| curl(&ca_file, dir, &url).0 == 200;
    refuses_revoked_foreign_and_expired("nginx", &ca, &other, passes).await;
    for dir in [ca.path("doomed"), other.path("alice"), ca.path(expired)] {
        assert_eq!(curl(&ca_file, &dir, &url).0, 400);
    }
}

fn nginx_log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("logs/error.log")).unwrap_or_default()
}

/// The key id in a certificate's SPIFFE URI.
fn key_id_of(pem: &str) -> String {
    let (_, cert) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
    let cert = cert.parse_x509().unwrap();
    let san = cert.subject_alternative_name().unwrap().unwrap();
    san.value
        .general_names
        .iter()
        .find_map(|n| match n {
            x509_parser::extensions::GeneralName::URI(u) => {
                u.rsplit_once("/key/").map(|(_, id)| id.to_owned())
            }
            _ => None,
        })
        .unwrap()
}

/// What a recipe's client saw: `None` when the call failed (handshake refused), else the
/// status and the body.
fn python_client(url: &str, ca_file: &Path, key_dir: &Path) -> Option<(u16, String)> {
    let out = Command::new("python3")
        .arg(recipe("python_client.py"))
        .arg(url)
        .arg(ca_file)
        .arg(key_dir)
        .output()
        .expect("python3");
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (status, body) = text.split_once('\n')?;
    Some((status.trim().parse().ok()?, body.to_owned()))
}

fn recipe(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("docs/recipes")
        .join(name)
}

/// The keys every recipe test uses: `alice` (two scopes), `doomed` (to be revoked),
/// `expired`, and `alice` at a second CA with the same names.
async fn cast() -> (Ca, Ca, latchkey::api::EnrollResponse) {
    let ca = Ca::start();
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics", "write:events"])
        .await;
    let alice = ca
        .enroll_into("alice@acme", &["read:metrics", "write:events"], "alice")
        .await;
    ca.enroll_into("alice@acme", &["read:metrics"], "doomed")
        .await;
    ca.expired_key("alice@acme", &["read:metrics"], "expired")
        .await;
    let other = Ca::start();
    other
        .tenant_with_user("acme", "alice@acme", &["read:metrics"])
        .await;
    other
        .enroll_into("alice@acme", &["read:metrics"], "alice")
        .await;
    (ca, other, alice)
}

/// A key of `kind` for alice in `<dir>/<name>/`, as `latchkey enroll --key-type` makes it.
async fn enroll_kind(ca: &Ca, name: &str, kind: latchkey::client::KeyType) {
    let dir = latchkey::client::KeyDir::new(ca.path(name));
    ca.anonymous()
        .enroll_into(
            &crate::support::password("alice@acme"),
            &dir,
            kind,
            latchkey::client::KeyRequest::new(name).scopes(["read:metrics"]),
        )
        .await
        .expect("enroll");
}

/// The refusals every recipe must make, `passes` telling whether the relying party served
/// the key in a directory: the key in `doomed/` within 3 s of its revocation (while `alice/`
/// still passes), another CA's look-alike, and an expired key.
async fn refuses_revoked_foreign_and_expired(
    who: &str,
    ca: &Ca,
    other: &Ca,
    mut passes: impl FnMut(&Path) -> bool,
) {
    assert!(
        passes(&ca.path("doomed")),
        "{who} refused a key not yet revoked"
    );
    revoke_doomed(ca).await;
    let refused = within(Duration::from_secs(3), || !passes(&ca.path("doomed")));
    println!("{who} refused the revoked key after {refused:?}");
    assert!(
        refused.is_some(),
        "{who}: a revoked key still passed after 3 s"
    );
    // One refusal is not yet the rule: while a proxy reloads its CRL (nginx -s reload),
    // workers with the old one still take connections for a moment. The refusal must
    // settle (five in a row) and then hold.
    let settled = within(Duration::from_secs(5), || {
        (0..5).all(|_| !passes(&ca.path("doomed")))
    });
    assert!(
        settled.is_some(),
        "{who}: the revoked key kept passing now and then for 5 s after its first refusal"
    );
    assert!(passes(&ca.path("alice")), "{who} refused the good key");
    assert!(
        !passes(&other.path("alice")),
        "{who} let another CA's look-alike in"
    );
    assert!(!passes(&ca.path("expired")), "{who} let an expired key in");
}

async fn revoke_doomed(ca: &Ca) {
    let doomed = std::fs::read_to_string(ca.path("doomed/cert.pem")).unwrap();
    ca.admin()
        .revoke_key(None, &key_id_of(&doomed), None)
        .await
        .expect("revoke");
}

#[tokio::test]
async fn python_service_and_requests_client_accept_a_key_and_refuse_revoked_foreign_and_expired_ones()
 {
    let (ca, other, alice) = cast().await;
    let dir = tempfile::tempdir().unwrap();
    let (_sync, _server, url) = python_service(&ca, dir.path());
    let ca_file = ca.home().join("ca.pem");

    let served = within(Duration::from_secs(10), || {
        python_client(&url, &ca_file, &ca.path("alice")).is_some()
    });
    assert!(served.is_some(), "the Python service never served alice");
    let (status, body) = python_client(&url, &ca_file, &ca.path("alice")).unwrap();
    assert_eq!(status, 200);
    let seen: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        seen,
        serde_json::json!({
            "owner": "alice", "tenant": "acme", "key_id": alice.key.id,
            "scopes": ["read:metrics", "write:events"],
        })
    );

    let passes = |dir: &Path| python_client(&url, &ca_file, dir).is_some();
    refuses_revoked_foreign_and_expired("the Python service", &ca, &other, passes).await;
}

/// Builds a Go recipe (standard library only) into `dir`.
fn go_build(recipe_dir: &str, dir: &Path) -> std::path::PathBuf {
    let out = dir.join(recipe_dir);
    let built = Command::new("go")
        .args(["build", "-o"])
        .arg(&out)
        .arg(recipe(recipe_dir).join("main.go"))
        .output()
        .expect("go is installed (.ci/run installs golang-go)");
    assert!(
        built.status.success(),
        "go build {recipe_dir}: {}",
        String::from_utf8_lossy(&built.stderr)
    );
    out
}

#[tokio::test]
async fn go_service_and_client_accept_a_key_and_refuse_revoked_foreign_and_expired_ones() {
    let (ca, other, alice) = cast().await;
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let server = go_build("go-server", dir);
    let client = go_build("go-client", dir);
    std::fs::write(dir.join("ca-chain.pem"), ca_chain(&ca)).unwrap();
    // The intermediate's CRL alone: the Go recipe checks the leaf's issuer.
    let _sync = crl_sync_with(&ca, &dir.join("crl.pem"), &[]);
    wait_for_file(&dir.join("crl.pem"));
    let port = free_port();
    let _server = Running(
        Command::new(&server)
            .arg(port.to_string())
            .arg(ca.home().join("server.pem"))
            .arg(ca.home().join("server-key.pem"))
            .arg(dir.join("ca-chain.pem"))
            .arg(dir.join("crl.pem"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let url = format!("https://localhost:{port}/whoami");
    let ca_file = ca.home().join("ca.pem");
    let call = |key_dir: &Path| -> Option<(u16, String)> {
        let out = Command::new(&client)
            .arg(&url)
            .arg(&ca_file)
            .arg(key_dir)
            .output()
            .unwrap();
        if !out.status.success() {
            return None;
        }
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (status, body) = text.split_once('\n')?;
        Some((status.trim().parse().ok()?, body.to_owned()))
    };

    let served = within(Duration::from_secs(10), || {
        call(&ca.path("alice")).is_some()
    });
    assert!(served.is_some(), "the Go service never served alice");
    // Every kind of key the CA certifies loads in Go and passes a Go service.
    for (name, kind) in [
        ("p384", latchkey::client::KeyType::P384),
        ("ed25519", latchkey::client::KeyType::Ed25519),
    ] {
        enroll_kind(&ca, name, kind).await;
        let (status, body) = call(&ca.path(name)).unwrap_or_else(|| panic!("{name} refused"));
        assert_eq!(status, 200, "{name}: {body}");
    }
    let (status, body) = call(&ca.path("alice")).unwrap();
    assert_eq!(status, 200);
    let seen: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        seen,
        serde_json::json!({
            "owner": "alice", "tenant": "acme", "key_id": alice.key.id,
            "scopes": ["read:metrics", "write:events"],
        })
    );

    let passes = |dir: &Path| call(dir).is_some();
    refuses_revoked_foreign_and_expired("the Go service", &ca, &other, passes).await;
}

/// The HAProxy recipe's configuration, with the test's paths and ports.
fn haproxy_cfg(dir: &Path, port: u16, upstream: u16) -> String {
    std::fs::read_to_string(recipe("haproxy.cfg"))
        .expect("docs/recipes/haproxy.cfg")
        .replace(
            "/run/haproxy/admin.sock",
            &dir.join("admin.sock").display().to_string(),
        )
        .replace("/etc/haproxy/latchkey/", &format!("{}/", dir.display()))
        .replace("bind :443 ssl", &format!("bind 127.0.0.1:{port} ssl"))
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{upstream}"))
}

// Multi-threaded: the echo upstream runs while the test blocks on curl.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn haproxy_accepts_a_key_passes_its_identity_and_refuses_revoked_foreign_and_expired_ones() {
    let (ca, other, alice) = cast().await;
    let upstream = EchoUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let port = free_port();
    std::fs::write(dir.join("ca-chain.pem"), ca_chain(&ca)).unwrap();
    // HAProxy's crt file: its certificate chain and key in one PEM.
    let mut server = std::fs::read(ca.home().join("server.pem")).unwrap();
    server.extend(std::fs::read(ca.home().join("server-key.pem")).unwrap());
    std::fs::write(dir.join("server.pem"), server).unwrap();
    std::fs::write(
        dir.join("haproxy.cfg"),
        haproxy_cfg(dir, port, upstream.port),
    )
    .unwrap();
    // The first CRL file, then HAProxy, then the daemon that swaps it live.
    let once = Command::new(BIN)
        .args([
            "crl",
            "sync",
            "--once",
            "--bundle",
            "--server",
            &ca.url,
            "--ca-cert",
        ])
        .arg(ca.home().join("ca.pem"))
        .arg("--out")
        .arg(dir.join("crl.pem"))
        .output()
        .unwrap();
    assert!(
        once.status.success(),
        "{}",
        String::from_utf8_lossy(&once.stderr)
    );
    let _haproxy = Group::spawn(
        Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(dir.join("haproxy.cfg"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
    .expect("haproxy is installed (.ci/run installs it)");
    let socket = dir.join("admin.sock").display().to_string();
    let _sync = crl_sync_with(
        &ca,
        &dir.join("crl.pem"),
        &["--bundle", "--haproxy-socket", &socket],
    );
    let url = format!("https://localhost:{port}/api/v1/whoami");
    let ca_file = ca.home().join("ca.pem");

    let served = within(Duration::from_secs(10), || {
        curl(&ca_file, &ca.path("alice"), &url).0 == 200
    });
    assert!(served.is_some(), "HAProxy never served alice");
    let (_, seen) = curl(&ca_file, &ca.path("alice"), &url);
    println!("the upstream saw:\n{seen}");
    let header = |name: &str| header_of(&seen, name);
    assert_eq!(header("X-Client-Owner"), "alice");
    assert_eq!(header("X-Client-Tenant"), "acme");
    assert_eq!(header("X-Client-Key-Id"), alice.key.id);
    let dn = header("X-Client-DN");
    for scope in ["OU=read:metrics", "OU=write:events"] {
        assert!(dn.contains(scope), "{scope} not in {dn}");
    }

    // Refusals, with the CRL swapped in live: no reload.
    let passes = |dir: &Path| curl(&ca_file, dir, &url).0 == 200;
    refuses_revoked_foreign_and_expired("HAProxy", &ca, &other, passes).await;
}

/// A header of a request head the echo upstream returned (names compare case-insensitively:
/// HAProxy sends them in lower case).
fn header_of(head: &str, name: &str) -> String {
    head.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(": ")?;
            k.eq_ignore_ascii_case(name).then(|| v.to_owned())
        })
        .unwrap_or_else(|| panic!("no {name} in {head}"))
}

/// Starts the Python recipe service for `ca` in `dir` (with `crl sync` keeping its bundle
/// fresh); returns the processes and the service's URL.
fn python_service(ca: &Ca, dir: &Path) -> (Running, Running, String) {
    std::fs::write(dir.join("ca-chain.pem"), ca_chain(ca)).unwrap();
    let sync = crl_sync(ca, &dir.join("crl.pem"), "true");
    wait_for_file(&dir.join("crl.pem"));
    let port = free_port();
    let server = Running(
        Command::new("python3")
            .arg(recipe("python_server.py"))
            .arg(port.to_string())
            .arg(ca.home().join("server.pem"))
            .arg(ca.home().join("server-key.pem"))
            .arg(dir.join("ca-chain.pem"))
            .arg(dir.join("crl.pem"))
            .stdin(Stdio::null())
            .spawn()
            .expect("python3"),
    );
    (sync, server, format!("https://localhost:{port}/whoami"))
}

const P12_PASSWORD: &str = "recipe-store-password";

#[tokio::test]
async fn java_client_with_a_pkcs12_keystore_is_accepted_and_refused_when_it_should_be() {
    let (ca, other, alice) = cast().await;
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let javac = Command::new("javac")
        .arg("-d")
        .arg(dir)
        .arg(recipe("JavaClient.java"))
        .output()
        .expect("javac is installed (.ci/run installs openjdk-17-jdk-headless)");
    assert!(
        javac.status.success(),
        "{}",
        String::from_utf8_lossy(&javac.stderr)
    );
    // The stores, as the recipe makes them.
    let export = |ca: &Ca, args: &[&str]| {
        let out = ca.cli_with_env(args, &[("LATCHKEY_P12_PASSWORD", P12_PASSWORD)]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let store = |ca: &Ca, name: &str| -> std::path::PathBuf {
        let file = dir.join(format!("{}-{name}.p12", ca.url.rsplit(':').next().unwrap()));
        let key_dir = ca.path(name).display().to_string();
        export(
            ca,
            &[
                "export",
                "--dir",
                &key_dir,
                "--p12",
                &file.display().to_string(),
            ],
        );
        file
    };
    let truststore = dir.join("truststore.p12");
    export(
        &ca,
        &["export", "--truststore", &truststore.display().to_string()],
    );
    let (alice_p12, doomed_p12, expired_p12, foreign_p12) = (
        store(&ca, "alice"),
        store(&ca, "doomed"),
        store(&ca, "expired"),
        store(&other, "alice"),
    );
    let (_sync, _server, url) = python_service(&ca, dir);
    let call = |keystore: &Path| -> Option<(u16, String)> {
        let out = Command::new("java")
            .arg("-cp")
            .arg(dir)
            .arg("JavaClient")
            .arg(&url)
            .arg(keystore)
            .arg(&truststore)
            .env("LATCHKEY_P12_PASSWORD", P12_PASSWORD)
            .output()
            .unwrap();
        if !out.status.success() {
            return None;
        }
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (status, body) = text.split_once('\n')?;
        Some((status.trim().parse().ok()?, body.to_owned()))
    };

    let served = within(Duration::from_secs(20), || call(&alice_p12).is_some());
    assert!(
        served.is_some(),
        "Java never got through with alice's keystore"
    );
    let (status, body) = call(&alice_p12).unwrap();
    assert_eq!(status, 200);
    let seen: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(seen["key_id"], serde_json::json!(alice.key.id));

    assert!(call(&doomed_p12).is_some());
    revoke_doomed(&ca).await;
    // The service's refusal is timed with a client that starts in milliseconds (a JVM takes
    // about a second to start, which is not the revocation's delay); then Java is refused too.
    let ca_file = ca.home().join("ca.pem");
    let refused = within(Duration::from_secs(3), || {
        python_client(&url, &ca_file, &ca.path("doomed")).is_none()
    });
    println!("the service refused the revoked key after {refused:?}");
    assert!(refused.is_some(), "a revoked key still passed after 3 s");
    assert!(
        call(&doomed_p12).is_none(),
        "Java got through with a revoked key"
    );
    assert!(call(&foreign_p12).is_none());
    assert!(call(&expired_p12).is_none());
}

/// `openssl s_client` and `curl` as the recipe writes them, against the Python service.
#[tokio::test]
async fn openssl_s_client_and_curl_with_the_leaf_alone_are_accepted_and_refused_when_they_should_be()
 {
    let (ca, other, alice) = cast().await;
    let dir = tempfile::tempdir().unwrap();
    let (_sync, _server, url) = python_service(&ca, dir.path());
    let port = url
        .rsplit(':')
        .next()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let ca_file = ca.home().join("ca.pem");
    let s_client = |key_dir: &Path| -> String {
        let mut child = Command::new("openssl")
            .args([
                "s_client",
                "-quiet",
                "-connect",
                &format!("localhost:{port}"),
                "-CAfile",
            ])
            .arg(&ca_file)
            .arg("-cert")
            .arg(key_dir.join("cert.pem"))
            .arg("-key")
            .arg(key_dir.join("key.pem"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("openssl");
        use std::io::Write;
        let _ = child
            .stdin
            .take()
            .unwrap()
            .write_all(b"GET /whoami HTTP/1.0\r\n\r\n");
        let out = child.wait_with_output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let served = within(Duration::from_secs(10), || {
        s_client(&ca.path("alice")).contains("200 OK")
    });
    assert!(served.is_some(), "openssl s_client never got through");
    // Every kind of key the CA certifies loads in OpenSSL and passes an OpenSSL service.
    for (name, kind) in [
        ("p384", latchkey::client::KeyType::P384),
        ("ed25519", latchkey::client::KeyType::Ed25519),
    ] {
        enroll_kind(&ca, name, kind).await;
        assert!(
            s_client(&ca.path(name)).contains("200 OK"),
            "{name} refused"
        );
        assert_eq!(
            curl(&ca_file, &ca.path(name), &url).0,
            200,
            "{name} with curl"
        );
    }
    assert!(s_client(&ca.path("alice")).contains(&alice.key.id));
    let (status, body) = curl(&ca_file, &ca.path("alice"), &url);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(&alice.key.id));

    let passes = |dir: &Path| s_client(dir).contains("200 OK");
    refuses_revoked_foreign_and_expired("openssl s_client", &ca, &other, passes).await;
    assert_eq!(
        curl(&ca_file, &ca.path("doomed"), &url).0,
        0,
        "curl with a revoked key"
    );
}

/// The key directory `name` with its chain as its certificate (`cert.pem` holding the leaf
/// and the intermediate, so that curl sends both).
fn with_chain_as_cert(ca: &Ca, name: &str) -> std::path::PathBuf {
    let dir = ca.path(&format!("{name}-chain"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(ca.path(name).join("chain.pem"), dir.join("cert.pem")).unwrap();
    std::fs::copy(ca.path(name).join("key.pem"), dir.join("key.pem")).unwrap();
    dir
}

// Multi-threaded: the echo upstream runs while the test blocks on curl.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_for_one_tenant_with_its_own_intermediate_refuses_every_other_tenants_key() {
    let ca = Ca::start();
    let out = ca.cli(&["tenant", "add", "acme", "--dedicated-issuer"]);
    assert!(out.status.success(), "{out:?}");
    ca.user("alice@acme", &["read:metrics"]).await;
    ca.tenant_with_user("globex", "bob@globex", &["read:metrics"])
        .await;
    ca.enroll_into("alice@acme", &["read:metrics"], "alice")
        .await;
    ca.enroll_into("bob@globex", &["read:metrics"], "bob").await;
    let upstream = EchoUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let port = free_port();
    // GET /v1/ca?tenant=acme: acme's intermediate, then the root.
    let chain = latchkey::tls::load_certificates(
        &Command::new("curl")
            .args(["-sS", "-f", "--cacert"])
            .arg(ca.home().join("ca.pem"))
            .arg(format!("{}/v1/ca?tenant=acme", ca.url))
            .output()
            .unwrap()
            .stdout,
        "acme's chain",
    )
    .unwrap();
    assert_eq!(chain.len(), 2);
    std::fs::write(
        dir.join("ca-chain.pem"),
        latchkey::pem::encode_certificates(chain.iter().map(|c| c.as_ref())),
    )
    .unwrap();
    std::fs::write(
        dir.join("nginx.conf"),
        nginx_recipe("nginx-one-tenant.conf", dir, &ca, port, upstream.port),
    )
    .unwrap();
    let reload = format!("nginx {} -s reload", nginx_args(dir).join(" "));
    let _sync = crl_sync(&ca, &dir.join("crl.pem"), &reload);
    wait_for_file(&dir.join("crl.pem"));
    let _nginx = start_nginx(dir);
    let url = format!("https://localhost:{port}/api/v1/whoami");
    let ca_file = ca.home().join("ca.pem");

    let served = within(Duration::from_secs(10), || {
        curl(&ca_file, &ca.path("alice"), &url).0 == 200
    });
    assert!(
        served.is_some(),
        "nginx never served acme's key: {}",
        nginx_log(dir)
    );
    assert_eq!(
        curl(&ca_file, &with_chain_as_cert(&ca, "alice"), &url).0,
        200
    );
    // Another tenant's key: no path without its intermediate (400), and refused with it
    // (403), though it is a valid key of the same CA.
    assert_eq!(curl(&ca_file, &ca.path("bob"), &url).0, 400);
    assert_eq!(curl(&ca_file, &with_chain_as_cert(&ca, "bob"), &url).0, 403);
}
