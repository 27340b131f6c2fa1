//! The key inventory: own keys for key holders, everything for the admin, paging, filters.

use std::collections::HashSet;

use latchkey::client::KeyListQuery;

use crate::support::{self, Ca, password, problem_code, request};

#[tokio::test]
async fn key_holders_see_their_own_keys_and_the_admin_sees_all() {
    let ca = Ca::start();
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics"])
        .await;
    ca.user("bob@acme", &["read:metrics"]).await;
    ca.tenant_with_user("globex", "carol@globex", &["read:metrics"])
        .await;
    let a1 = ca
        .enroll_into("alice@acme", &["read:metrics"], "alice1")
        .await;
    let a2 = ca
        .enroll_into("alice@acme", &["read:metrics"], "alice2")
        .await;
    let b = ca.enroll_into("bob@acme", &["read:metrics"], "bob").await;
    let c = ca
        .enroll_into("carol@globex", &["read:metrics"], "carol")
        .await;

    let ids =
        |page: latchkey::api::KeyPage| page.keys.into_iter().map(|k| k.id).collect::<HashSet<_>>();
    let alice_ids: HashSet<String> = [a1.key.id.clone(), a2.key.id.clone()].into();

    // By certificate and by password, alice sees exactly her keys.
    let by_cert = ca.with_identity(&ca.path("alice1"));
    assert_eq!(
        ids(by_cert
            .list_keys(None, &KeyListQuery::default())
            .await
            .unwrap()),
        alice_ids
    );
    let anon = ca.anonymous();
    let by_password = anon
        .list_keys(Some(&password("alice@acme")), &KeyListQuery::default())
        .await
        .unwrap();
    assert_eq!(ids(by_password), alice_ids);

    // Someone else's key: not found, in the same tenant or another.
    for other in [&b.key.id, &c.key.id] {
        let err = by_cert.key(None, other).await.unwrap_err();
        assert_eq!(problem_code(err), "not_found");
    }
    assert_eq!(by_cert.key(None, &a2.key.id).await.unwrap().name, "alice2");
    // Key holders cannot widen their view with filters.
    let widened = KeyListQuery {
        tenant: Some("globex".into()),
        ..Default::default()
    };
    assert_eq!(
        problem_code(by_cert.list_keys(None, &widened).await.unwrap_err()),
        "admin_required"
    );

    // The admin sees everything and filters by tenant and owner.
    let admin = ca.admin();
    assert_eq!(
        ids(admin
            .list_keys(None, &KeyListQuery::default())
            .await
            .unwrap())
        .len(),
        4
    );
    let acme = KeyListQuery {
        tenant: Some("acme".into()),
        ..Default::default()
    };
    assert_eq!(ids(admin.list_keys(None, &acme).await.unwrap()).len(), 3);
    let bob = KeyListQuery {
        tenant: Some("acme".into()),
        owner: Some("bob".into()),
        ..Default::default()
    };
    assert_eq!(
        ids(admin.list_keys(None, &bob).await.unwrap()),
        [b.key.id.clone()].into()
    );
    let shown = admin.key(None, &c.key.id).await.unwrap();
    assert_eq!(
        (shown.tenant.as_str(), shown.owner.as_str()),
        ("globex", "carol")
    );
    assert_eq!(shown.certificates.len(), 1);
    assert_eq!(
        problem_code(
            admin
                .key(None, "000000000000000000000000")
                .await
                .unwrap_err()
        ),
        "not_found"
    );
    assert_eq!(
        problem_code(admin.key(None, "../../etc").await.unwrap_err()),
        "not_found"
    );
}

#[tokio::test]
async fn lists_page_with_a_cursor_and_include_expired_keys() {
    let ca = Ca::start();
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics"])
        .await;
    let client = ca.anonymous();
    let mut short = request(&support::csr(), &["read:metrics"], "short-lived");
    short.ttl_seconds = Some(1);
    let expiring = client
        .enroll(&password("alice@acme"), &short)
        .await
        .unwrap();
    for i in 0..4 {
        ca.enroll_into("alice@acme", &["read:metrics"], &format!("k{i}"))
            .await;
    }
    // Let the one-second key expire (a wait, not a timing assertion).
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;

    let admin = ca.admin();
    let mut seen = Vec::new();
    let mut query = KeyListQuery {
        limit: Some(2),
        ..Default::default()
    };
    loop {
        let page = admin.list_keys(None, &query).await.unwrap();
        assert!(page.keys.len() <= 2);
        seen.extend(page.keys.into_iter().map(|k| k.id));
        match page.next_cursor {
            Some(c) => query.cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen.len(), 5);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 5, "no key twice");

    let expired = KeyListQuery {
        status: Some("expired".into()),
        ..Default::default()
    };
    let page = admin.list_keys(None, &expired).await.unwrap();
    assert_eq!(page.keys.len(), 1);
    assert_eq!(page.keys[0].id, expiring.key.id);
    assert_eq!(page.keys[0].status, "expired");
    let active = KeyListQuery {
        status: Some("active".into()),
        ..Default::default()
    };
    assert_eq!(admin.list_keys(None, &active).await.unwrap().keys.len(), 4);
    let bogus = KeyListQuery {
        status: Some("sleeping".into()),
        ..Default::default()
    };
    assert_eq!(
        problem_code(admin.list_keys(None, &bogus).await.unwrap_err()),
        "invalid_request"
    );
    for query in [
        "?limit=abc",
        "?limit=0",
        "?limit=101",
        "?cursor=x",
        "?colour=red",
    ] {
        let (status, body) = ca
            .raw(Some(&ca.home().join("admin")))
            .send(http::Method::GET, &format!("/v1/keys{query}"), None, None)
            .await
            .unwrap();
        let problem: latchkey::api::Problem = serde_json::from_slice(&body)
            .unwrap_or_else(|_| panic!("{query}: {}", String::from_utf8_lossy(&body)));
        assert_eq!(
            (status.as_u16(), problem.code.as_str()),
            (400, "invalid_request"),
            "{query}"
        );
    }

    // A key holder's own list includes its expired key.
    let own = ca.with_identity(&ca.path("k0"));
    assert_eq!(
        own.list_keys(None, &KeyListQuery::default())
            .await
            .unwrap()
            .keys
            .len(),
        5
    );

    // The CLI walks every page with --all.
    let out = ca.cli(&["keys", "list", "--all", "--limit", "2"]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 5);
}

#[tokio::test]
async fn metadata_never_carries_secrets() {
    let ca = Ca::start();
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics"])
        .await;
    let answer = ca
        .enroll_into("alice@acme", &["read:metrics"], "alice")
        .await;
    let (status, body) = ca
        .raw(Some(&ca.path("alice")))
        .send(
            http::Method::GET,
            &format!("/v1/keys/{}", answer.key.id),
            None,
            None,
        )
        .await
        .unwrap();
    assert_eq!(status, 200);
    let text = String::from_utf8_lossy(&body);
    for secret in ["BEGIN", "password", "hash", "token"] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
}
