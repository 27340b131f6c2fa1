//! Several CA replicas on one PostgreSQL, and losing the database. Needs
//! `LATCHKEY_TEST_POSTGRES_URL`; without it each test says it was skipped.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use latchkey::api::KeyQuery;
use latchkey::client::{Auth, Client};

use crate::support::{Ca, PgSchema, csr, password, problem_code, request};

fn crl_serials(der: &[u8]) -> HashSet<String> {
    let (_, crl) = x509_parser::parse_x509_crl(der).expect("a CRL");
    crl.iter_revoked_certificates()
        .map(|r| hex::encode(r.raw_serial()))
        .collect()
}

#[tokio::test]
async fn two_replicas_on_one_postgres_behave_as_one_ca() {
    let Some(pg) = PgSchema::create("two_replicas_on_one_postgres_behave_as_one_ca").await else {
        return;
    };
    let ca = Ca::start_on(&pg.url);
    let b = ca.replica();
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics"])
        .await;
    let at_a = ca.anonymous();
    let at_b = Client::new(&b.url, &ca.ca_pem(), None).unwrap();

    // One token, 2×50 concurrent uses at both replicas: exactly one key.
    let token = ca.token("bot@acme", &["read:metrics"]).await;
    let mut tasks = Vec::new();
    for i in 0..100 {
        let client = if i % 2 == 0 {
            at_a.clone()
        } else {
            at_b.clone()
        };
        let auth = Auth::Token(token.clone());
        tasks.push(tokio::spawn(async move {
            client
                .enroll(&auth, &request(&csr(), &[], &format!("race{i}")))
                .await
        }));
    }
    let mut issued = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => issued += 1,
            Err(e) => assert_eq!(problem_code(e), "invalid_token"),
        }
    }
    assert_eq!(
        issued, 1,
        "a one-time token gave {issued} keys across replicas"
    );

    // One key pair, 2×8 concurrent enrollments at both replicas: one key holds it.
    let shared_csr = csr();
    let mut tasks = Vec::new();
    for i in 0..16 {
        let client = if i % 2 == 0 {
            at_a.clone()
        } else {
            at_b.clone()
        };
        let brief = request(&shared_csr, &["read:metrics"], &format!("same{i}"));
        tasks.push(tokio::spawn(async move {
            client.enroll(&password("alice@acme"), &brief).await
        }));
    }
    let mut holders = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => holders += 1,
            Err(e) => assert_eq!(problem_code(e), "public_key_in_use"),
        }
    }
    assert_eq!(holders, 1, "one public key went to {holders} keys");

    // Keys issued at either replica; the inventory and the audit log are the same at both.
    let mut keys = Vec::new();
    for i in 0..10 {
        let client = if i % 2 == 0 { &at_a } else { &at_b };
        keys.push(
            client
                .enroll(
                    &password("alice@acme"),
                    &request(&csr(), &["read:metrics"], &format!("k{i}")),
                )
                .await
                .unwrap(),
        );
    }
    let (admin_a, admin_b) = (ca.admin(), ca.admin_at(&b.url));
    let list = |c: Client| async move {
        c.list_keys(
            None,
            &KeyQuery {
                limit: Some(100),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .keys
        .into_iter()
        .map(|k| k.id)
        .collect::<Vec<_>>()
    };
    assert_eq!(list(admin_a.clone()).await, list(admin_b.clone()).await);
    // The token's key, the shared key pair's, and ten.
    assert_eq!(list(admin_a.clone()).await.len(), 12);
    let audit_a: Vec<i64> = admin_a
        .audit(&[])
        .await
        .unwrap()
        .events
        .iter()
        .map(|e| e.id)
        .collect();
    let audit_b: Vec<i64> = admin_b
        .audit(&[])
        .await
        .unwrap()
        .events
        .iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(audit_a, audit_b);

    // A revocation at A wakes a long poll at B within a second.
    let (number_b, _) = at_b.crl(None, 0).await.unwrap().unwrap();
    let poll = tokio::spawn({
        let at_b = at_b.clone();
        async move { at_b.crl(Some(number_b), 30).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    admin_a
        .revoke_key(None, &keys[0].key.id, None)
        .await
        .unwrap();
    let (newer, der) = tokio::time::timeout(Duration::from_secs(1), poll)
        .await
        .expect("replica B's long poll answered within a second of the revocation at A")
        .unwrap()
        .unwrap()
        .expect("a newer CRL");
    assert!(newer > number_b);
    assert!(crl_serials(&der).contains(&keys[0].key.certificates[0].serial));

    // Concurrent revocations at both replicas while CRLs are built: numbers only go up,
    // everything ends up listed, and both replicas serve the same CRL.
    let watch = |client: Client, start: i64| {
        tokio::spawn(async move {
            let mut seen = vec![start];
            loop {
                match client.crl(Some(*seen.last().unwrap()), 3).await.unwrap() {
                    Some((n, der)) => {
                        seen.push(n);
                        if crl_serials(&der).len() >= 10 {
                            return seen;
                        }
                    }
                    None => return seen,
                }
            }
        })
    };
    let wa = watch(at_a.clone(), newer);
    let wb = watch(at_b.clone(), newer);
    let mut revocations = Vec::new();
    for (i, key) in keys.iter().enumerate().skip(1) {
        let admin = if i % 2 == 0 {
            admin_a.clone()
        } else {
            admin_b.clone()
        };
        let id = key.key.id.clone();
        revocations.push(tokio::spawn(async move {
            admin.revoke_key(None, &id, Some("superseded")).await
        }));
    }
    for r in revocations {
        r.await.unwrap().unwrap();
    }
    for seen in [wa.await.unwrap(), wb.await.unwrap()] {
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (na, da) = at_a.crl(None, 0).await.unwrap().unwrap();
        let (nb, db) = at_b.crl(None, 0).await.unwrap().unwrap();
        if na == nb && da == db && crl_serials(&da).len() == 10 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "replicas disagree: {na} vs {nb}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Exactly one replica built each CRL: neither ever built one whose number the other had
    // stored first (the database's unique number would have hidden that from the checks above).
    for url in [&ca.url, &b.url] {
        // The metrics are the admin's (or an allowed scraper's) to read.
        let chain = std::fs::read(ca.home().join("admin/chain.pem")).unwrap();
        let key = std::fs::read(ca.home().join("admin/key.pem")).unwrap();
        let conn =
            latchkey::client::Connection::new(url, &ca.ca_pem(), Some((&chain, &key))).unwrap();
        let (_, metrics) = conn
            .send(http::Method::GET, "/metrics", None, None)
            .await
            .unwrap();
        let metrics = String::from_utf8_lossy(&metrics);
        for line in [
            "latchkey_crl_number_conflicts_total 0",
            "latchkey_crl_build_failures_total 0",
        ] {
            assert!(metrics.contains(line), "{url}: {line} missing:\n{metrics}");
        }
    }
}

#[tokio::test]
async fn losing_the_database_mid_burst_loses_no_issued_certificate() {
    let Some(pg) =
        PgSchema::create("losing_the_database_mid_burst_loses_no_issued_certificate").await
    else {
        return;
    };
    let ca = Ca::start_on(&pg.url);
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics"])
        .await;
    let client = ca.anonymous();
    // Four clients enroll in a loop while every connection of this CA to the database is
    // cut, again and again, so transactions die at every stage. The cutting goes on until
    // both outcomes have been seen several times (bounded in time): how many requests land
    // between two cuts depends on the machine's load, not on the CA.
    let stop = Arc::new(AtomicBool::new(false));
    let outcomes = Arc::new(Mutex::new((Vec::new(), 0usize)));
    let mut workers = Vec::new();
    for w in 0..4 {
        let (client, stop, outcomes) = (client.clone(), stop.clone(), outcomes.clone());
        workers.push(tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let name = format!("w{w}k{i}");
                let result = client
                    .enroll(
                        &password("alice@acme"),
                        &request(&csr(), &["read:metrics"], &name),
                    )
                    .await;
                let mut outcomes = outcomes.lock().unwrap();
                match result {
                    Ok(answer) => outcomes.0.push(answer),
                    Err(latchkey::client::ClientError::Problem(p)) => {
                        // A clear code, and one that says "try again": never a 500.
                        assert_eq!((p.status, p.code.as_str()), (503, "store_unavailable"));
                        outcomes.1 += 1;
                    }
                    Err(other) => panic!("unexpected failure: {other}"),
                }
            }
        }));
    }
    let base = std::env::var("LATCHKEY_TEST_POSTGRES_URL").unwrap();
    let pool = sqlx::PgPool::connect(&base).await.unwrap();
    let mut cut = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    for round in 0u64.. {
        // Gaps of 5 to 75 ms: some cuts land mid-transaction, some leave room to finish.
        tokio::time::sleep(Duration::from_millis(5 + (round * 37) % 71)).await;
        let killed: Vec<(bool,)> = sqlx::query_as(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
        )
        .bind(&pg.name)
        .fetch_all(&pool)
        .await
        .unwrap();
        cut += killed.len();
        let (issued, refused) = {
            let outcomes = outcomes.lock().unwrap();
            (outcomes.0.len(), outcomes.1)
        };
        if (round >= 40 && cut >= 10 && issued >= 5 && refused >= 5)
            || tokio::time::Instant::now() > deadline
        {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    pool.close().await;
    for worker in workers {
        worker.await.unwrap();
    }
    let (received, refused) = std::mem::take(&mut *outcomes.lock().unwrap());
    assert!(cut > 0, "no connection was cut");
    assert!(
        !received.is_empty() && refused > 0,
        "in 60 s of cuts, {} issued and {refused} refused",
        received.len()
    );
    // Every certificate a client holds is recorded, byte for byte.
    for answer in &received {
        let (_, pem) = x509_parser::pem::parse_x509_pem(answer.certificate.as_bytes()).unwrap();
        let serial = &answer.key.certificates[0].serial;
        assert_eq!(
            ca.recorded_der(serial).await.as_deref(),
            Some(pem.contents.as_slice()),
            "{serial}"
        );
    }
    // The CA recovers by itself.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if client
            .enroll(
                &password("alice@acme"),
                &request(&csr(), &["read:metrics"], "after"),
            )
            .await
            .is_ok()
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the CA did not recover"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "{} issued, {refused} refused while the database was cut",
        received.len()
    );
}

#[tokio::test]
async fn migrate_moves_a_sqlite_ca_onto_postgres_and_it_serves_the_same() {
    let Some(pg) =
        PgSchema::create("migrate_moves_a_sqlite_ca_onto_postgres_and_it_serves_the_same").await
    else {
        return;
    };
    let mut ca = Ca::start_with(&["--renew-interval", "0s"]);
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics"])
        .await;
    // A webhook, whose outbox fills with the changes below (and whose expiry notices are
    // kept), moves with the rest.
    let webhook = ca
        .admin()
        .add_webhook(&latchkey::api::NewWebhook {
            tenant: "acme".parse().unwrap(),
            url: "https://hooks.invalid/latchkey".into(),
            events: "key.issued,key.renewed,key.revoked,key.expiring"
                .parse()
                .unwrap(),
            allow_http: false,
        })
        .await
        .unwrap();
    let kept = ca
        .enroll_into("alice@acme", &["read:metrics"], "kept")
        .await;
    let gone = ca
        .enroll_into("alice@acme", &["read:metrics"], "gone")
        .await;
    ca.with_identity(&ca.path("kept"))
        .renew(&kept.key.id, None)
        .await
        .unwrap();
    ca.admin()
        .revoke_key(None, &gone.key.id, Some("superseded"))
        .await
        .unwrap();
    let token = ca.token("bot@acme", &["read:metrics"]).await;
    let spent = ca.token("bot@acme", &["read:metrics"]).await;
    ca.anonymous()
        .enroll(&Auth::Token(spent.clone()), &request(&csr(), &[], "spent"))
        .await
        .unwrap();
    // Wait for the CRL that lists the revocation.
    let client = ca.anonymous();
    let mut crl = client.crl(None, 0).await.unwrap().unwrap();
    while !crl_serials(&crl.1).contains(&gone.key.certificates[0].serial) {
        crl = client.crl(Some(crl.0), 5).await.unwrap().unwrap();
    }
    let admin = ca.admin();
    let keys_before = admin.list_keys(None, &KeyQuery::default()).await.unwrap();
    let audit_before = admin.audit(&[]).await.unwrap();
    let counts_before = ca.counts().await;

    ca.stop();
    let out = ca.cli(&["migrate", "--to", &pg.url]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A count of each: every table, and the revocations.
    let printed = String::from_utf8_lossy(&out.stdout);
    let printed: std::collections::BTreeMap<&str, i64> = printed
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            Some((words.next()?, words.next()?.parse().ok()?))
        })
        .collect();
    for (what, n) in &counts_before {
        assert_eq!(printed.get(what), Some(n), "{what}: {printed:?}");
    }
    assert_eq!(counts_before["revoked_keys"], 1);
    let again = ca.cli(&["migrate", "--to", &pg.url]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"));

    // The verification is real: a target that changes what it is given is caught.
    let Some(bent) = PgSchema::create("migrate_verification").await else {
        return;
    };
    latchkey::store::Store::connect(&bent.url)
        .await
        .expect("the schema")
        .close()
        .await;
    let pool = sqlx::PgPool::connect(&bent.url).await.unwrap();
    for statement in [
        "CREATE FUNCTION bend() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
           NEW.max_key_days := NEW.max_key_days + 1; RETURN NEW; END $$",
        "CREATE TRIGGER bend BEFORE INSERT ON tenants FOR EACH ROW EXECUTE FUNCTION bend()",
    ] {
        sqlx::query(statement).execute(&pool).await.unwrap();
    }
    pool.close().await;
    let bent_copy = ca.cli(&["migrate", "--to", &bent.url]);
    assert!(!bent_copy.status.success());
    let said = String::from_utf8_lossy(&bent_copy.stderr);
    assert!(
        said.contains("tenants") && said.contains("differs"),
        "{said}"
    );

    let deliveries_before = ca.store().await.deliveries(None, 1000).await.unwrap();
    ca.restart_on(&pg.url);
    let admin = ca.admin();
    let webhooks = admin.webhooks(None).await.unwrap();
    assert_eq!(
        webhooks.iter().map(|w| w.id).collect::<Vec<_>>(),
        [webhook.id]
    );
    let deliveries_after = ca.store().await.deliveries(None, 1000).await.unwrap();
    assert_eq!(
        deliveries_before
            .iter()
            .map(|d| &d.message_id)
            .collect::<Vec<_>>(),
        deliveries_after
            .iter()
            .map(|d| &d.message_id)
            .collect::<Vec<_>>()
    );
    assert!(deliveries_before.len() >= 5, "{deliveries_before:?}");
    let keys_after = admin.list_keys(None, &KeyQuery::default()).await.unwrap();
    let ids = |p: &latchkey::api::KeyPage| {
        p.keys
            .iter()
            .map(|k| (k.id.clone(), k.status, k.certificates.len()))
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&keys_before), ids(&keys_after));
    let audit_after = admin.audit(&[]).await.unwrap();
    assert_eq!(
        audit_before.events.iter().map(|e| e.id).collect::<Vec<_>>(),
        audit_after
            .events
            .iter()
            .skip_while(|e| e.id > audit_before.events[0].id)
            .map(|e| e.id)
            .collect::<Vec<_>>()
    );
    let (number, der) = ca.anonymous().crl(None, 0).await.unwrap().unwrap();
    assert_eq!((number, der), crl, "the same CRL, served from PostgreSQL");
    // Everything keeps working: the token, the password, the key's certificate, new ids
    // after the copied ones; and a spent token stays spent.
    ca.anonymous()
        .enroll(&Auth::Token(token), &request(&csr(), &[], "bot"))
        .await
        .unwrap();
    let err = ca
        .anonymous()
        .enroll(&Auth::Token(spent), &request(&csr(), &[], "again"))
        .await
        .unwrap_err();
    assert_eq!(problem_code(err), "invalid_token");
    ca.anonymous()
        .enroll(
            &password("alice@acme"),
            &request(&csr(), &["read:metrics"], "after the move"),
        )
        .await
        .unwrap();
    ca.with_identity(&ca.path("kept"))
        .renew(&kept.key.id, None)
        .await
        .unwrap();
    ca.admin()
        .add_tenant(&latchkey::api::NewTenant {
            name: "globex".parse().unwrap(),
            max_key_days: None,
            dedicated_issuer: false,
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn without_its_database_the_ca_is_not_ready_and_answers_503() {
    let Some(pg) =
        PgSchema::create("without_its_database_the_ca_is_not_ready_and_answers_503").await
    else {
        return;
    };
    let ca = Ca::start_on(&pg.url);
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics"])
        .await;
    let conn = ca.raw(None);
    assert_eq!(
        conn.send(http::Method::GET, "/readyz", None, None)
            .await
            .unwrap()
            .0,
        200
    );
    // The database goes away (its schema is renamed, so every statement fails).
    let base = std::env::var("LATCHKEY_TEST_POSTGRES_URL").unwrap();
    let pool = sqlx::PgPool::connect(&base).await.unwrap();
    let hidden = format!("{}_hidden", pg.name);
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "ALTER SCHEMA {} RENAME TO {hidden}",
        pg.name
    )))
    .execute(&pool)
    .await
    .unwrap();
    let before = ca
        .anonymous()
        .enroll(
            &password("alice@acme"),
            &request(&csr(), &["read:metrics"], "k"),
        )
        .await
        .unwrap_err();
    assert_eq!(problem_code(before), "store_unavailable");
    let (status, body) = conn
        .send(http::Method::GET, "/readyz", None, None)
        .await
        .unwrap();
    assert_eq!(status, 503, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("store_unavailable"));
    // It comes back; the CA recovers by itself.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "ALTER SCHEMA {hidden} RENAME TO {}",
        pg.name
    )))
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while conn
        .send(http::Method::GET, "/readyz", None, None)
        .await
        .unwrap()
        .0
        != 200
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the CA did not recover"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    ca.anonymous()
        .enroll(
            &password("alice@acme"),
            &request(&csr(), &["read:metrics"], "k"),
        )
        .await
        .unwrap();
}

/// A replica that revoked and died before building its CRL: the revocation is committed, and
/// nobody was told. The other replicas see from the store that no CRL lists it, and build
/// one within about a second.
#[tokio::test]
async fn a_revocation_whose_replica_died_before_its_crl_still_reaches_every_crl() {
    let Some(pg) =
        PgSchema::create("a_revocation_whose_replica_died_before_its_crl_still_reaches_every_crl")
            .await
    else {
        return;
    };
    let ca = Ca::start_on(&pg.url);
    let b = ca.replica();
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics"])
        .await;
    let key = ca.enroll_into("alice@acme", &["read:metrics"], "k").await;
    let serial = key.key.certificates[0].serial.clone();

    // What `Store::revoke_key` commits, written by a process that then vanished.
    let pool = sqlx::PgPool::connect(&pg.url).await.unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut tx = pool.begin().await.unwrap();
    for statement in [
        "UPDATE keys SET revoked_at = $1, revocation_reason = 'key_compromise' WHERE id = $2",
        "UPDATE certificates SET revoked_at = $1, revocation_reason = 'key_compromise', \
         revocation_revision = 0 WHERE key_id = $2",
    ] {
        sqlx::query(statement)
            .bind(now)
            .bind(&key.key.id)
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    let (revision,): (i64,) = sqlx::query_as(
        "INSERT INTO crl_demand (id, revision) VALUES (1, 1) \
         ON CONFLICT (id) DO UPDATE SET revision = crl_demand.revision + 1 RETURNING revision",
    )
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    sqlx::query("UPDATE certificates SET revocation_revision = $1 WHERE revocation_revision = 0")
        .bind(revision)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    pool.close().await;
    let revoked_at = tokio::time::Instant::now();

    for url in [&ca.url, &b.url] {
        let client = Client::new(url, &ca.ca_pem(), None).unwrap();
        let (mut number, mut der) = client.crl(None, 0).await.unwrap().unwrap();
        while !crl_serials(&der).contains(&serial) {
            assert!(
                revoked_at.elapsed() < Duration::from_secs(5),
                "{url} never listed the revocation"
            );
            if let Some(newer) = client.crl(Some(number), 2).await.unwrap() {
                (number, der) = newer;
            }
        }
    }
    println!(
        "listed by both replicas {:?} after the commit",
        revoked_at.elapsed()
    );
}

/// Serials and key ids are random; a collision is retried with fresh ones, and one that keeps
/// colliding is a 503 to try again, never a 500.
#[tokio::test]
async fn a_serial_collision_is_retried_and_never_a_500() {
    let Some(pg) = PgSchema::create("a_serial_collision_is_retried_and_never_a_500").await else {
        return;
    };
    let ca = Ca::start_on_with(&pg.url, &["--renew-interval", "0s"]);
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics"])
        .await;
    let key = ca.enroll_into("alice@acme", &["read:metrics"], "k").await;
    // A trigger that makes the next `collide` key-certificate inserts fail as duplicates. A
    // sequence counts them: unlike a table, it is not rolled back with the failed insert.
    let pool = sqlx::PgPool::connect(&pg.url).await.unwrap();
    for statement in [
        "CREATE SEQUENCE collisions",
        "CREATE TABLE collide (n BIGINT NOT NULL)",
        "INSERT INTO collide VALUES (1)",
        "CREATE FUNCTION collide() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
           IF nextval('collisions') <= (SELECT n FROM collide) THEN \
             RAISE unique_violation USING MESSAGE = 'duplicate key (forced by the test)'; \
           END IF; RETURN NEW; END $$",
        "CREATE TRIGGER collide BEFORE INSERT ON certificates \
           FOR EACH ROW WHEN (NEW.kind = 'key') EXECUTE FUNCTION collide()",
    ] {
        sqlx::query(statement).execute(&pool).await.unwrap();
    }
    let collisions = || async {
        let (n,): (i64,) = sqlx::query_as("SELECT last_value FROM collisions")
            .fetch_one(&pool)
            .await
            .unwrap();
        n
    };

    // One collision each: enrollment and renewal retry and succeed.
    ca.anonymous()
        .enroll(
            &password("alice@acme"),
            &request(&csr(), &["read:metrics"], "after a collision"),
        )
        .await
        .expect("an enrollment retried past one collision");
    assert_eq!(
        collisions().await,
        2,
        "the first insert collided, the retry went in"
    );
    sqlx::query("UPDATE collide SET n = 3")
        .execute(&pool)
        .await
        .unwrap();
    ca.with_identity(&ca.path("k"))
        .renew(&key.key.id, None)
        .await
        .expect("a renewal retried past one collision");

    // Colliding every time: 503 busy, and nothing recorded.
    sqlx::query("UPDATE collide SET n = 1000000")
        .execute(&pool)
        .await
        .unwrap();
    let before = ca.snapshot().await;
    let err = ca
        .anonymous()
        .enroll(
            &password("alice@acme"),
            &request(&csr(), &["read:metrics"], "never"),
        )
        .await
        .unwrap_err();
    let latchkey::client::ClientError::Problem(problem) = err else {
        panic!("{err:?}")
    };
    assert_eq!((problem.status, problem.code.as_str()), (503, "busy"));
    let err = ca
        .with_identity(&ca.path("k"))
        .renew(&key.key.id, None)
        .await
        .unwrap_err();
    assert_eq!(problem_code(err), "busy");
    assert_eq!(ca.snapshot().await, before);
    pool.close().await;
}
