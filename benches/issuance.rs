//! The pieces of an issuance one by one (CSR check, signing, identity extraction), CRL
//! signing at 10k, 100k and 1M entries, and the authority's whole issuance path with the
//! store (SQLite, `synchronous=FULL`), 16 enrollments in flight as under load.
//!
//! `cargo bench --bench issuance` (add a filter such as `crl` to run a part). Signing is also
//! measured with the issuing key inside a PKCS#11 token when `LATCHKEY_BENCH_PKCS11_MODULE`,
//! `_TOKEN` and `_PIN` name one: `scripts/bench-pkcs11.sh` makes a SoftHSM2 token for it.

#![allow(clippy::unwrap_used, reason = "a panic is how a benchmark fails")]
#![allow(
    missing_docs,
    reason = "criterion_group! makes undocumented public functions"
)]

use std::hint::black_box;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use criterion::{BatchSize, BenchmarkId, Criterion, criterion_group, criterion_main};
use latchkey::api::{EnrollRequest, NewTenant, NewToken};
use latchkey::authority::csr::verify_pem;
use latchkey::authority::{Caller, Credential, Policy};
use latchkey::ca::{
    Bootstrap, CrlEntry, CrlOrder, IssuingKey, KeyOrder, Pkcs11Key, Pkcs11Location, Pkcs11Pin,
    RootAndIntermediate, ServiceCertificate, Signer,
};
use latchkey::client::{KeyType, new_key_pair};
use latchkey::clock::SystemClock;
use latchkey::model::{KeyId, RevocationReason, ScopeSet, Serial};
use latchkey::profile::danger::read_unverified;
use time::{Duration, OffsetDateTime};

const TRUST_DOMAIN: &str = "latchkey.internal";
const CRL_URL: &str = "https://localhost:8443/v1/crl";

fn signer(ca: &Bootstrap) -> Signer {
    Signer::new(
        ca.intermediate_certificate.clone(),
        &ca.intermediate_key_pem,
        TRUST_DOMAIN,
        CRL_URL,
    )
    .expect("signer")
}

fn order(csr: &str, now: OffsetDateTime) -> KeyOrder {
    KeyOrder {
        serial: Serial::generate(),
        tenant: "acme".parse().unwrap(),
        owner: "alice".parse().unwrap(),
        key_id: KeyId::generate(),
        scopes: ScopeSet::parse(["read:metrics", "write:events"]).unwrap(),
        not_before: now - Duration::minutes(1),
        not_after: now + Duration::hours(24),
        public_key: verify_pem(csr).expect("csr").public_key,
    }
}

/// A signer whose key the token at `LATCHKEY_BENCH_PKCS11_*` makes, when those are set.
fn token_signer(now: OffsetDateTime) -> Option<Signer> {
    let location = Pkcs11Location {
        module: std::env::var("LATCHKEY_BENCH_PKCS11_MODULE").ok()?.into(),
        token: std::env::var("LATCHKEY_BENCH_PKCS11_TOKEN").ok()?,
        key_label: format!("bench-{}", Serial::generate()),
    };
    let pin = Pkcs11Pin::new(std::env::var("LATCHKEY_BENCH_PKCS11_PIN").ok()?);
    let key = Pkcs11Key::generate(&location, &pin).expect("a key in the token");
    let ca = RootAndIntermediate::generate(now, None, &key).expect("root and intermediate");
    let key = IssuingKey::Pkcs11(key);
    Some(Signer::with_key(ca.intermediate_certificate, key, TRUST_DOMAIN, CRL_URL).expect("signer"))
}

fn pieces(c: &mut Criterion) {
    let now = OffsetDateTime::now_utc();
    let ca = Bootstrap::generate(now).expect("bootstrap");
    let signer = signer(&ca);
    let csr = new_key_pair(KeyType::P256).expect("key").csr_pem;
    c.bench_function("csr/verify P-256", |b| {
        b.iter(|| verify_pem(black_box(&csr)).expect("csr"))
    });
    let mut signers = vec![("signer/key certificate P-256", &signer)];
    let token = token_signer(now);
    match &token {
        Some(token) => signers.push(("signer/key certificate P-256 (PKCS#11)", token)),
        None => eprintln!("SKIPPED signer/… (PKCS#11): LATCHKEY_BENCH_PKCS11_* are not set"),
    }
    for (name, signer) in signers {
        // An order is consumed by signing; each is made outside the timed part.
        c.bench_function(name, |b| {
            b.iter_batched(
                || order(&csr, now),
                |order| signer.sign_key_certificate(order).expect("sign"),
                BatchSize::SmallInput,
            )
        });
    }
    let leaf = signer
        .sign_key_certificate(order(&csr, now))
        .expect("sign")
        .der;
    c.bench_function("identity/from_der", |b| {
        b.iter(|| read_unverified(black_box(&leaf), TRUST_DOMAIN).expect("identity"))
    });
}

fn crl_sign(c: &mut Criterion) {
    let now = OffsetDateTime::now_utc();
    let ca = Bootstrap::generate(now).expect("bootstrap");
    let signer = signer(&ca);
    let mut group = c.benchmark_group("crl/sign");
    group.sample_size(10);
    for entries in [10_000usize, 100_000, 1_000_000] {
        let order = CrlOrder {
            number: 7,
            this_update: now,
            next_update: now + Duration::hours(1),
            entries: (0..entries)
                .map(|i| CrlEntry {
                    serial: Serial::generate(),
                    revoked_at: now - Duration::seconds(i as i64 % 86_400),
                    reason: if i % 3 == 0 {
                        RevocationReason::KeyCompromise
                    } else {
                        RevocationReason::Unspecified
                    },
                })
                .collect(),
        };
        group.bench_with_input(BenchmarkId::from_parameter(entries), &order, |b, order| {
            b.iter(|| signer.sign_crl(black_box(order)).expect("crl"))
        });
    }
    group.finish();
}

/// The authority's `enroll` with a token, as the HTTP handler calls it: authentication, the
/// checks, the CSR, signing, and the durable record (group commit). Tokens and CSRs are made
/// outside the timed part; 16 enrollments are kept in flight, and the time per enrollment
/// is the total over the count.
fn authority_enroll(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let (authority, admin) = runtime.block_on(async {
        // The CA as `serve` puts it together; the publisher is never started (no CRLs here).
        let home = latchkey::home::Home::new(dir.path().join("ca"));
        let options = latchkey::home::InitOptions {
            trust_domain: latchkey::profile::DEFAULT_TRUST_DOMAIN.into(),
            hostnames: Vec::new(),
            public_url: None,
            crl_url: None,
            encrypt_keys: false,
            pkcs11: None,
        };
        let prepared = latchkey::server::prepare(
            &home,
            None,
            &options,
            Policy::default(),
            Arc::new(SystemClock),
        )
        .await
        .expect("the CA");
        let authority = prepared.authority;
        let admin = authority
            .issue_service_certificate(&ServiceCertificate::Admin {
                name: "admin".parse().unwrap(),
            })
            .await
            .expect("admin issued")
            .certificate;
        let admin = authority
            .authenticate_admin(&Caller {
                certificate: Some(admin.der),
                ..Caller::default()
            })
            .await
            .expect("admin authenticated");
        let tenant = NewTenant {
            name: "bench".parse().expect("a valid tenant name"),
            max_key_days: None,
            dedicated_issuer: false,
        };
        authority.add_tenant(&admin, tenant).await.expect("tenant");
        (Arc::new(authority), admin)
    });
    let mut group = c.benchmark_group("authority");
    group.sample_size(10);
    group.bench_function("enroll (token, SQLite, 16 in flight)", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let mut work = Vec::new();
                for i in 0..iters {
                    let token = NewToken {
                        owner: format!("bench-{i}@bench").parse().expect("a user"),
                        scopes: latchkey::model::ScopeSet::parse(["bench:issue"])
                            .expect("a valid scope"),
                        ttl_seconds: Some(3600),
                    };
                    let token = authority
                        .create_token(&admin, token)
                        .await
                        .expect("token")
                        .1
                        .into_inner();
                    work.push((token, new_key_pair(KeyType::P256).expect("key").csr_pem));
                }
                let queue = Arc::new(Mutex::new(work));
                let started = Instant::now();
                let workers: Vec<_> = (0..16)
                    .map(|_| {
                        let (authority, queue) = (authority.clone(), queue.clone());
                        tokio::spawn(async move {
                            loop {
                                let next = queue.lock().unwrap().pop();
                                let Some((token, csr)) = next else { break };
                                let caller = Caller {
                                    authorization: Some(Credential::Token(token)),
                                    ..Caller::default()
                                };
                                let request = EnrollRequest {
                                    csr,
                                    name: "bench".into(),
                                    description: String::new(),
                                    scopes: latchkey::model::ScopeSet::default(),
                                    ttl_seconds: None,
                                    expires_at: None,
                                };
                                let enroller = authority
                                    .authenticate_enroller(&caller)
                                    .await
                                    .expect("token accepted");
                                authority.enroll(&enroller, request).await.expect("enroll");
                            }
                        })
                    })
                    .collect();
                for worker in workers {
                    worker.await.expect("worker");
                }
                started.elapsed()
            })
        })
    });
    group.finish();
}

criterion_group!(benches, pieces, crl_sign, authority_enroll);
criterion_main!(benches);
