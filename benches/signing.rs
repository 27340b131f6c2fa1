//! Signatures per second by where the issuing key is: in a file (in memory once loaded) or
//! inside a PKCS#11 token (SoftHSM2 here; an HSM in production), through the same signer.
//!
//! `scripts/bench-pkcs11.sh` makes a SoftHSM2 token and runs this with
//! `LATCHKEY_BENCH_PKCS11_MODULE`, `_TOKEN` and `_PIN` set; without them only the file
//! signer is measured.

#![allow(clippy::unwrap_used, reason = "a panic is how a benchmark fails")]
#![allow(
    missing_docs,
    reason = "criterion_group! makes undocumented public functions"
)]

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use latchkey::authority::csr::verify_pem;
use latchkey::ca::{
    Bootstrap, IssuingKey, KeyOrder, Pkcs11Key, Pkcs11Location, Pkcs11Pin, RootAndIntermediate,
    Signer,
};
use latchkey::client::{KeyType, new_key_pair};
use latchkey::model::{KeyId, ScopeSet, Serial};
use time::{Duration, OffsetDateTime};

const TRUST_DOMAIN: &str = "latchkey.internal";
const CRL_URL: &str = "https://localhost:8443/v1/crl";

fn order(csr: &str, now: OffsetDateTime) -> KeyOrder {
    KeyOrder {
        serial: Serial::random(),
        tenant: "acme".parse().unwrap(),
        owner: "alice".parse().unwrap(),
        key_id: KeyId::random(),
        scopes: ScopeSet::parse(["read:metrics", "write:events"]).unwrap(),
        not_before: now - Duration::minutes(1),
        not_after: now + Duration::hours(24),
        public_key: verify_pem(csr).expect("csr").public_key,
    }
}

/// A signer whose key the token at `LATCHKEY_BENCH_PKCS11_*` makes, when those are set.
fn token_signer(now: OffsetDateTime) -> Option<Signer> {
    let module = std::env::var("LATCHKEY_BENCH_PKCS11_MODULE").ok()?;
    let location = Pkcs11Location {
        module: module.into(),
        token: std::env::var("LATCHKEY_BENCH_PKCS11_TOKEN").ok()?,
        key_label: format!("bench-{}", Serial::random()),
    };
    let pin = Pkcs11Pin::new(std::env::var("LATCHKEY_BENCH_PKCS11_PIN").ok()?);
    let key = Pkcs11Key::generate(&location, &pin).expect("a key in the token");
    let ca = RootAndIntermediate::generate(now, None, &key).expect("root and intermediate");
    Some(
        Signer::with_key(
            ca.intermediate_certificate,
            IssuingKey::Pkcs11(key),
            TRUST_DOMAIN,
            CRL_URL,
        )
        .expect("signer"),
    )
}

fn signing(c: &mut Criterion) {
    let now = OffsetDateTime::now_utc();
    let csr = new_key_pair(KeyType::P256).expect("key").csr_pem;
    let ca = Bootstrap::generate(now).expect("bootstrap");
    let file = Signer::new(
        ca.intermediate_certificate.clone(),
        &ca.intermediate_key_pem,
        TRUST_DOMAIN,
        CRL_URL,
    )
    .expect("signer");
    let mut signers = vec![("file", file)];
    match token_signer(now) {
        Some(token) => signers.push(("pkcs11", token)),
        None => eprintln!("SKIPPED signing/pkcs11: LATCHKEY_BENCH_PKCS11_* are not set"),
    }
    let mut group = c.benchmark_group("signing");
    for (name, signer) in &signers {
        group.bench_function(format!("{name}/key certificate P-256"), |b| {
            b.iter_batched(
                || order(&csr, now),
                |order| signer.sign_key_certificate(order).expect("sign"),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, signing);
criterion_main!(benches);
