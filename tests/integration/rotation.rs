//! Rotating the issuing intermediate (issue 12): `latchkey ca rotate` next to a running CA,
//! automatic rotation, retirement, per-issuer CRLs and `GET /v1/issuers`, replicas on
//! PostgreSQL, and a rotation killed at any moment. Judged by openssl and pkilint as well as
//! by the API.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use latchkey::api::{IssuerList, IssuerStatus};
use rustls_pki_types::pem::PemObject;

use crate::crl_chain::verify_all_with;
use crate::support::{Ca, PgSchema, openssl};

/// `GET path` with curl, trusting the CA's root; the body.
fn curl(ca: &Ca, url: &str, path: &str, accept: &str) -> Vec<u8> {
    let out = Command::new("curl")
        .args(["-sS", "-f", "--cacert", "certs/ca.pem", "-H"])
        .arg(format!("Accept: {accept}"))
        .arg(format!("{url}{path}"))
        .current_dir(ca.dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "curl {path}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The HTTP status of `GET path`.
fn status(ca: &Ca, path: &str) -> String {
    let out = Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
        .arg("certs/ca.pem")
        .arg(format!("{}{path}", ca.url))
        .current_dir(ca.dir.path())
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn issuers_at(ca: &Ca, url: &str) -> IssuerList {
    serde_json::from_slice(&curl(ca, url, "/v1/issuers", "application/json")).unwrap()
}

fn issuers(ca: &Ca) -> IssuerList {
    issuers_at(ca, &ca.url)
}

/// The issuer (subject) of the certificate in `pem`.
fn issuer_of(pem: &str) -> String {
    let der = rustls_pki_types::CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    cert.issuer().to_string()
}

/// The serials a CRL (DER) lists, lowercase hex.
fn listed(der: &[u8]) -> Vec<String> {
    let (_, crl) = x509_parser::parse_x509_crl(der).unwrap();
    crl.iter_revoked_certificates()
        .map(|r| hex::encode(r.raw_serial()))
        .collect()
}

/// Runs `latchkey ca rotate` on the CA's home (and database) and returns what it printed.
fn rotate(ca: &Ca, extra: &[&str]) -> String {
    let mut args = vec!["ca", "rotate"];
    args.extend_from_slice(extra);
    let out = ca.cli(&args);
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ca rotate: {text}");
    text
}

/// Waits until the CA at `url` reports `count` intermediates.
async fn wait_for_issuers(ca: &Ca, url: &str, count: usize) -> IssuerList {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let list = issuers_at(ca, url);
        if list.issuers.len() == count {
            return list;
        }
        assert!(Instant::now() < deadline, "still {:?}", list.issuers.len());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `path` serves a CRL listing `serial`.
async fn wait_listed(ca: &Ca, path: &str, serial: &str) -> Vec<u8> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let der = curl(ca, &ca.url, path, "application/pkix-crl");
        if listed(&der).iter().any(|s| s == serial) {
            return der;
        }
        assert!(Instant::now() < deadline, "{path} never listed {serial}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn write(dir: &Path, name: &str, contents: &[u8]) {
    std::fs::write(dir.join(name), contents).unwrap();
}

#[tokio::test]
async fn a_rotation_signs_new_keys_and_renewals_with_the_new_intermediate_and_keeps_old_ones_revocable()
 {
    let ca = linted_ca_with_alice().await;
    let dir = ca.dir.path();
    let old = ca.enroll_into("alice@acme", &["read:metrics"], "old").await;
    let doomed = ca
        .enroll_into("alice@acme", &["read:metrics"], "doomed")
        .await;
    let before = issuers(&ca);
    assert_eq!(before.issuers.len(), 1);
    assert_eq!(before.issuers[0].status, IssuerStatus::Active);
    let first = before.issuers[0].id;

    let said = rotate(&ca, &[]);
    assert!(said.contains("signs from now on"), "{said}");
    // The running CA follows the store: no restart.
    let after = wait_for_issuers(&ca, &ca.url, 2).await;
    assert!(after.revision > before.revision);
    let (was, now) = (&after.issuers[0], &after.issuers[1]);
    assert_eq!((was.id, was.status), (first, IssuerStatus::Retiring));
    assert_eq!(now.status, IssuerStatus::Active);
    assert_eq!(now.subject, "CN=latchkey issuing CA 2, O=latchkey");
    assert_eq!(
        now.crl.as_deref(),
        Some(&*format!("/v1/issuers/{}/crl", now.id))
    );
    // `latchkey issuers` says the same, and /metrics has each one's end for alerts.
    let out = ca.cli(&["issuers"]);
    let listed_issuers = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(listed_issuers.lines().count(), 2, "{listed_issuers}");
    assert!(
        listed_issuers
            .lines()
            .next()
            .unwrap()
            .contains("\tretiring\tshared\t")
    );
    assert!(
        listed_issuers
            .lines()
            .nth(1)
            .unwrap()
            .contains("\tactive\tshared\t")
    );
    let (_, metrics) = ca
        .raw(Some(&ca.home().join("admin")))
        .send(http::Method::GET, "/metrics", None, None)
        .await
        .unwrap();
    let metrics = String::from_utf8_lossy(&metrics);
    let gauge = format!(
        "latchkey_issuer_not_after_timestamp_seconds{{issuer=\"{}\",status=\"active\",tenant=\"\"}} {}",
        now.id,
        now.not_after.unix_timestamp()
    );
    assert!(metrics.contains(&gauge), "{metrics}");

    // GET /v1/ca: both intermediates, the new one first, then the root.
    let chain = String::from_utf8(curl(&ca, &ca.url, "/v1/ca", "*/*")).unwrap();
    assert_eq!(chain.matches("BEGIN CERTIFICATE").count(), 3);
    assert!(chain.starts_with(now.certificate.as_str()), "{chain}");
    write(
        dir,
        "intermediates.pem",
        (now.certificate.clone() + &was.certificate).as_bytes(),
    );

    // A new key, and a renewal of an old one, are signed by the new intermediate; the
    // answer's chain carries it.
    let new = ca.enroll_into("alice@acme", &["read:metrics"], "new").await;
    assert_eq!(issuer_of(&new.certificate), now.subject);
    assert!(new.chain.contains(now.certificate.trim()), "{}", new.chain);
    let renewed = ca
        .with_identity(&ca.path("old"))
        .renew(&old.key.id, None)
        .await
        .unwrap();
    assert_eq!(issuer_of(&renewed.certificate), now.subject);
    write(dir, "renewed.pem", renewed.certificate.as_bytes());
    // The CA's own listener takes a certificate of the new intermediate at once, sent with
    // its chain or alone.
    latchkey::client::KeyDir::new(ca.path("old"))
        .write_certificates(&renewed.certificate, &renewed.chain)
        .unwrap();
    ca.with_identity(&ca.path("old"))
        .key(None, &old.key.id)
        .await
        .expect("the new intermediate's certificate authenticates at the CA");
    // The old key's first certificate still authenticates at the CA (its issuer is
    // published), so its holder can see it.
    ca.with_identity(&ca.path("doomed"))
        .key(None, &doomed.key.id)
        .await
        .expect("a certificate of the old intermediate still works");

    // Revoking an old key lists its certificate on the old intermediate's CRL only, served
    // at /v1/crl (the address its certificate names) and at its issuer's path.
    ca.admin()
        .revoke_key(None, &doomed.key.id, Some("key_compromise"))
        .await
        .unwrap();
    let serial = doomed.key.certificates[0].serial.clone();
    wait_listed(&ca, &format!("/v1/issuers/{first}/crl"), &serial).await;
    wait_listed(&ca, "/v1/crl", &serial).await;
    let new_crl = curl(
        &ca,
        &ca.url,
        &now.crl.clone().unwrap(),
        "application/pkix-crl",
    );
    assert!(
        !listed(&new_crl).contains(&serial),
        "only its issuer's CRL lists it"
    );
    // A key of the new intermediate, revoked, is on the new CRL.
    ca.admin()
        .revoke_key(None, &new.key.id, Some("key_compromise"))
        .await
        .unwrap();
    let new_serial = new.key.certificates[0].serial.clone();
    let new_crl = wait_listed(&ca, &now.crl.clone().unwrap(), &new_serial).await;
    write(dir, "new-crl.der", &new_crl);

    // openssl, with the bundle (every intermediate's CRL and the root's): old and renewed
    // keys verify, the revoked ones of either intermediate do not.
    write(
        dir,
        "bundle.pem",
        &curl(&ca, &ca.url, "/v1/crl/bundle.pem", "*/*"),
    );
    for (cert, good) in [
        ("old/cert.pem", true),
        ("renewed.pem", true),
        ("doomed/cert.pem", false),
        ("new/cert.pem", false),
    ] {
        let (ok, out) = verify_all_with(&ca, "intermediates.pem", "bundle.pem", cert);
        assert_eq!(ok, good, "{cert}: {out}");
        if !good {
            assert!(out.contains("certificate revoked"), "{cert}: {out}");
        }
    }

    // pkilint on the new intermediate, a certificate it signed and its CRL.
    write(dir, "new-intermediate.pem", now.certificate.as_bytes());
    openssl(
        dir,
        &[
            "crl",
            "-inform",
            "DER",
            "-in",
            "new-crl.der",
            "-out",
            "new-crl.pem",
        ],
    );
    for (file, lint) in [
        ("new-intermediate.pem", ["lint_pkix_cert", "lint"]),
        ("renewed.pem", ["lint_pkix_cert", "lint"]),
        ("new-crl.pem", ["lint_crl", "lint"]),
    ] {
        let mut args = lint.to_vec();
        if file.ends_with("crl.pem") {
            args.extend(["-t", "CRL", "-p", "PKIX"]);
        }
        let findings = crate::lint::pkilint(&args, &dir.join(file));
        assert!(findings.is_empty(), "pkilint on {file}: {findings:#?}");
    }

    // The audit log says who rotated.
    let audit = ca
        .admin()
        .audit(&[("action", "ca.rotate".to_owned())])
        .await
        .unwrap();
    assert_eq!(audit.events.len(), 1, "{audit:?}");
}

#[tokio::test]
async fn an_intermediate_near_its_end_is_rotated_by_the_ca_and_the_old_one_retires_once_its_certificates_expired()
 {
    // In process, on a clock the test moves.
    let ca = Ca::in_process(latchkey::authority::Policy::default());
    let list = issuers(&ca);
    assert_eq!(list.issuers.len(), 1);
    let first = list.issuers[0].id;
    assert_eq!(status(&ca, &format!("/v1/issuers/{first}/crl")), "200");

    // Four years on, the first intermediate (five years) has less than a year left: the CA
    // makes the next one. Everything the first signed (the CA's own certificates, a year
    // each) has expired, so it retires in the same pass.
    ca.advance(time::Duration::days(4 * 365 + 2));
    let deadline = Instant::now() + Duration::from_secs(20);
    let list = loop {
        let list = issuers(&ca);
        if list.issuers.len() == 2 && list.issuers[0].status == IssuerStatus::Retired {
            break list;
        }
        assert!(
            Instant::now() < deadline,
            "not rotated and retired: {list:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let second = &list.issuers[1];
    assert_eq!(second.status, IssuerStatus::Active);
    assert!(ca.log().contains("intermediate rotated"), "{}", ca.log());
    assert_eq!(list.issuers[0].crl, None);
    assert_eq!(status(&ca, &format!("/v1/issuers/{first}/crl")), "404");
    // `GET /v1/crl` now serves the oldest intermediate still published, once it has a
    // fresh CRL.
    let signer =
        rustls_pki_types::CertificateDer::from_pem_slice(second.certificate.as_bytes()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let answer = Command::new("curl")
            .args(["-sS", "-f", "--cacert", "certs/ca.pem"])
            .arg(format!("{}/v1/crl", ca.url))
            .current_dir(ca.dir.path())
            .output()
            .unwrap();
        if answer.status.success()
            && latchkey::profile::RevocationSet::from_crl(&answer.stdout, &signer).is_ok()
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "/v1/crl never became issuer {}'s",
            second.id
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let store = ca.store().await;
    for action in ["ca.rotate", "ca.retire"] {
        let events = store
            .audit_events(&latchkey::store::AuditFilter {
                action: Some(action.into()),
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(events.len(), 1, "{action}: {events:?}");
        assert_eq!(events[0].actor, "system");
    }
}

#[tokio::test]
async fn replicas_sign_with_an_intermediate_rotated_at_another_within_a_second() {
    let Some(schema) = PgSchema::create("replicas_rotate").await else {
        return;
    };
    let ca = Ca::start_on(&schema.url);
    let replica = ca.replica();
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics"])
        .await;
    rotate(&ca, &["--database-url", &schema.url]);
    // The replica follows the store (every 250 ms): once it reports the new intermediate,
    // it signs with it.
    let list = wait_for_issuers(&ca, &replica.url, 2).await;
    let active = list.issuers[1].subject.clone();
    let client = latchkey::client::Client::new(&replica.url, &ca.ca_pem(), None).unwrap();
    let pair = latchkey::client::new_key_pair(latchkey::client::KeyType::P256).unwrap();
    let issued = client
        .enroll(
            &crate::support::password("alice@acme"),
            &crate::support::request(&pair.csr_pem, &["read:metrics"], "at-replica"),
        )
        .await
        .unwrap();
    assert_eq!(issuer_of(&issued.certificate), active);
}

#[tokio::test]
async fn a_rotation_killed_at_any_moment_leaves_the_old_state_or_the_new() {
    let ca = Ca::start();
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics"])
        .await;
    let store = ca.store().await;
    let rotate_with = |extra: &[&str]| {
        Command::new(crate::support::BIN)
            .args(["--home", "certs", "ca", "rotate"])
            .args(extra)
            .current_dir(ca.dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let rotate = || rotate_with(&[]);
    // One whole rotation, timed: the kills below spread over that time and past it.
    let started = Instant::now();
    assert!(rotate().wait().unwrap().success());
    let whole = started.elapsed();
    let mut completed = 0;
    for tenths in [1u32, 3, 5, 7, 9, 12] {
        let before = store.intermediates().await.unwrap().len();
        let mut child = rotate();
        std::thread::sleep(whole * tenths / 10);
        let _ = child.kill();
        let _ = child.wait();
        // Exactly one active intermediate, and a new one only if its row (with its key)
        // and the old one's supersession committed together.
        let records = store.intermediates().await.unwrap();
        let active: Vec<_> = records
            .iter()
            .filter(|r| r.superseded_at.is_none())
            .collect();
        assert_eq!(active.len(), 1, "killed at {tenths}/10: {records:?}");
        assert!(records.len() <= before + 1);
        completed += records.len() - before;
        assert!(
            records
                .iter()
                .skip(1)
                .all(|r| matches!(r.key, latchkey::model::IssuerKeyLocation::Stored(_))),
            "every rotated intermediate has its key: {records:?}"
        );
    }
    assert!(
        completed < 6,
        "the first kills land before the commit (a rotation takes {whole:?})"
    );
    // A root rollover killed likewise: one active root and one active shared intermediate,
    // and a new root only with its key, its intermediate and its cross-certificates.
    let started = Instant::now();
    assert!(rotate_with(&["--root"]).wait().unwrap().success());
    let whole = started.elapsed();
    for tenths in [1u32, 5, 9, 12] {
        let (roots_before, _) = roots_and_crosses(&store).await;
        let mut child = rotate_with(&["--root"]);
        std::thread::sleep(whole * tenths / 10);
        let _ = child.kill();
        let _ = child.wait();
        let (roots, crosses) = roots_and_crosses(&store).await;
        let active: Vec<_> = roots.iter().filter(|r| r.superseded_at.is_none()).collect();
        assert_eq!(active.len(), 1, "killed at {tenths}/10: {roots:?}");
        assert!(roots.len() <= roots_before.len() + 1);
        assert!(
            roots
                .iter()
                .skip(1)
                .all(|r| matches!(r.key, latchkey::model::IssuerKeyLocation::Stored(_))),
            "every rolled-over root has its key: {roots:?}"
        );
        assert!(
            crosses >= 2 * (roots.len() - 1),
            "{crosses} cross-certificates"
        );
        let records = store.intermediates().await.unwrap();
        let active = records.iter().filter(|r| r.superseded_at.is_none()).count();
        assert_eq!(active, 1, "killed at {tenths}/10: {records:?}");
    }
    // The running CA signs with the active one, whatever was killed when.
    let list = wait_for_issuers(&ca, &ca.url, store.intermediates().await.unwrap().len()).await;
    let active = list
        .issuers
        .iter()
        .find(|i| i.status == IssuerStatus::Active)
        .unwrap();
    let key = ca
        .enroll_into("alice@acme", &["read:metrics"], "after")
        .await;
    assert_eq!(issuer_of(&key.certificate), active.subject);
    // A restart opens every key the store holds.
    let mut ca = ca;
    ca.restart();
    assert!(!ca.log().contains("CANNOT OPEN"), "{}", ca.log());
    let key = ca
        .enroll_into("alice@acme", &["read:metrics"], "restarted")
        .await;
    assert_eq!(issuer_of(&key.certificate), active.subject);
}

#[tokio::test]
async fn a_tenant_with_its_own_intermediate_is_out_of_reach_of_other_tenants_keys() {
    let ca = Ca::start_with(&["--renew-interval", "0s"]);
    let dir = ca.dir.path();
    let out = ca.cli(&["tenant", "add", "acme", "--dedicated-issuer"]);
    assert!(out.status.success(), "{out:?}");
    ca.user("alice@acme", &["read:metrics"]).await;
    ca.tenant_with_user("globex", "bob@globex", &["read:metrics"])
        .await;
    let list = issuers(&ca);
    let own = list
        .issuers
        .iter()
        .find(|i| i.tenant.as_ref().map(|t| t.as_str()) == Some("acme"))
        .expect("acme's intermediate")
        .clone();
    assert_eq!(own.status, IssuerStatus::Active);
    assert!(
        own.subject.ends_with("for acme, O=latchkey"),
        "{}",
        own.subject
    );
    let acme = ca
        .enroll_into("alice@acme", &["read:metrics"], "acme-key")
        .await;
    let globex = ca
        .enroll_into("bob@globex", &["read:metrics"], "globex-key")
        .await;
    assert_eq!(issuer_of(&acme.certificate), own.subject);
    assert_eq!(
        issuer_of(&globex.certificate),
        "CN=latchkey issuing CA, O=latchkey"
    );

    // GET /v1/ca?tenant=acme: acme's intermediate, then the root; the plain chain is the
    // shared one.
    let chain = String::from_utf8(curl(&ca, &ca.url, "/v1/ca?tenant=acme", "*/*")).unwrap();
    assert_eq!(chain.matches("BEGIN CERTIFICATE").count(), 2);
    assert!(chain.starts_with(own.certificate.as_str()));
    let shared = String::from_utf8(curl(&ca, &ca.url, "/v1/ca", "*/*")).unwrap();
    assert!(!shared.contains(own.certificate.trim()));

    // A relying party that trusts only acme's intermediate: openssl (a partial chain
    // anchored there) accepts acme's key and no other, whatever the other presents.
    write(dir, "acme-only.pem", own.certificate.as_bytes());
    let verify = |cert: &str| {
        Command::new("openssl")
            .args(["verify", "-partial_chain", "-CAfile", "acme-only.pem"])
            .args(["-untrusted", "certs/intermediate.pem", cert])
            .current_dir(dir)
            .output()
            .unwrap()
            .status
            .success()
    };
    assert!(verify("acme-key/cert.pem"));
    assert!(!verify("globex-key/cert.pem"));

    // The library, given acme's chain and acme's CRL, the same, however its tenants are
    // pinned (here: any tenant).
    let crl_path = dir.join("acme.crl");
    let crl_url = own.crl.clone().unwrap();
    write(
        dir,
        "acme.crl",
        &curl(&ca, &ca.url, &crl_url, "application/pkix-crl"),
    );
    let acme_chain: Vec<_> = rustls_pki_types::CertificateDer::pem_slice_iter(chain.as_bytes())
        .map(|c| c.unwrap())
        .collect();
    let relying = latchkey::relying::Relying::builder(latchkey::profile::DEFAULT_TRUST_DOMAIN)
        .any_tenant()
        .ca_chain(acme_chain)
        .crl_file(&crl_path)
        .build()
        .await
        .unwrap();
    let leaf =
        |pem: &str| rustls_pki_types::CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
    let shared_intermediate =
        rustls_pki_types::CertificateDer::from_pem_file(ca.home().join("intermediate.pem"))
            .unwrap();
    let now = rustls_pki_types::UnixTime::now();
    relying
        .verifier()
        .verify(&leaf(&acme.certificate), &[], now)
        .expect("acme's key");
    assert!(
        relying
            .verifier()
            .verify(&leaf(&globex.certificate), &[shared_intermediate], now)
            .is_err(),
        "another tenant's key, even with its intermediate"
    );

    // The tenant's CRL holds only the tenant's revocations.
    ca.admin()
        .revoke_key(None, &globex.key.id, Some("key_compromise"))
        .await
        .unwrap();
    let globex_serial = globex.key.certificates[0].serial.clone();
    wait_listed(&ca, "/v1/crl", &globex_serial).await;
    ca.admin()
        .revoke_key(None, &acme.key.id, Some("key_compromise"))
        .await
        .unwrap();
    let acme_serial = acme.key.certificates[0].serial.clone();
    let acme_crl = wait_listed(&ca, &crl_url, &acme_serial).await;
    assert_eq!(listed(&acme_crl), vec![acme_serial.clone()]);
    let shared_crl = curl(&ca, &ca.url, "/v1/crl", "application/pkix-crl");
    assert!(!listed(&shared_crl).contains(&acme_serial));

    // An existing tenant gets its own intermediate: its keys renew under it.
    let kept = ca
        .enroll_into("bob@globex", &["read:metrics"], "kept")
        .await;
    let out = ca.cli(&["tenant", "set", "globex", "--dedicated-issuer"]);
    assert!(out.status.success(), "{out:?}");
    let renewed = ca
        .with_identity(&ca.path("kept"))
        .renew(&kept.key.id, None)
        .await
        .unwrap();
    assert!(
        issuer_of(&renewed.certificate).ends_with("for globex, O=latchkey"),
        "{}",
        issuer_of(&renewed.certificate)
    );
    // ... and back to the shared one.
    let out = ca.cli(&["tenant", "set", "globex", "--shared-issuer"]);
    assert!(out.status.success(), "{out:?}");
    let renewed = ca
        .with_identity(&ca.path("kept"))
        .renew(&kept.key.id, None)
        .await;
    // The holder's directory still has its first certificate (shared), which authenticates.
    let renewed = renewed.unwrap();
    assert_eq!(
        issuer_of(&renewed.certificate),
        "CN=latchkey issuing CA, O=latchkey"
    );
    let audit = ca
        .admin()
        .audit(&[("action", "ca.dedicate".to_owned())])
        .await
        .unwrap();
    assert_eq!(audit.events.len(), 2, "{audit:?}");
    let audit = ca
        .admin()
        .audit(&[("action", "ca.undedicate".to_owned())])
        .await
        .unwrap();
    assert_eq!(audit.events.len(), 1, "{audit:?}");
}

#[tokio::test]
async fn a_root_rollover_keeps_every_key_valid_under_either_root_through_cross_certificates() {
    let ca = linted_ca_with_alice().await;
    let dir = ca.dir.path();
    ca.enroll_into("alice@acme", &["read:metrics"], "old").await;
    let doomed = ca
        .enroll_into("alice@acme", &["read:metrics"], "doomed")
        .await;

    let said = rotate(&ca, &["--root"]);
    assert!(said.contains("is the new root"), "{said}");
    let list = wait_for_issuers(&ca, &ca.url, 2).await;
    // The new intermediate certified by the old root, the old one by the new root.
    assert_eq!(list.cross_certificates.len(), 2, "{list:?}");
    assert_eq!(list.issuers[1].status, IssuerStatus::Active);
    // The new root: written into the home and served at GET /v1/ca/root.
    let new_root = String::from_utf8(curl(&ca, &ca.url, "/v1/ca/root", "*/*")).unwrap();
    let written = std::fs::read_dir(ca.home())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            name.starts_with("root-") && name != "root-key.pem"
        })
        .expect("root-<id>.pem in the home");
    assert_eq!(std::fs::read_to_string(written).unwrap(), new_root);
    assert!(issuer_of(&new_root).starts_with("CN=latchkey root CA 2"));
    write(dir, "new-root.pem", new_root.as_bytes());
    // GET /v1/ca: the intermediates, the cross-certificates, both roots.
    let chain = String::from_utf8(curl(&ca, &ca.url, "/v1/ca", "*/*")).unwrap();
    assert_eq!(chain.matches("BEGIN CERTIFICATE").count(), 6, "{chain}");

    // A new key is signed by the new root's intermediate.
    let new = ca.enroll_into("alice@acme", &["read:metrics"], "new").await;
    assert_eq!(
        issuer_of(&new.certificate),
        "CN=latchkey issuing CA 2, O=latchkey"
    );
    // What a party trusting one root is given besides it: the certificates that root
    // issued, intermediates and cross-certificates alike. (OpenSSL takes the first issuer
    // that matches by name and key, so it is given the ones that lead to its root.)
    let old_root = std::fs::read_to_string(ca.home().join("ca.pem")).unwrap();
    for (anchor, name) in [(&old_root, "old"), (&new_root, "new")] {
        let root_subject = {
            let der = rustls_pki_types::CertificateDer::from_pem_slice(anchor.as_bytes()).unwrap();
            let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
            cert.subject().to_string()
        };
        let under: String = list
            .issuers
            .iter()
            .map(|i| i.certificate.clone())
            .chain(list.cross_certificates.iter().cloned())
            .filter(|c| issuer_of(c) == root_subject)
            .collect();
        assert_eq!(
            under.matches("BEGIN CERTIFICATE").count(),
            2,
            "{name}: {under}"
        );
        write(dir, &format!("under-{name}.pem"), under.as_bytes());
    }
    let verify = |anchor: &str, cert: &str| {
        let under = if anchor == "certs/ca.pem" {
            "under-old.pem"
        } else {
            "under-new.pem"
        };
        let out = Command::new("openssl")
            .args(["verify", "-crl_check_all", "-CAfile", anchor])
            .args(["-untrusted", under, "-CRLfile", "bundle.pem", cert])
            .current_dir(dir)
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), said)
    };
    // Every CRL of the chain, both roots' included, in the bundle.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let bundle = curl(&ca, &ca.url, "/v1/crl/bundle.pem", "*/*");
        if String::from_utf8_lossy(&bundle)
            .matches("BEGIN X509 CRL")
            .count()
            == 4
        {
            write(dir, "bundle.pem", &bundle);
            break;
        }
        assert!(Instant::now() < deadline, "the bundle never held four CRLs");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // openssl trusting the old root alone, or the new root alone, accepts old and new keys.
    for anchor in ["certs/ca.pem", "new-root.pem"] {
        for cert in ["old/cert.pem", "new/cert.pem", "doomed/cert.pem"] {
            let (ok, said) = verify(anchor, cert);
            assert!(ok, "{cert} trusting {anchor}: {said}");
        }
    }
    // A revocation on either side shows under either root.
    for (id, serial, path) in [
        (
            &doomed.key.id,
            &doomed.key.certificates[0].serial,
            "/v1/crl".to_owned(),
        ),
        (
            &new.key.id,
            &new.key.certificates[0].serial,
            list.issuers[1].crl.clone().unwrap(),
        ),
    ] {
        ca.admin()
            .revoke_key(None, id, Some("key_compromise"))
            .await
            .unwrap();
        wait_listed(&ca, &path, serial).await;
    }
    write(
        dir,
        "bundle.pem",
        &curl(&ca, &ca.url, "/v1/crl/bundle.pem", "*/*"),
    );
    for anchor in ["certs/ca.pem", "new-root.pem"] {
        for (cert, good) in [
            ("old/cert.pem", true),
            ("doomed/cert.pem", false),
            ("new/cert.pem", false),
        ] {
            let (ok, said) = verify(anchor, cert);
            assert_eq!(ok, good, "{cert} trusting {anchor}: {said}");
            if !good {
                assert!(said.contains("certificate revoked"), "{said}");
            }
        }
    }

    // The CA itself is reached by a client that trusts only the new root.
    let out = ca.cli(&["--ca-cert", "new-root.pem", "issuers"]);
    assert!(out.status.success(), "{out:?}");

    // The library, following the CA from either root alone: the old key gets in, the
    // revoked ones of either intermediate do not.
    let leaf = |name: &str| {
        rustls_pki_types::CertificateDer::from_pem_file(dir.join(name).join("cert.pem")).unwrap()
    };
    let fresh = ca
        .enroll_into("alice@acme", &["read:metrics"], "fresh")
        .await;
    for anchor in [old_root.as_bytes(), new_root.as_bytes()] {
        let relying = latchkey::relying::Relying::builder(latchkey::profile::DEFAULT_TRUST_DOMAIN)
            .any_tenant()
            .follow_ca(&ca.url, anchor)
            .build()
            .await
            .unwrap();
        let now = rustls_pki_types::UnixTime::now();
        let verifier = relying.verifier();
        verifier
            .verify(&leaf("old"), &[], now)
            .expect("the old key");
        verifier
            .verify(&leaf("fresh"), &[], now)
            .unwrap_or_else(|e| panic!("a new key ({}): {e}", issuer_of(&fresh.certificate)));
        assert!(verifier.verify(&leaf("doomed"), &[], now).is_err());
        assert!(verifier.verify(&leaf("new"), &[], now).is_err());
    }

    // pkilint on the new root, the cross-certificates, the new intermediate and the new
    // root's CRL.
    write(
        dir,
        "new-intermediate.pem",
        list.issuers[1].certificate.as_bytes(),
    );
    for (i, cross) in list.cross_certificates.iter().enumerate() {
        write(dir, &format!("cross-{i}.pem"), cross.as_bytes());
    }
    let key_id = {
        let der = rustls_pki_types::CertificateDer::from_pem_slice(new_root.as_bytes()).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        cert.extensions()
            .iter()
            .find_map(|e| match e.parsed_extension() {
                x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(k) => {
                    Some(hex::encode(k.0))
                }
                _ => None,
            })
            .unwrap()
    };
    write(
        dir,
        "new-root-crl.pem",
        &curl(
            &ca,
            &ca.url,
            &format!("/v1/roots/{key_id}/crl"),
            "application/x-pem-file",
        ),
    );
    for (file, lint) in [
        ("new-root.pem", vec!["lint_pkix_cert", "lint"]),
        ("cross-0.pem", vec!["lint_pkix_cert", "lint"]),
        ("cross-1.pem", vec!["lint_pkix_cert", "lint"]),
        ("new-intermediate.pem", vec!["lint_pkix_cert", "lint"]),
        ("new/cert.pem", vec!["lint_pkix_cert", "lint"]),
        (
            "new-root-crl.pem",
            vec!["lint_crl", "lint", "-t", "CRL", "-p", "PKIX"],
        ),
    ] {
        let findings = crate::lint::pkilint(&lint, &dir.join(file));
        assert!(findings.is_empty(), "pkilint on {file}: {findings:#?}");
    }
    let audit = ca
        .admin()
        .audit(&[("action", "ca.rotate_root".to_owned())])
        .await
        .unwrap();
    assert_eq!(audit.events.len(), 1, "{audit:?}");

    // The next rotation, under the new root, is certified by the old root too: a party
    // trusting only the old root accepts its keys as well.
    rotate(&ca, &[]);
    let list = wait_for_issuers(&ca, &ca.url, 3).await;
    assert_eq!(list.cross_certificates.len(), 3, "{list:?}");
    let newest = ca
        .enroll_into("alice@acme", &["read:metrics"], "newest")
        .await;
    assert_eq!(
        issuer_of(&newest.certificate),
        "CN=latchkey issuing CA 3, O=latchkey"
    );
    let under_old: String = list
        .cross_certificates
        .iter()
        .chain(list.issuers.iter().map(|i| &i.certificate))
        .filter(|c| issuer_of(c) == "CN=latchkey root CA, O=latchkey")
        .cloned()
        .collect();
    write(dir, "under-old.pem", under_old.as_bytes());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let bundle = curl(&ca, &ca.url, "/v1/crl/bundle.pem", "*/*");
        write(dir, "bundle.pem", &bundle);
        if String::from_utf8_lossy(&bundle)
            .matches("BEGIN X509 CRL")
            .count()
            == 5
        {
            break;
        }
        assert!(Instant::now() < deadline, "the bundle never held five CRLs");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (ok, said) = verify("certs/ca.pem", "newest/cert.pem");
    assert!(ok, "{said}");
}

/// The roots the store records, and how many cross-certificates.
async fn roots_and_crosses(
    store: &latchkey::store::Store,
) -> (Vec<latchkey::store::RootRecord>, usize) {
    let all = store.roots_and_crosses().await.unwrap();
    let (roots, crosses): (Vec<_>, Vec<_>) = all
        .into_iter()
        .partition(|r| r.role == latchkey::store::IssuerRole::Root);
    (roots, crosses.len())
}

/// A CA whose certificates pkilint can judge (a public URL it accepts in the distribution
/// points: it refuses `localhost`), renewing at any time, with alice@acme; pkilint installed.
async fn linted_ca_with_alice() -> Ca {
    crate::lint::python_tools();
    let ca = Ca::start_with(&[
        "--renew-interval",
        "0s",
        "--public-url",
        "https://ca.example.test:8443",
    ]);
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics"])
        .await;
    ca
}
