//! Killing the CA at any instant loses no recorded issuance and leaves no unrecorded
//! certificate in a client's hands: SIGKILL during enrollment bursts, ten times.

use std::collections::HashSet;
use std::time::Duration;

use latchkey::client::{Auth, ClientError};

use crate::support::{Ca, csr, password, request};

#[tokio::test]
async fn sigkill_during_issuance_bursts_loses_nothing_a_client_received() {
    let mut ca = Ca::start();
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics"])
        .await;
    let mut received = Vec::new();
    for round in 0..10u64 {
        let client = ca.anonymous();
        let mut burst = Vec::new();
        for i in 0..12 {
            let client = client.clone();
            burst.push(tokio::spawn(async move {
                client
                    .enroll(
                        &password("alice@acme"),
                        &request(&csr(), &["read:metrics"], &format!("r{round}k{i}")),
                    )
                    .await
            }));
        }
        // Kill at a different moment each round, while requests are in flight.
        tokio::time::sleep(Duration::from_millis(40 + round * 23)).await;
        ca.restart();
        for task in burst {
            // Whatever the client got back is what counts; refusals and cut connections are
            // fine, a certificate the store does not have is not.
            if let Ok(Ok(answer)) = task.await {
                received.push(answer);
            }
        }
    }
    assert!(!received.is_empty(), "no enrollment completed in any round");
    let mut serials = HashSet::new();
    for answer in &received {
        let (_, pem) = x509_parser::pem::parse_x509_pem(answer.certificate.as_bytes()).unwrap();
        let serial = &answer.key.certificates[0].serial;
        assert_eq!(
            ca.recorded_der(serial).await.as_deref(),
            Some(pem.contents.as_slice()),
            "certificate {serial} was handed out but is not recorded"
        );
        assert!(serials.insert(serial.clone()), "serial {serial} twice");
    }
    // The store is intact, and the CA still issues after all that.
    let pool = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}",
        ca.home().join("latchkey.db").display()
    ))
    .await
    .unwrap();
    let (check,): (String,) = sqlx::query_as("PRAGMA integrity_check")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(check, "ok");
    let (dupes,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) - COUNT(DISTINCT serial) FROM certificates")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(dupes, 0);
    pool.close().await;
    ca.anonymous()
        .enroll(
            &password("alice@acme"),
            &request(&csr(), &["read:metrics"], "after"),
        )
        .await
        .unwrap();
    println!("{} certificates received across 10 kills", received.len());
}

/// A store that fails only the last statement of the issuing transaction (the audit
/// insert, by a trigger that raises): the client gets no certificate, and nothing of the
/// transaction stays behind. The database answered and refused for a reason the CA does
/// not know, so it is a 500 (a bug or a tampered database), not a 503 that invites retries:
/// outages (lost connections, a vanished schema) are 503, as `replicas.rs` checks.
#[tokio::test]
async fn a_store_failing_the_final_insert_gives_500_and_no_certificate() {
    let ca = Ca::start();
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics"])
        .await;
    let token = ca.token("bot@acme", &["read:metrics"]).await;
    let pool = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}",
        ca.home().join("latchkey.db").display()
    ))
    .await
    .unwrap();
    sqlx::query(
        "CREATE TRIGGER fail_final_insert BEFORE INSERT ON audit_events \
         WHEN NEW.action = 'key.issue' BEGIN SELECT RAISE(ABORT, 'injected failure'); END",
    )
    .execute(&pool)
    .await
    .unwrap();
    let before = ca.snapshot().await;
    for auth in [password("alice@acme"), Auth::Token(token.clone())] {
        let refused = ca
            .anonymous()
            .enroll(&auth, &request(&csr(), &["read:metrics"], "k"))
            .await
            .unwrap_err();
        match refused {
            ClientError::Problem(p) => {
                assert_eq!((p.status, p.code.as_str()), (500, "internal"))
            }
            other => panic!("expected 500, got {other}"),
        }
    }
    // Nothing of either transaction stayed: no key, no certificate, the token unspent.
    assert_eq!(ca.snapshot().await, before);
    sqlx::query("DROP TRIGGER fail_final_insert")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    ca.anonymous()
        .enroll(
            &Auth::Token(token),
            &request(&csr(), &["read:metrics"], "k"),
        )
        .await
        .expect("the token was not spent by the failed transaction");
}
