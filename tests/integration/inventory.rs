//! The key inventory: own keys for key holders, everything for the admin, paging, filters.

use std::collections::HashSet;

use latchkey::api::{KeyQuery, KeyStatus};

use crate::support::{self, Ca, password, problem_code, request};

/// The key ids a `keys list` printed, in order, and the cursor it offered for more.
fn listed(out: &std::process::Output) -> (Vec<String>, Option<String>) {
    assert!(
        out.status.success(),
        "keys list failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut ids = Vec::new();
    let mut cursor = None;
    for line in text.lines() {
        match line.strip_prefix("(more: --cursor ") {
            Some(rest) => cursor = Some(rest.trim_end_matches(')').to_owned()),
            None => ids.push(line.split_whitespace().next().unwrap().to_owned()),
        }
    }
    (ids, cursor)
}

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
        ids(by_cert.list_keys(None, &KeyQuery::default()).await.unwrap()),
        alice_ids
    );
    let anon = ca.anonymous();
    let by_password = anon
        .list_keys(Some(&password("alice@acme")), &KeyQuery::default())
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
    let widened = KeyQuery {
        tenant: Some("globex".parse().unwrap()),
        ..Default::default()
    };
    assert_eq!(
        problem_code(by_cert.list_keys(None, &widened).await.unwrap_err()),
        "admin_required"
    );

    // The admin sees everything and filters by tenant and owner.
    let admin = ca.admin();
    assert_eq!(
        ids(admin.list_keys(None, &KeyQuery::default()).await.unwrap()).len(),
        4
    );
    let acme = KeyQuery {
        tenant: Some("acme".parse().unwrap()),
        ..Default::default()
    };
    assert_eq!(ids(admin.list_keys(None, &acme).await.unwrap()).len(), 3);
    let bob = KeyQuery {
        tenant: Some("acme".parse().unwrap()),
        owner: Some("bob".parse().unwrap()),
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
    let mut query = KeyQuery {
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

    let expired = KeyQuery {
        status: Some(KeyStatus::Expired),
        ..Default::default()
    };
    let page = admin.list_keys(None, &expired).await.unwrap();
    assert_eq!(page.keys.len(), 1);
    assert_eq!(page.keys[0].id, expiring.key.id);
    assert_eq!(page.keys[0].status, KeyStatus::Expired);
    let active = KeyQuery {
        status: Some(KeyStatus::Active),
        ..Default::default()
    };
    assert_eq!(admin.list_keys(None, &active).await.unwrap().keys.len(), 4);
    // The client's KeyQuery cannot name a status that does not exist; the raw query can.
    for query in [
        "?status=sleeping",
        "?limit=abc",
        "?limit=0",
        "?limit=101",
        "?cursor=x",
        "?colour=red",
    ] {
        let (status, headers, body) = ca
            .raw(Some(&ca.home().join("admin")))
            .send_with_headers(http::Method::GET, &format!("/v1/keys{query}"), None, None)
            .await
            .unwrap();
        assert_eq!(
            headers[http::header::CONTENT_TYPE],
            "application/problem+json",
            "{query}"
        );
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
        own.list_keys(None, &KeyQuery::default())
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

#[tokio::test]
async fn the_keys_list_command_filters_by_status_tenant_and_owner_and_pages() {
    let ca = Ca::start();
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics"])
        .await;
    ca.user("bob@acme", &["read:metrics"]).await;
    ca.tenant_with_user("globex", "carol@globex", &["read:metrics"])
        .await;
    let expired = ca
        .expired_key("alice@acme", &["read:metrics"], "a-expired")
        .await
        .key
        .id;
    let active = ca
        .enroll_into("alice@acme", &["read:metrics"], "a-active")
        .await
        .key
        .id;
    let revoked = ca
        .enroll_into("alice@acme", &["read:metrics"], "a-revoked")
        .await
        .key
        .id;
    ca.admin()
        .revoke_key(None, &revoked, Some("superseded"))
        .await
        .unwrap();
    let bob = ca
        .enroll_into("bob@acme", &["read:metrics"], "bob")
        .await
        .key
        .id;
    let carol = ca
        .enroll_into("carol@globex", &["read:metrics"], "carol")
        .await
        .key
        .id;

    let set = |ids: &[&String]| ids.iter().map(|s| s.to_string()).collect::<HashSet<_>>();
    let list = |args: &[&str]| {
        let mut all = vec!["keys", "list"];
        all.extend_from_slice(args);
        listed(&ca.cli(&all))
    };
    let ids = |args: &[&str]| {
        let (ids, cursor) = list(args);
        assert_eq!(cursor, None, "{args:?}");
        let unique: HashSet<String> = ids.iter().cloned().collect();
        assert_eq!(unique.len(), ids.len(), "{args:?}: a key twice");
        unique
    };

    let everything = set(&[&expired, &active, &revoked, &bob, &carol]);
    assert_eq!(ids(&[]), everything);
    assert_eq!(ids(&["--status", "revoked"]), set(&[&revoked]));
    assert_eq!(ids(&["--status", "expired"]), set(&[&expired]));
    assert_eq!(ids(&["--status", "active"]), set(&[&active, &bob, &carol]));
    let out = ca.cli(&["keys", "list", "--status", "revoked"]);
    let line = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        line.contains(" revoked ") && line.contains("alice@acme"),
        "{line}"
    );
    assert_eq!(ids(&["--tenant", "globex"]), set(&[&carol]));
    assert_eq!(
        ids(&["--tenant", "acme"]),
        set(&[&expired, &active, &revoked, &bob])
    );
    assert_eq!(ids(&["--owner", "bob"]), set(&[&bob]));
    assert_eq!(
        ids(&["--tenant", "acme", "--owner", "alice"]),
        set(&[&expired, &active, &revoked])
    );
    assert_eq!(
        ids(&["--tenant", "acme", "--owner", "alice", "--status", "active"]),
        set(&[&active])
    );
    assert_eq!(ids(&["--tenant", "globex", "--owner", "alice"]), set(&[]));
    // A bad filter is one clear line, not an empty list. The CLI parses the status itself
    // (the server's refusal of a raw `?status=sleeping` is tested with the API above).
    let bad = ca.cli(&["keys", "list", "--status", "sleeping"]);
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains("\"sleeping\" is not one of active, expired, revoked"),
        "{stderr}"
    );

    // --limit pages, --cursor continues: 2 + 2 + 1, nothing twice, nothing left out, in the
    // same order as the whole list.
    let (whole, _) = list(&[]);
    let mut walked = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = Vec::new();
    loop {
        let mut args = vec!["--limit", "2"];
        if let Some(c) = &cursor {
            args.extend(["--cursor", c.as_str()]);
        }
        let (page, next) = list(&args);
        pages.push(page.len());
        walked.extend(page);
        match next {
            Some(next) => cursor = Some(next),
            None => break,
        }
        assert!(pages.len() < 5, "the cursor never ends");
    }
    assert_eq!(pages, [2, 2, 1]);
    assert_eq!(walked, whole);
    // Paging and a filter together.
    let (page, next) = list(&["--status", "active", "--limit", "1"]);
    assert_eq!(page.len(), 1);
    let (rest, none) = list(&[
        "--status",
        "active",
        "--limit",
        "5",
        "--cursor",
        &next.expect("more active keys"),
    ]);
    assert_eq!(none, None);
    assert_eq!(
        page.iter().chain(&rest).cloned().collect::<HashSet<_>>(),
        set(&[&active, &bob, &carol])
    );
    assert_eq!(rest.len(), 2);
}

#[tokio::test]
async fn token_secrets_and_passwords_are_stored_only_as_hashes() {
    let ca = Ca::start();
    let ok = |out: std::process::Output| {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    ok(ca.cli(&["tenant", "add", "acme"]));
    let secret_password = "Plaintext-Password-Never-Stored-7f3a";
    ok(ca.cli_with_env(
        &["user", "add", "alice@acme", "--scopes", "read:metrics"],
        &[("LATCHKEY_PASSWORD", secret_password)],
    ));
    let token = ok(ca.cli(&[
        "token",
        "create",
        "--owner",
        "bot@acme",
        "--scopes",
        "read:metrics",
    ]))
    .trim()
    .to_owned();
    assert!(token.starts_with("lkt_") && token.len() > 40, "{token}");
    let token_body = token.trim_start_matches("lkt_").to_owned();

    let assert_absent = |when: &str| {
        for suffix in ["", "-wal", "-shm"] {
            let path = ca.home().join(format!("latchkey.db{suffix}"));
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            for (what, secret) in [
                ("the password", secret_password),
                ("the token", token.as_str()),
                ("the token's random part", token_body.as_str()),
            ] {
                assert!(
                    !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                    "{what} is in {} {when}",
                    path.display()
                );
            }
        }
        let log = std::fs::read_to_string(ca.path("serve.log")).unwrap();
        assert!(
            !log.contains(secret_password) && !log.contains(&token_body),
            "a secret reached the log {when}"
        );
    };
    assert_absent("after they were created");

    let db = format!(
        "sqlite://{}?mode=ro",
        ca.home().join("latchkey.db").display()
    );
    let pool = sqlx::SqlitePool::connect(&db).await.unwrap();
    let (token_hash,): (String,) = sqlx::query_as("SELECT token_hash FROM enrollment_tokens")
        .fetch_one(&pool)
        .await
        .unwrap();
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    assert_eq!(token_hash, hex::encode(digest.as_ref()));
    let (password_hash,): (String,) =
        sqlx::query_as("SELECT password_hash FROM users WHERE name = 'alice'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(password_hash.starts_with("$argon2id$"), "{password_hash}");
    pool.close().await;

    // They are the real secrets: both still enroll, and still are not stored.
    let client = ca.anonymous();
    let alice = latchkey::client::Auth::Password {
        user: "alice@acme".into(),
        password: secret_password.into(),
    };
    client
        .enroll(&alice, &request(&support::csr(), &["read:metrics"], "k"))
        .await
        .expect("the password works");
    client
        .enroll(
            &latchkey::client::Auth::Token(token.clone()),
            &request(&support::csr(), &[], "bot"),
        )
        .await
        .expect("the token works");
    assert_absent("after they were used");
    // The scan reads where the data lives: the stored hashes are found by it.
    let stored: Vec<u8> = ["", "-wal"]
        .iter()
        .filter_map(|suffix| std::fs::read(ca.home().join(format!("latchkey.db{suffix}"))).ok())
        .flatten()
        .collect();
    for hash in [&token_hash, &password_hash] {
        assert!(
            stored.windows(hash.len()).any(|w| w == hash.as_bytes()),
            "{hash} not found in the database files"
        );
    }
}

/// A character a terminal would act on rather than show: C0 (but the newline that ends each
/// line), DEL and C1, zero-width and bidi marks, overrides and isolates, separators, BOM.
fn acts_on_terminal(c: char) -> bool {
    matches!(u32::from(c),
        0x00..=0x09 | 0x0b..=0x1f | 0x7f..=0x9f | 0x200b..=0x200f | 0x2028..=0x202e
        | 0x2066..=0x2069 | 0xfeff)
}

/// Finding 9: a record that holds control or bidi characters (written before the CA refused
/// them, or straight into the store) is printed escaped by every `latchkey` listing.
#[tokio::test]
async fn stored_control_and_bidi_characters_are_printed_escaped() {
    let ca = Ca::start();
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics"])
        .await;
    let key = ca
        .enroll_into("alice@acme", &["read:metrics"], "laptop")
        .await;
    let name = "lap\u{202e}pot\u{1b}]0;pwned\u{7}";
    let description =
        "ok\u{1b}[2J\u{1b}[H\u{7}\u{1b}[31mFAKE: key revoked\u{1b}[0m\u{2028}\u{2066}x";
    // Straight into the store, past the API that would refuse it.
    let db = format!("sqlite://{}", ca.home().join("latchkey.db").display());
    let pool = sqlx::SqlitePool::connect(&db).await.unwrap();
    sqlx::query("UPDATE keys SET name = ?1, description = ?2 WHERE id = ?3")
        .bind(name)
        .bind(description)
        .bind(&key.key.id)
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO audit_events (at, actor, action, tenant, target, detail) \
         VALUES (?1, 'system', 'key.note', 'acme', ?2, ?3)",
    )
    .bind(time::OffsetDateTime::now_utc().unix_timestamp())
    .bind("t\u{202e}\u{1b}[2Jx")
    .bind(serde_json::json!({ "note": description }).to_string())
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;

    let id = key.key.id.as_str();
    let pw = [("LATCHKEY_PASSWORD", support::PASSWORD)];
    for (args, env) in [
        (&["keys", "show", id][..], &[][..]),
        (&["keys", "list"], &[]),
        (&["keys", "list", "--user", "alice@acme"], &pw[..]),
        (&["keys", "show", id, "--user", "alice@acme"], &pw),
        (&["audit"], &[]),
    ] {
        let out = ca.cli_with_env(args, env);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !stdout.chars().any(acts_on_terminal),
            "{args:?} printed a raw control or bidi character: {stdout:?}"
        );
        // Shown, not dropped: the admin sees that something odd is there.
        assert!(
            stdout.contains("\\u{1b}") && stdout.contains("\\u{202e}"),
            "{args:?}: {stdout:?}"
        );
    }
    // --json is escaped too, and still reads back as the stored text.
    let out = ca.cli(&["--json", "keys", "show", id]);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.chars().any(acts_on_terminal), "{stdout:?}");
    let shown: latchkey::api::KeyInfo =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(
        (shown.name.as_str(), shown.description.as_str()),
        (name, description)
    );
}

/// Finding 10: the paging cursor is the id of the last key the caller was shown, never a
/// position in the CA's global sequence, so it says nothing about other tenants' keys; a
/// cursor the caller was not given is refused alike whether or not it exists elsewhere.
#[tokio::test]
async fn cursors_name_the_last_key_shown_and_leak_nothing_across_tenants() {
    let ca = Ca::start();
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics"])
        .await;
    ca.tenant_with_user("globex", "carol@globex", &["read:metrics"])
        .await;
    let carol = ca
        .enroll_into("carol@globex", &["read:metrics"], "c0")
        .await;
    let a1 = ca.enroll_into("alice@acme", &["read:metrics"], "a1").await;
    let a2 = ca.enroll_into("alice@acme", &["read:metrics"], "a2").await;
    let alice = ca.with_identity(&ca.path("a1"));
    let first_page = || {
        let alice = alice.clone();
        async move {
            let query = KeyQuery {
                limit: Some(1),
                ..Default::default()
            };
            alice.list_keys(None, &query).await.unwrap()
        }
    };
    let page = first_page().await;
    assert_eq!(page.keys.len(), 1);
    assert_eq!(page.next_cursor.as_deref(), Some(a2.key.id.as_str()));

    // Globex gets busy; alice's first page and its cursor stay exactly the same.
    for i in 1..=3 {
        ca.enroll_into("carol@globex", &["read:metrics"], &format!("c{i}"))
            .await;
    }
    assert_eq!(first_page().await.next_cursor, page.next_cursor);
    let a3 = ca.enroll_into("alice@acme", &["read:metrics"], "a3").await;
    assert_eq!(
        first_page().await.next_cursor.as_deref(),
        Some(a3.key.id.as_str()),
        "the cursor after globex's keys names alice's key, not how many keys came between"
    );

    // Paging one at a time gives each of her keys exactly once, newest first.
    let mut walked = Vec::new();
    let mut query = KeyQuery {
        limit: Some(1),
        ..Default::default()
    };
    loop {
        let page = alice.list_keys(None, &query).await.unwrap();
        walked.extend(page.keys.into_iter().map(|k| k.id));
        match page.next_cursor {
            Some(c) => query.cursor = Some(c),
            None => break,
        }
        assert!(walked.len() <= 3, "the cursor never ends: {walked:?}");
    }
    assert_eq!(walked, [a3.key.id, a2.key.id, a1.key.id]);

    // Carol's key id, a well-formed id that exists nowhere, a number and garbage: one answer.
    let answers: Vec<(u16, String, String)> = {
        let mut answers = Vec::new();
        for cursor in [
            carol.key.id.clone(),
            latchkey::model::KeyId::generate().to_string(),
            "3".into(),
            "x".into(),
        ] {
            let (status, body) = ca
                .raw(Some(&ca.path("a1")))
                .send(
                    http::Method::GET,
                    &format!("/v1/keys?limit=1&cursor={cursor}"),
                    None,
                    None,
                )
                .await
                .unwrap();
            let problem: latchkey::api::Problem = serde_json::from_slice(&body)
                .unwrap_or_else(|_| panic!("{cursor}: {}", String::from_utf8_lossy(&body)));
            answers.push((status.as_u16(), problem.code, problem.detail));
        }
        answers
    };
    assert_eq!(answers[0].0, 400, "{answers:?}");
    assert_eq!(answers[0].1, "invalid_request", "{answers:?}");
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");

    // The admin pages across tenants, each key once; a key revoked between two pages of
    // active keys still works as the cursor.
    let admin = ca.admin();
    let mut query = KeyQuery {
        status: Some(latchkey::api::KeyStatus::Active),
        limit: Some(2),
        ..Default::default()
    };
    let page = admin.list_keys(None, &query).await.unwrap();
    let mut seen: Vec<String> = page.keys.iter().map(|k| k.id.clone()).collect();
    let cursor = page.next_cursor.unwrap();
    admin.revoke_key(None, &cursor, None).await.unwrap();
    query.cursor = Some(cursor);
    loop {
        let page = admin.list_keys(None, &query).await.unwrap();
        seen.extend(page.keys.into_iter().map(|k| k.id));
        match page.next_cursor {
            Some(c) => query.cursor = Some(c),
            None => break,
        }
        assert!(seen.len() <= 7, "the cursor never ends: {seen:?}");
    }
    assert_eq!(seen.len(), 7, "{seen:?}");
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 7, "no key twice");
}

/// A key of `user` that lives `ttl` from now (the CA's clock): its id.
async fn key_lasting(ca: &Ca, user: &str, name: &str, ttl: time::Duration) -> String {
    let mut brief = request(&support::csr(), &["read:metrics"], name);
    brief.ttl_seconds = Some(ttl.whole_seconds());
    ca.anonymous()
        .enroll(&password(user), &brief)
        .await
        .expect("enroll")
        .key
        .id
}

/// `GET /v1/keys?expiring_within=` answers: its status, code and detail (a problem) or the
/// ids listed.
async fn raw_keys(ca: &Ca, query: &str) -> Result<Vec<String>, (u16, String, String)> {
    let (status, body) = ca
        .raw(Some(&ca.home().join("admin")))
        .send(http::Method::GET, &format!("/v1/keys{query}"), None, None)
        .await
        .unwrap();
    if status.is_success() {
        let page: latchkey::api::KeyPage = serde_json::from_slice(&body).unwrap();
        return Ok(page.keys.into_iter().map(|k| k.id).collect());
    }
    let problem: latchkey::api::Problem = serde_json::from_slice(&body)
        .unwrap_or_else(|_| panic!("{query}: {}", String::from_utf8_lossy(&body)));
    Err((status.as_u16(), problem.code, problem.detail))
}

/// Issue 15, point 5: `expiring_within` lists the active keys whose end is within the span
/// of now by the CA's clock, and nothing else: not a revoked key, not an expired one, not a
/// key that ends just after the window; it combines with the owner, tenant and status
/// filters, pages full pages through the cursor, and the CLI prints the same keys.
#[tokio::test]
async fn expiring_within_lists_the_active_keys_that_end_within_the_window() {
    use time::Duration;
    let ca = Ca::in_process(latchkey::authority::Policy::default());
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics"])
        .await;
    ca.user("bob@acme", &["read:metrics"]).await;
    ca.tenant_with_user("globex", "carol@globex", &["read:metrics"])
        .await;
    let day = Duration::days(1);
    let a_expired = ca
        .expired_key("alice@acme", &["read:metrics"], "a-expired")
        .await
        .key
        .id;
    let a_1d = key_lasting(&ca, "alice@acme", "a-1d", day).await;
    let a_revoked = key_lasting(&ca, "alice@acme", "a-revoked", day * 5).await;
    ca.admin()
        .revoke_key(None, &a_revoked, Some("superseded"))
        .await
        .unwrap();
    let b_3d = key_lasting(&ca, "bob@acme", "b-3d", day * 3).await;
    let c_7d = key_lasting(&ca, "carol@globex", "c-7d", day * 7).await;
    let a_10d = key_lasting(&ca, "alice@acme", "a-10d", day * 10).await;
    let a_inside = key_lasting(&ca, "alice@acme", "a-14d-1h", day * 14 - Duration::hours(1)).await;
    let a_outside = key_lasting(&ca, "alice@acme", "a-14d+1h", day * 14 + Duration::hours(1)).await;
    let a_30d = key_lasting(&ca, "alice@acme", "a-30d", day * 30).await;
    // The default lifetime (90 days), in a key directory: alice's certificate.
    let a_90d = ca
        .enroll_into("alice@acme", &["read:metrics"], "a-90d")
        .await
        .key
        .id;

    let set = |ids: &[&String]| ids.iter().map(|s| s.to_string()).collect::<HashSet<_>>();
    let admin = ca.admin();
    let within = |span: &str| KeyQuery {
        expiring_within: Some(span.parse().unwrap()),
        ..Default::default()
    };
    let list = |query: KeyQuery| {
        let admin = admin.clone();
        async move {
            let page = admin.list_keys(None, &query).await.unwrap();
            assert_eq!(page.next_cursor, None);
            page.keys.into_iter().map(|k| k.id).collect::<Vec<_>>()
        }
    };
    let expiring = set(&[&a_1d, &b_3d, &c_7d, &a_10d, &a_inside]);
    let in_order = list(within("14d")).await;
    assert_eq!(
        in_order.iter().cloned().collect::<HashSet<_>>(),
        expiring,
        "exactly the active keys ending within 14 days"
    );
    assert_eq!(in_order.len(), expiring.len(), "a key twice: {in_order:?}");
    // Newest first, like every list.
    assert_eq!(
        in_order,
        [&a_inside, &a_10d, &c_7d, &b_3d, &a_1d].map(String::clone)
    );
    // The same span in other units and as bare seconds; `status=active` says it again.
    for span in ["336h", "20160m", "1209600s", "1209600"] {
        assert_eq!(list(within(span)).await, in_order, "{span}");
    }
    let active = KeyQuery {
        status: Some(KeyStatus::Active),
        ..within("14d")
    };
    assert_eq!(list(active).await, in_order);
    assert_eq!(
        list(within("2d")).await,
        std::slice::from_ref(&a_1d),
        "a narrower window"
    );
    assert_eq!(list(within("0s")).await, Vec::<String>::new());
    assert_eq!(
        list(within("100d"))
            .await
            .into_iter()
            .collect::<HashSet<_>>(),
        set(&[
            &a_1d, &b_3d, &c_7d, &a_10d, &a_inside, &a_outside, &a_30d, &a_90d
        ]),
        "every active key, never the revoked or the expired one"
    );

    // With the owner and tenant filters.
    let of = |tenant: &str, owner: Option<&str>| KeyQuery {
        tenant: Some(tenant.parse().unwrap()),
        owner: owner.map(|o| o.parse().unwrap()),
        ..within("14d")
    };
    assert_eq!(
        list(of("acme", Some("bob"))).await,
        std::slice::from_ref(&b_3d)
    );
    assert_eq!(
        list(of("acme", Some("alice"))).await,
        [&a_inside, &a_10d, &a_1d].map(String::clone)
    );
    assert_eq!(list(of("globex", None)).await, std::slice::from_ref(&c_7d));
    assert_eq!(
        list(of("globex", Some("alice"))).await,
        Vec::<String>::new()
    );

    // Paging with a small limit: full pages (2, 2, 1), each key once, in the same order.
    let mut query = KeyQuery {
        limit: Some(2),
        ..within("14d")
    };
    let mut pages = Vec::new();
    let mut walked = Vec::new();
    loop {
        let page = admin.list_keys(None, &query).await.unwrap();
        pages.push(page.keys.len());
        walked.extend(page.keys.into_iter().map(|k| k.id));
        match page.next_cursor {
            Some(c) => query.cursor = Some(c),
            None => break,
        }
        assert!(pages.len() < 5, "the cursor never ends");
    }
    assert_eq!(pages, [2, 2, 1]);
    assert_eq!(walked, in_order);

    // The owner's own view: by password and by key certificate, alice's expiring keys only.
    let alice_expiring = vec![a_inside.clone(), a_10d.clone(), a_1d.clone()];
    let by_password = ca
        .anonymous()
        .list_keys(Some(&password("alice@acme")), &within("14d"))
        .await
        .unwrap();
    let ids =
        |page: latchkey::api::KeyPage| page.keys.into_iter().map(|k| k.id).collect::<Vec<_>>();
    assert_eq!(ids(by_password), alice_expiring);
    let by_certificate = ca
        .with_identity(&ca.path("a-90d"))
        .list_keys(None, &within("14d"))
        .await
        .unwrap();
    assert_eq!(ids(by_certificate), alice_expiring);

    // The CLI prints the same keys, as `keys list` prints them, and as JSON; the owner's
    // view too; --all walks the pages.
    let cli_ids = |args: &[&str], env: &[(&str, &str)]| {
        let mut all = vec!["keys", "list"];
        all.extend_from_slice(args);
        let (ids, cursor) = listed(&ca.cli_with_env(&all, env));
        assert_eq!(cursor, None, "{args:?}");
        ids
    };
    assert_eq!(cli_ids(&["--expiring-within", "14d"], &[]), in_order);
    assert_eq!(
        cli_ids(&["--expiring-within", "14d", "--limit", "2", "--all"], &[]),
        in_order
    );
    assert_eq!(
        cli_ids(
            &[
                "--expiring-within",
                "14d",
                "--tenant",
                "acme",
                "--owner",
                "bob"
            ],
            &[]
        ),
        std::slice::from_ref(&b_3d)
    );
    let pw = [("LATCHKEY_PASSWORD", support::PASSWORD)];
    assert_eq!(
        cli_ids(&["--expiring-within", "14d", "--user", "alice@acme"], &pw),
        alice_expiring
    );
    let dir = ca.path("a-90d");
    assert_eq!(
        cli_ids(
            &["--expiring-within", "14d", "--dir", dir.to_str().unwrap()],
            &[]
        ),
        alice_expiring
    );
    let out = ca.cli(&["--json", "keys", "list", "--expiring-within", "14d"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let printed: Vec<&str> = printed["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap())
        .collect();
    assert_eq!(printed, in_order);
    let out = ca.cli(&["keys", "list", "--expiring-within", "14d"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let first = text.lines().next().unwrap();
    assert!(
        first.starts_with(&a_inside) && first.contains(" active ") && first.contains("a-14d-1h"),
        "{first}"
    );

    // "From now" is the CA's now: two hours on, the key that ended 14 days and an hour out is
    // within 14 days; a day on, the one-day key has expired and is gone from the list.
    ca.advance(Duration::hours(2));
    assert!(list(within("14d")).await.contains(&a_outside));
    ca.advance(day);
    let later = list(within("14d")).await;
    assert!(!later.contains(&a_1d), "{later:?}");
    assert_eq!(
        later.into_iter().collect::<HashSet<_>>(),
        set(&[&b_3d, &c_7d, &a_10d, &a_inside, &a_outside])
    );
    assert!(!list(within("1000d")).await.contains(&a_expired));
}

/// A span that does not parse, and `expiring_within` with a status no expiring key can
/// have, are `invalid_request` with a detail that says why; in the CLI too.
#[tokio::test]
async fn expiring_within_refuses_a_malformed_span_and_a_contradicting_status() {
    let ca = Ca::start();
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics"])
        .await;
    let soon = key_lasting(&ca, "alice@acme", "soon", time::Duration::days(3)).await;
    assert_eq!(
        raw_keys(&ca, "?expiring_within=14d").await,
        Ok(vec![soon.clone()])
    );
    assert_eq!(
        raw_keys(&ca, "?expiring_within=14d&status=active").await,
        Ok(vec![soon.clone()])
    );
    // A span that ends past the last time the CA can write covers every active key.
    assert_eq!(
        raw_keys(&ca, "?expiring_within=99999999999999d").await,
        Ok(vec![soon.clone()])
    );
    // Empty means no filter, as for `status=`.
    assert_eq!(raw_keys(&ca, "?expiring_within=").await, Ok(vec![soon]));

    for (value, reason) in [
        ("2w", "invalid duration unit in \"2w\": use d, h, m or s"),
        (
            "soon",
            "invalid duration \"soon\": use e.g. 90d, 12h, 30m, 45s",
        ),
        (
            "-1d",
            "invalid duration \"-1d\": use e.g. 90d, 12h, 30m, 45s",
        ),
        (
            "1.5d",
            "invalid duration unit in \"1.5d\": use d, h, m or s",
        ),
        (
            "999999999999999d",
            "duration \"999999999999999d\" is too long",
        ),
    ] {
        assert_eq!(
            raw_keys(&ca, &format!("?expiring_within={value}")).await,
            Err((400, "invalid_request".into(), reason.into())),
            "{value}"
        );
    }
    for status in ["expired", "revoked"] {
        let (code, problem, detail) =
            raw_keys(&ca, &format!("?expiring_within=14d&status={status}"))
                .await
                .unwrap_err();
        assert_eq!((code, problem.as_str()), (400, "invalid_request"));
        assert!(
            detail.contains("expiring_within lists active keys only")
                && detail.contains(&format!("status={status}")),
            "{detail}"
        );
    }

    // The CLI: the contradiction is the CA's one line; a malformed span never leaves.
    let out = ca.cli(&[
        "keys",
        "list",
        "--status",
        "revoked",
        "--expiring-within",
        "14d",
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("status=revoked") && stderr.contains("(invalid_request)"),
        "{stderr}"
    );
    let out = ca.cli(&["keys", "list", "--expiring-within", "2w"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("invalid duration unit in \"2w\": use d, h, m or s"),
        "{stderr}"
    );
}
