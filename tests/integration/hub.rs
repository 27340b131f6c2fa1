//! The relying-service library, through the example analytics hub: the CA and the hub both
//! really running on loopback, and clients calling the hub over mTLS.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{Ca, CapturedLog};

/// The example binary, built by `cargo test` beside the test binaries.
fn hub_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let hub = dir.join("examples").join("analytics_hub");
    assert!(
        hub.exists(),
        "{} missing: run the tests with `cargo test`, which builds examples",
        hub.display()
    );
    hub
}

/// How the hub gets its own TLS certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HubCert {
    /// The test makes one and passes it with `--tls-cert/--tls-key`, so clients can trust it.
    Given,
    /// Neither flag: the hub makes its own self-signed `localhost` certificate, as in the
    /// README, and clients need `curl -k`.
    SelfSigned,
}

/// A running analytics hub, killed when dropped.
struct Hub {
    child: Child,
    addr: String,
    /// The hub's certificate, when the test gave it one ([`HubCert::Given`]).
    cert_pem: Option<Vec<u8>>,
}

/// One HTTP response from the hub.
#[derive(Debug)]
struct Reply {
    status: u16,
    /// Header names in lowercase.
    headers: std::collections::HashMap<String, String>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Hub {
    /// Starts a hub with a certificate the test made ([`HubCert::Given`]).
    fn start(ca: &Ca, extra: &[&str]) -> Self {
        Self::start_with(ca, HubCert::Given, extra)
    }

    /// Starts a hub in the CA's directory, following that CA, with `extra` arguments.
    fn start_with(ca: &Ca, cert: HubCert, extra: &[&str]) -> Self {
        let dir = ca.dir.path();
        let mut command = Command::new(hub_binary());
        command
            .args(["--listen", "127.0.0.1:0", "--ca-url", &ca.url, "--ca-cert"])
            .arg(ca.home().join("ca.pem"));
        let cert_pem = match cert {
            HubCert::Given => {
                let tls = rcgen::generate_simple_self_signed(vec![
                    "localhost".into(),
                    "127.0.0.1".into(),
                ])
                .unwrap();
                let cert_pem = tls.cert.pem();
                std::fs::write(dir.join("hub-cert.pem"), &cert_pem).unwrap();
                std::fs::write(dir.join("hub-key.pem"), tls.signing_key.serialize_pem()).unwrap();
                command.args(["--tls-cert", "hub-cert.pem", "--tls-key", "hub-key.pem"]);
                Some(cert_pem.into_bytes())
            }
            HubCert::SelfSigned => None,
        };
        let mut child = command
            .args(extra)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(
                std::fs::File::create(dir.join("hub.log")).unwrap(),
            ))
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("analytics_hub listening on https://") {
                    let _ = tx.send(url.to_owned());
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| {
                panic!(
                    "the hub did not start: {}",
                    std::fs::read_to_string(dir.join("hub.log")).unwrap_or_default()
                )
            });
        Self {
            child,
            addr,
            cert_pem,
        }
    }

    /// The hub's certificate, for clients to trust.
    fn cert_pem(&self) -> &[u8] {
        self.cert_pem
            .as_deref()
            .expect("a self-signed hub's certificate is unknown: call it with curl -k")
    }

    /// A client configuration trusting the hub and presenting the key in `dir`.
    fn client(&self, dir: &Path) -> rustls::ClientConfig {
        let roots = latchkey::tls::load_certificates(self.cert_pem(), "hub").unwrap();
        let chain = latchkey::tls::load_certificates(
            &std::fs::read(dir.join("chain.pem")).unwrap(),
            "chain",
        )
        .unwrap();
        let key =
            latchkey::tls::load_private_key(&std::fs::read(dir.join("key.pem")).unwrap(), "key")
                .unwrap();
        latchkey::tls::client_config(&roots, Some((chain, key))).unwrap()
    }

    /// A client configuration presenting only the leaf of the key in `dir` (its `cert.pem`,
    /// what `curl --cert` gets), not the intermediate.
    fn leaf_only_client(&self, dir: &Path) -> rustls::ClientConfig {
        let roots = latchkey::tls::load_certificates(self.cert_pem(), "hub").unwrap();
        let leaf =
            latchkey::tls::load_certificates(&std::fs::read(dir.join("cert.pem")).unwrap(), "leaf")
                .unwrap();
        assert_eq!(leaf.len(), 1, "cert.pem holds the leaf alone");
        let key =
            latchkey::tls::load_private_key(&std::fs::read(dir.join("key.pem")).unwrap(), "key")
                .unwrap();
        latchkey::tls::client_config(&roots, Some((leaf, key))).unwrap()
    }

    /// True once a call with `config` on a new connection gets in (`accepted`) or is refused
    /// (not `accepted`) within `within`, trying every 20 ms.
    async fn accepts_within(
        &self,
        config: &Arc<rustls::ClientConfig>,
        accepted: bool,
        within: Duration,
    ) -> bool {
        tokio::time::timeout(within, async {
            while self
                .call(config.clone(), "GET", "/api/v1/whoami", "")
                .await
                .is_ok()
                != accepted
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .is_ok()
    }

    /// One request on a new connection: the status and body, or the connection's error.
    async fn call(
        &self,
        config: Arc<rustls::ClientConfig>,
        method: &str,
        path: &str,
        body: &str,
    ) -> Result<(u16, String), String> {
        self.exchange(config, method, path, body)
            .await
            .map(|reply| (reply.status, reply.body))
    }

    /// One request on a new connection: the whole response, or the connection's error.
    async fn exchange(
        &self,
        config: Arc<rustls::ClientConfig>,
        method: &str,
        path: &str,
        body: &str,
    ) -> Result<Reply, String> {
        let tcp = tokio::net::TcpStream::connect(&self.addr)
            .await
            .map_err(|e| e.to_string())?;
        let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
        let mut tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| e.to_string())?;
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        tls.write_all(request.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut response = Vec::new();
        // With TLS 1.3 a refused client certificate shows here, on the first read.
        tls.read_to_end(&mut response)
            .await
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&response).into_owned();
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or(format!("no status in {text:?}"))?;
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let headers = head
            .lines()
            .skip(1)
            .filter_map(|line| line.split_once(':'))
            .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
            .collect();
        Ok(Reply {
            status,
            headers,
            body: body.to_owned(),
        })
    }
}

/// Reads one HTTP/1.1 response (headers and a Content-Length body) from an open stream.
async fn read_response<S: tokio::io::AsyncRead + Unpin>(stream: &mut S) -> (u16, String) {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).await.expect("a response");
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap())
        })
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).await.unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// A foreign CA's look-alike of a key certificate: the real profile (same subject, SPIFFE
/// URI, scopes and serial), signed by another CA whose names copy the real one's.
fn look_alike(genuine_pem: &str, dir: &Path) {
    let (_, pem) = x509_parser::pem::parse_x509_pem(genuine_pem.as_bytes()).unwrap();
    let genuine =
        latchkey::profile::danger::read_unverified(&pem.contents, "latchkey.internal").unwrap();
    let latchkey::profile::SpiffeId::Key { tenant, key_id } = genuine.id else {
        panic!("not a key certificate")
    };
    let now = time::OffsetDateTime::now_utc();
    let foreign = latchkey::ca::Bootstrap::generate(now).unwrap();
    let signer = latchkey::ca::Signer::new(
        foreign.intermediate_certificate.clone(),
        &foreign.intermediate_key_pem,
        "latchkey.internal",
        "https://localhost:8443/v1/crl",
    )
    .unwrap();
    let pair = latchkey::client::new_key_pair(latchkey::client::KeyType::P256).unwrap();
    let verified = latchkey::authority::csr::verify_pem(&pair.csr_pem).unwrap();
    let leaf = signer
        .sign_key_certificate(latchkey::ca::KeyOrder {
            serial: genuine.serial,
            tenant,
            owner: genuine.owner.parse().unwrap(),
            key_id,
            scopes: genuine.scopes,
            not_before: now - time::Duration::minutes(1),
            not_after: now + time::Duration::hours(1),
            public_key: verified.public_key,
        })
        .unwrap();
    let dir = latchkey::client::KeyDir::new(dir);
    dir.write_key(&pair.key_pem).unwrap();
    let intermediate = latchkey::pem::encode("CERTIFICATE", &foreign.intermediate_certificate);
    dir.write_certificates(&leaf.pem(), &format!("{}{intermediate}", leaf.pem()))
        .unwrap();
}

#[tokio::test]
async fn scopes_decide_and_pinned_tenants_foreign_cas_and_expired_keys_are_refused() {
    let ca = Ca::start();
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics", "write:events"])
        .await;
    ca.tenant_with_user("globex", "carol@globex", &["read:metrics"])
        .await;
    ca.enroll_into("alice@acme", &["read:metrics"], "reader")
        .await;
    ca.enroll_into("alice@acme", &["write:events"], "writer")
        .await;
    ca.enroll_into("carol@globex", &["read:metrics"], "carol")
        .await;
    let hub = Hub::start(&ca, &["--tenant", "acme"]);

    let reader = Arc::new(hub.client(&ca.path("reader")));
    let writer = Arc::new(hub.client(&ca.path("writer")));
    let (status, body) = hub
        .call(reader.clone(), "GET", "/api/v1/metrics", "")
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    // The handler's own `require_scope` refuses: 403 problem+json naming the scope.
    let refused = hub
        .exchange(
            reader.clone(),
            "POST",
            "/api/v1/events",
            r#"{"name":"click"}"#,
        )
        .await
        .unwrap();
    assert_scope_refused(&refused, "write:events");
    let (status, _) = hub
        .call(
            writer.clone(),
            "POST",
            "/api/v1/events",
            r#"{"name":"click"}"#,
        )
        .await
        .unwrap();
    assert_eq!(status, 202);
    // The Scoped<ReadMetrics> extractor refuses before the handler runs.
    let refused = hub
        .exchange(writer.clone(), "GET", "/api/v1/metrics", "")
        .await
        .unwrap();
    assert_scope_refused(&refused, "read:metrics");
    let (_, metrics) = hub
        .call(reader.clone(), "GET", "/api/v1/metrics", "")
        .await
        .unwrap();
    assert!(metrics.contains("\"click\":1"), "{metrics}");
    let (status, whoami) = hub
        .call(writer.clone(), "GET", "/api/v1/whoami", "")
        .await
        .unwrap();
    assert_eq!(status, 200);
    let whoami: serde_json::Value = serde_json::from_str(&whoami).unwrap();
    assert_eq!(
        (whoami["tenant"].as_str(), whoami["owner"].as_str()),
        (Some("acme"), Some("alice"))
    );
    assert_eq!(whoami["scopes"], serde_json::json!(["write:events"]));

    // Another tenant, with the hub pinned to acme.
    let carol = Arc::new(hub.client(&ca.path("carol")));
    assert!(
        hub.call(carol, "GET", "/api/v1/whoami", "").await.is_err(),
        "globex got into an acme-only hub"
    );

    // The CA's admin certificate is not a key.
    let admin = Arc::new(hub.client(&ca.home().join("admin")));
    assert!(hub.call(admin, "GET", "/api/v1/whoami", "").await.is_err());
    still_serves(&hub, &reader).await;

    // A look-alike from a foreign CA, with the real profile.
    look_alike(
        &std::fs::read_to_string(ca.path("reader/cert.pem")).unwrap(),
        &ca.path("evil"),
    );
    let evil = Arc::new(hub.client(&ca.path("evil")));
    let refused = hub
        .call(evil, "GET", "/api/v1/whoami", "")
        .await
        .unwrap_err();
    // Its issuer's name is the real intermediate's, so the signature check is what fails.
    assert!(
        ["UnknownCA", "BadCertificate", "DecryptError"]
            .iter()
            .any(|a| refused.contains(a)),
        "{refused}"
    );
    still_serves(&hub, &reader).await;

    // An expired certificate: a key that lived one second.
    ca.expired_key("alice@acme", &["read:metrics"], "expired")
        .await;
    let stale = Arc::new(hub.client(&ca.path("expired")));
    let refused = hub
        .call(stale, "GET", "/api/v1/whoami", "")
        .await
        .unwrap_err();
    assert!(refused.contains("CertificateExpired"), "{refused}");
    still_serves(&hub, &reader).await;
}

/// A client that sends only its leaf is accepted: the verifier knows the intermediate and
/// builds the path itself. And the scope is decided before the body is read: a key without
/// `write:events` gets 403 for any body, malformed or not; only a key with the scope
/// learns that its body is malformed.
#[tokio::test]
async fn leaf_only_clients_get_in_and_scopes_are_decided_before_the_body() {
    let ca = Ca::start();
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics", "write:events"])
        .await;
    let reader = ca
        .enroll_into("alice@acme", &["read:metrics"], "reader")
        .await;
    ca.enroll_into("alice@acme", &["write:events"], "writer")
        .await;
    let hub = Hub::start(&ca, &[]);

    let leaf_only = Arc::new(hub.leaf_only_client(&ca.path("reader")));
    let reply = hub
        .exchange(leaf_only.clone(), "GET", "/api/v1/whoami", "")
        .await
        .unwrap();
    assert_eq!(reply.status, 200, "{reply:?}");
    let whoami: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(whoami["key_id"], reader.key.id.as_str(), "{whoami}");
    let (status, _) = hub
        .call(leaf_only.clone(), "GET", "/api/v1/metrics", "")
        .await
        .unwrap();
    assert_eq!(status, 200);
    // curl with cert.pem, the leaf alone.
    let whoami = curl(&ca, &hub, "reader", &[], "/api/v1/whoami");
    assert_eq!(whoami.status, "200", "{whoami:?}");

    for body in [
        r#"{"nom": "#,
        r#"{"nom": "click"}"#,
        "[]",
        "",
        r#"{"name":"click"}"#,
    ] {
        let refused = hub
            .exchange(leaf_only.clone(), "POST", "/api/v1/events", body)
            .await
            .unwrap();
        assert_scope_refused(&refused, "write:events");
    }
    // With the scope, the same malformed body is the caller's to fix: 4xx, not 403.
    let writer = Arc::new(hub.leaf_only_client(&ca.path("writer")));
    for body in [r#"{"nom": "#, r#"{"nom": "click"}"#] {
        let (status, text) = hub
            .call(writer.clone(), "POST", "/api/v1/events", body)
            .await
            .unwrap();
        assert!(matches!(status, 400 | 422), "{status} {text}");
    }
    let (status, _) = hub
        .call(writer, "POST", "/api/v1/events", r#"{"name":"click"}"#)
        .await
        .unwrap();
    assert_eq!(status, 202);
}

/// A 403 for a missing scope: `application/problem+json`, code `scope_not_granted`, and the
/// missing scope named.
fn assert_scope_refused(reply: &Reply, scope: &str) {
    assert_eq!(reply.status, 403, "{reply:?}");
    assert_eq!(
        reply.header("content-type"),
        Some("application/problem+json"),
        "{reply:?}"
    );
    let problem: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(problem["status"], 403, "{problem}");
    assert_eq!(problem["code"], "scope_not_granted", "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or_default()
            .contains(scope),
        "{scope} not named: {problem}"
    );
}

/// A refusal must be the hub refusing that certificate, not the hub being down.
async fn still_serves(hub: &Hub, good: &Arc<rustls::ClientConfig>) {
    let (status, _) = hub
        .call(good.clone(), "GET", "/api/v1/whoami", "")
        .await
        .expect("the hub still serves");
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_revoked_key_is_refused_within_a_second_and_never_through_a_resumed_session() {
    let ca = Ca::start();
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics"])
        .await;
    let key = ca
        .enroll_into("alice@acme", &["read:metrics"], "alice")
        .await;
    let hub = Hub::start(&ca, &[]);
    // The client offers resumption; the hub must never accept it.
    let mut config = hub.client(&ca.path("alice"));
    config.resumption = rustls::client::Resumption::in_memory_sessions(16);
    let config = Arc::new(config);
    for _ in 0..3 {
        let (status, _) = hub
            .call(config.clone(), "GET", "/api/v1/metrics", "")
            .await
            .unwrap();
        assert_eq!(status, 200);
    }

    // A keep-alive connection opened before the revocation.
    let tcp = tokio::net::TcpStream::connect(&hub.addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let mut open = tokio_rustls::TlsConnector::from(config.clone())
        .connect(name, tcp)
        .await
        .unwrap();
    let keep_alive = "GET /api/v1/whoami HTTP/1.1\r\nHost: localhost\r\n\r\n";
    open.write_all(keep_alive.as_bytes()).await.unwrap();
    assert_eq!(read_response(&mut open).await.0, 200);

    ca.admin()
        .revoke_key(None, &key.key.id, Some("key_compromise"))
        .await
        .unwrap();
    // The hub learns of it by long poll, without a restart: refused within a second.
    let refused = tokio::time::timeout(Duration::from_secs(1), async {
        loop {
            if hub
                .call(config.clone(), "GET", "/api/v1/metrics", "")
                .await
                .is_err()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        refused.is_ok(),
        "the revoked key still got in a second after the DELETE"
    );
    // And stays refused, on new and would-be-resumed connections alike...
    for _ in 0..3 {
        let refused = hub
            .call(config.clone(), "GET", "/api/v1/metrics", "")
            .await
            .unwrap_err();
        assert!(refused.contains("CertificateRevoked"), "{refused}");
    }
    // ...and on the connection that was open before: it does not outlive the key.
    open.write_all(keep_alive.as_bytes()).await.unwrap();
    let (status, body) = read_response(&mut open).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("certificate_no_longer_valid"), "{body}");
}

/// What `curl` made of one call.
#[derive(Debug)]
struct CurlCall {
    exit: std::process::ExitStatus,
    /// `%{http_code}`: `000` when no response came.
    status: String,
    content_type: String,
    body: String,
    stderr: String,
}

/// The README's call: `curl -k --cert <key>/cert.pem --key <key>/key.pem https://ADDR<path>`,
/// run in the CA's directory where the key directories are.
fn curl(ca: &Ca, hub: &Hub, key: &str, extra: &[&str], path: &str) -> CurlCall {
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "10",
            "-w",
            "\n%{http_code} %{content_type}",
        ])
        .args(["-k", "--cert", &format!("{key}/cert.pem")])
        .args(["--key", &format!("{key}/key.pem")])
        .args(extra)
        .arg(format!("https://{}{path}", hub.addr))
        .current_dir(ca.dir.path())
        .stdin(Stdio::null())
        .output()
        .expect("curl is installed");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, written) = stdout.rsplit_once('\n').unwrap_or(("", &stdout));
    let (status, content_type) = written.split_once(' ').unwrap_or((written, ""));
    CurlCall {
        exit: out.status,
        status: status.to_owned(),
        content_type: content_type.to_owned(),
        body: body.to_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The README's end-to-end steps: the hub with its own self-signed `localhost` certificate
/// (no `--tls-cert/--tls-key`), curl with `-k` and the key directory's `cert.pem` (the leaf
/// alone) and `key.pem`, then the key revoked and curl refused within a second.
#[tokio::test]
async fn curl_reaches_a_self_signed_hub_as_the_readme_shows_until_the_key_is_revoked() {
    let ca = Ca::start();
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics", "write:events"])
        .await;
    let key = ca
        .enroll_into("alice@acme", &["read:metrics"], "alice")
        .await;
    // Another key, to show the hub still serves when alice's is refused.
    ca.enroll_into("alice@acme", &["read:metrics"], "spare")
        .await;
    let hub = Hub::start_with(&ca, HubCert::SelfSigned, &["--tenant", "acme"]);

    // Without -k curl does not trust the hub's self-signed certificate.
    let out = Command::new("curl")
        .args(["-sS", "--cert", "alice/cert.pem", "--key", "alice/key.pem"])
        .arg(format!("https://{}/api/v1/whoami", hub.addr))
        .current_dir(ca.dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(60), "{out:?}");

    let whoami = curl(&ca, &hub, "alice", &[], "/api/v1/whoami");
    assert!(whoami.exit.success(), "{whoami:?}");
    assert_eq!(whoami.status, "200", "{whoami:?}");
    let identity: serde_json::Value = serde_json::from_str(&whoami.body).unwrap();
    assert_eq!(identity["tenant"], "acme", "{identity}");
    assert_eq!(identity["owner"], "alice", "{identity}");
    assert_eq!(identity["key_id"], key.key.id.as_str(), "{identity}");
    assert_eq!(identity["scopes"], serde_json::json!(["read:metrics"]));

    let metrics = curl(&ca, &hub, "alice", &[], "/api/v1/metrics");
    assert_eq!(metrics.status, "200", "{metrics:?}");
    let events = curl(
        &ca,
        &hub,
        "alice",
        &[
            "-H",
            "content-type: application/json",
            "-d",
            r#"{"name": "click"}"#,
        ],
        "/api/v1/events",
    );
    assert_eq!(events.status, "403", "{events:?}");
    assert_eq!(
        events.content_type, "application/problem+json",
        "{events:?}"
    );
    assert!(events.body.contains("write:events"), "{events:?}");

    ca.admin()
        .revoke_key(None, &key.key.id, None)
        .await
        .unwrap();
    let revoked = std::time::Instant::now();
    // No restart of the hub: it follows the CRL by long poll.
    let refused = loop {
        let attempt = curl(&ca, &hub, "alice", &[], "/api/v1/whoami");
        if !attempt.exit.success() {
            break attempt;
        }
        assert_eq!(attempt.status, "200", "{attempt:?}");
        assert!(
            revoked.elapsed() < Duration::from_secs(1),
            "curl still got in a second after the DELETE"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = revoked.elapsed();
    assert!(
        took <= Duration::from_secs(1),
        "refused only after {took:?}"
    );
    // Refused in the handshake, by a TLS alert: no HTTP response at all.
    assert_eq!(refused.status, "000", "{refused:?}");
    assert!(
        refused.stderr.contains("certificate revoked"),
        "{refused:?}"
    );
    // And stays refused, while another key of the same owner still gets in.
    let again = curl(&ca, &hub, "alice", &[], "/api/v1/whoami");
    assert!(!again.exit.success(), "{again:?}");
    let spare = curl(&ca, &hub, "spare", &[], "/api/v1/whoami");
    assert_eq!(spare.status, "200", "{spare:?}");
}

/// Real programs on real time (the hub is a separate program, verifying with the system's
/// clock): a key whose certificates live 12 s, used for four lifetimes. The renewal rule is
/// the same at any lifetime (two thirds of it); 12 s keeps the test under a minute.
#[tokio::test]
async fn the_auto_renewing_client_keeps_a_12s_key_working_for_4_lifetimes() {
    let ca = Ca::start_with(&["--certificate-lifetime", "12s"]);
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics"])
        .await;
    ca.enroll_into("alice@acme", &["read:metrics"], "alice")
        .await;
    let hub = Hub::start(&ca, &[]);
    let key = latchkey::client::AutoRenewingKey::start(
        &ca.url,
        &ca.ca_pem(),
        latchkey::client::KeyDir::new(ca.path("alice")),
    )
    .unwrap();
    let roots = latchkey::tls::load_certificates(hub.cert_pem(), "hub").unwrap();
    let config = Arc::new(key.client_config(&roots).unwrap());

    let mut serials = std::collections::HashSet::new();
    let mut requests = 0;
    let end = tokio::time::Instant::now() + Duration::from_secs(48);
    while tokio::time::Instant::now() < end {
        let result = hub.call(config.clone(), "GET", "/api/v1/whoami", "").await;
        let (status, body) = result.unwrap_or_else(|e| panic!("request {requests} failed: {e}"));
        assert_eq!(status, 200, "request {requests}: {body}");
        requests += 1;
        if let Some(serial) = key.current_serial() {
            serials.insert(serial);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // One every 250 ms, less the requests' own time: about 190 in 48 s.
    assert!(requests > 100, "only {requests} requests");
    assert!(
        serials.len() >= 4,
        "the certificate was renewed only {} times",
        serials.len() - 1
    );
}

/// The library's CA revocation source rides out a CA that is down (it retries, and the
/// builder holds back until the first CRL arrives), and takes only CRLs its issuer signed.
#[tokio::test]
async fn the_ca_revocation_source_waits_out_an_outage_and_takes_only_its_issuers_crls() {
    use latchkey::relying::{Relying, RelyingError};
    let mut ca = Ca::start();
    let root_pem = ca.ca_pem();
    let chain = ca.anonymous().ca_chain().await.unwrap();
    let (number, _) = ca.anonymous().crl(None, 0).await.unwrap().unwrap();
    ca.stop();

    let builder = Relying::builder("latchkey.internal")
        .any_tenant()
        .follow_ca(&ca.url, &root_pem)
        .ca_chain(chain)
        .first_crl_within(Duration::from_secs(30));
    let building = tokio::spawn(builder.build());
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !building.is_finished(),
        "built without a CRL, or gave up at once"
    );
    ca.start_again();
    let relying = tokio::time::timeout(Duration::from_secs(15), building)
        .await
        .expect("no CRL after the CA came back")
        .unwrap()
        .expect("the relying service is configured");
    let held = relying.verifier().revocations().current().unwrap();
    assert!(held.number() >= number);

    // Given another CA's chain, it takes none of this CA's intermediates or CRLs, and says
    // so: the CA's issuers are not the given root's, so none is followed.
    let other = Ca::start();
    let foreign = other.anonymous().ca_chain().await.unwrap();
    // The log proves the misled source fetched the CA's issuers and turned them down, so the
    // refusal cannot pass merely because nothing was fetched. (Single-threaded runtime: the
    // source's task logs on this thread.)
    let log = CapturedLog::default();
    let _capture = log.capture();
    let misled = Relying::builder("latchkey.internal")
        .any_tenant()
        .follow_ca(&ca.url, &root_pem)
        .ca_chain(foreign)
        .first_crl_within(Duration::from_secs(3))
        .build()
        .await;
    assert!(
        matches!(misled, Err(RelyingError::NoCrl(_))),
        "a CRL signed by another issuer was taken: {misled:?}"
    );
    assert!(
        log.text().contains("issuer skipped"),
        "the misled source never fetched and refused the CA's issuers: {}",
        log.text()
    );
}

// Multi-threaded: alice's calls go on while the test waits for `latchkey ca rotate`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_following_hub_accepts_good_keys_through_a_rotation_and_follows_the_new_intermediates_crl()
 {
    let ca = Ca::start_with(&["--renew-interval", "0s"]);
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics"])
        .await;
    let alice = ca
        .enroll_into("alice@acme", &["read:metrics"], "alice")
        .await;
    let hub = Arc::new(Hub::start(&ca, &[]));
    let before = Arc::new(hub.client(&ca.path("alice")));
    still_serves(&hub, &before).await;

    // Alice calls the hub on a new connection every 20 ms, all through the rotation: none
    // may be refused.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let caller = {
        let (stop, config, hub) = (stop.clone(), before.clone(), hub.clone());
        tokio::spawn(async move {
            let mut calls = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let (status, body) = hub
                    .call(config.clone(), "GET", "/api/v1/whoami", "")
                    .await
                    .unwrap_or_else(|e| panic!("alice refused after {calls} calls: {e}"));
                assert_eq!(status, 200, "{body}");
                calls += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            calls
        })
    };
    let out = tokio::task::block_in_place(|| ca.cli(&["ca", "rotate"]));
    assert!(out.status.success(), "{out:?}");
    // The CA follows its store within a fraction of a second.
    let client = ca.anonymous();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while client
        .issuers(None, 0)
        .await
        .unwrap()
        .unwrap()
        .issuers
        .len()
        < 2
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the CA never took the rotation"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A key of the new intermediate gets in once the hub follows it (it long-polls the
    // CA's issuers, then fetches the new one's CRL), with no restart.
    let bob = ca.enroll_into("alice@acme", &["read:metrics"], "bob").await;
    let new_issuer = {
        use rustls_pki_types::pem::PemObject;
        let der =
            rustls_pki_types::CertificateDer::from_pem_slice(bob.certificate.as_bytes()).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        cert.issuer().to_string()
    };
    assert_eq!(new_issuer, "CN=latchkey issuing CA 2, O=latchkey");
    let bob_config = Arc::new(hub.client(&ca.path("bob")));
    assert!(
        hub.accepts_within(&bob_config, true, Duration::from_secs(5))
            .await,
        "the hub never accepted the new intermediate's key"
    );

    // Alice renews under the new intermediate; her new certificate gets in at once.
    let renewed = ca
        .with_identity(&ca.path("alice"))
        .renew(&alice.key.id, None)
        .await
        .unwrap();
    let dir = latchkey::client::KeyDir::new(ca.path("alice"));
    dir.write_certificates(&renewed.certificate, &renewed.chain)
        .unwrap();
    let after = Arc::new(hub.client(&ca.path("alice")));
    still_serves(&hub, &after).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let calls = caller.await.unwrap();
    assert!(calls > 5, "alice called {calls} times through the rotation");

    // A revocation of a key of the new intermediate reaches the hub within a second.
    ca.admin()
        .revoke_key(None, &bob.key.id, Some("key_compromise"))
        .await
        .unwrap();
    assert!(
        hub.accepts_within(&bob_config, false, Duration::from_secs(1))
            .await,
        "the revoked key still got in a second later"
    );
    still_serves(&hub, &after).await;
}

#[tokio::test]
async fn a_hub_trusting_only_a_tenants_own_intermediate_refuses_every_other_tenants_key() {
    let ca = Ca::start();
    let out = ca.cli(&["tenant", "add", "acme", "--dedicated-issuer"]);
    assert!(out.status.success(), "{out:?}");
    ca.user("alice@acme", &["read:metrics"]).await;
    ca.tenant_with_user("globex", "bob@globex", &["read:metrics"])
        .await;
    ca.enroll_into("alice@acme", &["read:metrics"], "alice")
        .await;
    ca.enroll_into("bob@globex", &["read:metrics"], "bob").await;
    // acme's chain (GET /v1/ca?tenant=acme) and its intermediate's CRL.
    let fetch = |path: &str, file: &str| {
        let status = Command::new("curl")
            .args(["-sS", "-f", "--cacert", "certs/ca.pem", "-o", file])
            .arg(format!("{}{path}", ca.url))
            .current_dir(ca.dir.path())
            .status()
            .unwrap();
        assert!(status.success(), "GET {path}");
    };
    fetch("/v1/ca?tenant=acme", "acme-chain.pem");
    let list = ca.anonymous().issuers(None, 0).await.unwrap().unwrap();
    let acme = list
        .issuers
        .iter()
        .find(|i| i.tenant.as_ref().is_some_and(|t| t.as_str() == "acme"))
        .unwrap();
    fetch(acme.crl.as_deref().unwrap(), "acme.crl");
    // No tenant pinned: only the chain decides.
    let hub = Hub::start(
        &ca,
        &["--ca-chain", "acme-chain.pem", "--crl-file", "acme.crl"],
    );
    still_serves(&hub, &Arc::new(hub.client(&ca.path("alice")))).await;
    let bob = Arc::new(hub.client(&ca.path("bob")));
    let refused = hub
        .call(bob, "GET", "/api/v1/whoami", "")
        .await
        .expect_err("another tenant's key, with its own intermediate, got in");
    assert!(
        refused.contains("UnknownIssuer") || refused.contains("alert"),
        "{refused}"
    );
    let bob_leaf = Arc::new(hub.leaf_only_client(&ca.path("bob")));
    assert!(
        hub.call(bob_leaf, "GET", "/api/v1/whoami", "")
            .await
            .is_err()
    );
}
