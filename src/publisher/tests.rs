//! The publisher in isolation: a store in a temporary directory, a CA made in memory, and
//! a [`ManualClock`] moved instead of waiting for CRLs to age. No authority, no HTTP.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use time::Duration;

use super::*;
use crate::ca::{Bootstrap, RootSigner};
use crate::clock::ManualClock;
use crate::home::{Home, InitOptions};
use crate::issuers::IssuerRegistry;
use crate::store::Store;

/// Long enough for a build on a loaded machine; a test that passes never waits it out.
const PATIENCE: StdDuration = StdDuration::from_secs(20);

struct Fixture {
    _dir: tempfile::TempDir,
    store: Store,
    home: Home,
    root: rustls_pki_types::CertificateDer<'static>,
    issuers: Arc<IssuerRegistry>,
    clock: ManualClock,
}

impl Fixture {
    async fn new() -> Self {
        Self::with_root_key(true).await
    }

    /// A CA whose registry holds the root's key (`root_key`), or not (kept offline).
    async fn with_root_key(root_key: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(&dir.path().join("latchkey.db"))
            .await
            .unwrap();
        let clock = ManualClock::new();
        let home = Home::new(dir.path().join("ca"));
        let options = InitOptions {
            trust_domain: crate::profile::DEFAULT_TRUST_DOMAIN.into(),
            hostnames: Vec::new(),
            public_url: None,
            crl_url: None,
            encrypt_keys: false,
            pkcs11: None,
        };
        home.init(&options, clock.now()).unwrap();
        let root = crate::tls::load_certificates(&home.read(&home.ca_cert()).unwrap(), "ca.pem")
            .unwrap()
            .remove(0);
        let vault = home.issuer_vault(Arc::new(home.signer().unwrap())).unwrap();
        let issuers = IssuerRegistry::load(
            store.clone(),
            vault,
            root.clone(),
            home.root_signer()
                .unwrap()
                .map(Arc::new)
                .filter(|_| root_key),
            Arc::new(clock.clone()),
        )
        .await
        .unwrap();
        Self {
            _dir: dir,
            store,
            home,
            root,
            issuers: Arc::new(issuers),
            clock,
        }
    }

    async fn publisher(&self) -> Publisher {
        Publisher::new(
            self.store.revocation_ledger(),
            self.issuers.watch(),
            Arc::new(self.clock.clone()),
            CrlSchedule::default(),
            &mut Registry::default(),
        )
    }

    fn root_signer(&self) -> Arc<RootSigner> {
        Arc::new(
            self.home
                .root_signer()
                .unwrap()
                .expect("the root key in the home"),
        )
    }
}

/// The CRLs of the intermediate `GET /v1/crl` serves.
fn default_issuer(crls: &PublishedCrls) -> IssuerCrls {
    crls.default_issuer().expect("a published intermediate")
}

/// The first CRL the started publisher publishes.
async fn first_crl(crls: &PublishedCrls) -> Arc<PublishedCrl> {
    default_issuer(crls)
        .newer_than(0, PATIENCE)
        .await
        .expect("a CRL within the patience")
}

#[tokio::test]
async fn a_started_publisher_publishes_an_empty_crl_and_is_ready_once_a_root_crl_is_served() {
    let fixture = Fixture::new().await;
    let publisher = fixture.publisher().await;
    let crls = publisher.crls();
    assert!(crls.default_issuer().is_none(), "nothing before start");
    assert_eq!(
        crls.ready(),
        Err(CrlProblem::NotReady(
            "no intermediate's CRL is published".into()
        ))
    );
    let task = publisher.start();
    let crl = first_crl(&crls).await;
    assert_eq!(crl.entries, 0);
    assert_eq!(
        crl.next_update - crl.this_update,
        DEFAULT_CRL_VALIDITY + crate::ca::BACKDATE
    );
    assert_eq!(default_issuer(&crls).stale(&crl), Ok(false));
    assert!(
        matches!(crls.ready(), Err(CrlProblem::NotReady(why)) if why.contains("no root CRL")),
        "the root CRL is still missing"
    );
    publisher.refresh_root_crls().await.unwrap();
    let root = crls.current_root().expect("a root CRL");
    assert_eq!(
        root.next_update - root.this_update,
        DEFAULT_ROOT_CRL_VALIDITY + crate::ca::BACKDATE
    );
    assert_eq!(crls.ready(), Ok(()));
    let issuer = default_issuer(&crls);
    assert_eq!(issuer.current().map(|c| c.number), Some(crl.number));
    assert!(!issuer.failing());
    assert_eq!(issuer.failures(), 0);
    task.abort();
}

#[tokio::test]
async fn a_poke_publishes_a_newer_crl() {
    let fixture = Fixture::new().await;
    let publisher = fixture.publisher().await;
    let crls = publisher.crls();
    let task = publisher.start();
    let first = first_crl(&crls).await;
    publisher.poke().poke();
    let newer = default_issuer(&crls)
        .newer_than(first.number, PATIENCE)
        .await
        .expect("a newer CRL after the poke");
    assert!(newer.number > first.number);
    task.abort();
}

#[tokio::test]
async fn half_the_validity_passing_publishes_a_newer_crl_without_a_poke() {
    let fixture = Fixture::new().await;
    let publisher = fixture.publisher().await;
    let crls = publisher.crls();
    let task = publisher.start();
    let first = first_crl(&crls).await;
    fixture
        .clock
        .advance(DEFAULT_CRL_VALIDITY / 2 + Duration::seconds(1));
    let newer = default_issuer(&crls)
        .newer_than(first.number, PATIENCE)
        .await
        .expect("a refreshed CRL");
    assert!(newer.next_update > first.next_update);
    task.abort();
}

#[tokio::test]
async fn a_restart_serves_the_stored_crl_instead_of_building_another() {
    let fixture = Fixture::new().await;
    let before = fixture.publisher().await;
    let task = before.start();
    let stored = first_crl(&before.crls()).await;
    task.abort();
    let _ = task.await;

    let after = fixture.publisher().await;
    let task = after.start();
    let served = first_crl(&after.crls()).await;
    assert_eq!(served.number, stored.number);
    assert_eq!(served.der, stored.der);
    task.abort();
}

#[tokio::test]
async fn a_crl_past_its_next_update_is_refused_and_the_ca_is_not_ready() {
    let fixture = Fixture::new().await;
    let publisher = fixture.publisher().await;
    let crls = publisher.crls();
    let task = publisher.start();
    let crl = first_crl(&crls).await;
    // A publisher that stopped (as one that keeps failing would) leaves the CRL to age.
    task.abort();
    let _ = task.await;
    fixture.clock.advance(DEFAULT_CRL_VALIDITY);
    assert_eq!(
        default_issuer(&crls).stale(&crl),
        Err(CrlProblem::Expired {
            number: crl.number,
            next_update: crl.next_update,
        })
    );
    assert_eq!(
        crls.ready(),
        Err(CrlProblem::NotReady(format!(
            "issuer {}: the published CRL is past its nextUpdate",
            default_issuer(&crls).issuer_id()
        )))
    );
}

#[tokio::test]
async fn without_the_root_key_the_publisher_serves_the_root_crl_stored_for_it() {
    let fixture = Fixture::with_root_key(false).await;
    let publisher = fixture.publisher().await;
    let crls = publisher.crls();
    publisher.refresh_root_crls().await.unwrap();
    assert!(
        crls.current_root().is_none(),
        "nothing stored, nothing signed"
    );
    let problem = crls.root_problem().expect("a problem");
    assert!(problem.contains("latchkey crl sign-root"), "{problem}");

    // `latchkey crl sign-root` where the root key is.
    let ledger = fixture.store.revocation_ledger();
    let root = &fixture.root;
    let now = fixture.clock.now();
    let after = newest_root_crl_number(&ledger, root, now).await.unwrap();
    assert_eq!(after, 0);
    let row = sign_root_crl(&fixture.root_signer(), now, Duration::days(30), after).unwrap();
    let number = store_root_crl(&ledger, root, &row.der, now).await.unwrap();
    assert_eq!(number, row.number);

    publisher.refresh_root_crls().await.unwrap();
    assert_eq!(crls.current_root().map(|c| c.number), Some(number));
    assert_eq!(crls.root_problem(), None);
}

#[tokio::test]
async fn a_root_crl_another_root_signed_is_not_stored() {
    let fixture = Fixture::new().await;
    let other = Bootstrap::generate(fixture.clock.now()).unwrap();
    let signer = RootSigner::new(&other.root_certificate, &other.root_key_pem).unwrap();
    let now = fixture.clock.now();
    let row = sign_root_crl(&signer, now, Duration::days(30), 0).unwrap();
    let refused = store_root_crl(
        &fixture.store.revocation_ledger(),
        &fixture.root,
        &row.der,
        now,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(refused, PublisherError::RootCrlRefused(_)),
        "{refused:?}"
    );
}

#[tokio::test]
async fn a_rotation_adds_a_crl_and_a_retirement_stops_the_old_one() {
    let fixture = Fixture::new().await;
    let publisher = fixture.publisher().await;
    let crls = publisher.crls();
    let task = publisher.start();
    let old = first_crl(&crls).await;
    let old_id = default_issuer(&crls).issuer_id();

    let rotation = fixture
        .issuers
        .rotate(None, "system", "test")
        .await
        .unwrap();
    assert_eq!(rotation.superseded, Some(old_id));
    let new_id = rotation.issuer.id;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let new = loop {
        if let Some(crl) = crls.issuer(new_id).and_then(|c| c.current()) {
            break crl;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no CRL of the new intermediate"
        );
        tokio::time::sleep(StdDuration::from_millis(20)).await;
    };
    assert!(new.number > old.number, "numbers grow across intermediates");
    // Each CRL is signed by its own intermediate.
    let signed_by = |id: i64| {
        crate::profile::RevocationSet::from_crl(
            &crls.issuer(id).unwrap().current().unwrap().der,
            &fixture.issuers.current().by_id(id).unwrap().certificate,
        )
    };
    signed_by(old_id).expect("the old CRL, signed by the old intermediate");
    signed_by(new_id).expect("the new CRL, signed by the new intermediate");
    // `GET /v1/crl` keeps serving the old intermediate's while it is published.
    assert_eq!(default_issuer(&crls).issuer_id(), old_id);

    // The old intermediate signed no certificate here (no authority runs), so, superseded,
    // it retires at once.
    let retired = fixture
        .issuers
        .retire_expired(DEFAULT_CRL_VALIDITY)
        .await
        .unwrap();
    assert_eq!(retired, vec![old_id]);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while crls.issuer(old_id).is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the retired CRL still served"
        );
        tokio::time::sleep(StdDuration::from_millis(20)).await;
    }
    assert_eq!(default_issuer(&crls).issuer_id(), new_id);
    task.abort();
}
