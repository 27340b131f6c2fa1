//! The HTTPS listener: client certificates requested but optional, no session resumption,
//! foreign certificates refused.

use std::process::Command;

use crate::support::{Ca, openssl};

fn curl(ca: &Ca, extra: &[&str], path: &str) -> (bool, String) {
    let out = Command::new("curl")
        .args(["-sS", "--cacert"])
        .arg(ca.home().join("ca.pem"))
        .args(extra)
        .arg(format!("{}{path}", ca.url))
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[tokio::test]
async fn clients_without_a_certificate_are_served_and_health_is_public() {
    let ca = Ca::start();
    assert_eq!(curl(&ca, &[], "/healthz"), (true, "ok\n".into()));
    assert_eq!(curl(&ca, &[], "/readyz"), (true, "ready\n".into()));
    let (ok, chain) = curl(&ca, &[], "/v1/ca");
    assert!(ok);
    assert_eq!(
        chain.matches("BEGIN CERTIFICATE").count(),
        2,
        "intermediate and root"
    );
    let (_, missing) = curl(&ca, &[], "/v1/nothing");
    assert!(missing.contains("\"code\":\"not_found\""), "{missing}");
}

/// One HTTPS request over a client config that offers resumption; returns how the
/// handshake went.
async fn handshake_kind(
    ca: &Ca,
    config: std::sync::Arc<rustls::ClientConfig>,
) -> rustls::HandshakeKind {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = ca.url.trim_start_matches("https://").to_owned();
    let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .unwrap();
    tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = Vec::new();
    tls.read_to_end(&mut response).await.unwrap();
    assert!(String::from_utf8_lossy(&response).ends_with("ok\n"));
    tls.get_ref().1.handshake_kind().unwrap()
}

#[tokio::test]
async fn session_resumption_is_off() {
    let ca = Ca::start();
    let roots = latchkey::tls::load_certificates(&ca.ca_pem(), "ca").unwrap();
    let admin = ca.home().join("admin");
    let chain =
        latchkey::tls::load_certificates(&std::fs::read(admin.join("chain.pem")).unwrap(), "chain")
            .unwrap();
    let key =
        latchkey::tls::load_private_key(&std::fs::read(admin.join("key.pem")).unwrap(), "key")
            .unwrap();
    let mut config = latchkey::tls::client_config(&roots, Some((chain, key))).unwrap();
    // The client offers resumption; the server must never accept it, since a resumed
    // session skips the client-certificate verifier.
    config.resumption = rustls::client::Resumption::in_memory_sessions(16);
    let config = std::sync::Arc::new(config);
    for _ in 0..3 {
        assert_eq!(
            handshake_kind(&ca, config.clone()).await,
            rustls::HandshakeKind::Full
        );
    }
}

#[tokio::test]
async fn a_look_alike_certificate_from_another_ca_is_refused() {
    let ca = Ca::start();
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics"])
        .await;
    ca.enroll_into("alice@acme", &["read:metrics"], "alice")
        .await;
    let dir = ca.dir.path();
    // A foreign CA signs a certificate with alice's subject, SAN and serial.
    let real = ca.path("alice/cert.pem");
    let serial = String::from_utf8_lossy(
        &openssl(
            dir,
            &["x509", "-in", real.to_str().unwrap(), "-noout", "-serial"],
        )
        .stdout,
    )
    .trim()
    .trim_start_matches("serial=")
    .to_owned();
    let san = String::from_utf8_lossy(
        &openssl(
            dir,
            &[
                "x509",
                "-in",
                real.to_str().unwrap(),
                "-noout",
                "-ext",
                "subjectAltName",
            ],
        )
        .stdout,
    )
    .lines()
    .nth(1)
    .unwrap()
    .trim()
    .to_owned();
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "evil-ca.key",
            "-out",
            "evil-ca.pem",
            "-subj",
            "/CN=latchkey issuing CA/O=latchkey",
            "-days",
            "1",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "evil.key",
            "-out",
            "evil.csr",
            "-subj",
            "/CN=alice/O=acme",
        ],
    );
    std::fs::write(
        dir.join("evil.ext"),
        format!("subjectAltName={san}\nextendedKeyUsage=clientAuth\n"),
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "evil.csr",
            "-CA",
            "evil-ca.pem",
            "-CAkey",
            "evil-ca.key",
            "-set_serial",
            &format!("0x{serial}"),
            "-days",
            "1",
            "-extfile",
            "evil.ext",
            "-out",
            "evil.pem",
        ],
    );
    let (ok, out) = curl(
        &ca,
        &[
            "--cert",
            dir.join("evil.pem").to_str().unwrap(),
            "--key",
            dir.join("evil.key").to_str().unwrap(),
        ],
        "/v1/keys",
    );
    assert!(
        !ok || !out.contains("\"keys\""),
        "a foreign certificate got in: {out}"
    );
    // The real certificate works.
    let (ok, out) = curl(
        &ca,
        &[
            "--cert",
            ca.path("alice/chain.pem").to_str().unwrap(),
            "--key",
            ca.path("alice/key.pem").to_str().unwrap(),
        ],
        "/v1/keys",
    );
    assert!(ok && out.contains("\"keys\""), "{out}");
}

/// The listener judges a client certificate's dates by the CA's clock, as the authority
/// does: a key issued after the clock moved two days on is accepted at the handshake (by
/// real time it would not be valid yet), and one that expired by that clock is answered
/// with the 403 that says so, not a handshake failure.
#[tokio::test]
async fn the_listener_judges_client_certificates_by_the_cas_clock() {
    let ca = Ca::in_process(latchkey::authority::Policy::default());
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics"])
        .await;
    let old = ca.enroll_into("alice@acme", &["read:metrics"], "old").await;
    ca.advance(time::Duration::days(2));
    let new = ca.enroll_into("alice@acme", &["read:metrics"], "new").await;
    let shown = ca
        .with_identity(&ca.path("new"))
        .key(None, &new.key.id)
        .await
        .expect("a key issued on the moved clock is accepted");
    assert_eq!(shown.id, new.key.id);
    // The first key's 24-hour certificate expired by the CA's clock (not by real time).
    let err = ca
        .with_identity(&ca.path("old"))
        .renew(&old.key.id, None)
        .await
        .unwrap_err();
    assert_eq!(crate::support::problem_code(err), "certificate_expired");
}
