//! Delta CRLs and the follow protocol for large CRLs (issue 13): a follower learns the newest
//! number with a long poll, then takes the delta from the CRL it holds. Judged by the
//! relying-service library (which must end with exactly what the whole CRL lists), by
//! openssl (which must read a delta as an RFC 5280 delta CRL), and across two PostgreSQL
//! replicas revoking at once.

use std::collections::{HashMap, HashSet};
use std::process::Command;
use std::time::Duration as StdDuration;

use latchkey::client::Client;
use latchkey::profile::RevocationSet;
use latchkey::relying::Relying;
use rustls_pki_types::CertificateDer;

use crate::support::{Ca, PgSchema, policy};

/// The serials a DER CRL lists (lowercase hex), with their reason codes.
fn listed(der: &[u8]) -> HashMap<String, Option<u8>> {
    let (_, crl) = x509_parser::parse_x509_crl(der).expect("a CRL");
    crl.iter_revoked_certificates()
        .map(|r| {
            (
                hex::encode(r.raw_serial()),
                r.reason_code().map(|(_, c)| c.0),
            )
        })
        .collect()
}

/// The CRL path and certificate of the CA's (one) intermediate.
async fn intermediate(client: &Client) -> (String, CertificateDer<'static>) {
    let list = client.issuers(None, 0).await.unwrap().unwrap();
    let info = &list.issuers[0];
    let certificate = latchkey::tls::load_certificates(info.certificate.as_bytes(), "issuer")
        .unwrap()
        .remove(0);
    (info.crl.clone().expect("a published CRL"), certificate)
}

/// True when `set` revokes exactly what `der` (a whole CRL) lists.
fn same_as(set: &RevocationSet, der: &[u8]) -> bool {
    let full = listed(der);
    set.len() == full.len()
        && full
            .keys()
            .all(|serial| set.is_revoked(&hex::decode(serial).unwrap()))
}

/// Waits (bounded) until the whole CRL lists every serial of `serials`; returns it.
async fn crl_listing(client: &Client, serials: &[String]) -> (i64, Vec<u8>) {
    for _ in 0..100 {
        let (number, der) = client.crl(None, 0).await.unwrap().unwrap();
        let full = listed(&der);
        if serials.iter().all(|s| full.contains_key(s)) {
            return (number, der);
        }
        tokio::time::sleep(StdDuration::from_millis(100)).await;
    }
    panic!("the CRL did not list every revocation within 10 s");
}

/// Deltas across a run of revocations, applied by the library, end with exactly the whole
/// CRL's set; the follower of `Relying` follows them too. Each delta lists only what changed.
#[tokio::test]
async fn a_follower_applies_deltas_across_revocations_and_holds_exactly_the_whole_crl() {
    let ca = Ca::start();
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics"])
        .await;
    let mut keys = Vec::new();
    for i in 0..6 {
        keys.push(
            ca.enroll_into("alice@acme", &["read:metrics"], &format!("k{i}"))
                .await,
        );
    }
    let client = ca.anonymous();
    let (path, intermediate) = intermediate(&client).await;
    let relying = Relying::builder("latchkey.internal")
        .any_tenant()
        .follow_ca(&ca.url, &ca.ca_pem())
        .first_crl_within(StdDuration::from_secs(10))
        .build()
        .await
        .unwrap();
    let followed = relying.verifier().revocations_of(&intermediate).unwrap();

    let latest = client.latest_crl(&path, None, 0).await.unwrap();
    let whole = client.crl_file(&latest.crl).await.unwrap();
    let mut held = RevocationSet::from_crl(&whole, &intermediate).unwrap();
    let mut revoked = Vec::new();
    for key in &keys {
        ca.admin()
            .revoke_key(None, &key.key.id, Some("key_compromise"))
            .await
            .unwrap();
        revoked.push(key.key.certificates[0].serial.to_string());
        let (number, der) = crl_listing(&client, &revoked).await;
        // The long poll names the newest number and the delta from the one held.
        let latest = client
            .latest_crl(&path, Some(held.number()), 0)
            .await
            .unwrap();
        assert_eq!(latest.number, number);
        let delta = client
            .crl_file(latest.delta.as_deref().expect("a delta from the CRL held"))
            .await
            .unwrap();
        let changes = listed(&delta);
        assert_eq!(
            changes.get(revoked.last().unwrap()),
            Some(&Some(1)),
            "the delta lists the new revocation, keyCompromise"
        );
        assert!(
            changes.len() < revoked.len() || revoked.len() == 1,
            "a delta lists what changed, not the whole CRL: {changes:?}"
        );
        assert!(delta.len() < 2048, "a delta of one revocation is small");
        held = held.apply_delta(&delta, &intermediate).unwrap();
        assert_eq!(held.number(), number);
        assert!(same_as(&held, &der), "after {} revocations", revoked.len());
        // The library's follower gets there too.
        for _ in 0..100 {
            if followed.current().is_some_and(|c| c.number() >= number) {
                break;
            }
            tokio::time::sleep(StdDuration::from_millis(100)).await;
        }
        let current = followed.current().unwrap();
        assert!(same_as(&current, &der), "the follower's set");
    }
}

/// A delta is refused, and nothing changes, when it names another base, is signed by another
/// key or issuer, or is a whole CRL; one from an unknown base, or from a base older than
/// the delta horizon, is not served (404 `delta_unavailable`) and the whole CRL is.
#[tokio::test]
async fn wrong_deltas_are_refused_and_a_follower_past_the_horizon_gets_the_whole_crl() {
    let ca = Ca::in_process(policy(time::Duration::hours(48), time::Duration::hours(1)));
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics"])
        .await;
    let a = ca.enroll_into("alice@acme", &["read:metrics"], "a").await;
    let b = ca.enroll_into("alice@acme", &["read:metrics"], "b").await;
    let client = ca.anonymous();
    let (path, intermediate) = intermediate(&client).await;
    let (first, first_der) = client.crl(None, 0).await.unwrap().unwrap();
    let held = RevocationSet::from_crl(&first_der, &intermediate).unwrap();
    ca.admin()
        .revoke_key(None, &a.key.id, Some("superseded"))
        .await
        .unwrap();
    let (second, _) = client.crl(Some(first), 10).await.unwrap().unwrap();
    let delta = client
        .crl_file(&format!("{path}s/{second}/delta/{first}"))
        .await
        .unwrap();

    // Applied to a set of another number: wrong base.
    ca.admin()
        .revoke_key(None, &b.key.id, Some("superseded"))
        .await
        .unwrap();
    let (third, other_der) = client.crl(Some(second), 10).await.unwrap().unwrap();
    let newer = RevocationSet::from_crl(&other_der, &intermediate).unwrap();
    assert!(matches!(
        newer.apply_delta(&delta, &intermediate),
        Err(latchkey::profile::CrlError::WrongBase { .. })
    ));
    // Checked against another issuer's certificate (the root's): not its signature.
    let root = latchkey::tls::load_certificates(&ca.ca_pem(), "root")
        .unwrap()
        .remove(0);
    assert!(held.apply_delta(&delta, &root).is_err());
    // A bit flipped in the signature.
    let mut forged = delta.clone();
    let last = forged.len() - 3;
    forged[last] ^= 1;
    assert_eq!(
        held.apply_delta(&forged, &intermediate).unwrap_err(),
        latchkey::profile::CrlError::BadSignature
    );
    // A whole CRL is no delta, and a delta is no whole CRL.
    assert_eq!(
        held.apply_delta(&other_der, &intermediate).unwrap_err(),
        latchkey::profile::CrlError::NotDelta
    );
    assert!(RevocationSet::from_crl(&delta, &intermediate).is_err());
    // The right one is taken.
    assert_eq!(held.apply_delta(&delta, &intermediate).unwrap().len(), 1);

    // A base the CA never made.
    let unknown = client
        .crl_file(&format!("{path}s/{second}/delta/99999"))
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Some("delta_unavailable"), "{unknown}");

    // Offline for more than a day: the CA keeps no delta from the CRL held.
    ca.advance(time::Duration::hours(25));
    let (newest_number, _) = client
        .crl(Some(third), 10)
        .await
        .unwrap()
        .expect("the scheduled CRL once the clock moved");
    let latest = client.latest_crl(&path, Some(first), 0).await.unwrap();
    assert_eq!(latest.number, newest_number);
    let gone = client
        .crl_file(latest.delta.as_deref().unwrap())
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Some("delta_unavailable"), "{gone}");
    let whole = client.crl_file(&latest.crl).await.unwrap();
    assert_eq!(x509_number(&whole), newest_number);
}

fn x509_number(der: &[u8]) -> i64 {
    let (_, crl) = x509_parser::parse_x509_crl(der).unwrap();
    i64::try_from(crl.crl_number().unwrap()).unwrap()
}

/// `GET /v1/crl/delta?base=N` for plain tools: openssl reads it as a delta CRL (critical
/// Delta CRL Indicator naming N) listing the revocation; the immutable URL it names is
/// cacheable, with a strong ETag that answers 304.
#[tokio::test]
async fn openssl_reads_a_delta_crl_and_caches_may_keep_it() {
    let ca = Ca::start();
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics"])
        .await;
    let key = ca.enroll_into("alice@acme", &["read:metrics"], "k").await;
    let client = ca.anonymous();
    let (base, _) = client.crl(None, 0).await.unwrap().unwrap();
    ca.admin()
        .revoke_key(None, &key.key.id, Some("key_compromise"))
        .await
        .unwrap();
    let serial = key.key.certificates[0].serial.to_string();
    crl_listing(&client, std::slice::from_ref(&serial)).await;
    let curl = |url: &str, extra: &[&str]| {
        let out = Command::new("curl")
            .args(["-sS", "-D", "-", "--cacert"])
            .arg(ca.home().join("ca.pem"))
            .args(["-H", "Accept: application/x-pem-file"])
            .args(extra)
            .arg(url)
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    let answer = curl(&format!("{}/v1/crl/delta?base={base}", ca.url), &[]);
    let (head, pem) = answer.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("latchkey-crl-kind: delta"), "{head}");
    let location = head
        .lines()
        .find_map(|l| l.strip_prefix("content-location: "))
        .expect("the immutable URL")
        .trim()
        .to_owned();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("delta.pem"), pem).unwrap();
    let text = Command::new("openssl")
        .args(["crl", "-noout", "-text", "-in"])
        .arg(dir.path().join("delta.pem"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout).to_uppercase();
    assert!(text.contains("DELTA CRL INDICATOR: CRITICAL"), "{text}");
    assert!(text.contains(&serial.to_uppercase()), "{text}");
    assert!(text.contains("KEY COMPROMISE"), "{text}");

    let immutable = curl(&format!("{}{location}", ca.url), &[]);
    let (head, body) = immutable.split_once("\r\n\r\n").unwrap();
    assert_eq!(body, pem, "the same delta at its immutable URL");
    assert!(head.contains("immutable"), "{head}");
    assert!(head.contains("public, max-age="), "{head}");
    let etag = head
        .lines()
        .find_map(|l| l.strip_prefix("etag: "))
        .expect("an ETag")
        .trim()
        .to_owned();
    assert!(!etag.starts_with("W/"), "a strong ETag");
    let again = curl(
        &format!("{}{location}", ca.url),
        &["-H", &format!("If-None-Match: {etag}")],
    );
    assert!(again.starts_with("HTTP/1.1 304"), "{again}");

    // The newest CRL is no base: nothing changed since.
    let (newest, _) = client.crl(None, 0).await.unwrap().unwrap();
    let none = curl(&format!("{}/v1/crl/delta?base={newest}", ca.url), &[]);
    assert!(none.starts_with("HTTP/1.1 404"), "{none}");
    assert!(none.contains("delta_unavailable"), "{none}");
}

/// Two PostgreSQL replicas revoking at once: every revocation appears in the deltas a
/// follower chains from one CRL to the next, exactly once, and the deltas end where the
/// whole CRL is after each burst.
#[tokio::test]
async fn concurrent_revocations_on_two_replicas_appear_in_the_deltas_once_and_none_is_lost() {
    let Some(pg) = PgSchema::create(
        "concurrent_revocations_on_two_replicas_appear_in_the_deltas_once_and_none_is_lost",
    )
    .await
    else {
        return;
    };
    let ca = Ca::start_on(&pg.url);
    let replica = ca.replica();
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics"])
        .await;
    let mut keys = Vec::new();
    for i in 0..24 {
        keys.push(
            ca.enroll_into("alice@acme", &["read:metrics"], &format!("k{i}"))
                .await,
        );
    }
    let client = ca.anonymous();
    let (path, intermediate) = intermediate(&client).await;
    let (mut number, der) = client.crl(None, 0).await.unwrap().unwrap();
    let mut held = RevocationSet::from_crl(&der, &intermediate).unwrap();
    let mut added: HashMap<String, usize> = HashMap::new();
    let mut revoked = Vec::new();
    let admins = [ca.admin(), ca.admin_at(&replica.url)];
    let readers = [
        client.clone(),
        Client::new(&replica.url, &ca.ca_pem(), None).unwrap(),
    ];
    for burst in keys.chunks(12) {
        let mut tasks = Vec::new();
        for (i, key) in burst.iter().enumerate() {
            let admin = admins[i % 2].clone();
            let id = key.key.id.clone();
            tasks.push(tokio::spawn(async move {
                admin.revoke_key(None, &id, Some("superseded")).await
            }));
            revoked.push(key.key.certificates[0].serial.to_string());
        }
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        // Chain deltas, from either replica, until the whole CRL's number is reached.
        let (target, whole) = crl_listing(&client, &revoked).await;
        let mut hops = 0;
        while number < target {
            let reader = &readers[hops % 2];
            let latest = reader.latest_crl(&path, Some(number), 0).await.unwrap();
            let delta = reader
                .crl_file(latest.delta.as_deref().unwrap())
                .await
                .unwrap();
            for (serial, reason) in listed(&delta) {
                if reason != Some(8) {
                    *added.entry(serial).or_default() += 1;
                }
            }
            held = held.apply_delta(&delta, &intermediate).unwrap();
            number = held.number();
            hops += 1;
            assert!(hops < 50, "deltas do not reach CRL {target}");
        }
        assert!(same_as(&held, &whole), "the deltas end at the whole CRL");
    }
    let expected: HashSet<&String> = revoked.iter().collect();
    assert_eq!(added.keys().collect::<HashSet<_>>(), expected, "none lost");
    assert!(added.values().all(|n| *n == 1), "none twice: {added:?}");
}
