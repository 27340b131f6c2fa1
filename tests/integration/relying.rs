//! The relying library and `crl sync` following the CA's issuing intermediates through a
//! rotation and a root rollover, against a fake CA: an HTTPS server on loopback (its certificate signed by the
//! test's root) answering `GET /v1/issuers` and each issuer's CRL, both with their long poll,
//! and the root's CRL, from what the test publishes. It pins the following side of the
//! contract of `src/api.rs` (`IssuerList`); the real CA's rotation is tested end to end
//! against `latchkey ca rotate`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use latchkey::api::{IssuerInfo, IssuerList, IssuerStatus};
use latchkey::ca::{CrlOrder, RootSigner};
use latchkey::relying::Relying;
use rcgen::{CertificateParams, ExtendedKeyUsagePurpose, KeyPair, SanType};
use rustls_pki_types::{CertificateDer, UnixTime};
use time::{Duration, OffsetDateTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use crate::support::BIN;
use crate::verifier::{
    Fixture, NO_CRL_YET, TRUST_DOMAIN, crl, crl_of, fixture, key_certificate, other_reason,
    rollover, root_crl, rotated,
};

/// What the fake CA publishes.
#[derive(Clone)]
struct Published {
    revision: i64,
    issuers: Vec<IssuerInfo>,
    /// Each issuer's CRL by its path: number and DER. A listed issuer without one is a 404.
    crls: HashMap<String, (i64, Vec<u8>)>,
    root_crl: Vec<u8>,
    /// Each root's CRL at `/v1/roots/{key id}/crl`, by key id (hex); none: a CA older than
    /// that route, whose one root CRL is `/v1/crl/root`.
    roots_crls: HashMap<String, Vec<u8>>,
    /// After a root rollover: the cross-certificates between the roots (PEM).
    crosses: Vec<String>,
}

impl Published {
    /// A CA with the fixture's one intermediate (id 1) and its first CRL.
    fn one(f: &Fixture) -> Self {
        let now = OffsetDateTime::now_utc();
        let root_crl = RootSigner::new(&f.chain[1], &f.root.key().serialize_pem())
            .unwrap()
            .sign(&CrlOrder {
                number: 1,
                this_update: now,
                next_update: now + Duration::days(30),
                entries: Vec::new(),
            })
            .unwrap();
        Self {
            revision: 1,
            issuers: vec![issuer(1, &f.chain[0], IssuerStatus::Active)],
            crls: HashMap::from([(crl_path(1), (1, crl(f, 1, Duration::hours(1), &[])))]),
            root_crl,
            roots_crls: HashMap::new(),
            crosses: Vec::new(),
        }
    }
}

fn crl_path(id: i64) -> String {
    format!("/v1/issuers/{id}/crl")
}

/// How `GET /v1/issuers` describes intermediate `id`.
fn issuer(id: i64, certificate: &CertificateDer<'_>, status: IssuerStatus) -> IssuerInfo {
    let (_, parsed) = x509_parser::parse_x509_certificate(certificate).unwrap();
    IssuerInfo {
        id,
        subject: parsed.subject().to_string(),
        not_before: parsed.validity().not_before.to_datetime(),
        not_after: parsed.validity().not_after.to_datetime(),
        status,
        tenant: None,
        certificate: latchkey::pem::encode("CERTIFICATE", certificate),
        crl: (status != IssuerStatus::Retired).then(|| crl_path(id)),
    }
}

/// The fake CA, serving until dropped.
struct FakeCa {
    url: String,
    published: watch::Sender<Published>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeCa {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeCa {
    /// Serves `published` on loopback with a certificate the fixture's root signed.
    async fn start(f: &Fixture, published: Published) -> Self {
        Self::start_presenting(f, published, &[]).await
    }

    /// [`FakeCa::start`], sending `more` after its certificate in every handshake (a
    /// cross-certificate, so that a client trusting another root reaches it too).
    async fn start_presenting(
        f: &Fixture,
        published: Published,
        more: &[CertificateDer<'static>],
    ) -> Self {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params.subject_alt_names = vec![SanType::IpAddress("127.0.0.1".parse().unwrap())];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = CertificateDer::from(params.signed_by(&key, &f.root).unwrap().der().to_vec());
        let key =
            latchkey::tls::load_private_key(key.serialize_pem().as_bytes(), "fake CA").unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert([vec![cert], more.to_vec()].concat(), key)
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://{}", listener.local_addr().unwrap());
        let (published, watching) = watch::channel(published);
        let server = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, watching) = (acceptor.clone(), watching.clone());
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let Some(target) = request_target(&mut tls).await else {
                        return;
                    };
                    let _ = tls.write_all(&answer(&target, watching).await).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        Self {
            url,
            published,
            server,
        }
    }

    fn publish(&self, published: &Published) {
        self.published.send_replace(published.clone());
    }
}

/// The target of the request line, once the head is read.
async fn request_target(tls: &mut (impl AsyncReadExt + Unpin)) -> Option<String> {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16384 {
        let n = tls.read(&mut buf).await.ok().filter(|n| *n > 0)?;
        head.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8(head).ok()?;
    head.split_whitespace().nth(1).map(str::to_owned)
}

/// What the fake CA answers to `target`: the issuer list, an issuer's CRL or the root's,
/// with the long poll of `newer_than` and `wait`.
async fn answer(target: &str, watching: watch::Receiver<Published>) -> Vec<u8> {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let param = |name: &str| {
        query.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            (key == name).then(|| value.parse::<i64>().ok()).flatten()
        })
    };
    let (newer_than, wait) = (param("newer_than"), param("wait").unwrap_or(0));
    if path == "/v1/issuers" {
        let newer = |p: &Published| newer_than.is_none_or(|n| p.revision > n);
        return match published_when(watching, wait, newer).await {
            Some(p) => {
                let list = IssuerList {
                    revision: p.revision,
                    issuers: p.issuers,
                    cross_certificates: p.crosses,
                };
                response("200 OK", &[], &serde_json::to_vec(&list).unwrap())
            }
            None => response("304 Not Modified", &[], b""),
        };
    }
    if let Some(key_id) = path
        .strip_prefix("/v1/roots/")
        .and_then(|rest| rest.strip_suffix("/crl"))
    {
        let root_crl = watching.borrow().roots_crls.get(key_id).cloned();
        return match root_crl {
            Some(crl) => response("200 OK", &[("latchkey-crl-number", "1".into())], &crl),
            None => response(
                "404 Not Found",
                &[],
                br#"{"type":"about:blank","title":"Not Found","status":404,"detail":"no such root","code":"not_found"}"#,
            ),
        };
    }
    if path == "/v1/crl/root" {
        let root_crl = watching.borrow().root_crl.clone();
        return response("200 OK", &[("latchkey-crl-number", "1".into())], &root_crl);
    }
    if !watching.borrow().crls.contains_key(path) {
        let problem = br#"{"type":"about:blank","title":"Not Found","status":404,"detail":"no such issuer","code":"not_found"}"#;
        return response("404 Not Found", &[], problem);
    }
    let newer = |p: &Published| {
        p.crls
            .get(path)
            .is_some_and(|(number, _)| newer_than.is_none_or(|n| *number > n))
    };
    match published_when(watching, wait, newer).await {
        Some(p) => {
            let (number, der) = &p.crls[path];
            response(
                "200 OK",
                &[("latchkey-crl-number", number.to_string())],
                der,
            )
        }
        None => response("304 Not Modified", &[], b""),
    }
}

/// What is published once `ready` holds of it, waiting up to `wait` seconds.
async fn published_when(
    mut watching: watch::Receiver<Published>,
    wait: i64,
    ready: impl Fn(&Published) -> bool,
) -> Option<Published> {
    let deadline = tokio::time::sleep(StdDuration::from_secs(wait.max(0) as u64));
    tokio::pin!(deadline);
    loop {
        {
            let published = watching.borrow_and_update();
            if ready(&published) {
                return Some(published.clone());
            }
        }
        tokio::select! {
            _ = &mut deadline => return None,
            changed = watching.changed() => changed.ok()?,
        }
    }
}

fn response(status: &str, headers: &[(&str, String)], body: &[u8]) -> Vec<u8> {
    let mut head = format!(
        "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    [head.into_bytes(), body.to_vec()].concat()
}

/// Waits up to 10 s (on the runtime, so the fake CA keeps serving) for `done`.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..200 {
        if done() {
            return;
        }
        tokio::time::sleep(StdDuration::from_millis(50)).await;
    }
    panic!("{what} did not happen within 10 s");
}

#[tokio::test]
async fn follow_ca_takes_a_new_intermediate_once_its_crl_is_in_and_drops_a_retired_one() {
    let f = fixture();
    let mut published = Published::one(&f);
    let ca = FakeCa::start(&f, published.clone()).await;
    let root_pem = latchkey::pem::encode("CERTIFICATE", &f.chain[1]);
    let relying = Relying::builder(TRUST_DOMAIN)
        .any_tenant()
        .follow_ca(&ca.url, root_pem.as_bytes())
        .first_crl_within(StdDuration::from_secs(5))
        .build()
        .await
        .unwrap();
    let v = relying.verifier();
    assert_eq!(v.issuers(), vec![f.chain[0].clone()]);
    let old = v.verify(&f.leaf, &[], UnixTime::now()).unwrap();

    // `ca rotate`: a second intermediate signs from now on, its CRL not served yet. The list
    // also names an intermediate of another root, which is never taken.
    let (second, signer) = rotated(&f, "latchkey issuing CA 2");
    let (leaf, serial, _) = key_certificate(&signer);
    let other = fixture();
    published.revision = 2;
    published.issuers = vec![
        issuer(1, &f.chain[0], IssuerStatus::Retiring),
        issuer(2, &second, IssuerStatus::Active),
        issuer(3, &other.chain[0], IssuerStatus::Active),
    ];
    published
        .crls
        .insert(crl_path(3), (1, crl(&other, 1, Duration::hours(1), &[])));
    ca.publish(&published);
    eventually("the second intermediate followed", || {
        v.issuers().len() == 2
    })
    .await;
    assert_eq!(v.issuers(), vec![f.chain[0].clone(), second.clone()]);
    assert_eq!(
        other_reason(v.verify(&leaf, &[], UnixTime::now())).to_string(),
        NO_CRL_YET,
        "a key of an intermediate whose CRL is not in yet"
    );
    assert!(v.verify(&f.leaf, &[], UnixTime::now()).is_ok());

    // Its first CRL: its keys pass from then on; its revocations reach an open connection.
    published.crls.insert(
        crl_path(2),
        (1, crl_of(&signer, 1, Duration::hours(1), &[])),
    );
    ca.publish(&published);
    eventually("the second intermediate's CRL taken", || {
        v.verify(&leaf, &[], UnixTime::now()).is_ok()
    })
    .await;
    let new = v.verify(&leaf, &[], UnixTime::now()).unwrap();
    published.crls.insert(
        crl_path(2),
        (2, crl_of(&signer, 2, Duration::hours(1), &[serial])),
    );
    ca.publish(&published);
    eventually("the revocation taken", || {
        v.still_valid(&new, UnixTime::now()).is_err()
    })
    .await;
    v.still_valid(&old, UnixTime::now()).unwrap();

    // The first retires: dropped, its keys refused, on a connection already open too.
    published.revision = 3;
    published.issuers[0] = issuer(1, &f.chain[0], IssuerStatus::Retired);
    published.crls.remove(&crl_path(1));
    ca.publish(&published);
    eventually("the retired intermediate dropped", || {
        v.issuers() == vec![second.clone()]
    })
    .await;
    assert!(v.verify(&f.leaf, &[], UnixTime::now()).is_err());
    assert!(v.still_valid(&old, UnixTime::now()).is_err());
}

fn pem(certificate: &CertificateDer<'_>) -> String {
    latchkey::pem::encode("CERTIFICATE", certificate)
}

/// A service following `ca`, trusting `root` alone.
async fn following(ca: &FakeCa, root: &CertificateDer<'_>) -> Relying {
    Relying::builder(TRUST_DOMAIN)
        .any_tenant()
        .follow_ca(&ca.url, pem(root).as_bytes())
        .first_crl_within(StdDuration::from_secs(5))
        .build()
        .await
        .unwrap()
}

#[tokio::test]
async fn follow_ca_trusting_the_old_root_takes_the_new_roots_intermediate_through_the_cross_certificate_without_a_restart()
 {
    let f = fixture();
    let r = rollover(&f);
    let (r1, i1) = (&f.chain[1], &f.chain[0]);
    let mut published = Published::one(&f);
    // The fake CA's certificate (R1 signed it) reaches a client trusting R2 through X12.
    let ca = FakeCa::start_presenting(&f, published.clone(), std::slice::from_ref(&r.x12)).await;
    let old_root = following(&ca, r1).await;
    let v = old_root.verifier();
    assert_eq!(v.issuers(), vec![i1.clone()]);
    let sent = [r.i2.clone(), r.x21.clone()];
    assert!(matches!(
        v.verify(&r.leaf, &sent, UnixTime::now()),
        Err(rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer
        ))
    ));

    // `ca rotate --root`: I2 under R2 signs from now on, its CRL not served yet; the list
    // carries the cross-certificates, through the long poll.
    published.revision = 2;
    published.issuers = vec![
        issuer(1, i1, IssuerStatus::Retiring),
        issuer(2, &r.i2, IssuerStatus::Active),
    ];
    published.crosses = vec![pem(&r.x21), pem(&r.x12)];
    ca.publish(&published);
    eventually("I2 followed", || v.issuers().len() == 2).await;
    assert_eq!(v.issuers(), vec![i1.clone(), r.i2.clone()]);
    assert_eq!(
        other_reason(v.verify(&r.leaf, &[], UnixTime::now())).to_string(),
        NO_CRL_YET
    );

    // Its first CRL: its keys pass (leaf → I2 → X21 → R1), no restart; then its own CRL
    // revokes one, on a connection already open too, and leaves I1's keys standing.
    published.crls.insert(
        crl_path(2),
        (1, crl_of(&r.i2_signer, 1, Duration::hours(1), &[])),
    );
    ca.publish(&published);
    eventually("I2's CRL taken", || {
        v.verify(&r.leaf, &[], UnixTime::now()).is_ok()
    })
    .await;
    let new = v.verify(&r.leaf, &[], UnixTime::now()).unwrap();
    let old = v.verify(&f.leaf, &[], UnixTime::now()).unwrap();
    published.crls.insert(
        crl_path(2),
        (2, crl_of(&r.i2_signer, 2, Duration::hours(1), &[r.serial])),
    );
    ca.publish(&published);
    eventually("the revocation taken", || {
        v.still_valid(&new, UnixTime::now()).is_err()
    })
    .await;
    v.still_valid(&old, UnixTime::now()).unwrap();

    // A service given the new root alone follows both, I1 through X12.
    let new_root = following(&ca, &r.r2).await;
    let w = new_root.verifier();
    assert_eq!(w.issuers(), vec![i1.clone(), r.i2.clone()]);
    assert!(w.verify(&f.leaf, &[], UnixTime::now()).is_ok());
    assert!(matches!(
        w.verify(&r.leaf, &[], UnixTime::now()),
        Err(rustls::Error::InvalidCertificate(
            rustls::CertificateError::Revoked
        ))
    ));

    // The CA stops publishing the cross-certificates: each service drops the other root's
    // intermediate, whose keys no longer chain to the root it trusts.
    published.revision = 3;
    published.crosses.clear();
    ca.publish(&published);
    eventually("I2 dropped", || v.issuers() == vec![i1.clone()]).await;
    eventually("I1 dropped", || w.issuers() == vec![r.i2.clone()]).await;
    assert!(v.still_valid(&old, UnixTime::now()).is_ok());
    assert!(w.verify(&f.leaf, &[], UnixTime::now()).is_err());
}

/// The CRLs (their issuers' subjects, in order) of a PEM file.
fn crl_issuers(path: &Path) -> Vec<String> {
    use rustls_pki_types::pem::PemObject;
    let Ok(pem) = std::fs::read(path) else {
        return Vec::new();
    };
    rustls_pki_types::CertificateRevocationListDer::pem_slice_iter(&pem)
        .map(|crl| {
            let crl = crl.unwrap();
            let (_, crl) = x509_parser::parse_x509_crl(&crl).unwrap();
            crl.issuer().to_string()
        })
        .collect()
}

/// A process killed when dropped.
struct Daemon(std::process::Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn crl_sync_writes_the_crl_of_every_published_intermediate_and_follows_a_rotation() {
    let f = fixture();
    let mut published = Published::one(&f);
    let ca = FakeCa::start(&f, published.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("root.pem"),
        latchkey::pem::encode("CERTIFICATE", &f.chain[1]),
    )
    .unwrap();
    let sync = |args: &[&str]| {
        let mut command = std::process::Command::new(BIN);
        command
            .args(["crl", "sync", "--server", &ca.url, "--ca-cert", "root.pem"])
            .args(args)
            .current_dir(dir.path());
        command
    };
    let intermediate = "CN=latchkey issuing CA, O=latchkey";
    let root = "CN=latchkey root CA, O=latchkey";
    let _daemon = Daemon(
        sync(&["--bundle", "--out", "synced.pem"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let synced = dir.path().join("synced.pem");
    eventually("the first file", || crl_issuers(&synced).len() == 2).await;
    assert_eq!(crl_issuers(&synced), [intermediate, root]);

    // `ca rotate`: the daemon follows the list and writes the new intermediate's CRL too;
    // not that of an intermediate of another root.
    let (second, signer) = rotated(&f, "latchkey issuing CA 2");
    let other = fixture();
    published.revision = 2;
    published.issuers = vec![
        issuer(1, &f.chain[0], IssuerStatus::Retiring),
        issuer(2, &second, IssuerStatus::Active),
        issuer(3, &other.chain[0], IssuerStatus::Active),
    ];
    published.crls.insert(
        crl_path(2),
        (1, crl_of(&signer, 1, Duration::hours(1), &[])),
    );
    published
        .crls
        .insert(crl_path(3), (1, crl(&other, 1, Duration::hours(1), &[])));
    ca.publish(&published);
    eventually("the second intermediate's CRL in the file", || {
        crl_issuers(&synced).len() == 3
    })
    .await;
    let second_ca = "CN=latchkey issuing CA 2, O=latchkey";
    assert_eq!(crl_issuers(&synced), [intermediate, second_ca, root]);

    // Without --bundle: each intermediate's, no root's. --der holds one CRL: refused now.
    let mut once = sync(&["--once", "--out", "once.pem"]);
    let out = tokio::task::spawn_blocking(move || once.output())
        .await
        .unwrap()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        crl_issuers(&dir.path().join("once.pem")),
        [intermediate, second_ca]
    );
    let mut der = sync(&["--once", "--der", "--out", "crl.der"]);
    let out = tokio::task::spawn_blocking(move || der.output())
        .await
        .unwrap()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--der writes one CRL"),
        "{out:?}"
    );
    assert!(!dir.path().join("crl.der").exists());
}

#[tokio::test]
async fn crl_sync_after_a_root_rollover_writes_the_crls_of_both_roots_intermediates_trusting_either_root()
 {
    let f = fixture();
    let r = rollover(&f);
    let mut published = Published::one(&f);
    published.revision = 2;
    published.issuers = vec![
        issuer(1, &f.chain[0], IssuerStatus::Retiring),
        issuer(2, &r.i2, IssuerStatus::Active),
    ];
    published.crosses = vec![pem(&r.x21), pem(&r.x12)];
    published.crls.insert(
        crl_path(2),
        (1, crl_of(&r.i2_signer, 1, Duration::hours(1), &[])),
    );
    // Each root's CRL at its own address; /v1/crl/root stays the first root's.
    published.roots_crls = HashMap::from([
        (key_id(&f.chain[1]), published.root_crl.clone()),
        (key_id(&r.r2), root_crl(&r.r2, &r.r2_key_pem, 1)),
    ]);
    let ca = FakeCa::start_presenting(&f, published, std::slice::from_ref(&r.x12)).await;
    let dir = tempfile::tempdir().unwrap();
    for (file, root) in [("r1.pem", &f.chain[1]), ("r2.pem", &r.r2)] {
        std::fs::write(dir.path().join(file), pem(root)).unwrap();
        let mut sync = std::process::Command::new(BIN);
        sync.args(["crl", "sync", "--server", &ca.url, "--ca-cert", file])
            .args(["--bundle", "--once", "--out", "synced.pem"])
            .current_dir(dir.path());
        let out = tokio::task::spawn_blocking(move || sync.output())
            .await
            .unwrap()
            .unwrap();
        assert!(out.status.success(), "trusting {file}: {out:?}");
        // The intermediates' CRLs, then the CRL of the root trusted here.
        let trusted = if file == "r1.pem" {
            "CN=latchkey root CA, O=latchkey"
        } else {
            "CN=latchkey root CA 2, O=latchkey"
        };
        assert_eq!(
            crl_issuers(&dir.path().join("synced.pem")),
            [
                "CN=latchkey issuing CA, O=latchkey",
                "CN=latchkey issuing CA 2, O=latchkey",
                trusted,
            ],
            "trusting {file}"
        );
    }
}

/// The subject key identifier of `certificate`, hex.
fn key_id(certificate: &CertificateDer<'_>) -> String {
    let (_, parsed) = x509_parser::parse_x509_certificate(certificate).unwrap();
    parsed
        .extensions()
        .iter()
        .find_map(|ext| match ext.parsed_extension() {
            x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(ski) => {
                Some(hex::encode(ski.0))
            }
            _ => None,
        })
        .expect("a subject key identifier")
}
