//! Verification per handshake by the relying-service verifier, with 10, 100k and 1M revoked
//! serials: chain check, identity, pinned tenant, revocation lookup. The revocation check is
//! a hash lookup in a set built once per CRL, so the three should match.
//!
//! `cargo bench --bench verifier`

#![allow(clippy::unwrap_used, reason = "a panic is how a benchmark fails")]
#![allow(
    missing_docs,
    reason = "criterion_group! makes undocumented public functions"
)]

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use latchkey::ca::{Bootstrap, CrlEntry, CrlOrder, KeyOrder, Signer};
use latchkey::client::{KeyType, new_key_pair};
use latchkey::model::{KeyId, RevocationReason, ScopeSet, Serial};
use latchkey::relying::Relying;
use latchkey::tls::{CrlSink, CrlSource, CrlSourceTask};
use rustls_pki_types::{CertificateDer, UnixTime};
use time::{Duration, OffsetDateTime};

const TRUST_DOMAIN: &str = "latchkey.internal";

/// A CRL source that delivers one CRL and then nothing.
struct OneCrl(Vec<u8>);

impl CrlSource for OneCrl {
    fn run(self: Box<Self>, sink: CrlSink) -> CrlSourceTask {
        Box::pin(async move {
            sink.take(&self.0);
            std::future::pending::<()>().await
        })
    }
}

/// A CA chain, one key certificate issued under it, and its signer.
fn fixture() -> (
    Vec<CertificateDer<'static>>,
    CertificateDer<'static>,
    Signer,
) {
    let now = OffsetDateTime::now_utc();
    let ca = Bootstrap::generate(now).expect("bootstrap");
    let signer = Signer::new(
        ca.intermediate_certificate.clone(),
        &ca.intermediate_key_pem,
        TRUST_DOMAIN,
        "https://localhost:8443/v1/crl",
    )
    .expect("signer");
    let csr = new_key_pair(KeyType::P256).expect("key").csr_pem;
    let verified = latchkey::authority::csr::verify_pem(&csr).expect("csr");
    let leaf = signer
        .sign_key_certificate(KeyOrder {
            serial: Serial::generate(),
            tenant: "acme".parse().unwrap(),
            owner: "alice".parse().unwrap(),
            key_id: KeyId::generate(),
            scopes: ScopeSet::parse(["read:metrics"]).unwrap(),
            not_before: now - Duration::minutes(1),
            not_after: now + Duration::hours(24),
            public_key: verified.public_key,
        })
        .expect("sign");
    (
        vec![ca.intermediate_certificate, ca.root_certificate],
        leaf.der,
        signer,
    )
}

fn verify_per_handshake(c: &mut Criterion) {
    let (chain, leaf, signer) = fixture();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let mut group = c.benchmark_group("verifier/handshake");
    for revoked in [10usize, 100_000, 1_000_000] {
        let now = OffsetDateTime::now_utc();
        let crl = signer
            .sign_crl(&CrlOrder {
                number: 1,
                this_update: now - Duration::minutes(1),
                next_update: now + Duration::hours(1),
                entries: (0..revoked)
                    .map(|_| CrlEntry {
                        serial: Serial::generate(),
                        revoked_at: now,
                        reason: RevocationReason::KeyCompromise,
                    })
                    .collect(),
            })
            .expect("CRL");
        let relying = runtime
            .block_on(
                Relying::builder(TRUST_DOMAIN)
                    .tenants(["acme".parse().unwrap()])
                    .ca_chain(chain.clone())
                    .crl_source(OneCrl(crl))
                    .build(),
            )
            .expect("relying service");
        let verifier = relying.verifier();
        let now = UnixTime::now();
        verifier
            .verify(&leaf, &[], now)
            .expect("the fixture verifies");
        group.bench_with_input(BenchmarkId::from_parameter(revoked), &revoked, |b, _| {
            b.iter(|| {
                verifier
                    .verify(black_box(&leaf), &[], now)
                    .expect("verifies")
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50).measurement_time(std::time::Duration::from_secs(4));
    targets = verify_per_handshake
}
criterion_main!(benches);
