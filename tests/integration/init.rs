//! First start, second start, `latchkey init`.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use crate::support::{BIN, Ca};

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).expect("file").permissions().mode() & 0o777
}

#[test]
fn first_start_initializes_the_home_and_a_second_start_reuses_it() {
    let mut ca = Ca::start();
    let home = ca.home();
    for file in [
        "ca.pem",
        "intermediate.pem",
        "server.pem",
        "latchkey.json",
        "latchkey.db",
        "admin/cert.pem",
        "admin/chain.pem",
    ] {
        assert!(home.join(file).exists(), "{file} missing");
    }
    for secret in [
        "root-key.pem",
        "intermediate-key.pem",
        "server-key.pem",
        "admin/key.pem",
        "latchkey.db",
    ] {
        assert_eq!(mode(&home.join(secret)), 0o600, "{secret} is not 0600");
    }
    assert_eq!(mode(&home), 0o700);
    let settings = std::fs::read_to_string(home.join("latchkey.json")).unwrap();
    assert!(
        settings.contains("\"trust_domain\": \"latchkey.internal\""),
        "{settings}"
    );

    let before: Vec<Vec<u8>> = [
        "ca.pem",
        "root-key.pem",
        "intermediate-key.pem",
        "admin/key.pem",
    ]
    .iter()
    .map(|f| std::fs::read(home.join(f)).unwrap())
    .collect();
    ca.restart();
    let after: Vec<Vec<u8>> = [
        "ca.pem",
        "root-key.pem",
        "intermediate-key.pem",
        "admin/key.pem",
    ]
    .iter()
    .map(|f| std::fs::read(home.join(f)).unwrap())
    .collect();
    assert_eq!(before, after, "a second start must reuse the CA");
    let out = ca.cli(&["tenant", "list"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_root_is_a_ten_year_p256_ca_and_the_intermediate_chains_to_it() {
    let ca = Ca::start();
    let home = ca.home();
    let text = crate::support::openssl(
        &home,
        &["x509", "-in", "ca.pem", "-noout", "-text", "-dates"],
    );
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("NIST CURVE: P-256"), "{text}");
    assert!(text.contains("CA:TRUE"), "{text}");
    let verify =
        crate::support::openssl(&home, &["verify", "-CAfile", "ca.pem", "intermediate.pem"]);
    assert!(String::from_utf8_lossy(&verify.stdout).contains("OK"));
    let (_, root) =
        x509_parser::pem::parse_x509_pem(&std::fs::read(home.join("ca.pem")).unwrap()).unwrap();
    let root = root.parse_x509().unwrap();
    let years = (root.validity().not_after.timestamp() - root.validity().not_before.timestamp())
        / (365 * 86400);
    assert_eq!(years, 10);
}

#[test]
fn init_alone_makes_a_ca_and_never_overwrites_one() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .current_dir(dir.path())
            .env_remove("LATCHKEY_HOME")
            .output()
            .unwrap()
    };
    let out = run(&[
        "init",
        "--trust-domain",
        "example.test",
        "--hostname",
        "ca.example.test",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ca_pem = std::fs::read(dir.path().join("certs/ca.pem")).unwrap();
    let settings = std::fs::read_to_string(dir.path().join("certs/latchkey.json")).unwrap();
    assert!(settings.contains("example.test"));
    let server = crate::support::openssl(
        &dir.path().join("certs"),
        &[
            "x509",
            "-in",
            "server.pem",
            "-noout",
            "-ext",
            "subjectAltName",
        ],
    );
    let sans = String::from_utf8_lossy(&server.stdout);
    for name in [
        "localhost",
        "127.0.0.1",
        "0:0:0:0:0:0:0:1",
        "ca.example.test",
    ] {
        assert!(sans.contains(name), "{name} not in {sans}");
    }

    let again = run(&["init"]);
    assert!(!again.status.success());
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("already exists"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one clear line: {stderr}");
    assert_eq!(
        std::fs::read(dir.path().join("certs/ca.pem")).unwrap(),
        ca_pem
    );
}

#[test]
fn a_half_finished_initialization_is_reported_not_completed_over() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("certs");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(home.join("intermediate-key.pem"), "left over").unwrap();
    let out = Command::new(BIN)
        .args(["init", "--home"])
        .arg(&home)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("did not finish"));
    assert_eq!(
        std::fs::read_to_string(home.join("intermediate-key.pem")).unwrap(),
        "left over"
    );
}

#[tokio::test]
async fn the_cas_own_certificates_are_renewed_before_they_expire_and_recorded() {
    use latchkey::authority::Policy;
    use latchkey::clock::FixedClock;
    use latchkey::home::{Home, InitOptions};
    use std::sync::Arc;

    let dir = tempfile::tempdir().unwrap();
    let home = Home::new(dir.path().join("certs"));
    let options = InitOptions {
        trust_domain: "latchkey.internal".into(),
        hostnames: vec!["ca.example.test".into()],
        public_url: None,
    };
    let now = time::OffsetDateTime::now_utc();
    let start = |at: time::OffsetDateTime, options: InitOptions| {
        let home = home.clone();
        async move {
            let (authority, created) = latchkey::server::prepare(
                &home,
                None,
                &options,
                Policy::default(),
                Arc::new(FixedClock(at)),
            )
            .await
            .unwrap();
            authority.close().await;
            created
        }
    };
    assert!(start(now, options.clone()).await);
    let admin_before = std::fs::read(home.admin_dir().join("cert.pem")).unwrap();
    let server_before = std::fs::read(home.server_cert()).unwrap();

    // A start a day later changes nothing; one with 25 days left renews both, and keeps the
    // name given at initialization although this start does not repeat it.
    let no_names = InitOptions {
        hostnames: vec![],
        ..options.clone()
    };
    assert!(!start(now + time::Duration::days(1), no_names.clone()).await);
    assert_eq!(std::fs::read(home.server_cert()).unwrap(), server_before);
    assert_eq!(
        std::fs::read(home.admin_dir().join("cert.pem")).unwrap(),
        admin_before
    );
    assert!(!start(now + time::Duration::days(340), no_names).await);
    let admin_after = std::fs::read(home.admin_dir().join("cert.pem")).unwrap();
    let server_after = std::fs::read(home.server_cert()).unwrap();
    assert_ne!(admin_after, admin_before);
    assert_ne!(server_after, server_before);
    assert_eq!(mode(&home.admin_dir().join("key.pem")), 0o600);
    let sans = crate::support::openssl(
        home.dir(),
        &[
            "x509",
            "-in",
            "server.pem",
            "-noout",
            "-ext",
            "subjectAltName",
        ],
    );
    assert!(String::from_utf8_lossy(&sans.stdout).contains("ca.example.test"));

    // Both new certificates are recorded, byte for byte.
    let store = latchkey::store::Store::open_sqlite(&home.database())
        .await
        .unwrap();
    for pem in [&admin_after, &server_after] {
        let (_, cert) = x509_parser::pem::parse_x509_pem(pem).unwrap();
        let serial = hex::encode(cert.parse_x509().unwrap().raw_serial());
        assert_eq!(
            store.certificate_der(&serial).await.unwrap().unwrap(),
            cert.contents
        );
    }
    store.close().await;
}
