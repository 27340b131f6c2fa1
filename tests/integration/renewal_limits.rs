//! Renewal that cannot be abused (findings 3 to 5 of the attack report): one certificate per
//! key per renewal interval (429 with `Retry-After`), at most three valid certificates per
//! key, answers of bounded size, a rekey that retires the old key pair at the CA and on the
//! CRL, and the current policy (disables, grants, the tenant's maximum lifetime) applied at
//! every renewal. Each scenario runs on SQLite and on PostgreSQL.

use std::collections::HashMap;
use std::time::Duration;

use http::Method;
use latchkey::api::{EnrollResponse, TenantChange, UserChange};
use latchkey::client::{Auth, KeyDir, KeyType, Renewer, new_key_pair};

use crate::support::{Ca, PgSchema, problem_code};

/// No renewal interval: for scenarios that renew many times in a row.
const QUICK: [&str; 2] = ["--renew-interval", "0s"];

/// The statuses a holder gets on every mTLS route with the certificate in `dir`.
async fn mtls_statuses(ca: &Ca, dir: &str, key_id: &str) -> Vec<u16> {
    let raw = ca.raw(Some(&ca.path(dir)));
    let mut statuses = Vec::new();
    for (method, path) in [
        (Method::GET, "/v1/keys".to_owned()),
        (Method::GET, format!("/v1/keys/{key_id}")),
        (Method::POST, format!("/v1/keys/{key_id}/renew")),
        (Method::DELETE, format!("/v1/keys/{key_id}")),
    ] {
        let (status, _) = raw.send(method, &path, None, None).await.unwrap();
        statuses.push(status.as_u16());
    }
    statuses
}

/// Serial → CRL reason code, once the CRL lists every one of `serials`.
async fn crl_listing(ca: &Ca, serials: &[String]) -> HashMap<String, Option<u8>> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, der) = ca.anonymous().crl(None, 0).await.unwrap().unwrap();
        let (_, crl) = x509_parser::parse_x509_crl(&der).expect("a CRL");
        let listed: HashMap<String, Option<u8>> = crl
            .iter_revoked_certificates()
            .map(|r| {
                (
                    hex::encode(r.raw_serial()),
                    r.reason_code().map(|(_, c)| c.0),
                )
            })
            .collect();
        if serials.iter().all(|s| listed.contains_key(s)) {
            return listed;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not on the CRL: {serials:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Copies a key directory (a holder keeping the files of an earlier certificate).
fn copy_dir(ca: &Ca, from: &str, to: &str) {
    std::fs::create_dir_all(ca.path(to)).unwrap();
    for file in ["key.pem", "cert.pem", "chain.pem"] {
        std::fs::copy(ca.path(from).join(file), ca.path(to).join(file)).unwrap();
    }
}

fn renewer(ca: &Ca, dir: &str) -> Renewer {
    Renewer::new(&ca.url, &ca.ca_pem(), KeyDir::new(ca.path(dir)))
}

fn serial_of(pem: &str) -> String {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
    hex::encode(pem.parse_x509().unwrap().raw_serial())
}

/// The scopes inside a PEM certificate.
fn certified_scopes(pem: &str) -> Vec<String> {
    let der = latchkey::tls::load_certificates(pem.as_bytes(), "leaf").unwrap();
    let id = latchkey::profile::danger::read_unverified(&der[0], "latchkey.internal").unwrap();
    id.scopes.iter().map(|s| s.to_string()).collect()
}

async fn renew_raw(ca: &Ca, dir: &str, key_id: &str) -> (u16, Option<u64>, String) {
    let (status, headers, body) = ca
        .raw(Some(&ca.path(dir)))
        .send_with_headers(
            Method::POST,
            &format!("/v1/keys/{key_id}/renew"),
            None,
            None,
        )
        .await
        .unwrap();
    let retry_after = headers
        .get(http::header::RETRY_AFTER)
        .map(|v| v.to_str().unwrap().parse().unwrap());
    let code = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["code"].as_str().map(str::to_owned))
        .unwrap_or_default();
    (status.as_u16(), retry_after, code)
}

/// On a CA with `--renew-interval 5s`: a renewal right after enrollment is 429 and changes
/// nothing; once the interval has passed, eight concurrent renewals give one certificate.
async fn interval_scenario(ca: &Ca) {
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics"])
        .await;
    let key = ca.enroll_into("alice@acme", &["read:metrics"], "a").await;
    let before = ca.snapshot().await;
    for _ in 0..10 {
        let (status, retry_after, code) = renew_raw(ca, "a", &key.key.id).await;
        assert_eq!((status, code.as_str()), (429, "renewal_too_soon"));
        assert!(matches!(retry_after, Some(1..=5)), "{retry_after:?}");
    }
    assert_eq!(
        ca.snapshot().await,
        before,
        "a refused renewal changes nothing"
    );

    tokio::time::sleep(Duration::from_millis(5_200)).await;
    let burst: Vec<_> = (0..8)
        .map(|_| {
            let (ca_url, ca_pem, dir) = (ca.url.clone(), ca.ca_pem(), ca.path("a"));
            let id = key.key.id.clone();
            tokio::spawn(async move {
                let raw = latchkey::client::Connection::new(
                    &ca_url,
                    &ca_pem,
                    Some((
                        &std::fs::read(dir.join("chain.pem")).unwrap(),
                        &std::fs::read(dir.join("key.pem")).unwrap(),
                    )),
                )
                .unwrap();
                let (status, headers, _) = raw
                    .send_with_headers(Method::POST, &format!("/v1/keys/{id}/renew"), None, None)
                    .await
                    .unwrap();
                (
                    status.as_u16(),
                    headers.contains_key(http::header::RETRY_AFTER),
                )
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in burst {
        outcomes.push(task.await.unwrap());
    }
    outcomes.sort();
    assert_eq!(
        outcomes,
        [
            (201, false),
            (429, true),
            (429, true),
            (429, true),
            (429, true),
            (429, true),
            (429, true),
            (429, true)
        ],
        "one certificate per interval, under concurrency too"
    );
    let shown = ca.admin().key(None, &key.key.id).await.unwrap();
    assert_eq!(shown.certificates.len(), 2);
}

/// With no interval: thirteen certificates of one key leave three valid, the others revoked
/// as superseded (at the CA and on the CRL), and every answer lists at most ten.
async fn cap_scenario(ca: &Ca) {
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics"])
        .await;
    let key = ca.enroll_into("alice@acme", &["read:metrics"], "a").await;
    copy_dir(ca, "a", "first");
    let holder = renewer(ca, "a");
    let mut sizes = Vec::new();
    let mut last: Option<EnrollResponse> = None;
    for i in 1..=12usize {
        let renewed = holder.renew_once().await.unwrap();
        let valid = renewed
            .key
            .certificates
            .iter()
            .filter(|c| !c.revoked)
            .count();
        assert_eq!(valid, (i + 1).min(3), "after renewal {i}");
        assert!(renewed.key.certificates.len() <= 10, "after renewal {i}");
        sizes.push(serde_json::to_vec(&renewed).unwrap().len());
        last = Some(renewed);
    }
    let last = last.unwrap();
    assert_eq!(last.key.older_certificates, 3, "13 certificates, 10 listed");
    // Once ten are listed the answer stops growing; ECDSA signatures vary by a byte or two.
    assert!(
        sizes[11].abs_diff(sizes[9]) <= 32,
        "the answer stops growing once ten are listed: {sizes:?}"
    );
    let shown = ca.admin().key(None, &key.key.id).await.unwrap();
    assert_eq!(
        (shown.certificates.len(), shown.older_certificates),
        (10, 3)
    );
    let page = ca
        .with_identity(&ca.path("a"))
        .list_keys(None, &latchkey::api::KeyQuery::default())
        .await
        .unwrap();
    assert_eq!(page.keys[0].certificates.len(), 10);

    // The store agrees: three valid certificates, ten superseded.
    let store = ca.store().await;
    let all = store.certificates_of(&[&key.key.id], 0, 100).await.unwrap();
    store.close().await;
    assert_eq!(all.len(), 13);
    let superseded: Vec<String> = all
        .iter()
        .filter(|c| c.certificate.revoked_at.is_some())
        .map(|c| c.certificate.serial.clone())
        .collect();
    assert_eq!(superseded.len(), 10);
    assert!(superseded.contains(&key.key.certificates[0].serial));
    let listed = crl_listing(ca, &superseded).await;
    assert!(
        superseded.iter().all(|s| listed[s] == Some(4)),
        "reason superseded"
    );

    // The first certificate no longer opens anything at the CA.
    let statuses = mtls_statuses(ca, "first", &key.key.id).await;
    assert!(
        statuses.iter().all(|s| matches!(s, 401 | 403)),
        "{statuses:?}"
    );
    ca.with_identity(&ca.path("a"))
        .key(None, &key.key.id)
        .await
        .expect("the newest certificate works");
}

/// A rekey revokes every earlier certificate of the key: both of the old key pair's
/// certificates get 401 or 403 on every route and are on the CRL as superseded.
async fn rekey_scenario(ca: &Ca) {
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics"])
        .await;
    let key = ca.enroll_into("alice@acme", &["read:metrics"], "a").await;
    copy_dir(ca, "a", "old1");
    let renewed = renewer(ca, "a").renew_once().await.unwrap();
    copy_dir(ca, "a", "old2");
    let pair = new_key_pair(KeyType::P256).unwrap();
    let rekeyed = ca
        .with_identity(&ca.path("old2"))
        .renew(&key.key.id, Some(pair.csr_pem.clone()))
        .await
        .unwrap();
    let new = KeyDir::new(ca.path("new"));
    new.write_key(&pair.key_pem).unwrap();
    new.write_certificates(&rekeyed.certificate, &rekeyed.chain)
        .unwrap();
    let valid: Vec<_> = rekeyed
        .key
        .certificates
        .iter()
        .filter(|c| !c.revoked)
        .collect();
    assert_eq!(valid.len(), 1, "{:?}", rekeyed.key.certificates);

    let old_serials = [serial_of(&key.certificate), serial_of(&renewed.certificate)];
    assert_ne!(old_serials[0], old_serials[1]);
    let listed = crl_listing(ca, &old_serials).await;
    assert!(
        old_serials.iter().all(|s| listed[s] == Some(4)),
        "{listed:?}"
    );
    for dir in ["old1", "old2"] {
        let statuses = mtls_statuses(ca, dir, &key.key.id).await;
        assert!(
            statuses.iter().all(|s| matches!(s, 401 | 403)),
            "{dir}: {statuses:?}"
        );
    }
    let shown = ca
        .with_identity(&ca.path("new"))
        .key(None, &key.key.id)
        .await;
    assert_eq!(
        shown.unwrap().status,
        latchkey::api::KeyStatus::Active,
        "the new key pair works"
    );
}

/// The current policy at every renewal: removed grants are dropped from the certificate (and
/// stay dropped), nothing left is 403 `scope_not_granted`, a disabled user or tenant is 403
/// `disabled` (rekey too), a lowered maximum lifetime shortens the key. A machine owner (no
/// user row) answers to its tenant only.
async fn policy_scenario(ca: &Ca) {
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics", "write:events"])
        .await;
    let key = ca
        .enroll_into("alice@acme", &["read:metrics", "write:events"], "a")
        .await;
    let token = ca.token("bot@acme", &["read:metrics"]).await;
    let bot = ca
        .anonymous()
        .enroll_into(
            &Auth::Token(token),
            &KeyDir::new(ca.path("bot")),
            KeyType::P256,
            latchkey::client::KeyRequest::new("bot"),
        )
        .await
        .unwrap();
    let admin = ca.admin();
    let grants = |scopes: &[&str]| UserChange {
        scopes: Some(crate::support::scope_set(scopes)),
        ..Default::default()
    };
    let refused = |dir: &'static str, csr: Option<String>| {
        let client = ca.with_identity(&ca.path(dir));
        let id = if dir == "bot" {
            bot.key.id.clone()
        } else {
            key.key.id.clone()
        };
        async move { problem_code(client.renew(&id, csr).await.unwrap_err()) }
    };

    admin
        .change_user("alice@acme", &grants(&["write:events"]))
        .await
        .unwrap();
    let narrowed = renewer(ca, "a").renew_once().await.unwrap();
    assert_eq!(narrowed.key.scopes, ["write:events"]);
    assert_eq!(certified_scopes(&narrowed.certificate), ["write:events"]);

    admin
        .change_user("alice@acme", &grants(&["other:thing"]))
        .await
        .unwrap();
    let before = ca.snapshot().await;
    assert_eq!(refused("a", None).await, "scope_not_granted");
    assert_eq!(ca.snapshot().await, before);
    admin
        .change_user("alice@acme", &grants(&["read:metrics", "write:events"]))
        .await
        .unwrap();
    let again = renewer(ca, "a").renew_once().await.unwrap();
    assert_eq!(
        again.key.scopes,
        ["write:events"],
        "a dropped scope does not come back"
    );

    let switch = |disabled| UserChange {
        disabled: Some(disabled),
        ..Default::default()
    };
    admin
        .change_user("alice@acme", &switch(true))
        .await
        .unwrap();
    let before = ca.snapshot().await;
    assert_eq!(refused("a", None).await, "disabled");
    assert_eq!(refused("a", Some(crate::support::csr())).await, "disabled");
    assert_eq!(ca.snapshot().await, before);
    renewer(ca, "bot")
        .renew_once()
        .await
        .expect("a machine owner has no user to disable");
    admin
        .change_user("alice@acme", &switch(false))
        .await
        .unwrap();

    let tenant = |disabled| TenantChange {
        disabled: Some(disabled),
        ..Default::default()
    };
    admin.change_tenant("acme", &tenant(true)).await.unwrap();
    let before = ca.snapshot().await;
    assert_eq!(refused("a", None).await, "disabled");
    assert_eq!(refused("bot", None).await, "disabled");
    assert_eq!(
        refused("bot", Some(crate::support::csr())).await,
        "disabled"
    );
    assert_eq!(ca.snapshot().await, before);
    admin.change_tenant("acme", &tenant(false)).await.unwrap();

    let shorter = TenantChange {
        max_key_days: Some(1),
        ..Default::default()
    };
    admin.change_tenant("acme", &shorter).await.unwrap();
    let capped = renewer(ca, "a").renew_once().await.unwrap();
    let end = key.key.created_at + time::Duration::days(1);
    assert_eq!(
        capped.key.expires_at, end,
        "the key now ends by the tenant's maximum"
    );
    let last = capped.key.certificates.last().unwrap();
    assert_eq!(last.not_after, end);
    assert_eq!(capped.key.scopes, ["write:events"]);
}

#[tokio::test]
async fn renewal_too_soon_is_429_with_retry_after_from_the_default_interval() {
    // The default interval is a 24th of the certificate lifetime: 1 h for 24 h.
    let ca = Ca::start();
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics"])
        .await;
    let key = ca.enroll_into("alice@acme", &["read:metrics"], "a").await;
    let before = ca.snapshot().await;
    let (status, retry_after, code) = renew_raw(&ca, "a", &key.key.id).await;
    assert_eq!((status, code.as_str()), (429, "renewal_too_soon"));
    assert!(
        matches!(retry_after, Some(3_590..=3_600)),
        "{retry_after:?}"
    );
    assert_eq!(ca.snapshot().await, before);
}

#[tokio::test]
async fn quick_renewals_get_one_certificate_per_interval_on_sqlite() {
    interval_scenario(&Ca::start_with(&["--renew-interval", "5s"])).await;
}

#[tokio::test]
async fn quick_renewals_get_one_certificate_per_interval_on_postgres() {
    let name = "quick_renewals_get_one_certificate_per_interval_on_postgres";
    let Some(pg) = PgSchema::create(name).await else {
        return;
    };
    interval_scenario(&Ca::start_on_with(&pg.url, &["--renew-interval", "5s"])).await;
}

#[tokio::test]
async fn a_key_keeps_three_valid_certificates_and_bounded_answers_on_sqlite() {
    cap_scenario(&Ca::start_with(&QUICK)).await;
}

#[tokio::test]
async fn a_key_keeps_three_valid_certificates_and_bounded_answers_on_postgres() {
    let name = "a_key_keeps_three_valid_certificates_and_bounded_answers_on_postgres";
    let Some(pg) = PgSchema::create(name).await else {
        return;
    };
    cap_scenario(&Ca::start_on_with(&pg.url, &QUICK)).await;
}

#[tokio::test]
async fn rekey_retires_the_old_key_pair_at_the_ca_and_on_the_crl_on_sqlite() {
    rekey_scenario(&Ca::start_with(&QUICK)).await;
}

#[tokio::test]
async fn rekey_retires_the_old_key_pair_at_the_ca_and_on_the_crl_on_postgres() {
    let name = "rekey_retires_the_old_key_pair_at_the_ca_and_on_the_crl_on_postgres";
    let Some(pg) = PgSchema::create(name).await else {
        return;
    };
    rekey_scenario(&Ca::start_on_with(&pg.url, &QUICK)).await;
}

#[tokio::test]
async fn renewal_applies_the_current_policy_on_sqlite() {
    policy_scenario(&Ca::start_with(&QUICK)).await;
}

#[tokio::test]
async fn renewal_applies_the_current_policy_on_postgres() {
    let Some(pg) = PgSchema::create("renewal_applies_the_current_policy_on_postgres").await else {
        return;
    };
    policy_scenario(&Ca::start_on_with(&pg.url, &QUICK)).await;
}
