//! Getting a key: with the CLI, with openssl + curl, with a token; the certificate profile.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use latchkey::profile::{self, SpiffeId};
use x509_parser::extensions::{GeneralName, ParsedExtension};

use crate::support::{self, Ca, PASSWORD, openssl, openssl_csr, password, request};

fn stdout(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "command failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn the_readme_walkthrough_works_with_the_cli() {
    let ca = Ca::start();
    stdout(&ca.cli(&["tenant", "add", "acme", "--max-key-days", "180"]));
    stdout(&ca.cli_with_env(
        &[
            "user",
            "add",
            "alice@acme",
            "--scopes",
            "read:metrics,write:events",
        ],
        &[("LATCHKEY_PASSWORD", PASSWORD)],
    ));
    let ca_cert = ca.home().join("ca.pem");
    let out = stdout(&ca.cli_with_env(
        &[
            "enroll",
            "--ca-cert",
            ca_cert.to_str().unwrap(),
            "--user",
            "alice@acme",
            "--scopes",
            "read:metrics",
            "--name",
            "laptop",
            "--out",
            "alice/",
        ],
        &[("LATCHKEY_PASSWORD", PASSWORD)],
    ));
    assert!(out.contains("read:metrics"), "{out}");
    assert!(
        !out.contains("PRIVATE KEY"),
        "the private key must never be printed"
    );
    let alice = ca.path("alice");
    let mode = std::fs::metadata(alice.join("key.pem"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let key_id = out.split_whitespace().nth(1).unwrap().to_owned();
    assert!(out.contains("expires"), "{out}");

    // The leaf verifies against the root with the chain's intermediate (an independent check).
    let chain = std::fs::read_to_string(alice.join("chain.pem")).unwrap();
    assert_eq!(chain.matches("BEGIN CERTIFICATE").count(), 2);
    let verify = openssl(
        ca.dir.path(),
        &[
            "verify",
            "-CAfile",
            ca_cert.to_str().unwrap(),
            "-untrusted",
            "alice/chain.pem",
            "alice/cert.pem",
        ],
    );
    assert!(String::from_utf8_lossy(&verify.stdout).contains("alice/cert.pem: OK"));

    // The key holder lists its keys with its own certificate; the admin sees them too.
    let mine = stdout(&ca.cli(&["keys", "list", "--dir", "alice"]));
    assert!(mine.contains(&key_id) && mine.contains("active"), "{mine}");
    let shown = stdout(&ca.cli(&["keys", "show", &key_id]));
    assert!(
        shown.contains("laptop") && shown.contains("certificate"),
        "{shown}"
    );

    // Token enrollment through the CLI.
    let token = stdout(&ca.cli(&[
        "token",
        "create",
        "--owner",
        "build-bot@acme",
        "--scopes",
        "write:events",
        "--ttl",
        "1h",
    ]));
    let token = token.trim();
    assert!(token.starts_with("lkt_"), "{token}");
    let out = stdout(&ca.cli(&["enroll", "--token", token, "--name", "ci", "--out", "bot/"]));
    assert!(
        out.contains("build-bot@acme") && out.contains("write:events"),
        "{out}"
    );
    let again = ca.cli(&["enroll", "--token", token, "--name", "ci", "--out", "bot2/"]);
    assert!(!again.status.success(), "a token enrolls once");
    assert!(String::from_utf8_lossy(&again.stderr).contains("invalid_token"));
    assert!(
        !ca.path("bot2/key.pem").exists(),
        "a refused enrollment leaves no key behind"
    );
}

#[tokio::test]
async fn the_certificate_follows_the_design_profile() {
    let ca = Ca::start();
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics", "write:events"])
        .await;
    let answer = ca
        .enroll_into("alice@acme", &["write:events", "read:metrics"], "profile")
        .await;
    let leaf = std::fs::read(ca.path("profile/cert.pem")).unwrap();
    let (_, pem) = x509_parser::pem::parse_x509_pem(&leaf).unwrap();
    let cert = pem.parse_x509().unwrap();

    // The key id (UID, where proxies can read it) and the scopes, one OU each, sorted,
    // after CN and O.
    assert_eq!(
        cert.subject().to_string(),
        format!(
            "CN=alice, O=acme, uid={}, OU=read:metrics, OU=write:events",
            answer.key.id
        )
    );
    let identity =
        latchkey::profile::danger::read_unverified_certificate(&cert, "latchkey.internal").unwrap();
    assert_eq!(
        identity.id,
        SpiffeId::Key {
            tenant: "acme".parse().unwrap(),
            key_id: answer.key.id.parse().unwrap()
        }
    );
    let scopes: Vec<&str> = identity.scopes.iter().map(|s| s.as_str()).collect();
    assert_eq!(scopes, ["read:metrics", "write:events"], "sorted");
    assert_eq!(cert.raw_serial().len(), 16);
    assert_eq!(
        hex::encode(cert.raw_serial()),
        answer.key.certificates[0].serial
    );

    let mut seen = Vec::new();
    for ext in cert.extensions() {
        let name = match ext.parsed_extension() {
            ParsedExtension::BasicConstraints(bc) => {
                assert!(ext.critical && !bc.ca);
                "bc"
            }
            ParsedExtension::KeyUsage(ku) => {
                assert!(ext.critical && ku.digital_signature() && !ku.key_cert_sign());
                assert_eq!(ku.flags, 1, "digitalSignature only");
                "ku"
            }
            ParsedExtension::ExtendedKeyUsage(eku) => {
                assert!(eku.client_auth && !eku.server_auth && eku.other.is_empty());
                "eku"
            }
            ParsedExtension::SubjectAlternativeName(san) => {
                assert_eq!(san.general_names.len(), 1);
                assert!(matches!(san.general_names[0], GeneralName::URI(u)
                    if u == format!("spiffe://latchkey.internal/tenant/acme/key/{}", answer.key.id)));
                "san"
            }
            ParsedExtension::SubjectKeyIdentifier(_) => "ski",
            ParsedExtension::AuthorityKeyIdentifier(_) => "aki",
            ParsedExtension::CRLDistributionPoints(dp) => {
                let text = format!("{dp:?}");
                assert!(text.contains("/v1/crl"), "{text}");
                "crldp"
            }
            other => panic!("unexpected extension {other:?}"),
        };
        seen.push(name);
    }
    seen.sort();
    assert_eq!(seen, ["aki", "bc", "crldp", "eku", "ku", "san", "ski"]);

    let lifetime = cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp();
    assert!(
        lifetime <= 24 * 3600 + 60,
        "24 h by default (plus the minute of backdating)"
    );
    assert!(answer.expires_in_seconds <= 24 * 3600 && answer.expires_in_seconds > 24 * 3600 - 60);
    // openssl shows the scopes in the subject, and no trace of the old extension is left.
    let text = openssl(
        ca.dir.path(),
        &[
            "x509",
            "-in",
            "profile/cert.pem",
            "-noout",
            "-subject",
            "-text",
            "-nameopt",
            "RFC2253",
        ],
    );
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains(&format!(
            "subject=OU=write:events,OU=read:metrics,UID={},O=acme,CN=alice",
            answer.key.id
        )),
        "{text}"
    );
    assert!(!text.contains(profile::LEGACY_SCOPES_OID_STR), "{text}");
    assert!(
        !pem.contents
            .windows(profile::LEGACY_SCOPES_OID_DER.len())
            .any(|w| w == profile::LEGACY_SCOPES_OID_DER)
    );
}

#[tokio::test]
async fn openssl_and_curl_get_a_key_and_the_csr_subject_is_ignored() {
    let ca = Ca::start();
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics"])
        .await;
    let csr = openssl_csr(
        ca.dir.path(),
        "curl",
        &["ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        &[],
    );
    let body = serde_json::json!({ "csr": csr, "scopes": ["read:metrics"], "name": "laptop" });
    let out = Command::new("curl")
        .args(["-sS", "--cacert"])
        .arg(ca.home().join("ca.pem"))
        .args(["-u", &format!("alice@acme:{PASSWORD}")])
        .args([
            "-H",
            "content-type: application/json",
            "-d",
            &body.to_string(),
        ])
        .args(["-w", "\n%{http_code}", &format!("{}/v1/keys", ca.url)])
        .output()
        .expect("curl is installed");
    let text = String::from_utf8_lossy(&out.stdout);
    let (json, status) = text.rsplit_once('\n').unwrap();
    assert_eq!(status, "201", "{json}");
    let answer: serde_json::Value = serde_json::from_str(json).unwrap();
    for field in ["key", "certificate", "chain", "expires_in_seconds"] {
        assert!(answer.get(field).is_some(), "{field} missing: {json}");
    }
    let key = &answer["key"];
    for field in [
        "id",
        "tenant",
        "owner",
        "name",
        "description",
        "scopes",
        "created_at",
        "expires_at",
        "status",
        "certificates",
    ] {
        assert!(key.get(field).is_some(), "key.{field} missing: {json}");
    }
    assert_eq!(key["status"], "active");
    assert!(!json.contains("PRIVATE"));

    std::fs::write(ca.path("leaf.pem"), answer["certificate"].as_str().unwrap()).unwrap();
    std::fs::write(ca.path("chain.pem"), answer["chain"].as_str().unwrap()).unwrap();
    let verify = openssl(
        ca.dir.path(),
        &[
            "verify",
            "-CAfile",
            "certs/ca.pem",
            "-untrusted",
            "chain.pem",
            "leaf.pem",
        ],
    );
    assert!(String::from_utf8_lossy(&verify.stdout).contains("OK"));
    let subject = openssl(
        ca.dir.path(),
        &["x509", "-in", "leaf.pem", "-noout", "-subject"],
    );
    let subject = String::from_utf8_lossy(&subject.stdout);
    assert!(
        subject.contains("CN = alice, O = acme"),
        "the CSR's subject is ignored: {subject}"
    );

    // Recorded before the answer: the store holds exactly these bytes.
    let serial = key["certificates"][0]["serial"].as_str().unwrap();
    let der = ca.recorded_der(serial).await.expect("recorded");
    let (_, pem) =
        x509_parser::pem::parse_x509_pem(answer["certificate"].as_str().unwrap().as_bytes())
            .unwrap();
    assert_eq!(der, pem.contents);
}

#[tokio::test]
async fn a_token_enrolls_once_with_curl_and_bearer() {
    let ca = Ca::start();
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics"])
        .await;
    let token = ca.token("build-bot@acme", &["write:events"]).await;
    let csr = openssl_csr(ca.dir.path(), "bot", &["ed25519"], &[]);
    let body = serde_json::json!({ "csr": csr, "scopes": [], "name": "ci" }).to_string();
    let curl = || {
        let out = Command::new("curl")
            .args(["-sS", "--cacert"])
            .arg(ca.home().join("ca.pem"))
            .args(["-H", &format!("Authorization: Bearer {token}")])
            .args(["-H", "content-type: application/json", "-d", &body])
            .args(["-w", "\n%{http_code}", &format!("{}/v1/keys", ca.url)])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let first = curl();
    assert!(first.ends_with("\n201"), "{first}");
    assert!(
        first.contains("\"owner\":\"build-bot\"") && first.contains("write:events"),
        "{first}"
    );
    let second = curl();
    assert!(second.ends_with("\n401"), "{second}");
    assert!(second.contains("\"code\":\"invalid_token\""), "{second}");
    let tokens = ca.admin().tokens(Some("acme")).await.unwrap();
    assert_eq!(tokens[0].status, latchkey::api::TokenStatus::Used);
    assert!(tokens[0].token.is_none(), "secrets are never listed");
}

/// A batch of tokens for a fleet: distinct secrets, each enrolling exactly once, one audit
/// event naming them all; counts out of range are refused with nothing made.
#[tokio::test]
async fn a_batch_of_tokens_enrolls_a_fleet_each_once() {
    let ca = Ca::start();
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics"])
        .await;
    let batch = |count| latchkey::api::NewTokenBatch {
        owner: "fleet@acme".parse().unwrap(),
        scopes: support::scope_set(&["write:events"]),
        ttl_seconds: Some(600),
        count,
    };
    let admin = ca.admin();
    for count in [0, latchkey::authority::MAX_TOKEN_BATCH + 1] {
        let refused = admin.create_tokens(&batch(count)).await.unwrap_err();
        assert_eq!(refused.code(), Some("invalid_request"), "{refused}");
    }
    let made = admin.create_tokens(&batch(5)).await.unwrap();
    let secrets: std::collections::BTreeSet<String> = made
        .iter()
        .map(|t| t.token.clone().expect("each secret, once").into_inner())
        .collect();
    assert_eq!(secrets.len(), 5, "distinct secrets");
    for secret in &secrets {
        let auth = latchkey::client::Auth::Token(secret.clone());
        let enrolled = ca
            .anonymous()
            .enroll(&auth, &request(&support::csr(), &[], "node"))
            .await
            .unwrap();
        assert_eq!(enrolled.key.owner, "fleet");
        let again = ca
            .anonymous()
            .enroll(&auth, &request(&support::csr(), &[], "node"))
            .await
            .unwrap_err();
        assert_eq!(again.code(), Some("invalid_token"), "{again}");
    }
    let listed = admin.tokens(Some("acme")).await.unwrap();
    assert_eq!(listed.len(), 5, "nothing made by the refused batches");
    assert!(listed.iter().all(|t| t.token.is_none()));
    let (first, last) = (made[0].id, made[4].id);
    let audit = admin
        .audit(&[("action", "token.create".to_owned())])
        .await
        .unwrap();
    let targets: Vec<_> = audit
        .events
        .iter()
        .filter_map(|e| e.target.clone())
        .collect();
    assert_eq!(targets, [format!("token:{first}-{last}")]);
}

#[tokio::test]
async fn every_accepted_key_type_enrolls() {
    let ca = Ca::start();
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics"])
        .await;
    let client = ca.anonymous();
    let cases: [(&str, &[&str]); 6] = [
        ("p256", &["ec", "-pkeyopt", "ec_paramgen_curve:P-256"]),
        ("p384", &["ec", "-pkeyopt", "ec_paramgen_curve:P-384"]),
        ("ed25519", &["ed25519"]),
        ("rsa2048", &["rsa:2048"]),
        ("rsa3072", &["rsa:3072"]),
        ("rsa4096", &["rsa:4096"]),
    ];
    for (name, newkey) in cases {
        let csr = openssl_csr(ca.dir.path(), name, newkey, &[]);
        let answer = client
            .enroll(
                &password("alice@acme"),
                &request(&csr, &["read:metrics"], name),
            )
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        std::fs::write(ca.path(&format!("{name}.pem")), &answer.chain).unwrap();
        let verify = openssl(
            ca.dir.path(),
            &[
                "verify",
                "-CAfile",
                "certs/ca.pem",
                "-untrusted",
                &format!("{name}.pem"),
                &format!("{name}.pem"),
            ],
        );
        assert!(
            String::from_utf8_lossy(&verify.stdout).contains("OK"),
            "{name}"
        );
    }
    // The library's own key types.
    for key_type in ["p384", "ed25519"] {
        let dir = latchkey::client::KeyDir::new(ca.path(&format!("lib-{key_type}")));
        client
            .enroll_into(
                &password("alice@acme"),
                &dir,
                key_type.parse().unwrap(),
                latchkey::client::KeyRequest::new(key_type).scopes(["read:metrics"]),
            )
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn lifetimes_follow_the_key_and_the_tenant_default() {
    let ca = Ca::start();
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics"])
        .await;
    let client = ca.anonymous();
    let mut short = request(&support::csr(), &["read:metrics"], "short");
    short.ttl_seconds = Some(3600);
    let answer = client
        .enroll(&password("alice@acme"), &short)
        .await
        .unwrap();
    let cert = &answer.key.certificates[0];
    assert_eq!(
        cert.not_after, answer.key.expires_at,
        "a certificate never outlives its key"
    );
    assert!(answer.expires_in_seconds <= 3600);

    let default = client
        .enroll(
            &password("alice@acme"),
            &request(&support::csr(), &["read:metrics"], "default"),
        )
        .await
        .unwrap();
    let days = (default.key.expires_at - default.key.created_at).whole_days();
    assert_eq!(days, 90, "keys live 90 days by default");

    // A tenant whose maximum is below the default gets its maximum by default.
    ca.admin()
        .add_tenant(&latchkey::api::NewTenant {
            name: "brief".parse().unwrap(),
            max_key_days: Some(7),
            dedicated_issuer: false,
        })
        .await
        .unwrap();
    ca.user("bo@brief", &["read:metrics"]).await;
    let capped = client
        .enroll(
            &password("bo@brief"),
            &request(&support::csr(), &["read:metrics"], "capped"),
        )
        .await
        .unwrap();
    assert_eq!(
        (capped.key.expires_at - capped.key.created_at).whole_days(),
        7
    );
}

#[tokio::test]
async fn serials_are_random_unique_and_recorded_byte_for_byte() {
    let ca = Ca::start();
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics"])
        .await;
    let client = ca.anonymous();
    let mut serials = std::collections::HashSet::new();
    for i in 0..10 {
        let answer = client
            .enroll(
                &password("alice@acme"),
                &request(&support::csr(), &["read:metrics"], &format!("k{i}")),
            )
            .await
            .unwrap();
        let serial = answer.key.certificates[0].serial.clone();
        let (_, pem) = x509_parser::pem::parse_x509_pem(answer.certificate.as_bytes()).unwrap();
        assert_eq!(
            ca.recorded_der(&serial).await.as_deref(),
            Some(pem.contents.as_slice())
        );
        assert!(serials.insert(serial));
    }
}

#[test]
fn client_commands_take_server_and_home_as_flags_with_no_environment() {
    let ca = Ca::start();
    // Run from a directory with no `certs/`, with none of the variables set, so only the
    // flags can say where the CA and its files are.
    let elsewhere = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Command::new(support::BIN)
            .args(args)
            .current_dir(elsewhere.path())
            .env_remove("LATCHKEY_SERVER")
            .env_remove("LATCHKEY_HOME")
            .env_remove("LATCHKEY_CA_CERT")
            .env_remove("LATCHKEY_TOKEN")
            .env("LATCHKEY_PASSWORD", PASSWORD)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    let home = ca.home();
    let home = home.to_str().unwrap();
    let ca_cert = ca.home().join("ca.pem");
    let ca_cert = ca_cert.to_str().unwrap();

    // Without the flags the same command finds neither the CA nor the admin certificate.
    assert!(!run(&["tenant", "add", "acme"]).status.success());
    assert!(
        !run(&["--home", home, "tenant", "add", "acme"])
            .status
            .success()
    );
    assert!(
        !run(&["--server", &ca.url, "tenant", "add", "acme"])
            .status
            .success()
    );
    assert_eq!(
        stdout(&ca.cli(&["tenant", "list"])),
        "",
        "no tenant was added"
    );

    let out = stdout(&run(&[
        "--server", &ca.url, "--home", home, "tenant", "add", "acme",
    ]));
    assert!(out.contains("acme"), "{out}");
    stdout(&run(&[
        "user",
        "add",
        "alice@acme",
        "--scopes",
        "read:metrics",
        "--server",
        &ca.url,
        "--home",
        home,
    ]));
    let out = stdout(&run(&[
        "enroll",
        "--server",
        &ca.url,
        "--home",
        home,
        "--ca-cert",
        ca_cert,
        "--user",
        "alice@acme",
        "--scopes",
        "read:metrics",
        "--name",
        "laptop",
        "--out",
        "alice/",
    ]));
    assert!(out.contains("alice@acme"), "{out}");
    let cert = std::fs::read(elsewhere.path().join("alice/cert.pem")).expect("cert.pem");
    let (_, pem) = x509_parser::pem::parse_x509_pem(&cert).unwrap();
    let serial = hex::encode(pem.parse_x509().unwrap().raw_serial());
    let rt = tokio::runtime::Runtime::new().unwrap();
    assert!(
        rt.block_on(ca.recorded_der(&serial)).is_some(),
        "issued by this CA"
    );
}

#[tokio::test]
async fn expires_at_gives_exactly_that_expiry_and_beyond_the_tenant_maximum_is_refused() {
    use time::{Duration, OffsetDateTime};
    let ca = Ca::start();
    ca.admin()
        .add_tenant(&latchkey::api::NewTenant {
            name: "acme".parse().unwrap(),
            max_key_days: Some(30),
            dedicated_issuer: false,
        })
        .await
        .unwrap();
    ca.user("alice@acme", &["read:metrics"]).await;
    let client = ca.anonymous();
    let enroll = |at: OffsetDateTime, name: &str| {
        let mut brief = request(&support::csr(), &["read:metrics"], name);
        brief.expires_at = Some(at);
        let client = client.clone();
        async move { client.enroll(&password("alice@acme"), &brief).await }
    };
    let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();

    // A whole second is kept exactly, in the answer and in the store.
    let at = now + Duration::days(10);
    let answer = enroll(at, "ten-days").await.unwrap();
    assert_eq!(answer.key.expires_at, at);
    assert_eq!(
        ca.admin()
            .key(None, &answer.key.id)
            .await
            .unwrap()
            .expires_at,
        at
    );
    // Within a day, the certificate ends with the key.
    let at = now + Duration::hours(2);
    let answer = enroll(at, "two-hours").await.unwrap();
    assert_eq!(answer.key.expires_at, at);
    assert_eq!(answer.key.certificates[0].not_after, at);
    let (_, pem) = x509_parser::pem::parse_x509_pem(answer.certificate.as_bytes()).unwrap();
    assert_eq!(
        pem.parse_x509().unwrap().validity().not_after.timestamp(),
        at.unix_timestamp()
    );
    // Fractions of a second are cut off (the store and certificates hold whole seconds):
    // never later than asked.
    let at = now + Duration::days(5) + Duration::milliseconds(750);
    let answer = enroll(at, "fraction").await.unwrap();
    assert_eq!(answer.key.expires_at, at.replace_nanosecond(0).unwrap());
    // The tenant's maximum itself is allowed.
    let answer = enroll(now + Duration::days(30), "maximum").await.unwrap();
    assert_eq!(answer.key.expires_at, now + Duration::days(30));

    // Beyond it: refused, not shortened, and nothing is stored.
    let before = ca.snapshot().await;
    for (at, what) in [
        (
            now + Duration::days(30) + Duration::minutes(5),
            "past 30 days",
        ),
        (now + Duration::days(181), "past the 180-day cap"),
    ] {
        match enroll(at, "too-long").await.unwrap_err() {
            latchkey::client::ClientError::Problem(p) => {
                assert_eq!(
                    (p.status, p.code.as_str()),
                    (422, "ttl_out_of_range"),
                    "{what}"
                )
            }
            other => panic!("{what}: {other}"),
        }
    }
    assert_eq!(
        ca.snapshot().await,
        before,
        "a refused expiry changed the store"
    );
}

#[tokio::test]
async fn an_issued_certificate_references_the_intermediates_row_in_the_issuers_table() {
    let ca = Ca::start();
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics"])
        .await;
    let answer = ca.enroll_into("alice@acme", &["read:metrics"], "k").await;
    let serial = &answer.key.certificates[0].serial;
    let pool = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}?mode=ro",
        ca.home().join("latchkey.db").display()
    ))
    .await
    .unwrap();
    let (issuer_id, certificate, fingerprint): (i64, Vec<u8>, String) = sqlx::query_as(
        "SELECT i.id, i.certificate, i.fingerprint FROM certificates c \
         JOIN issuers i ON i.id = c.issuer_id WHERE c.serial = ?",
    )
    .bind(serial)
    .fetch_one(&pool)
    .await
    .expect("the certificate's issuer row");
    let issuers: i64 = sqlx::query_scalar("SELECT count(*) FROM issuers")
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;

    let intermediate = std::fs::read(ca.home().join("intermediate.pem")).unwrap();
    let (_, intermediate) = x509_parser::pem::parse_x509_pem(&intermediate).unwrap();
    assert_eq!(
        certificate, intermediate.contents,
        "issuer row {issuer_id} of {issuers} is not certs/intermediate.pem"
    );
    let digest = ring::digest::digest(&ring::digest::SHA256, &intermediate.contents);
    assert_eq!(fingerprint, hex::encode(digest.as_ref()));
    // And the leaf really is that issuer's: its issuer name is the intermediate's subject.
    let (_, leaf) = x509_parser::pem::parse_x509_pem(answer.certificate.as_bytes()).unwrap();
    assert_eq!(
        leaf.parse_x509().unwrap().issuer(),
        intermediate.parse_x509().unwrap().subject()
    );
}
