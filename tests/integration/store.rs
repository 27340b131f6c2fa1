//! The storage contract: the same checks of every store operation, on SQLite and on
//! PostgreSQL (`LATCHKEY_TEST_POSTGRES_URL`; skipped, saying so, when unset).

use latchkey::store::{
    AuditEvent, AuditFilter, CrlRow, KeyFilter, NewCertificate, NewKey, NewToken, Renewal,
    Revisions, RevocationScope, Store, StoreError, TokenUse, UserChange,
};

use latchkey::model::{
    KeyId, KeyStatus, OwnerName, RevocationReason, ScopeSet, Serial, TenantId, TenantName,
};

use crate::support::PgSchema;

/// Key ids as the CA writes them (24 hex digits): the store parses what it reads back.
const K1: &str = "0000000000000000000000a1";
const K2: &str = "0000000000000000000000a2";
const K3: &str = "0000000000000000000000a3";

/// The serial (32 hex digits) a test names `name`, so that the store's typed reads accept it.
fn sn(name: &str) -> String {
    format!("{:0>32}", hex::encode(name))
}

fn at(unix: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(unix).unwrap()
}

fn serial(name: &str) -> Serial {
    sn(name).parse().unwrap()
}

fn key_id(id: &str) -> KeyId {
    id.parse().unwrap()
}

fn tenant(name: &str) -> TenantName {
    name.parse().unwrap()
}

fn owner(name: &str) -> OwnerName {
    name.parse().unwrap()
}

fn scopes(list: &str) -> ScopeSet {
    ScopeSet::parse_list(list).unwrap()
}

fn event(action: &'static str, tenant: &str) -> AuditEvent {
    AuditEvent {
        at: at(1_000),
        actor: "admin:admin".into(),
        action,
        tenant: Some(tenant.into()),
        target: None,
        detail: serde_json::json!({}),
    }
}

fn key(id: &str, tenant_id: TenantId, owner_name: &str) -> NewKey {
    NewKey {
        id: key_id(id),
        tenant_id,
        owner: owner(owner_name),
        name: "k".into(),
        description: String::new(),
        scopes: scopes("read:metrics"),
        created_at: at(1_000),
        expires_at: at(1_000_000),
    }
}

fn certificate(name: &str, issuer_id: i64, id: &str, public_key: &str) -> NewCertificate {
    NewCertificate {
        serial: serial(name),
        issuer_id,
        kind: latchkey::store::CertificateKind::Key,
        key_id: Some(key_id(id)),
        subject: format!("spiffe://latchkey.internal/tenant/acme/key/{id}"),
        public_key_sha256: public_key.into(),
        not_before: at(1_000),
        not_after: at(100_000),
        der: name.as_bytes().to_vec(),
        created_at: at(1_000),
    }
}

/// A renewal at `now` with no interval, keeping two earlier certificates, changing nothing
/// of the key.
fn renewal(certificate: NewCertificate, now: i64) -> Renewal {
    Renewal {
        certificate,
        now: at(now),
        newest_before: at(now),
        keep_earlier: 2,
        scopes: scopes("read:metrics"),
        expires_at: at(1_000_000),
    }
}

async fn contract(store: Store) {
    // Issuers are recorded once.
    let record_issuer = || {
        let role = latchkey::store::IssuerRole::Intermediate;
        store.ensure_issuer("fp", "CN=issuer", b"der", at(9_999_999), role, at(1_000))
    };
    let issuer = record_issuer().await.unwrap();
    assert_eq!(record_issuer().await.unwrap(), issuer);

    // Tenants and users.
    let acme = store
        .insert_tenant(
            &tenant("acme"),
            180,
            at(1_000),
            &event("tenant.add", "acme"),
        )
        .await
        .unwrap();
    let globex = store
        .insert_tenant(
            &tenant("globex"),
            30,
            at(1_000),
            &event("tenant.add", "globex"),
        )
        .await
        .unwrap();
    assert!(matches!(
        store
            .insert_tenant(
                &tenant("acme"),
                180,
                at(1_000),
                &event("tenant.add", "acme")
            )
            .await,
        Err(StoreError::AlreadyExists("tenant"))
    ));
    assert_eq!(store.tenants().await.unwrap().len(), 2);
    store
        .insert_user(
            acme.id,
            &owner("alice"),
            "hash",
            &scopes("read:metrics"),
            at(1_000),
            &event("user.add", "acme"),
        )
        .await
        .unwrap();
    assert!(matches!(
        store
            .insert_user(
                acme.id,
                &owner("alice"),
                "h",
                &scopes("a:b"),
                at(1_000),
                &event("user.add", "acme")
            )
            .await,
        Err(StoreError::AlreadyExists("user"))
    ));
    let change = UserChange {
        disabled: Some(true),
        scopes: Some(scopes("a:b")),
        password_hash: None,
    };
    let changed = store
        .update_user(
            acme.id,
            &owner("alice"),
            &change,
            at(2_000),
            &event("user.change", "acme"),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            changed.disabled_at,
            changed.scopes.to_stored().as_str(),
            changed.password_hash.as_str()
        ),
        (Some(at(2_000)), "a:b", "hash")
    );
    assert!(
        store
            .update_user(
                acme.id,
                &owner("nobody"),
                &change,
                at(2_000),
                &event("user.change", "acme")
            )
            .await
            .unwrap()
            .is_none()
    );
    let enable = UserChange {
        disabled: Some(false),
        ..Default::default()
    };
    store
        .update_user(
            acme.id,
            &owner("alice"),
            &enable,
            at(2_000),
            &event("user.change", "acme"),
        )
        .await
        .unwrap();
    let policy = store
        .update_tenant(
            &tenant("globex"),
            Some(10),
            Some(true),
            at(2_000),
            &event("tenant.change", "globex"),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (policy.tenant.max_key_days, policy.tenant.disabled_at),
        (10, Some(at(2_000)))
    );

    // Tokens: spent once, inside the issuing transaction.
    let token = NewToken {
        token_hash: "th".into(),
        tenant_id: acme.id,
        owner: owner("bot"),
        scopes: scopes("read:metrics"),
        created_by: "admin:admin".into(),
        created_at: at(1_000),
        expires_at: at(5_000),
    };
    let token_id = store
        .insert_token(&token, &event("token.create", "acme"))
        .await
        .unwrap();
    assert_eq!(
        store
            .token_credential("th")
            .await
            .unwrap()
            .unwrap()
            .token
            .token
            .id,
        token_id
    );
    let issue = |id: &str, serial: &str, pk: &str, tenant: TenantId, token: Option<TokenUse>| {
        let store = store.clone();
        let (k, c) = (key(id, tenant, "bot"), certificate(serial, issuer, id, pk));
        async move {
            store
                .record_key_issuance(&k, &c, token, at(2_000), &event("key.issue", "acme"))
                .await
        }
    };
    issue(K1, "s1", "pk1", acme.id, Some(TokenUse { token_id }))
        .await
        .unwrap();
    assert!(matches!(
        issue(K2, "s2", "pk2", acme.id, Some(TokenUse { token_id })).await,
        Err(StoreError::TokenSpent)
    ));
    assert!(matches!(
        issue(K2, "s1", "pk2", acme.id, None).await,
        Err(StoreError::Collision)
    ));
    assert!(matches!(
        issue(K2, "s2", "pk1", acme.id, None).await,
        Err(StoreError::PublicKeyInUse)
    ));
    assert!(matches!(
        issue(K2, "s2", "pk2", globex.id, None).await,
        Err(StoreError::Disabled)
    ));
    issue(K2, "s2", "pk2", acme.id, None).await.unwrap();
    issue(K3, "s3", "pk3", acme.id, None).await.unwrap();
    assert!(
        !store
            .revoke_token(token_id, at(3_000), &event("token.revoke", "acme"))
            .await
            .unwrap(),
        "a used token"
    );

    // Inventory: filters and paging.
    let filter = |status: Option<KeyStatus>, before: Option<i64>, limit: i64| KeyFilter {
        tenant_id: Some(acme.id),
        owner: Some(owner("bot")),
        name: None,
        serial: None,
        status,
        now: at(3_000),
        expires_by: None,
        before_seq: before,
        limit,
    };
    let page = store.keys(&filter(None, None, 2)).await.unwrap();
    assert_eq!(
        page.iter().map(|k| k.key.id.as_str()).collect::<Vec<_>>(),
        [K3, K2]
    );
    let rest = store
        .keys(&filter(None, Some(page[1].seq), 2))
        .await
        .unwrap();
    assert_eq!(
        rest.iter().map(|k| k.key.id.as_str()).collect::<Vec<_>>(),
        [K1]
    );
    assert_eq!(
        store
            .certificates_of(&[&key_id(K1), &key_id(K2)], at(3_000), 10)
            .await
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        store.certificate_der(&serial("s1")).await.unwrap().unwrap(),
        b"s1"
    );

    // Renewal while active; not after revocation.
    let mut renewal_certificate = certificate("s1b", issuer, K1, "pk1");
    renewal_certificate.not_before = at(2_500);
    store
        .record_renewal(
            &renewal(renewal_certificate, 3_000),
            &event("key.renew", "acme"),
        )
        .await
        .unwrap();
    assert!(matches!(
        store
            .record_renewal(
                &renewal(certificate("s1c", issuer, K1, "pk2"), 3_000),
                &event("key.renew", "acme")
            )
            .await,
        Err(StoreError::PublicKeyInUse)
    ));
    // Every transaction that revokes moves the revocation revision; nothing else does.
    let revision = store.crl_revision().await.unwrap();
    let k1_id: KeyId = K1.parse().unwrap();
    assert_eq!(
        store
            .revoke_key(
                &k1_id,
                RevocationReason::Superseded,
                at(3_000),
                &event("key.revoke", "acme")
            )
            .await
            .unwrap(),
        Some(2)
    );
    assert_eq!(store.crl_revision().await.unwrap(), revision + 1);
    assert_eq!(
        store
            .revoke_key(
                &k1_id,
                RevocationReason::Superseded,
                at(3_000),
                &event("key.revoke", "acme")
            )
            .await
            .unwrap(),
        None
    );
    assert!(matches!(
        store
            .record_renewal(
                &renewal(certificate("s1d", issuer, K1, "pk1"), 3_000),
                &event("key.renew", "acme")
            )
            .await,
        Err(StoreError::KeyNotActive)
    ));
    let scope = RevocationScope {
        tenant_id: acme.id,
        owner: Some(owner("bot")),
    };
    assert_eq!(
        store
            .revoke_keys_of(
                &scope,
                RevocationReason::CessationOfOperation,
                at(3_000),
                &event("key.revoke_bulk", "acme")
            )
            .await
            .unwrap(),
        (2, 2)
    );
    assert_eq!(store.crl_revision().await.unwrap(), revision + 2);
    assert_eq!(
        store
            .revoke_keys_of(
                &scope,
                RevocationReason::Superseded,
                at(3_000),
                &event("key.revoke_bulk", "acme")
            )
            .await
            .unwrap(),
        (0, 0)
    );
    assert_eq!(
        store.crl_revision().await.unwrap(),
        revision + 2,
        "revoking nothing moves nothing"
    );
    assert_eq!(
        store
            .keys(&filter(Some(KeyStatus::Revoked), None, 10))
            .await
            .unwrap()
            .len(),
        3
    );
    assert_eq!(
        store
            .keys(&filter(Some(KeyStatus::Active), None, 10))
            .await
            .unwrap()
            .len(),
        0
    );
    let revoked = store
        .revoked_certificates(issuer, Revisions::up_to(i64::MAX), at(0))
        .await
        .unwrap();
    let mut serials: Vec<_> = revoked.iter().map(|r| r.unwrap().serial).collect();
    serials.sort();
    let mut expected: Vec<Serial> = ["s1", "s1b", "s2", "s3"]
        .map(|name| sn(name).parse().unwrap())
        .into();
    expected.sort();
    assert_eq!(serials, expected);
    assert_eq!(
        store
            .revoked_certificates(issuer, Revisions::up_to(i64::MAX), at(100_000))
            .await
            .unwrap()
            .iter()
            .count(),
        0,
        "expired entries drop out"
    );

    // CRLs: numbers unique, newest kept, old ones pruned.
    for number in 1..=5 {
        let crl = CrlRow {
            number,
            this_update: at(number),
            next_update: at(number + 10),
            entries: 4,
            der: vec![number as u8].into(),
            covers: number * 10,
            cutoff: Some(at(number - 10)),
        };
        store
            .insert_crl(issuer, &crl, at(number), at(0))
            .await
            .unwrap();
    }
    let dup = CrlRow {
        number: 5,
        this_update: at(0),
        next_update: at(1),
        entries: 0,
        der: Vec::new().into(),
        covers: 0,
        cutoff: None,
    };
    assert!(matches!(
        store.insert_crl(issuer, &dup, at(9), at(0)).await,
        Err(StoreError::Collision)
    ));
    let latest = store.latest_crl(issuer).await.unwrap().unwrap();
    assert_eq!((latest.der.to_vec(), latest.covers), (vec![5u8], 50));
    assert_eq!(latest.cutoff, Some(at(-5)));
    // The older ones keep what a delta from them needs, without their bytes.
    let basis = store.crl_basis(issuer, 1).await.unwrap().unwrap();
    assert_eq!((basis.covers, basis.cutoff), (10, at(-9)));
    assert!(store.crl_basis(issuer, 6).await.unwrap().is_none());
    assert_eq!(store.highest_crl_number().await.unwrap(), 5);

    // The CRL builder lease: one holder at a time, given back, or expired.
    assert!(
        store
            .take_crl_lease(issuer, "a", at(100), at(130))
            .await
            .unwrap()
    );
    assert!(
        !store
            .take_crl_lease(issuer, "b", at(110), at(140))
            .await
            .unwrap()
    );
    assert!(
        store
            .take_crl_lease(issuer, "a", at(110), at(140))
            .await
            .unwrap(),
        "the holder renews"
    );
    store.release_crl_lease(issuer, "a").await.unwrap();
    assert!(
        store
            .take_crl_lease(issuer, "b", at(120), at(150))
            .await
            .unwrap()
    );
    assert!(
        store
            .take_crl_lease(issuer, "a", at(151), at(180))
            .await
            .unwrap(),
        "an expired lease is free"
    );

    // The audit log: one event per change, filtered and paged.
    let all = store
        .audit_events(&AuditFilter {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    let counts = store.row_counts().await.unwrap();
    assert_eq!(all.len() as i64, counts["audit_events"]);
    let revokes = AuditFilter {
        action: Some("key.revoke".into()),
        tenant: Some("acme".into()),
        limit: 100,
        ..Default::default()
    };
    assert_eq!(store.audit_events(&revokes).await.unwrap().len(), 1);
    assert_eq!(counts["keys"], 3);
    assert_eq!(counts["certificates"], 4);
    store.close().await;
}

#[tokio::test]
async fn the_store_contract_holds_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    contract(
        Store::open_sqlite(&dir.path().join("contract.db"))
            .await
            .unwrap(),
    )
    .await;
}

#[tokio::test]
async fn the_store_contract_holds_on_postgres() {
    let Some(pg) = PgSchema::create("the_store_contract_holds_on_postgres").await else {
        return;
    };
    contract(Store::connect(&pg.url).await.unwrap()).await;
}

/// An intermediate issuer and the tenant `acme`, where these checks start.
async fn issuer_and_acme(store: &Store) -> (i64, TenantId) {
    let role = latchkey::store::IssuerRole::Intermediate;
    let issuer = store
        .ensure_issuer("fp", "CN=issuer", b"der", at(9_999_999), role, at(1_000))
        .await
        .unwrap();
    let acme = store
        .insert_tenant(
            &tenant("acme"),
            180,
            at(1_000),
            &event("tenant.add", "acme"),
        )
        .await
        .unwrap();
    (issuer, acme.id)
}

/// Renewal limits, checked under the key's lock: the interval, the cap on valid
/// certificates, a rekey's sweep, narrowing, and the owner's and tenant's disables.
async fn renewal_contract(store: Store) {
    let (issuer, acme) = issuer_and_acme(&store).await;
    store
        .insert_user(
            acme,
            &owner("alice"),
            "h",
            &scopes("a:b c:d"),
            at(1_000),
            &event("u", "acme"),
        )
        .await
        .unwrap();
    for (id, owner, serial, pk) in [(K1, "alice", "s0", "pk0"), (K2, "bot", "m0", "pkm")] {
        let (k, c) = (key(id, acme, owner), certificate(serial, issuer, id, pk));
        store
            .record_key_issuance(&k, &c, None, at(1_000), &event("key.issue", "acme"))
            .await
            .unwrap();
    }
    let renewal_at = |serial: &str, pk: &str, now: i64| {
        let mut c = certificate(serial, issuer, K1, pk);
        (c.not_before, c.created_at) = (at(now), at(now));
        Renewal {
            newest_before: at(now - 3_600),
            ..renewal(c, now)
        }
    };
    let renew = |r: Renewal| {
        let store = store.clone();
        async move { store.record_renewal(&r, &event("key.renew", "acme")).await }
    };

    // Within the interval of the newest certificate: refused, nothing written.
    let before = store.row_counts().await.unwrap();
    assert!(matches!(
        renew(renewal_at("s1", "pk0", 4_000)).await,
        Err(StoreError::TooSoon { newest_at }) if newest_at == at(1_000)
    ));
    assert_eq!(store.row_counts().await.unwrap(), before);

    // Three valid at most: the fourth supersedes the oldest, and the CRL hears of it.
    assert_eq!(renew(renewal_at("s1", "pk0", 5_000)).await.unwrap(), 0);
    assert_eq!(renew(renewal_at("s2", "pk0", 9_000)).await.unwrap(), 0);
    let revision = store.crl_revision().await.unwrap();
    assert_eq!(renew(renewal_at("s3", "pk0", 13_000)).await.unwrap(), 1);
    assert_eq!(store.crl_revision().await.unwrap(), revision + 1);
    // Stamped with the revision of its transaction: what a builder that covered `revision`
    // reads next.
    let since = |after, up_to| Revisions { after, up_to };
    let stamped = store
        .revoked_certificates(issuer, since(revision, revision + 1), at(0))
        .await
        .unwrap();
    assert_eq!(stamped.iter().count(), 1);
    let later = store
        .revoked_certificates(issuer, since(revision + 1, i64::MAX), at(0))
        .await
        .unwrap();
    assert_eq!(later.iter().count(), 0);
    let revoked = store
        .revoked_certificates(issuer, Revisions::up_to(i64::MAX), at(0))
        .await
        .unwrap();
    let entries: Vec<_> = revoked.iter().map(Result::unwrap).collect();
    assert_eq!(entries.len(), 1);
    assert_eq!(
        (entries[0].serial, entries[0].revoked_at, entries[0].reason),
        (serial("s0"), at(13_000), RevocationReason::Superseded)
    );

    // Narrowing sticks: fewer scopes, an earlier end; a later end does not come back.
    let narrowed = Renewal {
        scopes: scopes("a:b"),
        expires_at: at(500_000),
        ..renewal_at("s4", "pk0", 17_000)
    };
    assert_eq!(renew(narrowed).await.unwrap(), 1);
    let k1 = store.key(&key_id(K1)).await.unwrap().unwrap().key;
    assert_eq!(
        (k1.scopes.to_stored().as_str(), k1.expires_at),
        ("a:b", at(500_000))
    );

    // A rekey supersedes every earlier valid certificate, whatever the cap.
    let rekey = Renewal {
        keep_earlier: 0,
        ..renewal_at("s5", "pk5", 21_000)
    };
    assert_eq!(renew(rekey).await.unwrap(), 3);
    let listed = store
        .certificates_of(&[&key_id(K1)], at(22_000), 3)
        .await
        .unwrap();
    let serials: Vec<_> = listed.iter().map(|c| c.certificate.serial).collect();
    assert_eq!(
        serials,
        ["s3", "s4", "s5"].map(serial),
        "the newest three, oldest first"
    );
    assert!(listed.iter().all(|c| c.of_key == 6));
    assert!(
        listed[..2]
            .iter()
            .all(|c| c.certificate.revoked_at == Some(at(21_000)))
    );
    assert_eq!(
        store
            .key(&key_id(K1))
            .await
            .unwrap()
            .unwrap()
            .key
            .expires_at,
        at(500_000)
    );

    // A disabled owner or tenant: refused under the lock. A machine owner (no user row)
    // answers to its tenant only.
    let switch = |disabled: bool| UserChange {
        disabled: Some(disabled),
        ..Default::default()
    };
    let e = event("user.change", "acme");
    store
        .update_user(acme, &owner("alice"), &switch(true), at(22_000), &e)
        .await
        .unwrap();
    assert!(matches!(
        renew(renewal_at("s6", "pk5", 30_000)).await,
        Err(StoreError::Disabled)
    ));
    let mut machine = renewal(certificate("m1", issuer, K2, "pkm"), 30_000);
    machine.certificate.created_at = at(30_000);
    renew(machine.clone()).await.unwrap();
    store
        .update_user(acme, &owner("alice"), &switch(false), at(22_000), &e)
        .await
        .unwrap();
    let e = event("tenant.change", "acme");
    store
        .update_tenant(&tenant("acme"), None, Some(true), at(31_000), &e)
        .await
        .unwrap();
    machine.certificate.serial = serial("m2");
    assert!(matches!(renew(machine).await, Err(StoreError::Disabled)));
    assert!(matches!(
        renew(renewal_at("s6", "pk5", 30_000)).await,
        Err(StoreError::Disabled)
    ));
    store
        .update_tenant(&tenant("acme"), None, Some(false), at(32_000), &e)
        .await
        .unwrap();
    renew(renewal_at("s6", "pk5", 30_000)).await.unwrap();

    // Nor does a key take the public key of one of the CA's own certificates (no key id).
    let mut admin = certificate("adm", issuer, K1, "pk-admin");
    (admin.kind, admin.key_id) = (latchkey::store::CertificateKind::Admin, None);
    store
        .record_service_certificate(&admin, &event("admin_certificate.issue", "acme"))
        .await
        .unwrap();
    assert!(matches!(
        renew(renewal_at("s7", "pk-admin", 40_000)).await,
        Err(StoreError::PublicKeyInUse)
    ));
    store.close().await;
}

#[tokio::test]
async fn renewal_limits_hold_in_the_store_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    renewal_contract(Store::open_sqlite(&dir.path().join("r.db")).await.unwrap()).await;
}

#[tokio::test]
async fn renewal_limits_hold_in_the_store_on_postgres() {
    let Some(pg) = PgSchema::create("renewal_limits_hold_in_the_store_on_postgres").await else {
        return;
    };
    renewal_contract(Store::connect(&pg.url).await.unwrap()).await;
}

/// The WAL starts over while issuances keep coming. A checkpoint made beside a busy writer
/// never reaches the WAL's end, and only one that does lets SQLite sync the file and the
/// next commit reuse the WAL from its beginning. Before the checkpointer finished its rounds
/// holding the write turn (`store/checkpointer.rs`), the WAL grew to the writer's backstop
/// of 10,000 pages (40 MiB), where the writer checkpointed and synced it all itself,
/// stalling every issuance behind it. SQLite never shrinks the file, so its size is the
/// most the WAL ever held.
#[tokio::test]
async fn the_wal_starts_over_while_issuances_keep_coming() {
    const ISSUANCES: usize = 8_000;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wal.db");
    let store = Store::open_sqlite(&path).await.unwrap();
    let (issuer, acme) = issuer_and_acme(&store).await;
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut writers = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let (store, next) = (store.clone(), next.clone());
        writers.spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= ISSUANCES {
                    break;
                }
                let id = format!("{:024x}", 0x1000 + i);
                let mut c = certificate(&format!("s{i}"), issuer, &id, &format!("pk{i}"));
                c.der = vec![0x30; 700];
                let k = key(&id, acme, "alice");
                let event = event("key.issue", "acme");
                store
                    .record_key_issuance(&k, &c, None, at(1_000), &event)
                    .await
                    .unwrap();
            }
        });
    }
    while let Some(done) = writers.join_next().await {
        done.unwrap();
    }
    let wal_bytes = std::fs::metadata(dir.path().join("wal.db-wal"))
        .unwrap()
        .len();
    println!("{ISSUANCES} issuances; the WAL held at most {wal_bytes} bytes");
    assert!(
        wal_bytes < 16 << 20,
        "the WAL grew to {wal_bytes} bytes: it did not start over"
    );
}
