//! The publisher in isolation: a store in a temporary directory, a CA made in memory, and
//! a [`ManualClock`] moved instead of waiting for CRLs to age. No authority, no HTTP.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use time::Duration;

use super::*;
use crate::ca::{Bootstrap, RootCrlSigner};
use crate::clock::ManualClock;
use crate::store::Store;

/// Long enough for a build on a loaded machine; a test that passes never waits it out.
const PATIENCE: StdDuration = StdDuration::from_secs(20);

struct Fixture {
    _dir: tempfile::TempDir,
    store: Store,
    ca: Bootstrap,
    clock: ManualClock,
}

impl Fixture {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(&dir.path().join("latchkey.db"))
            .await
            .unwrap();
        let clock = ManualClock::new();
        let ca = Bootstrap::generate(clock.now()).unwrap();
        Self {
            _dir: dir,
            store,
            ca,
            clock,
        }
    }

    async fn publisher(&self) -> Publisher {
        let signer = Signer::new(
            self.ca.intermediate_certificate.clone(),
            &self.ca.intermediate_key_pem,
            crate::profile::DEFAULT_TRUST_DOMAIN,
            "https://localhost:8443/v1/crl",
        )
        .unwrap();
        Publisher::new(
            self.store.revocation_ledger(),
            Arc::new(signer),
            &self.ca.root_certificate,
            Arc::new(self.clock.clone()),
            CrlSchedule::default(),
            &mut Registry::default(),
        )
        .await
        .unwrap()
    }

    fn root_signer(&self) -> Arc<RootCrlSigner> {
        Arc::new(RootCrlSigner::new(&self.ca.root_certificate, &self.ca.root_key_pem).unwrap())
    }
}

/// The first CRL the started publisher publishes.
async fn first_crl(crls: &PublishedCrls) -> Arc<PublishedCrl> {
    crls.newer_than(0, PATIENCE)
        .await
        .expect("a CRL within the patience")
}

#[tokio::test]
async fn a_started_publisher_publishes_an_empty_crl_and_is_ready_once_a_root_crl_is_served() {
    let fixture = Fixture::new().await;
    let publisher = fixture.publisher().await;
    let crls = publisher.crls();
    assert!(crls.current().is_none(), "nothing before start");
    assert_eq!(
        crls.ready(),
        Err(CrlProblem::NotReady("no CRL has been published yet".into()))
    );
    let task = publisher.start();
    let crl = first_crl(&crls).await;
    assert_eq!(crl.entries, 0);
    assert_eq!(
        crl.next_update - crl.this_update,
        DEFAULT_CRL_VALIDITY + crate::ca::BACKDATE
    );
    assert_eq!(crls.stale(&crl), Ok(false));
    assert!(
        matches!(crls.ready(), Err(CrlProblem::NotReady(why)) if why.contains("no root CRL")),
        "the root CRL is still missing"
    );
    publisher
        .refresh_root_crl(Some(&fixture.root_signer()))
        .await
        .unwrap();
    let root = crls.current_root().expect("a root CRL");
    assert_eq!(
        root.next_update - root.this_update,
        DEFAULT_ROOT_CRL_VALIDITY + crate::ca::BACKDATE
    );
    assert_eq!(crls.ready(), Ok(()));
    let health = crls.health();
    assert_eq!(health.number, Some(crl.number));
    assert!(!health.failing);
    assert_eq!(health.failures, 0);
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
    let newer = crls
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
    let newer = crls
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
        crls.stale(&crl),
        Err(CrlProblem::Expired {
            number: crl.number,
            next_update: crl.next_update,
        })
    );
    assert_eq!(
        crls.ready(),
        Err(CrlProblem::NotReady(
            "the published CRL is past its nextUpdate".into()
        ))
    );
}

#[tokio::test]
async fn without_the_root_key_the_publisher_serves_the_root_crl_stored_for_it() {
    let fixture = Fixture::new().await;
    let publisher = fixture.publisher().await;
    let crls = publisher.crls();
    publisher.refresh_root_crl(None).await.unwrap();
    assert!(
        crls.current_root().is_none(),
        "nothing stored, nothing signed"
    );
    let problem = crls.root_problem().expect("a problem");
    assert!(problem.contains("latchkey crl sign-root"), "{problem}");

    // `latchkey crl sign-root` where the root key is.
    let ledger = fixture.store.revocation_ledger();
    let root = &fixture.ca.root_certificate;
    let now = fixture.clock.now();
    let after = newest_root_crl_number(&ledger, root, now).await.unwrap();
    assert_eq!(after, 0);
    let row = sign_root_crl(&fixture.root_signer(), now, Duration::days(30), after).unwrap();
    let number = store_root_crl(&ledger, root, &row.der, now).await.unwrap();
    assert_eq!(number, row.number);

    publisher.refresh_root_crl(None).await.unwrap();
    assert_eq!(crls.current_root().map(|c| c.number), Some(number));
    assert_eq!(crls.root_problem(), None);
}

#[tokio::test]
async fn a_root_crl_another_root_signed_is_not_stored() {
    let fixture = Fixture::new().await;
    let other = Bootstrap::generate(fixture.clock.now()).unwrap();
    let signer = RootCrlSigner::new(&other.root_certificate, &other.root_key_pem).unwrap();
    let now = fixture.clock.now();
    let row = sign_root_crl(&signer, now, Duration::days(30), 0).unwrap();
    let refused = store_root_crl(
        &fixture.store.revocation_ledger(),
        &fixture.ca.root_certificate,
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
