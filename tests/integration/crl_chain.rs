//! CRLs for every level of the chain: the root's CRL (`/v1/crl/root`), the bundle proxies
//! load (`/v1/crl/bundle.pem`), distribution points openssl follows, `latchkey crl
//! sign-root` for an offline root key, and `latchkey crl sync` keeping a proxy's file
//! current. Checked with openssl (and HAProxy) against the real server.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use latchkey::client::Client;

use crate::support::{BIN, Ca, openssl, serve};

fn run(dir: &Path, program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"))
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

fn curl(ca: &Ca, path: &str, accept: &str, out: &str) {
    let status = Command::new("curl")
        .args(["-sS", "-f", "--cacert", "certs/ca.pem", "-H"])
        .arg(format!("Accept: {accept}"))
        .args(["-o", out])
        .arg(format!("{}{path}", ca.url))
        .current_dir(ca.dir.path())
        .status()
        .unwrap();
    assert!(status.success(), "curl {path}");
}

/// `openssl verify -crl_check_all` of `cert` with the CRLs in `crls`.
pub(crate) fn verify_all(ca: &Ca, crls: &str, cert: &str) -> (bool, String) {
    verify_all_with(ca, "certs/intermediate.pem", crls, cert)
}

/// [`verify_all`] with the intermediates in `intermediates` (after a rotation, there are
/// several).
pub(crate) fn verify_all_with(
    ca: &Ca,
    intermediates: &str,
    crls: &str,
    cert: &str,
) -> (bool, String) {
    let out = run(
        ca.dir.path(),
        "openssl",
        &[
            "verify",
            "-crl_check_all",
            "-CAfile",
            "certs/ca.pem",
            "-untrusted",
            intermediates,
            "-CRLfile",
            crls,
            cert,
        ],
    );
    (out.status.success(), text(&out))
}

/// Revokes `id` as admin and waits for the CRL that lists it.
pub(crate) async fn revoke_and_wait(ca: &Ca, id: &str) {
    let (before, _) = ca.anonymous().crl(None, 0).await.unwrap().unwrap();
    ca.admin()
        .revoke_key(None, id, Some("key_compromise"))
        .await
        .unwrap();
    ca.anonymous()
        .crl(Some(before), 10)
        .await
        .unwrap()
        .expect("a newer CRL");
}

fn root_crl_window(der: &[u8]) -> (i64, i64) {
    let (_, crl) = x509_parser::parse_x509_crl(der).expect("a CRL");
    (
        i64::try_from(crl.crl_number().expect("number")).unwrap(),
        crl.next_update().expect("nextUpdate").timestamp(),
    )
}

#[tokio::test]
async fn the_root_crl_and_the_bundle_let_openssl_check_the_whole_chain() {
    let ca = Ca::start();
    let dir = ca.dir.path();
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics"])
        .await;
    ca.enroll_into("alice@acme", &["read:metrics"], "good")
        .await;
    let bad = ca.enroll_into("alice@acme", &["read:metrics"], "bad").await;

    // The root CRL in DER and PEM; openssl reads both CRLs.
    curl(&ca, "/v1/crl/root", "application/pkix-crl", "root.der");
    curl(&ca, "/v1/crl/root", "application/x-pem-file", "root.pem");
    curl(
        &ca,
        "/v1/crl",
        "application/x-pem-file",
        "intermediate-crl.pem",
    );
    let root = text(&openssl(
        dir,
        &[
            "crl", "-inform", "DER", "-in", "root.der", "-noout", "-text",
        ],
    ));
    assert!(root.contains("Issuer: CN = latchkey root CA"), "{root}");
    assert!(root.contains("X509v3 CRL Number"), "{root}");
    assert!(root.contains("No Revoked Certificates"), "{root}");
    let inter = text(&openssl(
        dir,
        &["crl", "-in", "intermediate-crl.pem", "-noout", "-text"],
    ));
    assert!(
        inter.contains("Issuer: CN = latchkey issuing CA"),
        "{inter}"
    );
    // Valid for 30 days by default (thisUpdate backdated a minute).
    let der = std::fs::read(dir.join("root.der")).unwrap();
    let (_, crl) = x509_parser::parse_x509_crl(&der).unwrap();
    let span = crl.next_update().unwrap().timestamp() - crl.last_update().timestamp();
    assert_eq!(span, 30 * 86400 + 60);

    // ETag and 304, as /v1/crl.
    let out = run(
        dir,
        "curl",
        &[
            "-sS",
            "-i",
            "--cacert",
            "certs/ca.pem",
            &format!("{}/v1/crl/root", ca.url),
        ],
    );
    let head = text(&out);
    let etag = head
        .lines()
        .find_map(|l| l.strip_prefix("etag: "))
        .expect("an ETag")
        .trim()
        .to_owned();
    let out = run(
        dir,
        "curl",
        &[
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--cacert",
            "certs/ca.pem",
            "-H",
            &format!("If-None-Match: {etag}"),
            &format!("{}/v1/crl/root", ca.url),
        ],
    );
    assert_eq!(text(&out), "304");

    // Without the root's CRL, -crl_check_all cannot check the intermediate.
    let (ok, out) = verify_all(&ca, "intermediate-crl.pem", "good/cert.pem");
    assert!(
        !ok && out.contains("unable to get certificate CRL"),
        "{out}"
    );

    // The bundle: both, in one PEM file.
    curl(&ca, "/v1/crl/bundle.pem", "*/*", "bundle.pem");
    let (ok, out) = verify_all(&ca, "bundle.pem", "good/cert.pem");
    assert!(ok, "{out}");
    let (ok, _) = verify_all(&ca, "bundle.pem", "bad/cert.pem");
    assert!(ok, "not revoked yet");

    revoke_and_wait(&ca, &bad.key.id).await;
    curl(&ca, "/v1/crl/bundle.pem", "*/*", "bundle.pem");
    let (ok, out) = verify_all(&ca, "bundle.pem", "good/cert.pem");
    assert!(ok, "{out}");
    let (ok, out) = verify_all(&ca, "bundle.pem", "bad/cert.pem");
    assert!(!ok && out.contains("certificate revoked"), "{out}");

    // The intermediate names where the root's CRL is.
    let cert = text(&openssl(
        dir,
        &["x509", "-in", "certs/intermediate.pem", "-noout", "-text"],
    ));
    let port = ca.url.rsplit(':').next().unwrap();
    assert!(
        cert.contains(&format!("URI:https://localhost:{port}/v1/crl/root")),
        "the intermediate's CRL distribution point: {cert}"
    );
}

#[tokio::test]
async fn the_root_crl_is_signed_again_before_it_expires() {
    // In process, on a clock the test moves: root CRLs valid for 60 s.
    let ca = Ca::in_process(latchkey::authority::Policy {
        root_crl_validity: time::Duration::seconds(60),
        ..latchkey::authority::Policy::default()
    });
    let first = std::fs::read(ca.home().join("ca.pem")).unwrap();
    let client = Client::new(&ca.url, &first, None).unwrap();
    let (number, der) = client.root_crl().await.unwrap();
    let (_, next_update) = root_crl_window(&der);
    // Not before half of its validity has passed (the publisher looks every 5 s).
    ca.advance(time::Duration::seconds(20));
    tokio::time::sleep(Duration::from_secs(6)).await;
    let (n, _) = client.root_crl().await.unwrap();
    assert_eq!(
        n, number,
        "re-signed before half of its validity had passed"
    );
    // Re-signed when half of its validity has passed: well before nextUpdate.
    ca.advance(time::Duration::seconds(12));
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (n, der) = client.root_crl().await.unwrap();
        if n > number {
            let (_, later) = root_crl_window(&der);
            assert!(later > next_update);
            assert!(
                ca.now().unix_timestamp() < next_update,
                "re-signed only after the old one expired"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the root CRL was not signed again"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // And the CA stays ready throughout.
    let out = run(
        ca.dir.path(),
        "curl",
        &[
            "-sS",
            "-f",
            "--cacert",
            "certs/ca.pem",
            &format!("{}/readyz", ca.url),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
}

#[tokio::test]
async fn with_the_root_key_offline_sign_root_feeds_the_ca_and_readyz_says_when_it_cannot() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("certs");
    let cli = |args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .env("LATCHKEY_HOME", &home)
            .current_dir(dir.path())
            .output()
            .unwrap()
    };
    let out = cli(&["init"]);
    assert!(out.status.success(), "{}", text(&out));
    // The root key leaves the CA host.
    std::fs::rename(
        home.join("root-key.pem"),
        dir.path().join("offline-root-key.pem"),
    )
    .unwrap();
    let server = serve(dir.path(), &["--listen", "127.0.0.1:0"], &[]);
    let ca_pem = std::fs::read(home.join("ca.pem")).unwrap();
    let readyz = || {
        run(
            dir.path(),
            "curl",
            &[
                "-sS",
                "--cacert",
                "certs/ca.pem",
                &format!("{}/readyz", server.url),
            ],
        )
    };
    let answer = text(&readyz());
    assert!(answer.contains("sign-root"), "{answer}");
    let client = Client::new(&server.url, &ca_pem, None).unwrap();
    assert!(client.root_crl().await.is_err());
    let log = std::fs::read_to_string(dir.path().join("serve.log")).unwrap();
    assert!(log.contains("NO FRESH ROOT CRL"), "{log}");

    // Signed into a file where the key is, then stored; the CA serves it within seconds.
    let out = cli(&[
        "crl",
        "sign-root",
        "--root-key",
        "offline-root-key.pem",
        "--validity",
        "90d",
        "--out",
        "root-crl.pem",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let out = cli(&["crl", "import-root", "root-crl.pem"]);
    assert!(out.status.success(), "{}", text(&out));
    let deadline = Instant::now() + Duration::from_secs(15);
    let (first, der) = loop {
        if let Ok(crl) = client.root_crl().await {
            break crl;
        }
        assert!(
            Instant::now() < deadline,
            "the stored root CRL was not served"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let (_, next) = root_crl_window(&der);
    assert!(next - time::OffsetDateTime::now_utc().unix_timestamp() > 89 * 86400);
    assert!(readyz().status.success());
    assert_eq!(text(&readyz()), "ready\n");

    // Straight into the store: a newer number, served next.
    let out = cli(&["crl", "sign-root", "--root-key", "offline-root-key.pem"]);
    assert!(out.status.success(), "{}", text(&out));
    let deadline = Instant::now() + Duration::from_secs(15);
    while client.root_crl().await.unwrap().0 <= first {
        assert!(
            Instant::now() < deadline,
            "the newer root CRL was not served"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // A CRL signed by another root is refused.
    let other = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["init"])
        .env("LATCHKEY_HOME", other.path().join("certs"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let out = Command::new(BIN)
        .args(["crl", "sign-root", "--out"])
        .arg(dir.path().join("foreign.pem"))
        .env("LATCHKEY_HOME", other.path().join("certs"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let out = cli(&["crl", "import-root", "foreign.pem"]);
    assert!(!out.status.success());
}

#[tokio::test]
async fn openssl_crl_download_follows_the_distribution_points_over_plain_http() {
    let ca = Ca::start_with(&["--crl-http-listen", "127.0.0.1:0"]);
    let dir = ca.dir.path();
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics"])
        .await;
    ca.enroll_into("alice@acme", &["read:metrics"], "good")
        .await;
    let bad = ca.enroll_into("alice@acme", &["read:metrics"], "bad").await;
    let download = |cert: &str| {
        let out = run(
            dir,
            "openssl",
            &[
                "verify",
                "-crl_download",
                "-crl_check_all",
                "-CAfile",
                "certs/ca.pem",
                "-untrusted",
                "certs/intermediate.pem",
                cert,
            ],
        );
        (out.status.success(), text(&out))
    };
    let cert = text(&openssl(
        dir,
        &["x509", "-in", "good/cert.pem", "-noout", "-text"],
    ));
    assert!(cert.contains("URI:http://127.0.0.1:"), "{cert}");
    let (ok, out) = download("good/cert.pem");
    assert!(ok, "{out}");
    revoke_and_wait(&ca, &bad.key.id).await;
    let (ok, out) = download("bad/cert.pem");
    assert!(!ok && out.contains("certificate revoked"), "{out}");
    let (ok, out) = download("good/cert.pem");
    assert!(ok, "{out}");

    // The plain listener serves the CRLs and nothing else.
    let base = cert
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("URI:")
                .filter(|u| u.starts_with("http://"))
        })
        .unwrap()
        .trim_end_matches("/v1/crl")
        .to_owned();
    let out = run(
        dir,
        "curl",
        &[
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("{base}/v1/ca"),
        ],
    );
    assert_eq!(text(&out), "404");
}

/// `latchkey crl sync ARGS` against `ca`, run in its directory.
fn sync(ca: &Ca, args: &[&str]) -> Output {
    Command::new(BIN)
        .args([
            "crl",
            "sync",
            "--server",
            &ca.url,
            "--ca-cert",
            "certs/ca.pem",
        ])
        .args(args)
        .current_dir(ca.dir.path())
        .env("RUST_LOG", "info")
        .output()
        .unwrap()
}

/// The serials the first CRL of a PEM file lists.
fn first_crl_serials(pem: &[u8]) -> Vec<String> {
    use rustls_pki_types::pem::PemObject;
    let crl = rustls_pki_types::CertificateRevocationListDer::pem_slice_iter(pem)
        .next()
        .expect("a CRL")
        .expect("PEM");
    let (_, crl) = x509_parser::parse_x509_crl(&crl).unwrap();
    crl.iter_revoked_certificates()
        .map(|r| hex::encode(r.raw_serial()))
        .collect()
}

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |s| s.lines().count())
}

#[tokio::test]
async fn crl_sync_once_writes_a_verified_bundle_and_keeps_the_last_good_file() {
    let mut ca = Ca::start();
    let dir = ca.dir.path().to_owned();
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics"])
        .await;
    ca.enroll_into("alice@acme", &["read:metrics"], "good")
        .await;
    let hook = ["--on-change", "echo changed >> hook.log"];
    let args = [
        &["--once", "--bundle", "--out", "synced.pem"][..],
        &hook[..],
    ]
    .concat();
    let out = sync(&ca, &args);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(lines(&dir.join("hook.log")), 1);
    let (ok, out) = verify_all(&ca, "synced.pem", "good/cert.pem");
    assert!(ok, "{out}");
    let written = std::fs::read(dir.join("synced.pem")).unwrap();
    assert_eq!(
        written
            .windows(15)
            .filter(|w| w == b"-----BEGIN X509")
            .count(),
        2
    );
    // Nothing changed: no hook.
    let out = sync(&ca, &args);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(lines(&dir.join("hook.log")), 1);

    // Another CA's CRLs, reached over TLS the client trusts, are not written: they are not
    // signed by the root this file is for.
    let other = Ca::start();
    let both = [ca.ca_pem(), other.ca_pem()].concat();
    std::fs::write(dir.join("both.pem"), both).unwrap();
    let out = Command::new(BIN)
        .args([
            "crl",
            "sync",
            "--once",
            "--bundle",
            "--out",
            "synced.pem",
            "--server",
        ])
        .arg(&other.url)
        .args(["--ca-cert", "both.pem"])
        .args(hook)
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", text(&out));
    assert_eq!(std::fs::read(dir.join("synced.pem")).unwrap(), written);
    assert_eq!(lines(&dir.join("hook.log")), 1);

    // The CA is down: the last good file stays, and --once says so with its exit status.
    ca.stop();
    let out = sync(&ca, &args);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("last good one is kept"),
        "{}",
        text(&out)
    );
    assert_eq!(std::fs::read(dir.join("synced.pem")).unwrap(), written);
}

/// A `latchkey crl sync` daemon, killed when dropped.
struct Daemon(std::process::Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test]
async fn the_sync_daemon_writes_a_revocation_within_two_seconds_and_runs_the_hook_once_per_change()
{
    let ca = Ca::start();
    let dir = ca.dir.path().to_owned();
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics"])
        .await;
    let bad = ca.enroll_into("alice@acme", &["read:metrics"], "bad").await;
    let _daemon = Daemon(
        Command::new(BIN)
            .args([
                "crl",
                "sync",
                "--server",
                &ca.url,
                "--ca-cert",
                "certs/ca.pem",
            ])
            .args([
                "--bundle",
                "--out",
                "synced.pem",
                "--on-change",
                "echo x >> hook.log",
            ])
            .current_dir(&dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for("the first file", Duration::from_secs(10), || {
        lines(&dir.join("hook.log")) == 1
    });
    let serial = bad.key.certificates[0].serial.clone();
    assert!(!first_crl_serials(&std::fs::read(dir.join("synced.pem")).unwrap()).contains(&serial));
    ca.admin()
        .revoke_key(None, &bad.key.id, Some("key_compromise"))
        .await
        .unwrap();
    wait_for("the revocation in the file", Duration::from_secs(2), || {
        std::fs::read(dir.join("synced.pem"))
            .is_ok_and(|pem| first_crl_serials(&pem).contains(&serial))
    });
    let (ok, out) = verify_all(&ca, "synced.pem", "bad/cert.pem");
    assert!(!ok && out.contains("certificate revoked"), "{out}");
    wait_for("the hook after the change", Duration::from_secs(2), || {
        lines(&dir.join("hook.log")) == 2
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        lines(&dir.join("hook.log")),
        2,
        "the hook ran without a change"
    );
}

#[tokio::test]
async fn crl_sync_swaps_haproxys_crl_live_and_haproxy_refuses_the_revoked_key() {
    let ca = Ca::start();
    let dir = ca.dir.path().to_owned();
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics"])
        .await;
    ca.enroll_into("alice@acme", &["read:metrics"], "good")
        .await;
    let bad = ca.enroll_into("alice@acme", &["read:metrics"], "bad").await;
    // HAProxy's TLS front: its certificate and key in one file (the CA's own server ones),
    // client certificates checked against the chain and the CRL file.
    let server = [
        std::fs::read(ca.home().join("server.pem")).unwrap(),
        std::fs::read(ca.home().join("server-key.pem")).unwrap(),
    ]
    .concat();
    std::fs::write(dir.join("haproxy-server.pem"), server).unwrap();
    let chain = [
        std::fs::read(ca.home().join("intermediate.pem")).unwrap(),
        ca.ca_pem(),
    ]
    .concat();
    std::fs::write(dir.join("chain.pem"), chain).unwrap();
    let out = sync(&ca, &["--once", "--bundle", "--out", "crl.pem"]);
    assert!(out.status.success(), "{}", text(&out));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let d = dir.display();
    let config = format!(
        "global\n  stats socket {d}/haproxy.sock level admin\n\
         defaults\n  mode http\n  timeout connect 5s\n  timeout client 5s\n  timeout server 5s\n\
         frontend tls\n  bind 127.0.0.1:{port} ssl crt {d}/haproxy-server.pem ca-file {d}/chain.pem \
         crl-file {d}/crl.pem verify required\n  http-request return status 200 content-type text/plain string ok\n"
    );
    std::fs::write(dir.join("haproxy.cfg"), config).unwrap();
    let _haproxy = Daemon(
        Command::new("haproxy")
            .args(["-db", "-f", "haproxy.cfg"])
            .current_dir(&dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.join("haproxy.log")).unwrap())
            .spawn()
            .expect("haproxy is installed"),
    );
    let get = |key: &str| {
        let out = run(
            &dir,
            "curl",
            &[
                "-sS",
                "--cacert",
                "certs/ca.pem",
                "--cert",
                &format!("{key}/chain.pem"),
                "--key",
                &format!("{key}/key.pem"),
                &format!("https://localhost:{port}/"),
            ],
        );
        text(&out)
    };
    wait_for("haproxy listening", Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    assert_eq!(get("good"), "ok");
    assert_eq!(get("bad"), "ok", "not revoked yet");

    revoke_and_wait(&ca, &bad.key.id).await;
    // The path exactly as HAProxy's configuration names it.
    let named = format!("{d}/crl.pem");
    let out = sync(
        &ca,
        &[
            "--once",
            "--bundle",
            "--out",
            "crl.pem",
            "--haproxy-socket",
            "haproxy.sock",
            "--haproxy-crl-file",
            &named,
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    // No reload: the same HAProxy process refuses the revoked key now.
    assert_ne!(get("bad"), "ok");
    assert_eq!(get("good"), "ok");
}
