//! Webhooks against the real server: a local receiver in Python (`webhooks/receiver.py`)
//! checks every message's Standard Webhooks signature with Python's `hmac`, an implementation
//! independent of the CA's, and records what it got. Issuance, renewal and revocation arrive
//! signed; a receiver that fails three times gets the message on the fourth attempt; a CA
//! killed with SIGKILL after the change delivers it when it comes back; `key.expiring` comes
//! once at each lead time; two replicas on PostgreSQL deliver each message once.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use http::Method;
use latchkey::api::NewWebhook;
use latchkey::client::{KeyRequest, KeyType};
use serde_json::Value;

use crate::support::{Ca, PgSchema, password, policy};

const RECEIVER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/integration/webhooks/receiver.py"
);
/// The longest a test waits for messages: the backoff of three failures is 7 s.
const PATIENCE: Duration = Duration::from_secs(60);

/// A running `receiver.py`. Killed when dropped.
struct Receiver {
    dir: PathBuf,
    child: Child,
    /// `http://127.0.0.1:PORT`.
    url: String,
}

impl Receiver {
    fn start(dir: &Path, args: &[&str]) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let child = Command::new("python3")
            .arg(RECEIVER)
            .arg(dir)
            .args(args)
            .stdin(Stdio::null())
            .spawn()
            .expect("python3");
        let port_file = dir.join("port");
        let started = std::time::Instant::now();
        while !port_file.exists() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "the receiver did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let port = std::fs::read_to_string(port_file).unwrap();
        Self {
            dir: dir.to_owned(),
            child,
            url: format!("http://127.0.0.1:{}", port.trim()),
        }
    }

    /// The webhook's secret, which the receiver checks signatures with.
    fn set_secret(&self, secret: &str) {
        std::fs::write(self.dir.join("secret"), secret).unwrap();
    }

    /// While held, every signed request is answered 503.
    fn hold(&self, held: bool) {
        let hold = self.dir.join("hold");
        if held {
            std::fs::write(hold, "").unwrap();
        } else {
            std::fs::remove_file(hold).unwrap();
        }
    }

    /// Every request so far, in the order they came.
    fn requests(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.join("received.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    /// The requests answered 204: the messages delivered.
    fn delivered(&self) -> Vec<Value> {
        self.requests()
            .into_iter()
            .filter(|r| r["answer"] == 204)
            .collect()
    }

    /// Waits (at most [`PATIENCE`]) until `done` holds of the requests so far.
    async fn wait_for(&self, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let started = std::time::Instant::now();
        loop {
            let requests = self.requests();
            if done(&requests) {
                return requests;
            }
            assert!(
                started.elapsed() < PATIENCE,
                "waited for {what}; got {requests:#?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every request was signed as the receiver checks, sent as JSON to the webhook's path.
fn assert_signed(requests: &[Value]) {
    for r in requests {
        assert_eq!(r["verified"], true, "{r:#}");
        assert_eq!(r["content_type"], "application/json", "{r:#}");
        assert_eq!(r["path"], "/hooks/latchkey", "{r:#}");
    }
}

/// `latchkey webhook add …` by the CLI; the secret it prints.
fn add_webhook(ca: &Ca, url: &str, events: &str, extra: &[&str]) -> String {
    let mut args = vec![
        "webhook", "add", "--tenant", "acme", "--url", url, "--events", events,
    ];
    args.extend(extra);
    let out = ca.cli(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let secret = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(secret.starts_with("whsec_"), "{secret}");
    secret
}

/// The README's Python `verify` (section "Verifying a message") on a request the receiver
/// recorded: `True` or `False`.
fn readme_verify(secret: &str, request: &Value) -> String {
    let readme = include_str!("../../README.md");
    let section = readme
        .split("### Verifying a message")
        .nth(1)
        .expect("the README's section");
    let code = section
        .split("```python\n")
        .nth(1)
        .and_then(|block| block.split("```").next())
        .expect("a python block");
    let script = format!(
        "{code}\nimport json, sys\nr = json.loads(sys.argv[1])\n\
         print(verify(sys.argv[2], r['headers'], r['raw'].encode()))\n"
    );
    let out = Command::new("python3")
        .args(["-c", &script, &request.to_string(), secret])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Tenant `acme` with alice (`read:metrics`), a receiver started with `receiver_args`, and
/// a webhook of acme to it (plain http to loopback) for `events`, whose secret the receiver
/// checks.
async fn acme_with_receiver(ca: &Ca, receiver_args: &[&str], events: &str) -> Receiver {
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics"])
        .await;
    let receiver = Receiver::start(&ca.path("receiver"), receiver_args);
    let url = format!("{}/hooks/latchkey", receiver.url);
    receiver.set_secret(&add_webhook(ca, &url, events, &["--allow-http"]));
    receiver
}

fn cli_json(ca: &Ca, args: &[&str]) -> Value {
    let out = ca.cli(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The messages delivered, by type.
fn by_type(delivered: &[Value]) -> BTreeMap<String, Value> {
    delivered
        .iter()
        .map(|r| {
            (
                r["body"]["type"].as_str().unwrap().to_owned(),
                r["body"].clone(),
            )
        })
        .collect()
}

/// Issuance, renewal and revocation of a key each reach the tenant's webhook once, signed,
/// with the key's tenant, id, owner and name; the list never shows the secret; deliveries
/// and the audit log say what happened; a removed webhook gets nothing more.
async fn issued_renewed_and_revoked_arrive_signed(ca: Ca, dir: &Path) {
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics"])
        .await;
    let receiver = Receiver::start(&dir.join("receiver"), &[]);
    let url = format!("{}/hooks/latchkey", receiver.url);
    let secret = add_webhook(
        &ca,
        &url,
        "key.issued,key.renewed,key.revoked",
        &["--allow-http"],
    );
    receiver.set_secret(&secret);

    let key = ca
        .enroll_into("alice@acme", &["read:metrics"], "laptop")
        .await
        .key;
    tokio::time::sleep(Duration::from_millis(1100)).await; // --renew-interval 1s
    let renewed = ca
        .with_identity(&ca.path("laptop"))
        .renew(&key.id, None)
        .await
        .unwrap();
    ca.admin()
        .revoke_key(None, &key.id, Some("key_compromise"))
        .await
        .unwrap();

    receiver.wait_for("three messages", |r| r.len() >= 3).await;
    let delivered = receiver.delivered();
    assert_signed(&receiver.requests());
    assert_eq!(delivered.len(), 3, "{delivered:#?}");
    let messages = by_type(&delivered);
    assert_eq!(
        messages.keys().collect::<Vec<_>>(),
        ["key.issued", "key.renewed", "key.revoked"]
    );
    for message in messages.values() {
        let data = &message["data"];
        assert_eq!(
            (&data["tenant"], &data["key"], &data["owner"], &data["name"]),
            (
                &"acme".into(),
                &Value::from(key.id.clone()),
                &"alice".into(),
                &"laptop".into()
            ),
            "{message:#}"
        );
        assert!(
            message["timestamp"].as_str().unwrap().ends_with('Z'),
            "{message:#}"
        );
    }
    let issued = &messages["key.issued"]["data"];
    assert_eq!(issued["scopes"], serde_json::json!(["read:metrics"]));
    assert_eq!(issued["serial"].as_str().unwrap().len(), 32);
    assert_ne!(messages["key.renewed"]["data"]["serial"], issued["serial"]);
    let renewed_serial = messages["key.renewed"]["data"]["serial"].as_str().unwrap();
    assert!(
        renewed
            .key
            .certificates
            .iter()
            .any(|c| c.serial == renewed_serial)
    );
    assert_eq!(messages["key.revoked"]["data"]["reason"], "key_compromise");
    let ids: std::collections::BTreeSet<String> =
        delivered.iter().map(|r| r["id"].to_string()).collect();
    assert_eq!(ids.len(), 3, "one webhook-id per message");

    // The README's verifier accepts what the CA sent, and only with the webhook's secret.
    let readme_says = |secret: &str| readme_verify(secret, &delivered[0]);
    assert_eq!(readme_says(&secret), "True");
    assert_eq!(
        readme_says("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        "False"
    );

    // The list never shows the secret; deliveries say each was delivered at the first try.
    let list = cli_json(&ca, &["webhook", "list", "--json"]);
    assert_eq!(list[0]["url"], url.as_str());
    assert!(!list.to_string().contains(&secret) && list[0].get("secret").is_none());
    let deliveries = cli_json(
        &ca,
        &["webhook", "deliveries", "--tenant", "acme", "--json"],
    );
    let deliveries = deliveries.as_array().unwrap();
    assert_eq!(deliveries.len(), 3, "{deliveries:#?}");
    for d in deliveries {
        assert_eq!(
            (&d["status"], &d["attempts"]),
            (&"delivered".into(), &1.into()),
            "{d:#}"
        );
        assert!(ids.contains(&d["id"].to_string()), "{d:#}");
    }

    // Removing it is audited; a later change writes it no message.
    let id = list[0]["id"].to_string();
    let out = ca.cli(&["webhook", "remove", &id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ca.enroll_into("alice@acme", &["read:metrics"], "desktop")
        .await;
    assert_eq!(
        cli_json(&ca, &["webhook", "deliveries", "--json"])
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let audit = ca
        .admin()
        .audit(&[("tenant", "acme".into())])
        .await
        .unwrap();
    let actions: Vec<&str> = audit.events.iter().map(|e| e.action.as_str()).collect();
    assert!(
        actions.contains(&"webhook.add") && actions.contains(&"webhook.remove"),
        "{actions:?}"
    );
    let out = ca.cli(&["webhook", "remove", &id]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("not_found"));
}

#[tokio::test]
async fn issued_renewed_and_revoked_keys_reach_the_webhook_signed() {
    let ca = Ca::start_with(&["--renew-interval", "1s"]);
    let dir = ca.path("test");
    issued_renewed_and_revoked_arrive_signed(ca, &dir).await;
}

#[tokio::test]
async fn issued_renewed_and_revoked_keys_reach_the_webhook_signed_on_postgresql() {
    let Some(pg) = PgSchema::create("webhooks::…_on_postgresql").await else {
        return;
    };
    let ca = Ca::start_on_with(&pg.url, &["--renew-interval", "1s"]);
    let dir = ca.path("test");
    issued_renewed_and_revoked_arrive_signed(ca, &dir).await;
}

/// https only, unless `--allow-http` and the host is loopback; unknown events and tenants
/// are refused with their codes. Nothing is recorded for a refusal.
#[tokio::test]
async fn webhook_urls_must_be_https_or_loopback_http() {
    let ca = Ca::start();
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics"])
        .await;
    for (url, events, extra, code) in [
        (
            "http://hooks.example.com/x",
            "key.issued",
            &["--allow-http"][..],
            "invalid_webhook_url",
        ),
        (
            "http://10.1.2.3/x",
            "key.issued",
            &["--allow-http"][..],
            "invalid_webhook_url",
        ),
        (
            "http://127.0.0.1:9/x",
            "key.issued",
            &[][..],
            "invalid_webhook_url",
        ),
        (
            "ftp://hooks.example.com/x",
            "key.issued",
            &[][..],
            "invalid_webhook_url",
        ),
        (
            "https://u:p@hooks.example.com/x",
            "key.issued",
            &[][..],
            "invalid_webhook_url",
        ),
        (
            "https://hooks.example.com/x",
            "key.deleted",
            &[][..],
            "invalid_request",
        ),
    ] {
        let mut args = vec![
            "webhook", "add", "--tenant", "acme", "--url", url, "--events", events,
        ];
        args.extend(extra);
        let out = ca.cli(&args);
        assert!(!out.status.success(), "{url} was accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(code), "{url}: {stderr}");
    }
    // The API refuses what the CLI would not send.
    let admin = ca.raw(Some(&ca.home().join("admin")));
    let (status, body) = admin
        .send(
            Method::POST,
            "/v1/admin/webhooks",
            None,
            Some(br#"{"tenant":"acme","url":"https://h.example/","events":["key.gone"]}"#.to_vec()),
        )
        .await
        .unwrap();
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("invalid_request"));
    let out = ca.cli(&[
        "webhook",
        "add",
        "--tenant",
        "nobody",
        "--url",
        "https://h.example/",
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("not_found"));
    // A key certificate meets the admin wall.
    ca.enroll_into("alice@acme", &["read:metrics"], "alice")
        .await;
    let (status, _) = ca
        .raw(Some(&ca.path("alice")))
        .send(Method::GET, "/v1/admin/webhooks", None, None)
        .await
        .unwrap();
    assert_eq!(status, 403);
    assert!(
        cli_json(&ca, &["webhook", "list", "--json"])
            .as_array()
            .unwrap()
            .is_empty()
    );
    // An https webhook is accepted without --allow-http.
    add_webhook(
        &ca,
        "https://hooks.example.com/latchkey",
        "key.revoked",
        &[],
    );
}

/// A receiver that answers 500 three times gets the message on the fourth attempt, with the
/// same webhook-id each time; `webhook deliveries` and the metrics show the retries.
#[tokio::test]
async fn a_receiver_failing_three_times_gets_the_message_on_the_fourth_attempt() {
    let ca = Ca::start();
    let receiver = acme_with_receiver(&ca, &["--fail-first", "3"], "key.issued").await;
    let key = ca
        .enroll_into("alice@acme", &["read:metrics"], "laptop")
        .await
        .key;

    let requests = receiver
        .wait_for("a delivery", |r| r.iter().any(|r| r["answer"] == 204))
        .await;
    assert_signed(&requests);
    let answers: Vec<&Value> = requests.iter().map(|r| &r["answer"]).collect();
    assert_eq!(answers, [500, 500, 500, 204]);
    assert!(
        requests.iter().all(|r| r["id"] == requests[0]["id"]),
        "{requests:#?}"
    );
    assert!(
        requests.iter().all(|r| r["body"] == requests[0]["body"]),
        "the same body each time"
    );
    assert_eq!(requests[0]["body"]["data"]["key"], key.id.as_str());

    let deliveries = cli_json(&ca, &["webhook", "deliveries", "--json"]);
    let d = &deliveries[0];
    assert_eq!(
        (&d["status"], &d["attempts"]),
        (&"delivered".into(), &4.into()),
        "{d:#}"
    );
    assert_eq!(d["last_status"], 204);
    let (_, metrics) = ca
        .raw(Some(&ca.home().join("admin")))
        .send(Method::GET, "/metrics", None, None)
        .await
        .unwrap();
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(
        metrics.contains(r#"latchkey_webhook_attempts_total{outcome="retry"} 3"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"latchkey_webhook_attempts_total{outcome="delivered"} 1"#),
        "{metrics}"
    );
}

/// The outbox row is written with the change: a CA killed with SIGKILL after the change and
/// before any delivery sends the message once it is started again.
#[tokio::test]
async fn a_ca_killed_before_delivering_delivers_after_its_restart() {
    let mut ca = Ca::start();
    let receiver = acme_with_receiver(&ca, &[], "key.issued,key.revoked").await;
    receiver.hold(true);
    let key = ca
        .enroll_into("alice@acme", &["read:metrics"], "laptop")
        .await
        .key;
    ca.admin().revoke_key(None, &key.id, None).await.unwrap();
    // Both messages were tried (and refused) before the kill: nothing was delivered.
    receiver
        .wait_for("an attempt at each message", |r| {
            let ids: std::collections::BTreeSet<String> =
                r.iter().map(|r| r["id"].to_string()).collect();
            ids.len() == 2
        })
        .await;
    ca.stop(); // SIGKILL
    assert!(receiver.delivered().is_empty());

    receiver.hold(false);
    ca.restart();
    let requests = receiver
        .wait_for("both messages delivered", |r| {
            r.iter().filter(|r| r["answer"] == 204).count() >= 2
        })
        .await;
    assert_signed(&requests);
    let messages = by_type(&receiver.delivered());
    assert_eq!(
        messages.keys().collect::<Vec<_>>(),
        ["key.issued", "key.revoked"]
    );
    assert_eq!(messages["key.revoked"]["data"]["reason"], "unspecified");
}

/// `key.expiring` comes once at each lead time (14, 3 and 1 days before the key's end by
/// default); a key already within several lead times gets one message, for the shortest.
/// In process, on a clock the test moves.
#[tokio::test]
async fn key_expiring_comes_once_at_each_lead_time() {
    let ca = Ca::in_process(policy(time::Duration::hours(24), time::Duration::hours(1)));
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics"])
        .await;
    // The CA's clock moves days ahead: the receiver cannot hold timestamps to its own.
    let receiver = Receiver::start(&ca.path("receiver"), &["--no-clock-check"]);
    let webhook = ca
        .admin()
        .add_webhook(&NewWebhook {
            tenant: "acme".parse().unwrap(),
            url: format!("{}/hooks/latchkey", receiver.url),
            events: "key.expiring".parse().unwrap(),
            allow_http: true,
        })
        .await
        .unwrap();
    receiver.set_secret(webhook.secret.as_ref().unwrap().expose());
    let enroll = |name: &'static str, days: i64| {
        let client = ca.anonymous();
        let dir = latchkey::client::KeyDir::new(ca.path(name));
        async move {
            client
                .enroll_into(
                    &password("alice@acme"),
                    &dir,
                    KeyType::P256,
                    KeyRequest::new(name)
                        .scopes(["read:metrics"])
                        .lifetime(time::Duration::days(days)),
                )
                .await
                .unwrap()
                .key
                .id
        }
    };
    let long = enroll("long", 20).await;
    let short = enroll("short", 5).await;
    let leads_of = |requests: &[Value], key: &str| -> Vec<String> {
        requests
            .iter()
            .filter(|r| r["answer"] == 204 && r["body"]["data"]["key"] == key)
            .map(|r| r["body"]["data"]["lead"].as_str().unwrap().to_owned())
            .collect()
    };
    // The 5-day key is within 14 days at once; the 20-day key is not.
    receiver
        .wait_for("the 14d notice of the short key", |r| {
            leads_of(r, &short) == ["14d"]
        })
        .await;
    // Two days and a minute on, it is within 3 days.
    ca.advance(time::Duration::days(2) + time::Duration::minutes(1));
    receiver
        .wait_for("the 3d notice", |r| leads_of(r, &short) == ["14d", "3d"])
        .await;
    // Then within one day (the long key, 16 days left, is not yet within 14).
    ca.advance(time::Duration::days(2));
    receiver
        .wait_for("the 1d notice", |r| {
            leads_of(r, &short) == ["14d", "3d", "1d"]
        })
        .await;
    // Fifteen and a half days on, the long key has under a day left, seen for the first time
    // within any lead: one message, for the shortest. The short key has ended: nothing.
    ca.advance(time::Duration::days(15) + time::Duration::hours(12));
    let requests = receiver
        .wait_for("the long key's notice", |r| !leads_of(r, &long).is_empty())
        .await;
    assert_eq!(leads_of(&requests, &long), ["1d"]);
    assert_eq!(
        leads_of(&requests, &short),
        ["14d", "3d", "1d"],
        "each lead once"
    );
    assert_signed(&requests);
    let message = requests
        .iter()
        .find(|r| r["body"]["data"]["key"] == long.as_str())
        .unwrap();
    assert_eq!(message["body"]["type"], "key.expiring");
    assert!(message["body"]["data"]["expires_at"].as_str().is_some());
}

/// Two replicas on one PostgreSQL database both run the worker; each message is delivered
/// once (the claims exclude each other), whichever replica sends it.
#[tokio::test]
async fn two_replicas_deliver_each_message_once() {
    let Some(pg) = PgSchema::create("webhooks::two_replicas_deliver_each_message_once").await
    else {
        return;
    };
    let ca = Ca::start_on(&pg.url);
    let _replica = ca.replica();
    let receiver = acme_with_receiver(&ca, &[], "key.issued").await;
    const KEYS: usize = 12;
    for i in 0..KEYS {
        ca.enroll_into("alice@acme", &["read:metrics"], &format!("key{i}"))
            .await;
    }
    let requests = receiver
        .wait_for("every message", |r| r.len() >= KEYS)
        .await;
    assert_signed(&requests);
    // A moment more for a duplicate to show, if the claims let one through.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let requests = receiver.requests();
    let mut ids: Vec<&Value> = requests.iter().map(|r| &r["id"]).collect();
    ids.sort_by_key(|v| v.to_string());
    ids.dedup();
    assert_eq!((ids.len(), requests.len()), (KEYS, KEYS), "{requests:#?}");
}
