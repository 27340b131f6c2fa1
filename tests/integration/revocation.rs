//! Revocation and CRL publication, checked with openssl against CRLs fetched over HTTPS.

use std::collections::HashSet;
use std::process::Command;
use std::time::Duration;

use latchkey::api::BulkRevocation;
use latchkey::api::KeyQuery;

use crate::support::{Ca, openssl, password, policy, problem_code};

/// The CRL Number inside a DER CRL.
fn crl_number(der: &[u8]) -> i64 {
    let (_, crl) = x509_parser::parse_x509_crl(der).expect("a CRL");
    i64::try_from(crl.crl_number().expect("a CRL number")).unwrap()
}

/// The serials a DER CRL lists, lowercase hex.
fn crl_serials(der: &[u8]) -> HashSet<String> {
    let (_, crl) = x509_parser::parse_x509_crl(der).expect("a CRL");
    crl.iter_revoked_certificates()
        .map(|r| hex::encode(r.raw_serial()))
        .collect()
}

fn curl_crl(ca: &Ca, out: &str) {
    let status = Command::new("curl")
        .args(["-sS", "-f", "--cacert"])
        .arg(ca.home().join("ca.pem"))
        .args(["-H", "Accept: application/x-pem-file", "-o", out])
        .arg(format!("{}/v1/crl", ca.url))
        .current_dir(ca.dir.path())
        .status()
        .unwrap();
    assert!(status.success());
}

fn verify(ca: &Ca, cert: &str) -> (bool, String) {
    let out = Command::new("openssl")
        .args([
            "verify",
            "-crl_check",
            "-CAfile",
            "certs/ca.pem",
            "-untrusted",
            "certs/intermediate.pem",
            "-CRLfile",
            "crl.pem",
            cert,
        ])
        .current_dir(ca.dir.path())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[tokio::test]
async fn openssl_crl_check_accepts_a_good_certificate_and_rejects_a_revoked_one() {
    let ca = Ca::start();
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics"])
        .await;
    ca.enroll_into("alice@acme", &["read:metrics"], "good")
        .await;
    let bad = ca.enroll_into("alice@acme", &["read:metrics"], "bad").await;
    let (before, der) = ca.anonymous().crl(None, 0).await.unwrap().unwrap();
    // By default a CRL is good for an hour (thisUpdate is backdated a minute).
    assert_eq!(crl_window(&der).0, 3600 + 60);

    // The owner revokes with the key's own certificate.
    let owner = ca.with_identity(&ca.path("bad"));
    let revoked = owner
        .revoke_key(None, &bad.key.id, Some("key_compromise"))
        .await
        .unwrap();
    assert_eq!(revoked.status.as_str(), "revoked");
    assert!(revoked.certificates.iter().all(|c| c.revoked));
    let (number, der) = ca
        .anonymous()
        .crl(Some(before), 10)
        .await
        .unwrap()
        .expect("a newer CRL");
    assert!(number > before);
    assert!(crl_serials(&der).contains(&bad.key.certificates[0].serial));

    curl_crl(&ca, "crl.pem");
    let text = openssl(ca.dir.path(), &["crl", "-in", "crl.pem", "-noout", "-text"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("Key Compromise"), "{text}");
    assert!(text.contains("X509v3 CRL Number"), "{text}");
    assert!(text.contains("X509v3 Authority Key Identifier"), "{text}");
    assert!(text.contains("Version 2"), "{text}");
    let (ok, out) = verify(&ca, "good/cert.pem");
    assert!(ok, "{out}");
    let (ok, out) = verify(&ca, "bad/cert.pem");
    assert!(!ok, "{out}");
    assert!(out.contains("error 23"), "revoked must be error 23: {out}");

    // Revoked means rejected at the CA too: the certificate no longer authenticates.
    let err = owner
        .list_keys(None, &KeyQuery::default())
        .await
        .unwrap_err();
    assert_eq!(problem_code(err), "invalid_certificate");
}

#[tokio::test]
async fn crl_numbers_strictly_increase_across_100_concurrent_revocations() {
    let ca = Ca::start();
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics"])
        .await;
    let client = ca.anonymous();
    let mut keys = Vec::new();
    for i in 0..100 {
        let answer = client
            .enroll(
                &password("alice@acme"),
                &crate::support::request(
                    &crate::support::csr(),
                    &["read:metrics"],
                    &format!("k{i}"),
                ),
            )
            .await
            .unwrap();
        keys.push(answer);
    }
    let (start, _) = client.crl(None, 0).await.unwrap().unwrap();

    // A watcher follows every CRL it can see while the revocations land.
    let watcher = {
        let client = client.clone();
        tokio::spawn(async move {
            let mut seen = vec![start];
            let mut last_entries = 0;
            while last_entries < 100 {
                match client.crl(Some(*seen.last().unwrap()), 30).await.unwrap() {
                    Some((n, der)) => {
                        assert_eq!(
                            crl_number(&der),
                            n,
                            "the header and the signed number agree"
                        );
                        seen.push(n);
                        last_entries = crl_serials(&der).len();
                    }
                    None => panic!("no new CRL within 30 s"),
                }
            }
            seen
        })
    };
    let admin = ca.admin();
    let mut tasks = Vec::new();
    for key in &keys {
        let admin = admin.clone();
        let id = key.key.id.clone();
        tasks.push(tokio::spawn(async move {
            admin.revoke_key(None, &id, Some("superseded")).await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let seen = tokio::time::timeout(Duration::from_secs(60), watcher)
        .await
        .unwrap()
        .unwrap();
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "CRL numbers must strictly increase: {seen:?}"
    );
    // Bursts are coalesced: far fewer CRLs than revocations.
    let built = seen.last().unwrap() - start;
    assert!(built < 60, "{built} CRLs for 100 revocations");
    let (_, der) = client.crl(None, 0).await.unwrap().unwrap();
    let listed = crl_serials(&der);
    for key in &keys {
        assert!(listed.contains(&key.key.certificates[0].serial));
    }
    // The store's CRLs were numbered strictly increasingly too, with no number reused.
    let pool = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}",
        ca.home().join("latchkey.db").display()
    ))
    .await
    .unwrap();
    let stored: Vec<(i64, Vec<u8>, i64)> =
        sqlx::query_as("SELECT number, der, has_der FROM crls ORDER BY rowid")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert!(stored.windows(2).all(|w| w[0].0 < w[1].0));
    // Rows keep what a delta needs; only the newest few keep their bytes, which say their
    // number.
    let whole: Vec<_> = stored.iter().filter(|(_, _, has)| *has == 1).collect();
    assert!(whole.iter().all(|(n, der, _)| crl_number(der) == *n));
    assert!(
        stored
            .iter()
            .all(|(_, der, has)| (*has == 1) != der.is_empty()),
        "has_der says whether a row holds bytes"
    );
    assert!(
        !whole.is_empty() && whole.len() <= 3,
        "old CRLs' bytes are pruned"
    );
}

#[tokio::test]
async fn a_long_poll_returns_within_a_second_of_a_revocation() {
    // One long poll per source: a second one is "busy" exactly while the first is held at
    // the CA, which proves the first reached it (not merely that it had not connected yet).
    let ca = Ca::start_with(&["--max-long-polls-per-source", "1"]);
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics"])
        .await;
    let key = ca.enroll_into("alice@acme", &["read:metrics"], "k").await;
    let client = ca.anonymous();
    let (number, _) = client.crl(None, 0).await.unwrap().unwrap();
    let poll = tokio::spawn({
        let client = client.clone();
        async move {
            loop {
                match client.crl(Some(number), 30).await {
                    // The probe below held the one share for a moment: ask again.
                    Err(latchkey::client::ClientError::Problem(p)) if p.status == 503 => {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    answer => return answer,
                }
            }
        }
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match client.crl(Some(number), 1).await {
            Err(latchkey::client::ClientError::Problem(p)) if p.status == 503 => break,
            other => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the first poll was never held at the CA: a second one got {other:?}"
                );
                // This probe held the share for its second: leave the poll (which asks
                // again every 20 ms) the time to take it before probing again.
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    assert!(!poll.is_finished(), "the poll waits while nothing changes");
    ca.admin()
        .revoke_key(None, &key.key.id, None)
        .await
        .unwrap();
    // The freshness bound of DESIGN.md: relying services learn of a revocation within 1 s.
    let answer = tokio::time::timeout(Duration::from_secs(1), poll)
        .await
        .expect("the long poll answered within a second of the revocation")
        .unwrap()
        .unwrap()
        .expect("a newer CRL");
    assert!(answer.0 > number);
    assert!(crl_serials(&answer.1).contains(&key.key.certificates[0].serial));
}

#[tokio::test]
async fn the_crl_endpoint_serves_der_pem_etags_and_304s() {
    let ca = Ca::start();
    let conn = ca.raw(None);
    let (status, headers, der) = conn
        .send_with_headers(http::Method::GET, "/v1/crl", None, None)
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/pkix-crl");
    assert!(x509_parser::parse_x509_crl(&der).is_ok());
    let etag = headers["etag"].to_str().unwrap().to_owned();
    let number: i64 = headers["latchkey-crl-number"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();

    let curl = |extra: &[&str]| {
        let out = Command::new("curl")
            .args([
                "-sS",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code} %{content_type}",
                "--cacert",
            ])
            .arg(ca.home().join("ca.pem"))
            .args(extra)
            .arg(format!("{}/v1/crl", ca.url))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(curl(&["-H", &format!("If-None-Match: {etag}")]), "304 ");
    assert_eq!(
        curl(&["-H", "Accept: application/x-pem-file"]),
        "200 application/x-pem-file"
    );
    let out = Command::new("curl")
        .args(["-sS", "--cacert"])
        .arg(ca.home().join("ca.pem"))
        .args(["-H", "Accept: application/x-pem-file"])
        .arg(format!("{}/v1/crl", ca.url))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("-----BEGIN X509 CRL-----"));
    // A long poll with nothing new ends in 304 when its wait is over.
    let (status, _) = conn
        .send(
            http::Method::GET,
            &format!("/v1/crl?newer_than={number}&wait=1"),
            None,
            None,
        )
        .await
        .unwrap();
    assert_eq!(status, 304);
    // Asking for older than the current answers at once.
    let (status, _) = conn
        .send(
            http::Method::GET,
            &format!("/v1/crl?newer_than={}&wait=30", number - 1),
            None,
            None,
        )
        .await
        .unwrap();
    assert_eq!(status, 200);
    let (status, body) = conn
        .send(http::Method::GET, "/v1/crl?wait=x", None, None)
        .await
        .unwrap();
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
}

#[tokio::test]
async fn a_restart_serves_the_same_crl_and_repairs_one_that_disagrees_with_the_store() {
    let mut ca = Ca::start();
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics"])
        .await;
    let key = ca.enroll_into("alice@acme", &["read:metrics"], "k").await;
    let before = ca.anonymous().crl(None, 0).await.unwrap().unwrap();
    ca.restart();
    let after = ca.anonymous().crl(None, 0).await.unwrap().unwrap();
    assert_eq!(
        before, after,
        "a restart serves the stored CRL, byte for byte"
    );

    // A revocation the CRL does not show (as if the CA died before building one): the
    // next start notices and publishes a CRL that lists it.
    let db = ca.home().join("latchkey.db");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    sqlx::query("UPDATE certificates SET revoked_at = strftime('%s','now'), revocation_reason = 'superseded' WHERE key_id = ?")
        .bind(&key.key.id)
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    ca.restart();
    let (number, der) = ca.anonymous().crl(None, 0).await.unwrap().unwrap();
    assert!(number > after.0);
    assert!(crl_serials(&der).contains(&key.key.certificates[0].serial));
}

/// A revocation reason the CA never writes is not listed as "unspecified": the build fails,
/// loudly (log, readiness), naming the column, and the last good CRL stays.
#[tokio::test]
async fn a_corrupt_stored_reason_fails_the_crl_build_instead_of_becoming_unspecified() {
    let ca = Ca::start();
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics"])
        .await;
    let key = ca.enroll_into("alice@acme", &["read:metrics"], "k").await;
    let (first, _) = ca.anonymous().crl(None, 0).await.unwrap().unwrap();

    // A revocation with a reason nothing in the CA writes, made behind its back, and the
    // revision moved so the builder knows a CRL misses it.
    let db = ca.home().join("latchkey.db");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    sqlx::query(
        "UPDATE certificates SET revoked_at = strftime('%s','now'), \
         revocation_reason = 'bogus' WHERE key_id = ?",
    )
    .bind(&key.key.id)
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO crl_demand (id, revision) VALUES (1, 1) \
         ON CONFLICT (id) DO UPDATE SET revision = crl_demand.revision + 1",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;

    let conn = ca.raw(None);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _) = conn
            .send(http::Method::GET, "/readyz", None, None)
            .await
            .unwrap();
        if status == 503 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/readyz stayed ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = std::fs::read_to_string(ca.path("serve.log")).unwrap();
    assert!(log.contains("CANNOT PUBLISH A CRL"), "{log}");
    assert!(log.contains("revocation_reason"), "{log}");
    let (number, _) = ca.anonymous().crl(None, 0).await.unwrap().unwrap();
    assert_eq!(number, first, "no CRL was built from a guessed reason");
}

#[tokio::test]
async fn only_the_owner_or_an_admin_revokes_and_others_learn_nothing() {
    let ca = Ca::start();
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics"])
        .await;
    ca.user("bob@acme", &["read:metrics"]).await;
    ca.tenant_with_user("globex", "carol@globex", &["read:metrics"])
        .await;
    let a = ca
        .enroll_into("alice@acme", &["read:metrics"], "alice")
        .await;
    let a2 = ca
        .enroll_into("alice@acme", &["read:metrics"], "alice2")
        .await;
    ca.enroll_into("bob@acme", &["read:metrics"], "bob").await;
    ca.enroll_into("carol@globex", &["read:metrics"], "carol")
        .await;
    let before = ca.counts().await;
    let unchanged = ca.snapshot().await;

    let bob = ca.with_identity(&ca.path("bob"));
    assert_eq!(
        problem_code(bob.revoke_key(None, &a.key.id, None).await.unwrap_err()),
        "not_key_owner"
    );
    let carol = ca.with_identity(&ca.path("carol"));
    assert_eq!(
        problem_code(carol.revoke_key(None, &a.key.id, None).await.unwrap_err()),
        "not_found"
    );
    let anon = ca.anonymous();
    assert_eq!(
        problem_code(anon.revoke_key(None, &a.key.id, None).await.unwrap_err()),
        "unauthenticated"
    );
    let token = latchkey::client::Auth::Token(ca.token("x@acme", &["read:metrics"]).await);
    assert_eq!(
        problem_code(
            anon.revoke_key(Some(&token), &a.key.id, None)
                .await
                .unwrap_err()
        ),
        "unauthenticated"
    );
    assert_eq!(
        problem_code(
            anon.revoke_key(Some(&password("alice@acme")), &a.key.id, Some("because"))
                .await
                .unwrap_err()
        ),
        "invalid_reason"
    );
    let after = ca.counts().await;
    let now = ca.snapshot().await;
    for table in ["keys", "certificates"] {
        assert_eq!(
            now[table], unchanged[table],
            "{table}: refused revocations changed it"
        );
    }
    assert_eq!(after["keys"], before["keys"]);
    assert_eq!(
        after["audit_events"],
        before["audit_events"] + 1,
        "only the token's creation"
    );

    // A key's certificate revokes that key only, not its owner's others.
    let a_cert = ca.with_identity(&ca.path("alice"));
    let err = a_cert.revoke_key(None, &a2.key.id, None).await.unwrap_err();
    assert_eq!(problem_code(err), "not_key_owner");
    // Alice by password; revoking again changes nothing and says the same.
    let revoked = anon
        .revoke_key(Some(&password("alice@acme")), &a.key.id, Some("superseded"))
        .await
        .unwrap();
    assert_eq!(revoked.status.as_str(), "revoked");
    let again = anon
        .revoke_key(Some(&password("alice@acme")), &a.key.id, None)
        .await
        .unwrap();
    assert_eq!(again.status.as_str(), "revoked");
    // The admin revokes anyone's.
    ca.admin().revoke_key(None, &a2.key.id, None).await.unwrap();
    // The CLI too, with one clear line on error.
    let out = ca.cli(&["keys", "revoke", &a.key.id, "--reason", "nonsense"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid_reason"));
}

#[tokio::test]
async fn a_bulk_revocation_of_a_tenant_leaves_no_unrevoked_certificate() {
    let ca = Ca::start_with(&["--renew-interval", "0s"]);
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics"])
        .await;
    ca.user("bob@acme", &["read:metrics"]).await;
    ca.tenant_with_user("globex", "carol@globex", &["read:metrics"])
        .await;
    let mut acme = Vec::new();
    for (user, dir) in [
        ("alice@acme", "a1"),
        ("alice@acme", "a2"),
        ("bob@acme", "b1"),
    ] {
        acme.push(ca.enroll_into(user, &["read:metrics"], dir).await);
    }
    // A second certificate of one key, by renewal.
    ca.with_identity(&ca.path("a1"))
        .renew(&acme[0].key.id, None)
        .await
        .unwrap();
    let carol = ca
        .enroll_into("carol@globex", &["read:metrics"], "c1")
        .await;

    let out = ca.cli(&[
        "revoke",
        "--tenant",
        "acme",
        "--owner",
        "bob",
        "--reason",
        "affiliation_changed",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("revoked 1 key(s)"));
    let result = ca
        .admin()
        .revoke_many(&BulkRevocation {
            tenant: "acme".parse().unwrap(),
            owner: None,
            reason: Some(latchkey::model::RevocationReason::CessationOfOperation),
        })
        .await
        .unwrap();
    assert_eq!((result.keys, result.certificates), (2, 3));

    let admin = ca.admin();
    let page = admin
        .list_keys(
            None,
            &KeyQuery {
                tenant: Some("acme".parse().unwrap()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(page.keys.len(), 3);
    let mut serials = Vec::new();
    for key in &page.keys {
        assert_eq!(key.status.as_str(), "revoked");
        for c in &key.certificates {
            assert!(c.revoked, "{} of {} is not revoked", c.serial, key.id);
            serials.push(c.serial.clone());
        }
    }
    assert_eq!(serials.len(), 4);
    let carol_now = admin.key(None, &carol.key.id).await.unwrap();
    assert_eq!(
        carol_now.status.as_str(),
        "active",
        "another tenant is untouched"
    );
    // Every one of them reaches the CRL.
    let client = ca.anonymous();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (n, der) = client.crl(None, 0).await.unwrap().unwrap();
        let listed = crl_serials(&der);
        if serials.iter().all(|s| listed.contains(s)) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "revocations missing from the CRL"
        );
        client.crl(Some(n), 5).await.unwrap();
    }
}

#[tokio::test]
async fn readiness_and_metrics_report_the_crl() {
    let ca = Ca::start();
    let conn = ca.raw(None);
    let (status, body) = conn
        .send(http::Method::GET, "/readyz", None, None)
        .await
        .unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    // The metrics are the admin's (or an allowed scraper's) to read.
    let (status, body) = ca
        .raw(Some(&ca.home().join("admin")))
        .send(http::Method::GET, "/metrics", None, None)
        .await
        .unwrap();
    assert_eq!(status, 200);
    let text = String::from_utf8_lossy(&body);
    for metric in [
        "latchkey_crl_number",
        "latchkey_crl_failing 0",
        "latchkey_keys_issued_total",
        "latchkey_crl_next_update_timestamp_seconds",
    ] {
        assert!(text.contains(metric), "{metric} missing:\n{text}");
    }
}

/// nextUpdate − thisUpdate of a DER CRL, in seconds, and its nextUpdate as a Unix time.
fn crl_window(der: &[u8]) -> (i64, i64) {
    let (_, crl) = x509_parser::parse_x509_crl(der).expect("a CRL");
    let this = crl.last_update().timestamp();
    let next = crl.next_update().expect("a nextUpdate").timestamp();
    (next - this, next)
}

#[tokio::test]
async fn a_ca_that_cannot_publish_a_crl_is_never_silent_and_still_refuses_revoked_keys() {
    // CRLs valid for a minute: rebuilt on schedule every 30 s, expired a minute after the
    // builder last succeeded. In process, on a clock the test moves past those times.
    let ca = Ca::in_process(policy(
        time::Duration::hours(24),
        time::Duration::seconds(60),
    ));
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics"])
        .await;
    let key = ca.enroll_into("alice@acme", &["read:metrics"], "k").await;
    let serial = key.key.certificates[0].serial.clone();
    let anonymous = ca.anonymous();
    let (first, der) = anonymous.crl(None, 0).await.unwrap().unwrap();
    let (window, _) = crl_window(&der);
    // thisUpdate is backdated a minute against clock skew (as certificates are).
    assert_eq!(window, 60 + 60, "nextUpdate follows --crl-validity");

    // On schedule, with no revocation at all: a new CRL by half its validity, and not
    // before.
    assert!(
        anonymous.crl(Some(first), 2).await.unwrap().is_none(),
        "a CRL before its refresh was due"
    );
    ca.advance(time::Duration::seconds(31));
    let (scheduled, _) = anonymous
        .crl(Some(first), 10)
        .await
        .unwrap()
        .expect("a scheduled CRL once half its validity has passed");
    assert!(scheduled > first);

    // Break CRL storage under the running CA, then give it a revocation to publish.
    let db = format!("sqlite://{}", ca.home().join("latchkey.db").display());
    let pool = sqlx::SqlitePool::connect(&db).await.unwrap();
    let schema: Vec<(String,)> = sqlx::query_as(
        "SELECT sql FROM sqlite_master WHERE tbl_name = 'crls' AND sql IS NOT NULL \
         ORDER BY type DESC",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    sqlx::query("DROP TABLE crls").execute(&pool).await.unwrap();
    ca.admin()
        .revoke_key(None, &key.key.id, Some("key_compromise"))
        .await
        .unwrap();

    // Renewal reads the store, not the CRL: refused though no CRL lists the key.
    let err = ca
        .with_identity(&ca.path("k"))
        .renew(&key.key.id, None)
        .await
        .unwrap_err();
    assert_eq!(problem_code(err), "key_revoked");

    let conn = ca.raw(None);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = conn
            .send(http::Method::GET, "/readyz", None, None)
            .await
            .unwrap();
        if status == 503 {
            let problem: latchkey::api::Problem = serde_json::from_slice(&body).unwrap();
            assert_eq!(problem.code, "not_ready");
            assert!(problem.detail.contains("CRL"), "{}", problem.detail);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/readyz stayed ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, metrics) = ca
        .raw(Some(&ca.home().join("admin")))
        .send(http::Method::GET, "/metrics", None, None)
        .await
        .unwrap();
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(metrics.contains("latchkey_crl_failing 1"), "{metrics}");
    let log = std::fs::read_to_string(ca.path("serve.log")).unwrap();
    assert!(log.contains("CANNOT PUBLISH A CRL"), "{log}");

    // The last CRL is still served while it is valid, but marked: it misses the revocation.
    let (status, headers, der) = conn
        .send_with_headers(http::Method::GET, "/v1/crl", None, None)
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert!(headers.contains_key("latchkey-crl-stale"), "{headers:?}");
    assert_eq!(crl_number(&der), scheduled);
    assert!(!crl_serials(&der).contains(&serial));
    let (_, next_update) = crl_window(&der);

    // Past its nextUpdate it is not served at all.
    let left = next_update - ca.now().unix_timestamp();
    assert!(left > 0, "the stale CRL had expired before it was checked");
    ca.advance(time::Duration::seconds(left + 1));
    let (status, body) = conn
        .send(http::Method::GET, "/v1/crl", None, None)
        .await
        .unwrap();
    assert_eq!(status, 503, "{}", String::from_utf8_lossy(&body));
    let problem: latchkey::api::Problem = serde_json::from_slice(&body).unwrap();
    assert_eq!(problem.code, "crl_expired");

    // Storage back: the builder recovers by itself (its retries back off to 30 s at most).
    for (sql,) in &schema {
        // The schema's own statements, read back from sqlite_master above.
        sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
            .execute(&pool)
            .await
            .unwrap();
    }
    pool.close().await;
    let (number, der) = anonymous
        .crl(Some(scheduled), 50)
        .await
        .unwrap()
        .expect("a CRL once storage is back");
    assert!(number > scheduled);
    assert!(crl_serials(&der).contains(&serial));
    let (status, headers, _) = conn
        .send_with_headers(http::Method::GET, "/v1/crl", None, None)
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert!(!headers.contains_key("latchkey-crl-stale"), "{headers:?}");
    let (status, _) = conn
        .send(http::Method::GET, "/readyz", None, None)
        .await
        .unwrap();
    assert_eq!(status, 200);
}

#[tokio::test]
async fn every_reason_is_recorded_and_listed_with_its_code() {
    let ca = Ca::start();
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics"])
        .await;
    // RFC 5280 §5.3.1 codes; "unspecified" is left out of the entry, as the RFC advises.
    let reasons = [
        ("unspecified", None),
        ("key_compromise", Some(1)),
        ("affiliation_changed", Some(3)),
        ("superseded", Some(4)),
        ("cessation_of_operation", Some(5)),
    ];
    let mut serials = Vec::new();
    for (reason, _) in reasons {
        let key = ca
            .enroll_into("alice@acme", &["read:metrics"], reason)
            .await;
        // Each key revoked by DELETE with its own certificate and the reason in the body.
        let revoked = ca
            .with_identity(&ca.path(reason))
            .revoke_key(None, &key.key.id, Some(reason))
            .await
            .unwrap();
        assert_eq!(revoked.status.as_str(), "revoked");
        serials.push(key.key.certificates[0].serial.clone());
    }
    let listed_with = |der: &[u8]| -> std::collections::HashMap<String, Option<u8>> {
        let (_, crl) = x509_parser::parse_x509_crl(der).expect("a CRL");
        crl.iter_revoked_certificates()
            .map(|r| {
                (
                    hex::encode(r.raw_serial()),
                    r.reason_code().map(|(_, c)| c.0),
                )
            })
            .collect()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let listed = loop {
        let (_, der) = ca.anonymous().crl(None, 0).await.unwrap().unwrap();
        let listed = listed_with(&der);
        if serials.iter().all(|s| listed.contains_key(s)) {
            break listed;
        }
        assert!(tokio::time::Instant::now() < deadline, "not all listed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for ((reason, code), serial) in reasons.iter().zip(&serials) {
        assert_eq!(listed[serial], *code, "{reason}");
    }
}

#[tokio::test]
async fn the_cli_revokes_with_the_keys_certificate_a_password_or_as_admin() {
    let ca = Ca::start();
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics"])
        .await;
    ca.tenant_with_user("globex", "carol@globex", &["read:metrics"])
        .await;
    let own = ca.enroll_into("alice@acme", &["read:metrics"], "own").await;
    let by_password = ca.enroll_into("alice@acme", &["read:metrics"], "pw").await;
    let kept = ca
        .enroll_into("alice@acme", &["read:metrics"], "kept")
        .await;
    ca.enroll_into("carol@globex", &["read:metrics"], "c1")
        .await;
    ca.enroll_into("carol@globex", &["read:metrics"], "c2")
        .await;

    let out = ca.cli(&[
        "keys",
        "revoke",
        &own.key.id,
        "--reason",
        "key_compromise",
        "--dir",
        "own",
    ]);
    assert!(out.status.success(), "{out:?}");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains(&own.key.id) && said.contains("key_compromise"),
        "{said}"
    );

    let out = ca.cli_with_env(
        &[
            "keys",
            "revoke",
            &by_password.key.id,
            "--reason",
            "superseded",
            "--user",
            "alice@acme",
        ],
        &[("LATCHKEY_PASSWORD", crate::support::PASSWORD)],
    );
    assert!(out.status.success(), "{out:?}");

    // A whole tenant, without --owner, from the admin's CLI.
    let out = ca.cli(&[
        "revoke",
        "--tenant",
        "globex",
        "--reason",
        "cessation_of_operation",
    ]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("revoked 2 key(s)"),
        "{out:?}"
    );

    let admin = ca.admin();
    for (id, want) in [
        (&own.key.id, "revoked"),
        (&by_password.key.id, "revoked"),
        (&kept.key.id, "active"),
    ] {
        assert_eq!(
            admin.key(None, id).await.unwrap().status.as_str(),
            want,
            "{id}"
        );
    }
    let globex = admin
        .list_keys(
            None,
            &KeyQuery {
                tenant: Some("globex".parse().unwrap()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(globex.keys.len(), 2);
    assert!(globex.keys.iter().all(|k| k.status.as_str() == "revoked"));
}

/// A revoked certificate stays on the CRL past its `notAfter`, until the first scheduled CRL
/// built more than one CRL validity after it expired, and then drops off. In process: the
/// clock moves half a CRL validity at a time, and each move brings the scheduled CRL.
#[tokio::test]
async fn an_expired_revoked_certificate_stays_listed_for_one_crl_validity_then_drops_off() {
    let ca = Ca::in_process(policy(
        time::Duration::seconds(60),
        time::Duration::seconds(60),
    ));
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics"])
        .await;
    let key = ca.enroll_into("alice@acme", &["read:metrics"], "k").await;
    let serial = key.key.certificates[0].serial.clone();
    let not_after = key.key.certificates[0].not_after.unix_timestamp();
    ca.admin()
        .revoke_key(None, &key.key.id, Some("key_compromise"))
        .await
        .unwrap();
    let revoked_at = ca.now().unix_timestamp();
    // Follow every CRL, scheduled ones included (one per 30 s of the CA's clock), until one
    // drops it.
    let client = ca.anonymous();
    let (mut number, mut der) = client.crl(None, 0).await.unwrap().unwrap();
    let mut listed_after_expiry = false;
    let mut scheduled = 0;
    loop {
        // Built at thisUpdate plus the minute of backdating.
        let built_at = {
            let (_, crl) = x509_parser::parse_x509_crl(&der).unwrap();
            crl.last_update().timestamp() + 60
        };
        let listed = crl_serials(&der).contains(&serial);
        // (A second of slack either side: thisUpdate is in whole seconds.)
        let since_expiry = built_at - not_after;
        if built_at > revoked_at + 1 && since_expiry < 60 - 1 {
            // From the revocation until one validity after it expired: listed.
            assert!(
                listed,
                "CRL {number}, built {since_expiry} s after notAfter, dropped it early"
            );
            listed_after_expiry |= since_expiry > 0;
        } else if since_expiry > 60 + 1 {
            assert!(
                !listed,
                "CRL {number}, built {since_expiry} s after notAfter, still lists it"
            );
            break;
        }
        // 200 s of the CA's clock, as the real-time version of this test allowed.
        assert!(scheduled < 7, "no CRL built after {not_after} + 60");
        // Past the refresh (half the validity after the last CRL was built): the builder's
        // schedule, woken by the clock, publishes the next one at once.
        ca.advance(time::Duration::seconds(31));
        scheduled += 1;
        (number, der) = client
            .crl(Some(number), 10)
            .await
            .unwrap()
            .expect("the scheduled CRL once the clock is past its refresh");
    }
    assert!(
        listed_after_expiry,
        "no CRL built after notAfter listed it (the first scheduled one after it must)"
    );
}
