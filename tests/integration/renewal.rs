//! Renewal over mTLS, `latchkey renew`, and the admin changes that stop new keys.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use latchkey::api::KeyQuery;
use latchkey::api::{RenewRequest, TenantChange, UserChange};
use latchkey::authority::{Caller, Policy};
use latchkey::client::Auth;

use crate::support::{self, BIN, Ca, password, problem_code, request};

#[tokio::test]
async fn renewal_gives_the_same_key_a_new_certificate_and_refuses_others() {
    let ca = Ca::start_with(&["--renew-interval", "0s"]);
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics", "write:events"])
        .await;
    let a = ca.enroll_into("alice@acme", &["read:metrics"], "a").await;
    let b = ca.enroll_into("alice@acme", &["read:metrics"], "b").await;
    let holder = ca.with_identity(&ca.path("a"));

    let renewed = holder.renew(&a.key.id, None).await.unwrap();
    assert_eq!(renewed.key.id, a.key.id);
    assert_eq!(renewed.key.scopes, ["read:metrics"]);
    assert_eq!(renewed.key.certificates.len(), 2);
    let (old, new) = (&renewed.key.certificates[0], &renewed.key.certificates[1]);
    assert_ne!(old.serial, new.serial);
    assert!(new.not_after <= renewed.key.expires_at);
    assert_eq!(renewed.key.tenant, "acme");
    // The renewed certificate names the same tenant and key, and carries the same scopes.
    let identity = |pem: &str| {
        let der = latchkey::tls::load_certificates(pem.as_bytes(), "leaf").unwrap();
        let id = latchkey::profile::danger::read_unverified(&der[0], "latchkey.internal").unwrap();
        (id.id, id.scopes)
    };
    assert_eq!(identity(&renewed.certificate), identity(&a.certificate));
    // Same public key, new serial: both certificates carry the same SPKI.
    let spki = |pem: &str| {
        let (_, p) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
        p.parse_x509().unwrap().public_key().raw.to_vec()
    };
    assert_eq!(spki(&a.certificate), spki(&renewed.certificate));

    // Rekeying with a CSR.
    let pair = latchkey::client::new_key_pair(latchkey::client::KeyType::P256).unwrap();
    let rekeyed = holder.renew(&a.key.id, Some(pair.csr_pem)).await.unwrap();
    assert_ne!(spki(&rekeyed.certificate), spki(&a.certificate));
    // The rekey retired the previous key pair; the holder goes on with the new one.
    let err = holder.renew(&a.key.id, None).await.unwrap_err();
    assert_eq!(problem_code(err), "certificate_revoked");
    let dir = latchkey::client::KeyDir::new(ca.path("a-rekeyed"));
    dir.write_key(&pair.key_pem).unwrap();
    dir.write_certificates(&rekeyed.certificate, &rekeyed.chain)
        .unwrap();
    let holder = ca.with_identity(&ca.path("a-rekeyed"));
    // A CSR whose key belongs to another key is refused.
    let b_key = std::fs::read_to_string(ca.path("b/key.pem")).unwrap();
    let b_pair = rcgen::KeyPair::from_pem(&b_key).unwrap();
    let b_csr = rcgen::CertificateParams::default()
        .serialize_request(&b_pair)
        .unwrap()
        .pem()
        .unwrap();
    let err = holder.renew(&a.key.id, Some(b_csr)).await.unwrap_err();
    assert_eq!(problem_code(err), "public_key_in_use");

    // A certificate of another key: 403.
    let err = holder.renew(&b.key.id, None).await.unwrap_err();
    assert_eq!(problem_code(err), "certificate_not_for_key");
    // No certificate: 401; a password is not enough.
    let anon = ca.raw(None);
    let (status, body) = anon
        .send(
            http::Method::POST,
            &format!("/v1/keys/{}/renew", a.key.id),
            Some(&password("alice@acme")),
            None,
        )
        .await
        .unwrap();
    assert_eq!(status, 401, "{}", String::from_utf8_lossy(&body));
    // The admin certificate is not a key's.
    let err = ca.admin().renew(&a.key.id, None).await.unwrap_err();
    assert_eq!(problem_code(err), "certificate_not_for_key");

    // After revocation: refused at once.
    ca.admin().revoke_key(None, &a.key.id, None).await.unwrap();
    let current = ca.with_identity(&ca.path("a-rekeyed"));
    let err = current.renew(&a.key.id, None).await.unwrap_err();
    assert_eq!(problem_code(err), "key_revoked");
}

/// A key that ends within a day: its certificates, renewed or not, end with it.
#[tokio::test]
async fn a_renewed_certificate_never_outlives_its_key() {
    let ca = Ca::start_with(&["--renew-interval", "0s"]);
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics"])
        .await;
    let client = ca.anonymous();
    let pair = latchkey::client::new_key_pair(latchkey::client::KeyType::P256).unwrap();
    let mut brief = request(&pair.csr_pem, &["read:metrics"], "short");
    brief.ttl_seconds = Some(3600);
    let first = client
        .enroll(&password("alice@acme"), &brief)
        .await
        .unwrap();
    let dir = latchkey::client::KeyDir::new(ca.path("short"));
    dir.write_key(&pair.key_pem).unwrap();
    dir.write_certificates(&first.certificate, &first.chain)
        .unwrap();
    assert_eq!(
        first.key.certificates[0].not_after, first.key.expires_at,
        "24 h capped at the key's hour"
    );
    let renewed = ca
        .with_identity(&ca.path("short"))
        .renew(&first.key.id, None)
        .await
        .unwrap();
    assert_eq!(renewed.key.certificates[1].not_after, first.key.expires_at);
    assert_eq!(
        renewed.key.expires_at, first.key.expires_at,
        "keys are not extended"
    );
}

#[tokio::test]
async fn an_expired_key_is_told_so_with_a_code_not_a_failed_handshake() {
    let ca = Ca::start();
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics"])
        .await;
    let expired = ca
        .expired_key("alice@acme", &["read:metrics"], "expired")
        .await;
    let holder = ca.with_identity(&ca.path("expired"));
    let err = holder.renew(&expired.key.id, None).await.unwrap_err();
    assert_eq!(problem_code(err), "key_expired");
    // Nothing else opens to it either.
    let err = holder
        .list_keys(None, &KeyQuery::default())
        .await
        .unwrap_err();
    assert_eq!(problem_code(err), "invalid_certificate");
    // The CLI says why in one line, and `--watch` stops rather than retrying forever.
    for args in [
        &["renew", "--dir", "expired"][..],
        &["renew", "--dir", "expired", "--watch"][..],
    ] {
        let out = ca.cli(args);
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("key_expired"), "{args:?}: {err}");
    }
    assert_eq!(
        ca.admin()
            .key(None, &expired.key.id)
            .await
            .unwrap()
            .certificates
            .len(),
        1,
        "nothing was issued"
    );
}

#[tokio::test]
async fn renewal_is_refused_after_revocation_before_any_new_crl_exists() {
    // In process, with no CRL publisher running at all: the decision can only come from
    // the store.
    let dir = tempfile::tempdir().unwrap();
    let home = latchkey::home::Home::new(dir.path().join("certs"));
    let options = latchkey::home::InitOptions {
        encrypt_keys: false,
        pkcs11: None,
        trust_domain: "latchkey.internal".into(),
        hostnames: vec![],
        public_url: None,
        crl_url: None,
    };
    let latchkey::server::Prepared {
        authority,
        publisher,
        ..
    } = latchkey::server::prepare(
        &home,
        None,
        &options,
        Policy {
            renew_interval: time::Duration::ZERO,
            ..Policy::default()
        },
        Arc::new(latchkey::clock::SystemClock),
    )
    .await
    .unwrap();
    assert!(
        publisher
            .crls()
            .default_issuer()
            .and_then(|c| c.current())
            .is_none(),
        "no CRL was ever published"
    );
    let admin_der = latchkey::tls::load_certificates(
        &std::fs::read(home.admin_dir().join("cert.pem")).unwrap(),
        "admin",
    )
    .unwrap();
    // Every operation takes the proof its authentication gives, as the edge hands it over.
    let admin_caller = Caller {
        authorization: None,
        certificate: Some(admin_der[0].clone()),
        source: None,
    };
    let admin = authority.authenticate_admin(&admin_caller).await.unwrap();
    authority
        .add_tenant(
            &admin,
            latchkey::api::NewTenant {
                name: "acme".parse().unwrap(),
                max_key_days: None,
                dedicated_issuer: false,
            },
        )
        .await
        .unwrap();
    let (_, token) = authority
        .create_token(
            &admin,
            latchkey::api::NewToken {
                owner: "bot@acme".parse().unwrap(),
                scopes: crate::support::scope_set(&["a:b"]),
                ttl_seconds: None,
            },
        )
        .await
        .unwrap();
    let token = token.into_inner();
    let enroller = authority
        .authenticate_enroller(&Caller {
            authorization: Some(latchkey::authority::Credential::Token(token)),
            certificate: None,
            source: None,
        })
        .await
        .unwrap();
    let enrolled = authority
        .enroll(&enroller, request(&support::csr(), &[], "bot"))
        .await
        .unwrap();
    let key_id = enrolled.key.key.id.clone();
    let leaf =
        latchkey::tls::load_certificates(enrolled.certificate_pem.as_bytes(), "leaf").unwrap();
    let holder = Caller {
        authorization: None,
        certificate: Some(leaf[0].clone()),
        source: None,
    };
    let holder = authority.authenticate_key_holder(&holder).await.unwrap();
    authority
        .renew(&holder, &key_id, RenewRequest::default())
        .await
        .expect("renewable before");
    let reader = authority.authenticate_reader(&admin_caller).await.unwrap();
    authority
        .revoke_key(&reader, &key_id, latchkey::api::RevokeRequest::default())
        .await
        .unwrap();
    let refused = authority
        .renew(&holder, &key_id, RenewRequest::default())
        .await
        .unwrap_err();
    assert!(
        matches!(
            refused,
            latchkey::authority::AuthorityError::RenewalRefused(
                latchkey::authority::RenewalRefusal::KeyRevoked
            )
        ),
        "{refused:?}"
    );
    assert!(
        publisher
            .crls()
            .default_issuer()
            .and_then(|c| c.current())
            .is_none(),
        "still no CRL"
    );
    authority.close().await;
}

#[tokio::test]
async fn renew_once_replaces_the_files_and_watch_renews_without_a_gap() {
    // The CLI is a process on real time: certificates of 15 s keep it short. The renewal
    // rule (two thirds of the lifetime from issue) is the same at any lifetime.
    let ca = Ca::start_with(&["--certificate-lifetime", "15s", "--renew-interval", "0s"]);
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics"])
        .await;
    let first = ca
        .enroll_into("alice@acme", &["read:metrics"], "alice")
        .await;
    assert!(first.expires_in_seconds <= 15);

    let out = ca.cli(&["renew", "--dir", "alice"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cert = std::fs::read_to_string(ca.path("alice/cert.pem")).unwrap();
    assert_ne!(cert, first.certificate, "cert.pem was replaced");
    let chain = std::fs::read_to_string(ca.path("alice/chain.pem")).unwrap();
    assert!(chain.starts_with(&cert));

    let mut watch = Command::new(BIN)
        .args(["renew", "--dir", "alice", "--watch"])
        .current_dir(ca.dir.path())
        .env("LATCHKEY_SERVER", &ca.url)
        .env("LATCHKEY_HOME", ca.home())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(
            std::fs::File::create(ca.path("watch.log")).unwrap(),
        ))
        .spawn()
        .unwrap();
    // Two more renewals, each at two thirds of the 15 s lifetime (10 s after issue), come
    // within about 20 s.
    let admin = ca.admin();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(45);
    let certificates = loop {
        let key = admin.key(None, &first.key.id).await.unwrap();
        if key.certificates.len() >= 4 {
            break key.certificates;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "renew --watch renewed too little: {}",
            std::fs::read_to_string(ca.path("watch.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    let _ = watch.kill();
    let _ = watch.wait();
    // Issue times are not_before plus the minute of backdating.
    let issued = |c: &latchkey::api::CertificateInfo| c.not_before + latchkey::profile::BACKDATE;
    for pair in certificates.windows(2) {
        assert!(
            issued(&pair[1]) <= pair[0].not_after,
            "a gap between {} and {}",
            pair[0].serial,
            pair[1].serial
        );
    }
    // The watcher's renewals come at about two thirds of a 15 s lifetime (10 s, ±3% jitter,
    // whole seconds), not in a rush and not late.
    for pair in certificates[1..].windows(2) {
        let spacing = (issued(&pair[1]) - issued(&pair[0])).whole_seconds();
        assert!(
            (9..=12).contains(&spacing),
            "renewed {spacing} s after the previous certificate"
        );
    }
    let on_disk = std::fs::read_to_string(ca.path("alice/cert.pem")).unwrap();
    let (_, pem) = x509_parser::pem::parse_x509_pem(on_disk.as_bytes()).unwrap();
    let serial = hex::encode(pem.parse_x509().unwrap().raw_serial());
    assert!(
        certificates.iter().skip(2).any(|c| c.serial == serial),
        "the watcher wrote its renewals"
    );
    let log = std::fs::read_to_string(ca.path("watch.log")).unwrap();
    assert!(log.contains("certificate renewed"), "{log}");
}

#[tokio::test]
async fn disabling_stops_new_keys_but_existing_keys_keep_working() {
    let ca = Ca::start();
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics", "write:events"])
        .await;
    ca.enroll_into("alice@acme", &["read:metrics"], "alice")
        .await;
    let admin = ca.admin();
    let anon = ca.anonymous();
    let enroll = |auth: Auth| {
        let anon = anon.clone();
        async move {
            anon.enroll(&auth, &request(&support::csr(), &["read:metrics"], "k"))
                .await
        }
    };

    admin
        .change_user(
            "alice@acme",
            &UserChange {
                disabled: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        problem_code(enroll(password("alice@acme")).await.unwrap_err()),
        "disabled"
    );
    let holder = ca.with_identity(&ca.path("alice"));
    assert_eq!(
        holder
            .list_keys(None, &KeyQuery::default())
            .await
            .unwrap()
            .keys
            .len(),
        1
    );
    admin
        .change_user(
            "alice@acme",
            &UserChange {
                disabled: Some(false),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    enroll(password("alice@acme")).await.unwrap();

    let token = ca.token("bot@acme", &["read:metrics"]).await;
    // A token for a user that is disabled afterwards does not get around the disable.
    let alice_token = ca.token("alice@acme", &["read:metrics"]).await;
    let off = UserChange {
        disabled: Some(true),
        ..Default::default()
    };
    admin.change_user("alice@acme", &off).await.unwrap();
    assert_eq!(
        problem_code(enroll(Auth::Token(alice_token)).await.unwrap_err()),
        "disabled"
    );
    let on = UserChange {
        disabled: Some(false),
        ..Default::default()
    };
    admin.change_user("alice@acme", &on).await.unwrap();
    admin
        .change_tenant(
            "acme",
            &TenantChange {
                disabled: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        problem_code(enroll(password("alice@acme")).await.unwrap_err()),
        "disabled"
    );
    assert_eq!(
        problem_code(enroll(Auth::Token(token.clone())).await.unwrap_err()),
        "disabled"
    );
    assert_eq!(
        holder
            .list_keys(None, &KeyQuery::default())
            .await
            .unwrap()
            .keys
            .len(),
        2
    );
    let out = ca.cli(&["tenant", "enable", "acme"]);
    assert!(out.status.success());
    enroll(Auth::Token(token))
        .await
        .expect("the token was not spent by the refusal");

    // Grants and passwords change; the old password stops working.
    let out = ca.cli(&["user", "grants", "alice@acme", "--scopes", "write:events"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        problem_code(enroll(password("alice@acme")).await.unwrap_err()),
        "scope_not_granted"
    );
    let out = ca.cli_with_env(
        &["user", "reset-password", "alice@acme"],
        &[("LATCHKEY_PASSWORD", "another-long-password")],
    );
    assert!(out.status.success());
    assert_eq!(
        problem_code(enroll(password("alice@acme")).await.unwrap_err()),
        "invalid_credentials"
    );
    // Tenant policy: the maximum lifetime applies to new keys at once.
    let out = ca.cli(&["tenant", "set", "acme", "--max-key-days", "10"]);
    assert!(out.status.success());
    let mut long = request(&support::csr(), &["read:metrics"], "long");
    long.ttl_seconds = Some(11 * 86400);
    let another = Auth::Password {
        user: "alice@acme".into(),
        password: "another-long-password".into(),
    };
    assert_eq!(
        problem_code(anon.enroll(&another, &long).await.unwrap_err()),
        "scope_not_granted"
    );
    let mut long = request(&support::csr(), &["write:events"], "long");
    long.ttl_seconds = Some(11 * 86400);
    assert_eq!(
        problem_code(anon.enroll(&another, &long).await.unwrap_err()),
        "ttl_out_of_range"
    );
}

#[tokio::test]
async fn tokens_can_be_revoked_and_the_audit_log_reads_back_with_filters() {
    let ca = Ca::start();
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics"])
        .await;
    let token = ca.token("bot@acme", &["read:metrics"]).await;
    let admin = ca.admin();
    let id = admin.tokens(None).await.unwrap()[0].id;
    let out = ca.cli(&["token", "revoke", &id.to_string()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = ca
        .anonymous()
        .enroll(&Auth::Token(token), &request(&support::csr(), &[], "bot"))
        .await
        .unwrap_err();
    assert_eq!(problem_code(err), "invalid_token");
    assert_eq!(
        admin.tokens(None).await.unwrap()[0].status.as_str(),
        "revoked"
    );
    assert_eq!(
        problem_code(admin.revoke_token(id).await.unwrap_err()),
        "token_not_revocable"
    );

    let key = ca
        .enroll_into("alice@acme", &["read:metrics"], "alice")
        .await;
    admin
        .revoke_key(None, &key.key.id, Some("superseded"))
        .await
        .unwrap();
    let page = admin
        .audit(&[("action", "key.revoke".into())])
        .await
        .unwrap();
    assert_eq!(page.events.len(), 1);
    assert_eq!(page.events[0].target.as_deref(), Some(key.key.id.as_str()));
    assert_eq!(page.events[0].actor, "admin:admin");
    assert_eq!(page.events[0].detail["reason"], "superseded");
    let acme = admin
        .audit(&[("tenant", "acme".into()), ("limit", "2".into())])
        .await
        .unwrap();
    assert_eq!(acme.events.len(), 2);
    assert!(acme.events[0].id > acme.events[1].id, "newest first");
    let older = admin
        .audit(&[
            ("tenant", "acme".into()),
            ("cursor", acme.next_cursor.clone().unwrap()),
        ])
        .await
        .unwrap();
    assert!(older.events.iter().all(|e| e.id < acme.events[1].id));
    let by_actor = admin
        .audit(&[("actor", "user:alice@acme".into())])
        .await
        .unwrap();
    assert!(by_actor.events.iter().all(|e| e.action == "key.issue"));
    let future = admin
        .audit(&[("since", "2100-01-01T00:00:00Z".into())])
        .await
        .unwrap();
    assert!(future.events.is_empty());
    let out = ca.cli(&["audit", "--tenant", "acme"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("key.revoke"));
}

/// `renew --watch` and the library's auto-renewing key ride out a CA that is down across
/// their renewal time: they keep the current certificate, retry with backoff, and renew once
/// the CA is back, before the certificate ends. A reader never sees a half-written file.
#[tokio::test]
async fn renewal_survives_the_ca_being_down_and_files_are_replaced_whole() {
    // Processes on real time: certificates of 30 s (renewal due 20 s after issue) keep it
    // short while leaving the retries room before the certificates end.
    let mut ca = Ca::start_with(&["--certificate-lifetime", "30s"]);
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics"])
        .await;
    let cli = ca.enroll_into("alice@acme", &["read:metrics"], "cli").await;
    let lib = ca.enroll_into("alice@acme", &["read:metrics"], "lib").await;
    let issued = tokio::time::Instant::now();
    let serial_of = |pem: &str| {
        let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).ok()?;
        Some(hex::encode(pem.parse_x509().ok()?.raw_serial()))
    };

    let mut watch = Command::new(BIN)
        .args(["renew", "--dir", "cli", "--watch"])
        .current_dir(ca.dir.path())
        .env("LATCHKEY_SERVER", &ca.url)
        .env("LATCHKEY_HOME", ca.home())
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(
            std::fs::File::create(ca.path("watch.log")).unwrap(),
        ))
        .spawn()
        .unwrap();
    let key = latchkey::client::AutoRenewingKey::start(
        &ca.url,
        &ca.ca_pem(),
        latchkey::client::KeyDir::new(ca.path("lib")),
    )
    .unwrap();
    let first_lib_serial = lib.key.certificates[0].serial.clone();
    assert_eq!(
        key.current_serial().as_deref(),
        Some(first_lib_serial.as_str())
    );

    // A reader that parses cert.pem as fast as it can, all along.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (stop, path) = (stop.clone(), ca.path("cli/cert.pem"));
        std::thread::spawn(move || {
            let (mut reads, mut torn) = (0u64, Vec::new());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                if serial_of(&text).is_none() {
                    torn.push(text);
                }
                reads += 1;
                std::thread::sleep(Duration::from_millis(2));
            }
            (reads, torn)
        })
    };

    // Down from now until past the renewal time (two thirds of the 30 s: 20 s after issue),
    // and back 8 s before the certificates end.
    ca.stop();
    tokio::time::sleep_until(issued + Duration::from_secs(22)).await;
    assert_eq!(
        key.current_serial().as_deref(),
        Some(first_lib_serial.as_str()),
        "the current certificate is kept while the CA is down"
    );
    let on_disk = std::fs::read_to_string(ca.path("cli/cert.pem")).unwrap();
    assert_eq!(
        on_disk, cli.certificate,
        "nothing written while the CA is down"
    );
    ca.start_again();

    let admin = ca.admin();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    loop {
        let cli_now = admin.key(None, &cli.key.id).await.unwrap();
        let lib_now = admin.key(None, &lib.key.id).await.unwrap();
        if cli_now.certificates.len() >= 2
            && lib_now.certificates.len() >= 2
            && key.current_serial().as_deref() != Some(first_lib_serial.as_str())
        {
            // Renewed before the first certificates ended: no gap.
            for k in [&cli_now, &lib_now] {
                let (first, second) = (&k.certificates[0], &k.certificates[1]);
                assert!(
                    second.not_before + latchkey::profile::BACKDATE <= first.not_after,
                    "a gap in {}",
                    k.id
                );
            }
            assert_eq!(
                key.current_serial(),
                Some(lib_now.certificates[1].serial.clone()),
                "new connections get the renewed certificate"
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no renewal after the CA came back: {}",
            std::fs::read_to_string(ca.path("watch.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (reads, torn) = reader.join().unwrap();
    assert!(reads > 1000, "the reader read {reads} times");
    assert!(
        torn.is_empty(),
        "{} torn reads: {:?}",
        torn.len(),
        torn.first()
    );
    let _ = watch.kill();
    let _ = watch.wait();
    let log = std::fs::read_to_string(ca.path("watch.log")).unwrap();
    assert!(
        log.contains("renewal failed; keeping the current certificate"),
        "{log}"
    );
    assert!(log.contains("certificate renewed"), "{log}");
    let leftovers: Vec<_> = std::fs::read_dir(ca.path("cli"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !matches!(n.as_str(), "key.pem" | "cert.pem" | "chain.pem"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// The library's auto-renewing key decides by its clock (here the in-process CA's, moved
/// forward), and says where renewal stands: waiting until two thirds of the lifetime,
/// renewed once the clock passes it, and failing (with the current certificate kept) while
/// the CA is unreachable.
#[tokio::test]
async fn the_auto_renewing_key_follows_its_clock_and_reports_failing_renewals() {
    use latchkey::client::{AutoRenewingKey, KeyDir, RenewalStatus, Renewer};
    let mut ca = Ca::in_process(crate::support::policy(
        time::Duration::hours(1),
        time::Duration::hours(1),
    ));
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics"])
        .await;
    let first = ca
        .enroll_into("alice@acme", &["read:metrics"], "alice")
        .await;
    let first_serial = first.key.certificates[0].serial.clone();
    let renewer = Renewer::new(&ca.url, &ca.ca_pem(), KeyDir::new(ca.path("alice")))
        .with_clock(Arc::new(ca.clock().clone()));
    let key = AutoRenewingKey::start_with(renewer).unwrap();
    let status = key.status();
    let RenewalStatus::Waiting {
        renew_at,
        not_after,
    } = wait_for(&status, "waiting", |s| {
        matches!(s, RenewalStatus::Waiting { .. })
    })
    .await
    else {
        unreachable!()
    };
    // Two thirds of the hour from issue, ±3% of it (108 s).
    let issued = first.key.certificates[0].not_before + latchkey::profile::BACKDATE;
    let after = (renew_at - issued).whole_seconds();
    assert!(
        (2292..=2508).contains(&after),
        "renewal due {after} s after issue"
    );
    assert_eq!(not_after, first.key.certificates[0].not_after);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        key.current_serial(),
        Some(first_serial.clone()),
        "renewed early"
    );

    // The clock past the renewal time: renewed at once, and waiting for the next one.
    ca.advance(time::Duration::minutes(43));
    wait_for(
        &status,
        "renewed",
        |s| matches!(s, RenewalStatus::Waiting { not_after: n, .. } if *n > not_after),
    )
    .await;
    assert_ne!(key.current_serial(), Some(first_serial), "renewed");
    let renewed = key.current_serial();

    // The CA gone and the next renewal due: failing, the current certificate kept.
    ca.stop();
    ca.advance(time::Duration::minutes(43));
    let failing = wait_for(&status, "failing", |s| {
        matches!(s, RenewalStatus::Failing { .. })
    })
    .await;
    let RenewalStatus::Failing {
        failures, error, ..
    } = failing
    else {
        unreachable!()
    };
    assert!(failures >= 1 && !error.is_empty(), "{failures} {error}");
    assert_eq!(
        key.current_serial(),
        renewed,
        "the current certificate is kept"
    );
}

/// The first status `ok` accepts, within 15 s.
async fn wait_for(
    status: &tokio::sync::watch::Receiver<latchkey::client::RenewalStatus>,
    what: &str,
    ok: impl FnMut(&latchkey::client::RenewalStatus) -> bool,
) -> latchkey::client::RenewalStatus {
    let mut waiting = status.clone();
    let seen = match tokio::time::timeout(Duration::from_secs(15), waiting.wait_for(ok)).await {
        Ok(Ok(seen)) => Some(seen.clone()),
        _ => None,
    };
    seen.unwrap_or_else(|| panic!("never {what}: {:?}", *status.borrow()))
}
