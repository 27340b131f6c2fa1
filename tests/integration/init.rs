//! First start, second start, `latchkey init`.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use crate::support::{BIN, Ca, PASSWORD, serve};

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
fn the_root_is_a_ten_year_p256_ca_and_the_intermediate_a_five_year_leaf_only_ca_under_it() {
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

    // The issuing intermediate: P-256, 5 years, a CA that may sign only leaves.
    let text = crate::support::openssl(
        &home,
        &["x509", "-in", "intermediate.pem", "-noout", "-text"],
    );
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("NIST CURVE: P-256"), "{text}");
    assert!(text.contains("CA:TRUE, pathlen:0"), "{text}");
    let (_, pem) =
        x509_parser::pem::parse_x509_pem(&std::fs::read(home.join("intermediate.pem")).unwrap())
            .unwrap();
    let intermediate = pem.parse_x509().unwrap();
    let bc = intermediate
        .basic_constraints()
        .unwrap()
        .expect("basicConstraints");
    assert!(bc.critical && bc.value.ca);
    assert_eq!(bc.value.path_len_constraint, Some(0));
    let validity = intermediate.validity();
    let days = (validity.not_after.timestamp() - validity.not_before.timestamp()) / 86400;
    assert!(
        (5 * 365..=5 * 366).contains(&days),
        "the intermediate lives 5 years, not {days} days"
    );
    assert!(
        validity.not_after <= root.validity().not_after,
        "the intermediate never outlives the root"
    );
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
        encrypt_keys: false,
        pkcs11: None,
        trust_domain: "latchkey.internal".into(),
        hostnames: vec!["ca.example.test".into()],
        public_url: None,
        crl_url: None,
    };
    let now = time::OffsetDateTime::now_utc();
    let start = |at: time::OffsetDateTime, options: InitOptions| {
        let home = home.clone();
        async move {
            let prepared = latchkey::server::prepare(
                &home,
                None,
                &options,
                Policy::default(),
                Arc::new(FixedClock(at)),
            )
            .await
            .unwrap();
            prepared.authority.close().await;
            prepared.initialized_now
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
            store
                .certificate_der(&serial.parse().unwrap())
                .await
                .unwrap()
                .unwrap(),
            cert.contents
        );
    }
    store.close().await;
}

/// Every certificate the CA signs for itself is recorded before a file holds it: a home
/// moved to an empty database does not go on using certificates that database has never seen,
/// it gets new ones, recorded there, and the files change only after the record.
#[tokio::test]
async fn a_home_moved_to_a_new_database_gets_service_certificates_recorded_there() {
    use latchkey::authority::Policy;
    use latchkey::clock::FixedClock;
    use latchkey::home::{Home, InitOptions};
    use std::sync::Arc;

    let dir = tempfile::tempdir().unwrap();
    let home = Home::new(dir.path().join("certs"));
    let options = InitOptions {
        encrypt_keys: false,
        pkcs11: None,
        trust_domain: "latchkey.internal".into(),
        hostnames: vec![],
        public_url: None,
        crl_url: None,
    };
    let now = time::OffsetDateTime::now_utc();
    let start = |database: std::path::PathBuf| {
        let (home, options) = (home.clone(), options.clone());
        async move {
            let url = latchkey::store::sqlite_url(&database);
            let prepared = latchkey::server::prepare(
                &home,
                Some(&url),
                &options,
                Policy::default(),
                Arc::new(FixedClock(now)),
            )
            .await
            .unwrap();
            prepared.authority.close().await;
        }
    };
    let serial_of = |path: &Path| {
        let pem = std::fs::read(path).unwrap();
        let (_, cert) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
        hex::encode(cert.parse_x509().unwrap().raw_serial())
    };
    let files = [home.admin_dir().join("cert.pem"), home.server_cert()];
    let first_db = dir.path().join("first.db");
    start(first_db.clone()).await;
    let first: Vec<String> = files.iter().map(|f| serial_of(f)).collect();

    // The same database again: nothing is issued.
    start(first_db.clone()).await;
    let again: Vec<String> = files.iter().map(|f| serial_of(f)).collect();
    assert_eq!(again, first);

    let second_db = dir.path().join("second.db");
    start(second_db.clone()).await;
    let second: Vec<String> = files.iter().map(|f| serial_of(f)).collect();
    for (old, new) in first.iter().zip(&second) {
        assert_ne!(
            old, new,
            "a certificate unknown to the new database must be replaced"
        );
    }
    for (db, serials, other) in [(&first_db, &first, &second), (&second_db, &second, &first)] {
        let store = latchkey::store::Store::open_sqlite(db).await.unwrap();
        for serial in serials {
            let serial = serial.parse().unwrap();
            assert!(store.certificate_der(&serial).await.unwrap().is_some());
        }
        for serial in other {
            let serial = serial.parse().unwrap();
            assert!(store.certificate_der(&serial).await.unwrap().is_none());
        }
        store.close().await;
    }
}

/// The admin client of the CA whose home is `home`, at `url`.
fn admin_client(url: &str, home: &Path) -> latchkey::client::Client {
    let ca = std::fs::read(home.join("ca.pem")).unwrap();
    let chain = std::fs::read(home.join("admin/chain.pem")).unwrap();
    let key = std::fs::read(home.join("admin/key.pem")).unwrap();
    latchkey::client::Client::new(url, &ca, Some((&chain, &key))).unwrap()
}

#[test]
fn the_first_start_prints_where_the_chain_is_and_a_next_command_that_works() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("certs");
    let first = serve(dir.path(), &["--listen", "127.0.0.1:0"], &[]);
    let text = first.lines.join("\n");
    assert!(
        first.lines[0].starts_with("latchkey: initialized a new CA in"),
        "{text}"
    );
    let ca_pem = home.join("ca.pem");
    assert!(
        first
            .lines
            .iter()
            .any(|l| l.contains("clients trust:")
                && l.trim_end().ends_with(&*ca_pem.to_string_lossy())),
        "the block names ca.pem: {text}"
    );
    let next = first
        .lines
        .iter()
        .find_map(|l| l.trim().strip_prefix("next:"))
        .unwrap_or_else(|| panic!("no next command: {text}"));
    let words: Vec<&str> = next.split_whitespace().collect();
    assert_eq!(words[0], "latchkey", "{next}");
    assert!(next.ends_with(" tenant add acme"), "{next}");
    assert!(next.contains(&format!("--server {}", first.url)), "{next}");

    // The printed command, pasted into a shell with nothing else set up, works.
    let out = Command::new(BIN)
        .args(&words[1..])
        .current_dir(dir.path())
        .env_remove("LATCHKEY_HOME")
        .env_remove("LATCHKEY_SERVER")
        .env_remove("LATCHKEY_CA_CERT")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{next}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("acme"));
    drop(first);

    // A second start reuses the CA: it says where the chain is, but initializes nothing.
    let second = serve(dir.path(), &["--listen", "127.0.0.1:0"], &[]);
    let text = second.lines.join("\n");
    assert!(!text.contains("initialized"), "{text}");
    assert!(text.contains(&*ca_pem.to_string_lossy()), "{text}");
}

#[test]
fn latchkey_listen_sets_the_address_and_serve_help_shows_it_and_the_default() {
    let help = Command::new(BIN)
        .args(["serve", "--help"])
        .env_remove("LATCHKEY_LISTEN")
        .output()
        .unwrap();
    assert!(help.status.success());
    let help = String::from_utf8_lossy(&help.stdout);
    // The --listen entry: its line and the description lines under it.
    let listen: String = help
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("--listen"))
        .enumerate()
        .take_while(|(i, l)| *i == 0 || !l.trim_start().starts_with('-'))
        .map(|(_, l)| l)
        .collect::<Vec<_>>()
        .join(" ");
    assert!(!listen.is_empty(), "no --listen in {help}");
    assert!(listen.contains("[env: LATCHKEY_LISTEN=]"), "{listen}");
    assert!(listen.contains("[default: 127.0.0.1:8443]"), "{listen}");

    // A free port, named only through the environment.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let address = format!("127.0.0.1:{port}");
    let server = serve(dir.path(), &[], &[("LATCHKEY_LISTEN", &address)]);
    assert_eq!(server.url, format!("https://{address}"));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let conn = latchkey::client::Connection::new(
        &server.url,
        &std::fs::read(dir.path().join("certs/ca.pem")).unwrap(),
        None,
    )
    .unwrap();
    let (status, _) = rt
        .block_on(conn.send(http::Method::GET, "/healthz", None, None))
        .expect("the server answers on the address from LATCHKEY_LISTEN");
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_trust_domain_set_by_init_names_every_key_the_server_issues() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("certs");
    let out = Command::new(BIN)
        .args(["init", "--trust-domain", "example.test", "--home"])
        .arg(&home)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // serve is not told the domain again: the one fixed at initialization holds.
    let server = serve(dir.path(), &["--listen", "127.0.0.1:0"], &[]);
    let admin = admin_client(&server.url, &home);
    admin
        .add_tenant(&latchkey::api::NewTenant {
            name: "acme".parse().unwrap(),
            max_key_days: None,
            dedicated_issuer: false,
        })
        .await
        .unwrap();
    admin
        .add_user(&latchkey::api::NewUser {
            user: "alice@acme".parse().unwrap(),
            password: PASSWORD.into(),
            scopes: crate::support::scope_set(&["read:metrics"]),
        })
        .await
        .unwrap();
    let answer = latchkey::client::Client::new(
        &server.url,
        &std::fs::read(home.join("ca.pem")).unwrap(),
        None,
    )
    .unwrap()
    .enroll(
        &crate::support::password("alice@acme"),
        &crate::support::request(&crate::support::csr(), &["read:metrics"], "laptop"),
    )
    .await
    .unwrap();
    let (_, pem) = x509_parser::pem::parse_x509_pem(answer.certificate.as_bytes()).unwrap();
    let cert = pem.parse_x509().unwrap();
    let san = cert
        .subject_alternative_name()
        .unwrap()
        .expect("subjectAltName");
    let uris: Vec<String> = san
        .value
        .general_names
        .iter()
        .map(|n| format!("{n:?}"))
        .collect();
    assert_eq!(
        uris,
        [format!(
            "URI(\"spiffe://example.test/tenant/acme/key/{}\")",
            answer.key.id
        )]
    );
    latchkey::profile::danger::read_unverified_certificate(&cert, "example.test")
        .expect("the key's identity parses in its trust domain");
}
