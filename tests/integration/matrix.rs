//! The access-control matrix: every principal against every operation, each cell checked.
//! Another tenant's objects are 404 (existence does not leak); a revoked or expired key never
//! gets a 2xx anywhere; only an administrator certificate opens the admin routes. A TLS
//! handshake refusal would show as 0; the CA refuses nobody at the handshake who holds a
//! certificate it issued, so that every refusal comes with a status and a code.
//!
//! In-process tier: the CA runs inside the test on a clock the test moves, so the expired
//! key expires without a wait; every cell is still a real mTLS request.

use std::path::PathBuf;

use http::Method;
use latchkey::authority::Policy;

use crate::support::Ca;

/// What a cell answered: an HTTP status, or a TLS handshake refusal (0).
async fn cell(
    ca: &Ca,
    who: &Option<PathBuf>,
    method: Method,
    path: &str,
    body: Option<&str>,
) -> u16 {
    let conn = ca.raw(who.as_deref());
    match conn
        .send(method, path, None, body.map(|b| b.as_bytes().to_vec()))
        .await
    {
        Ok((status, _)) => status.as_u16(),
        Err(_) => 0,
    }
}

/// The CA's default policy, but any key may be renewed at any time: the matrix renews the
/// same keys from several principals.
fn renew_any_time() -> Policy {
    Policy {
        renew_interval: time::Duration::ZERO,
        ..Policy::default()
    }
}

#[tokio::test]
async fn every_principal_against_every_operation_on_sqlite() {
    every_principal_against_every_operation(Ca::in_process(renew_any_time())).await;
}

#[tokio::test]
async fn every_principal_against_every_operation_on_postgres() {
    let Some(pg) =
        crate::support::PgSchema::create("every_principal_against_every_operation_on_postgres")
            .await
    else {
        return;
    };
    every_principal_against_every_operation(Ca::in_process_on(&pg.url, renew_any_time())).await;
}

async fn every_principal_against_every_operation(ca: Ca) {
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics"])
        .await;
    ca.user("bob@acme", &["read:metrics"]).await;
    ca.tenant_with_user("globex", "carol@globex", &["read:metrics"])
        .await;
    let alice = ca
        .enroll_into("alice@acme", &["read:metrics"], "alice")
        .await;
    let bob = ca.enroll_into("bob@acme", &["read:metrics"], "bob").await;
    let carol = ca
        .enroll_into("carol@globex", &["read:metrics"], "carol")
        .await;
    let revoked = ca
        .enroll_into("alice@acme", &["read:metrics"], "revoked")
        .await;
    ca.admin()
        .revoke_key(None, &revoked.key.id, None)
        .await
        .unwrap();
    // An expired key: one second of life, then the CA's clock moved past it.
    ca.expired_key("alice@acme", &["read:metrics"], "expired")
        .await;

    let principals: [(&str, Option<PathBuf>); 7] = [
        ("nobody", None),
        ("alice (acme)", Some(ca.path("alice"))),
        ("bob (acme, another owner)", Some(ca.path("bob"))),
        ("carol (globex)", Some(ca.path("carol"))),
        ("admin", Some(ca.home().join("admin"))),
        ("revoked key", Some(ca.path("revoked"))),
        ("expired key", Some(ca.path("expired"))),
    ];
    let (a, b, c) = (&alice.key.id, &bob.key.id, &carol.key.id);
    let operations: Vec<(&str, Method, String, Option<&str>)> = vec![
        ("list", Method::GET, "/v1/keys".into(), None),
        ("get alice's", Method::GET, format!("/v1/keys/{a}"), None),
        ("get bob's", Method::GET, format!("/v1/keys/{b}"), None),
        ("get carol's", Method::GET, format!("/v1/keys/{c}"), None),
        (
            "renew alice's",
            Method::POST,
            format!("/v1/keys/{a}/renew"),
            None,
        ),
        (
            "renew bob's",
            Method::POST,
            format!("/v1/keys/{b}/renew"),
            None,
        ),
        (
            "revoke carol's",
            Method::DELETE,
            format!("/v1/keys/{c}"),
            Some("{}"),
        ),
        (
            "admin: tenants",
            Method::GET,
            "/v1/admin/tenants".into(),
            None,
        ),
        ("admin: audit", Method::GET, "/v1/admin/audit".into(), None),
        (
            "admin: revoke all of globex",
            Method::POST,
            "/v1/admin/revocations".into(),
            Some(r#"{"tenant":"globex"}"#),
        ),
        ("CRL", Method::GET, "/v1/crl".into(), None),
        ("metrics", Method::GET, "/metrics".into(), None),
    ];
    // Expected statuses, one row per principal, one column per operation (0: TLS refused).
    // The admin row's bulk revocation is a dry run here: it is checked last, separately.
    let expected: [[u16; 12]; 7] = [
        [401, 401, 401, 401, 401, 401, 401, 401, 401, 401, 200, 403], // nobody
        [200, 200, 404, 404, 201, 403, 404, 403, 403, 403, 200, 403], // alice
        [200, 404, 200, 404, 403, 201, 404, 403, 403, 403, 200, 403], // bob
        [200, 404, 404, 200, 403, 403, 403, 403, 403, 403, 200, 403], // carol: her own key, but another revoke is tested below
        [200, 200, 200, 200, 403, 403, 0, 200, 200, 0, 200, 200], // admin (revoke/bulk checked last)
        [401, 401, 401, 401, 403, 403, 401, 401, 401, 401, 200, 401], // revoked key
        [401, 401, 401, 401, 403, 403, 401, 401, 401, 401, 200, 401], // expired key: dates are the CA's to judge
    ];
    let mut failures = Vec::new();
    for (row, (who, identity)) in principals.iter().enumerate() {
        for (col, (op, method, path, body)) in operations.iter().enumerate() {
            let want = expected[row][col];
            if *who == "admin" && matches!(*op, "revoke carol's" | "admin: revoke all of globex") {
                continue;
            }
            if *who == "carol (globex)" && *op == "revoke carol's" {
                continue;
            }
            let got = cell(&ca, identity, method.clone(), path, *body).await;
            if got != want {
                failures.push(format!("{who} / {op}: expected {want}, got {got}"));
            }
            // A revoked or expired key never gets a 2xx, anywhere but the public CRL.
            if matches!(*who, "revoked key" | "expired key") && *op != "CRL" {
                assert!(!(200..300).contains(&got), "{who} got {got} on {op}");
            }
        }
    }
    assert!(
        failures.is_empty(),
        "matrix cells differ:\n{}",
        failures.join("\n")
    );

    // The mutating cells the admin and the key's owner may do, last.
    assert_eq!(
        cell(
            &ca,
            &Some(ca.path("carol")),
            Method::DELETE,
            &format!("/v1/keys/{c}"),
            Some("{}")
        )
        .await,
        200
    );
    let admin = Some(ca.home().join("admin"));
    assert_eq!(
        cell(
            &ca,
            &admin,
            Method::POST,
            "/v1/admin/revocations",
            Some(r#"{"tenant":"globex"}"#)
        )
        .await,
        200
    );
    assert_eq!(
        cell(
            &ca,
            &admin,
            Method::DELETE,
            &format!("/v1/keys/{b}"),
            Some("{}")
        )
        .await,
        200
    );
}

/// Typed path parameters keep "authenticate first, then 404 for an unknown id": a stranger
/// gets 401 for a malformed id (and a malformed query), a caller gets for a malformed key id
/// exactly the answer an unknown one gets.
#[tokio::test]
async fn a_malformed_id_is_401_to_a_stranger_and_an_unknown_id_to_a_caller() {
    let ca = Ca::start();
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics"])
        .await;
    ca.enroll_into("alice@acme", &["read:metrics"], "alice")
        .await;
    let answer = |who: Option<PathBuf>, method: Method, path: String| {
        let conn = ca.raw(who.as_deref());
        async move {
            let (status, body) = conn.send(method, &path, None, None).await.unwrap();
            let problem: latchkey::api::Problem = serde_json::from_slice(&body).unwrap();
            (status.as_u16(), problem.code, problem.detail)
        }
    };
    let unknown = latchkey::model::KeyId::generate().to_string();
    let alice = Some(ca.path("alice"));
    let admin = Some(ca.home().join("admin"));
    for (method, path) in [
        (Method::GET, "/v1/keys/{}"),
        (Method::DELETE, "/v1/keys/{}"),
        (Method::POST, "/v1/keys/{}/renew"),
    ] {
        for malformed in ["not-a-key-id", "ABCDEF0123456789ABCDEF01", "%FF"] {
            let path_of = |id: &str| path.replace("{}", id);
            let stranger = answer(None, method.clone(), path_of(malformed)).await;
            assert_eq!((stranger.0, stranger.1.as_str()), (401, "unauthenticated"));
            if malformed == "%FF" {
                continue;
            }
            let caller = answer(alice.clone(), method.clone(), path_of(malformed)).await;
            let not_there = answer(alice.clone(), method.clone(), path_of(&unknown)).await;
            let expected = if method == Method::POST {
                // Renewal checks that the certificate is the key's before looking the key up.
                (403, "certificate_not_for_key")
            } else {
                (404, "not_found")
            };
            assert_eq!((not_there.0, not_there.1.as_str()), expected, "{path}");
            if method != Method::POST {
                assert_eq!(caller, not_there, "{method} {path} {malformed}");
            } else {
                assert_eq!((caller.0, caller.1.as_str()), (404, "not_found"));
            }
        }
    }
    let stranger = answer(None, Method::GET, "/v1/keys?tenant=Not%20A%20Name".into()).await;
    assert_eq!(stranger.0, 401);
    let token = answer(admin.clone(), Method::DELETE, "/v1/admin/tokens/x".into()).await;
    let no_token = answer(admin, Method::DELETE, "/v1/admin/tokens/999999".into()).await;
    assert_eq!((token.0, token.1.as_str()), (404, "not_found"));
    assert_eq!(token, no_token);
    let stranger = answer(None, Method::DELETE, "/v1/admin/tokens/x".into()).await;
    assert_eq!(stranger.0, 401);
}
