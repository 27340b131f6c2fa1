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
fn verify_all(ca: &Ca, crls: &str, cert: &str) -> (bool, String) {
    let out = run(
        ca.dir.path(),
        "openssl",
        &[
            "verify",
            "-crl_check_all",
            "-CAfile",
            "certs/ca.pem",
            "-untrusted",
            "certs/intermediate.pem",
            "-CRLfile",
            crls,
            cert,
        ],
    );
    (out.status.success(), text(&out))
}

/// Revokes `id` as admin and waits for the CRL that lists it.
async fn revoke_and_wait(ca: &Ca, id: &str) {
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
    curl(&ca, "/v1/crl", "application/x-pem-file", "intermediate-crl.pem");
    let root = text(&openssl(dir, &["crl", "-inform", "DER", "-in", "root.der", "-noout", "-text"]));
    assert!(root.contains("Issuer: CN = latchkey root CA"), "{root}");
    assert!(root.contains("X509v3 CRL Number"), "{root}");
    assert!(root.contains("No Revoked Certificates"), "{root}");
    let inter = text(&openssl(dir, &["crl", "-in", "intermediate-crl.pem", "-noout", "-text"]));
    assert!(inter.contains("Issuer: CN = latchkey issuing CA"), "{inter}");
    // Valid for 30 days by default (thisUpdate backdated a minute).
    let der = std::fs::read(dir.join("root.der")).unwrap();
    let (_, crl) = x509_parser::parse_x509_crl(&der).unwrap();
    let span = crl.next_update().unwrap().timestamp() - crl.last_update().timestamp();
    assert_eq!(span, 30 * 86400 + 60);

    // ETag and 304, as /v1/crl.
    let out = run(
        dir,
        "curl",
        &["-sS", "-i", "--cacert", "certs/ca.pem", &format!("{}/v1/crl/root", ca.url)],
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
            "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", "certs/ca.pem", "-H",
            &format!("If-None-Match: {etag}"), &format!("{}/v1/crl/root", ca.url),
        ],
    );
    assert_eq!(text(&out), "304");

    // Without the root's CRL, -crl_check_all cannot check the intermediate.
    let (ok, out) = verify_all(&ca, "intermediate-crl.pem", "good/cert.pem");
    assert!(!ok && out.contains("unable to get certificate CRL"), "{out}");

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
    let cert = text(&openssl(dir, &["x509", "-in", "certs/intermediate.pem", "-noout", "-text"]));
    let port = ca.url.rsplit(':').next().unwrap();
    assert!(
        cert.contains(&format!("URI:https://localhost:{port}/v1/crl/root")),
        "the intermediate's CRL distribution point: {cert}"
    );
}

#[tokio::test]
async fn the_root_crl_is_signed_again_before_it_expires() {
    let ca = Ca::start_with(&["--root-crl-validity", "60s"]);
    let first = std::fs::read(ca.home().join("ca.pem")).unwrap();
    let client = Client::new(&ca.url, &first, None).unwrap();
    let (number, der) = client.root_crl().await.unwrap();
    let (_, next_update) = root_crl_window(&der);
    // Re-signed when half of its validity has passed: well before nextUpdate.
    let deadline = Instant::now() + Duration::from_secs(50);
    loop {
        let (n, der) = client.root_crl().await.unwrap();
        if n > number {
            let (_, later) = root_crl_window(&der);
            assert!(later > next_update);
            assert!(
                time::OffsetDateTime::now_utc().unix_timestamp() < next_update,
                "re-signed only after the old one expired"
            );
            break;
        }
        assert!(Instant::now() < deadline, "the root CRL was not signed again");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // And the CA stays ready throughout.
    let out = run(
        ca.dir.path(),
        "curl",
        &["-sS", "-f", "--cacert", "certs/ca.pem", &format!("{}/readyz", ca.url)],
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
    std::fs::rename(home.join("root-key.pem"), dir.path().join("offline-root-key.pem")).unwrap();
    let server = serve(dir.path(), &["--listen", "127.0.0.1:0"], &[]);
    let ca_pem = std::fs::read(home.join("ca.pem")).unwrap();
    let readyz = || {
        run(
            dir.path(),
            "curl",
            &["-sS", "--cacert", "certs/ca.pem", &format!("{}/readyz", server.url)],
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
        "crl", "sign-root", "--root-key", "offline-root-key.pem", "--validity", "90d", "--out",
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
        assert!(Instant::now() < deadline, "the stored root CRL was not served");
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
        assert!(Instant::now() < deadline, "the newer root CRL was not served");
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
    let cert = text(&openssl(dir, &["x509", "-in", "good/cert.pem", "-noout", "-text"]));
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
        .find_map(|l| l.trim().strip_prefix("URI:").filter(|u| u.starts_with("http://")))
        .unwrap()
        .trim_end_matches("/v1/crl")
        .to_owned();
    let out = run(
        dir,
        "curl",
        &["-sS", "-o", "/dev/null", "-w", "%{http_code}", &format!("{base}/v1/ca")],
    );
    assert_eq!(text(&out), "404");
}
