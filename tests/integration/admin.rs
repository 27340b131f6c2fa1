//! The admin API: only an administrator certificate opens it.

use http::Method;
use latchkey::api::{NewTenant, Problem};

use crate::support::{Ca, PASSWORD, password, problem_code};

const ADMIN_ROUTES: [(Method, &str, &str); 15] = [
    // What does not exist under /v1/admin is no different from outside: the wall comes first.
    (Method::GET, "/v1/admin/no-such-thing", ""),
    (Method::DELETE, "/v1/admin/tenants", ""),
    (Method::GET, "/v1/admin", ""),
    (Method::GET, "/v1/admin/tenants", ""),
    (Method::POST, "/v1/admin/tenants", r#"{"name":"evil"}"#),
    (
        Method::POST,
        "/v1/admin/users",
        r#"{"user":"eve@acme","password":"long-enough-pw","scopes":["read:metrics"]}"#,
    ),
    (Method::GET, "/v1/admin/tenants/acme/users", ""),
    (
        Method::POST,
        "/v1/admin/tokens",
        r#"{"owner":"eve@acme","scopes":["read:metrics"]}"#,
    ),
    (Method::GET, "/v1/admin/tokens", ""),
    (Method::DELETE, "/v1/admin/tokens/1", ""),
    (
        Method::PATCH,
        "/v1/admin/tenants/acme",
        r#"{"disabled":true}"#,
    ),
    (
        Method::PATCH,
        "/v1/admin/users/alice@acme",
        r#"{"scopes":["admin:all"]}"#,
    ),
    (
        Method::POST,
        "/v1/admin/revocations",
        r#"{"tenant":"acme"}"#,
    ),
    (Method::GET, "/v1/admin/audit", ""),
    (Method::GET, "/v1/admin/audit?tenant=acme", ""),
];

#[tokio::test]
async fn a_key_certificate_a_password_or_nothing_never_reaches_an_admin_route() {
    let ca = Ca::start();
    // A key with every scope it could hold, admin-sounding ones included.
    let scopes = ["read:metrics", "admin:all", "write:everything"];
    ca.tenant_with_user("acme", "alice@acme", &scopes).await;
    ca.enroll_into("alice@acme", &scopes, "alice").await;
    let before = ca.snapshot().await;
    let key = ca.raw(Some(&ca.path("alice")));
    let anonymous = ca.raw(None);
    for (method, path, body) in ADMIN_ROUTES {
        let body = (!body.is_empty()).then(|| body.as_bytes().to_vec());
        let cases = [
            ("key certificate", &key, None, 403, "admin_required"),
            (
                "password",
                &anonymous,
                Some(password("alice@acme")),
                403,
                "admin_required",
            ),
            ("nothing", &anonymous, None, 401, "unauthenticated"),
        ];
        for (who, conn, auth, status, code) in cases {
            let (got, bytes) = conn
                .send(method.clone(), path, auth.as_ref(), body.clone())
                .await
                .unwrap();
            let problem: Problem = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(
                (got.as_u16(), problem.code.as_str()),
                (status, code),
                "{who} on {method} {path}"
            );
        }
    }
    // The wall stands before the body is read: no schema details leak to outsiders.
    let (status, bytes) = anonymous
        .send(
            Method::POST,
            "/v1/admin/tenants",
            None,
            Some(b"{not json".to_vec()),
        )
        .await
        .unwrap();
    let problem: Problem = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(
        (status.as_u16(), problem.code.as_str()),
        (401, "unauthenticated")
    );
    assert_eq!(ca.snapshot().await, before);
    // The admin, past the wall, finds those paths and methods really do not exist.
    let admin = ca.raw(Some(&ca.home().join("admin")));
    for (method, path, status) in [
        (Method::GET, "/v1/admin/no-such-thing", 404),
        (Method::DELETE, "/v1/admin/tenants", 405),
        (Method::GET, "/v1/admin", 404),
    ] {
        let (got, _) = admin.send(method.clone(), path, None, None).await.unwrap();
        assert_eq!(got.as_u16(), status, "admin on {method} {path}");
    }
}

/// POSTs `body` with the admin certificate; a refusal is the problem document, as the
/// client gives it.
async fn admin_post(
    ca: &Ca,
    path: &str,
    body: serde_json::Value,
) -> Result<serde_json::Value, latchkey::client::ClientError> {
    let (status, bytes) = ca
        .raw(Some(&ca.home().join("admin")))
        .send(
            Method::POST,
            path,
            None,
            Some(serde_json::to_vec(&body).unwrap()),
        )
        .await
        .unwrap();
    if status.is_success() {
        Ok(serde_json::from_slice(&bytes).unwrap())
    } else {
        Err(latchkey::client::ClientError::Problem(
            serde_json::from_slice(&bytes).unwrap(),
        ))
    }
}

#[tokio::test]
async fn admin_input_is_checked() {
    let ca = Ca::start();
    let admin = ca.admin();
    admin
        .add_tenant(&NewTenant {
            name: "acme".parse().unwrap(),
            max_key_days: None,
            dedicated_issuer: false,
        })
        .await
        .unwrap();
    let before = ca.snapshot().await;
    // The API's typed requests cannot hold a malformed name or scope, so these requests
    // are written as raw JSON: what the CA answers to them is the point.
    let add = |name: &str, days: Option<i64>| {
        admin_post(
            &ca,
            "/v1/admin/tenants",
            serde_json::json!({ "name": name, "max_key_days": days }),
        )
    };
    assert_eq!(
        problem_code(add("acme", None).await.unwrap_err()),
        "already_exists"
    );
    assert_eq!(
        problem_code(add("Bad Name", None).await.unwrap_err()),
        "invalid_name"
    );
    assert_eq!(
        problem_code(add("long", Some(181)).await.unwrap_err()),
        "ttl_out_of_range"
    );
    assert_eq!(
        problem_code(add("zero", Some(0)).await.unwrap_err()),
        "ttl_out_of_range"
    );
    let user = |u: &str, pw: &str, scopes: &[&str]| {
        admin_post(
            &ca,
            "/v1/admin/users",
            serde_json::json!({ "user": u, "password": pw, "scopes": scopes }),
        )
    };
    assert_eq!(
        problem_code(user("alice@nowhere", PASSWORD, &["a:b"]).await.unwrap_err()),
        "not_found"
    );
    assert_eq!(
        problem_code(user("alice@acme", "short", &["a:b"]).await.unwrap_err()),
        "weak_password"
    );
    assert_eq!(
        problem_code(user("alice@acme", PASSWORD, &["a:*"]).await.unwrap_err()),
        "invalid_scope"
    );
    assert_eq!(
        problem_code(user("alice", PASSWORD, &["a:b"]).await.unwrap_err()),
        "invalid_name"
    );
    let token = |owner: &str, ttl: Option<i64>| {
        let admin = admin.clone();
        let req = latchkey::api::NewToken {
            owner: owner.parse().unwrap(),
            scopes: crate::support::scope_set(&["a:b"]),
            ttl_seconds: ttl,
        };
        async move { admin.create_token(&req).await }
    };
    assert_eq!(
        problem_code(token("bot@nowhere", None).await.unwrap_err()),
        "not_found"
    );
    assert_eq!(
        problem_code(token("bot@acme", Some(-1)).await.unwrap_err()),
        "ttl_out_of_range"
    );
    assert_eq!(
        ca.snapshot().await,
        before,
        "refused admin requests change nothing"
    );

    user("alice@acme", PASSWORD, &["a:b"]).await.unwrap();
    assert_eq!(
        problem_code(user("alice@acme", PASSWORD, &["a:b"]).await.unwrap_err()),
        "already_exists"
    );
    let users = admin.users("acme").await.unwrap();
    assert_eq!(users.len(), 1);
    assert_eq!(users[0].user, "alice@acme");
    let out = ca.cli(&["tenant", "add", "acme"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("already_exists") && stderr.trim().lines().count() == 1,
        "{stderr}"
    );
}

#[tokio::test]
async fn every_admin_action_is_audited_in_the_same_transaction() {
    let ca = Ca::start();
    let start = ca.counts().await["audit_events"];
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics"])
        .await;
    ca.token("bot@acme", &["read:metrics"]).await;
    ca.enroll_into("alice@acme", &["read:metrics"], "alice")
        .await;
    assert_eq!(ca.counts().await["audit_events"], start + 4);
}

/// A leaked admin certificate is rotated out with `latchkey rotate-admin` on the CA host:
/// the old one stops working at once on the running CA and is in the next CRL.
#[tokio::test]
async fn rotating_the_admin_certificate_shuts_out_the_old_one() {
    let mut ca = Ca::start();
    let leaked = ca.path("leaked");
    std::fs::create_dir(&leaked).unwrap();
    for file in ["chain.pem", "key.pem"] {
        std::fs::copy(ca.home().join("admin").join(file), leaked.join(file)).unwrap();
    }
    let old_serial = {
        let pem = std::fs::read(leaked.join("chain.pem")).unwrap();
        let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
        hex::encode(pem.parse_x509().unwrap().raw_serial())
    };
    ca.with_identity(&leaked)
        .tenants()
        .await
        .expect("works before the rotation");

    let out = ca.cli(&["rotate-admin"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("every earlier one is revoked"), "{stdout}");

    only_the_new_admin_certificate_works(&ca, &leaked).await;

    // The running CA learns from the store that `rotate-admin` (another process) revoked,
    // and lists the old certificate in its next CRL without a restart.
    let listed = |der: &[u8]| {
        let (_, crl) = x509_parser::parse_x509_crl(der).unwrap();
        crl.iter_revoked_certificates()
            .any(|r| hex::encode(r.raw_serial()) == old_serial)
    };
    let client = ca.anonymous();
    let (mut number, mut der) = client.crl(None, 0).await.unwrap().unwrap();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while !listed(&der) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the running CA did not list the superseded admin certificate"
        );
        if let Some(newer) = client.crl(Some(number), 2).await.unwrap() {
            (number, der) = newer;
        }
    }

    // A restart serves the CRL from the store, which lists the superseded certificate.
    ca.restart();
    let (_, der) = ca.anonymous().crl(None, 0).await.unwrap().unwrap();
    let (_, crl) = x509_parser::parse_x509_crl(&der).unwrap();
    assert!(
        crl.iter_revoked_certificates()
            .any(|r| hex::encode(r.raw_serial()) == old_serial),
        "the old admin certificate is not in the CRL"
    );
    only_the_new_admin_certificate_works(&ca, &leaked).await;
}

async fn only_the_new_admin_certificate_works(ca: &Ca, old: &std::path::Path) {
    let refused = ca.with_identity(old).tenants().await.unwrap_err();
    assert_eq!(problem_code(refused), "invalid_certificate");
    ca.admin()
        .tenants()
        .await
        .expect("the new admin certificate");
}

/// Runs the CLI with `--json` and parses what it printed.
fn cli_json<T: serde::de::DeserializeOwned>(ca: &Ca, args: &[&str]) -> T {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = ca.cli_with_env(&all, &[("LATCHKEY_PASSWORD", PASSWORD)]);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// Every admin action of the CLI, each checked by what it changed, on both stores.
#[tokio::test]
async fn every_admin_action_works_from_the_cli_on_sqlite() {
    every_admin_action_works_from_the_cli(Ca::start()).await;
}

#[tokio::test]
async fn every_admin_action_works_from_the_cli_on_postgres() {
    let Some(pg) =
        crate::support::PgSchema::create("every_admin_action_works_from_the_cli_on_postgres").await
    else {
        return;
    };
    every_admin_action_works_from_the_cli(Ca::start_on(&pg.url)).await;
}

async fn every_admin_action_works_from_the_cli(ca: Ca) {
    use latchkey::api::{AuditPage, TenantInfo, TokenInfo, UserInfo};
    let run = |args: &[&str]| {
        let out = ca.cli_with_env(args, &[("LATCHKEY_PASSWORD", PASSWORD)]);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let started = time::OffsetDateTime::now_utc();
    run(&["tenant", "add", "acme", "--max-key-days", "30"]);
    run(&["tenant", "add", "globex"]);
    run(&["tenant", "set", "globex", "--max-key-days", "7"]);
    run(&["tenant", "disable", "globex"]);
    let tenants: Vec<TenantInfo> = cli_json(&ca, &["tenant", "list"]);
    let summary: Vec<_> = tenants
        .iter()
        .map(|t| (t.name.as_str(), t.max_key_days, t.disabled))
        .collect();
    assert_eq!(summary, [("acme", 30, false), ("globex", 7, true)]);
    run(&["tenant", "enable", "globex"]);
    let tenants: Vec<TenantInfo> = cli_json(&ca, &["tenant", "list"]);
    assert!(tenants.iter().all(|t| !t.disabled));

    run(&["user", "add", "alice@acme", "--scopes", "read:metrics"]);
    run(&["user", "add", "bob@acme", "--scopes", "read:metrics"]);
    run(&[
        "user",
        "grants",
        "bob@acme",
        "--scopes",
        "read:metrics,write:events",
    ]);
    run(&["user", "disable", "alice@acme"]);
    let users: Vec<UserInfo> = cli_json(&ca, &["user", "list", "--tenant", "acme"]);
    let summary: Vec<_> = users
        .iter()
        .map(|u| (u.user.as_str(), u.scopes.join(","), u.disabled))
        .collect();
    assert_eq!(
        summary,
        [
            ("alice@acme", "read:metrics".to_owned(), true),
            ("bob@acme", "read:metrics,write:events".to_owned(), false),
        ]
    );
    // Disabled means no new keys; enabled again, alice enrolls.
    let enroll = |out: &str| {
        ca.cli_with_env(
            &[
                "enroll",
                "--user",
                "alice@acme",
                "--scopes",
                "read:metrics",
                "--name",
                out,
                "--out",
                out,
            ],
            &[("LATCHKEY_PASSWORD", PASSWORD)],
        )
    };
    let refused = enroll("while-disabled");
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("disabled"),
        "{refused:?}"
    );
    run(&["user", "enable", "alice@acme"]);
    let enrolled = enroll("enabled");
    assert!(enrolled.status.success(), "{enrolled:?}");

    let created: TokenInfo = cli_json(
        &ca,
        &[
            "token",
            "create",
            "--owner",
            "bot@acme",
            "--scopes",
            "read:metrics",
        ],
    );
    let secret = created.token.expect("the secret, once").into_inner();
    let tokens: Vec<TokenInfo> = cli_json(&ca, &["token", "list", "--tenant", "acme"]);
    assert_eq!(tokens.len(), 1);
    assert!(tokens[0].token.is_none(), "a listed token has no secret");
    assert_eq!(tokens[0].status, latchkey::api::TokenStatus::Unused);
    run(&["token", "revoke", &tokens[0].id.to_string()]);
    let tokens: Vec<TokenInfo> = cli_json(&ca, &["token", "list"]);
    assert_eq!(tokens[0].status, latchkey::api::TokenStatus::Revoked);
    let err = ca
        .anonymous()
        .enroll(
            &latchkey::client::Auth::Token(secret),
            &crate::support::request(&crate::support::csr(), &[], "bot"),
        )
        .await
        .unwrap_err();
    assert_eq!(problem_code(err), "invalid_token");

    // The audit log, filtered every way.
    let all: AuditPage = cli_json(&ca, &["audit", "--limit", "200"]);
    assert!(all.events.len() >= 12, "{}", all.events.len());
    // Grants for bob, disable and enable for alice.
    let page: AuditPage = cli_json(&ca, &["audit", "--action", "user.change"]);
    assert_eq!(page.events.len(), 3);
    assert!(page.events.iter().all(|e| e.action == "user.change"));
    let page: AuditPage = cli_json(&ca, &["audit", "--actor", "user:alice@acme"]);
    assert!(!page.events.is_empty());
    assert!(page.events.iter().all(|e| e.actor == "user:alice@acme"));
    let page: AuditPage = cli_json(&ca, &["audit", "--tenant", "globex"]);
    assert!(
        page.events
            .iter()
            .all(|e| e.tenant.as_deref() == Some("globex"))
    );
    assert!(page.events.len() >= 4, "add, set, disable, enable");
    let before_start = (started - time::Duration::minutes(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let after_now = (time::OffsetDateTime::now_utc() + time::Duration::minutes(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let page: AuditPage = cli_json(&ca, &["audit", "--until", &before_start]);
    assert!(page.events.iter().all(|e| e.at < started));
    let page: AuditPage = cli_json(&ca, &["audit", "--since", &after_now]);
    assert!(page.events.is_empty());
    let page: AuditPage = cli_json(
        &ca,
        &[
            "audit",
            "--since",
            &before_start,
            "--until",
            &after_now,
            "--limit",
            "200",
        ],
    );
    assert_eq!(page.events.len(), all.events.len());
    // Paging: two at a time, following the cursor, gives the same events.
    let mut paged = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut args = vec!["audit", "--limit", "2"];
        if let Some(c) = &cursor {
            args.extend(["--cursor", c.as_str()]);
        }
        let page: AuditPage = cli_json(&ca, &args);
        paged.extend(page.events.iter().map(|e| e.id));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(paged, all.events.iter().map(|e| e.id).collect::<Vec<_>>());
}

/// Without `LATCHKEY_PASSWORD`, `user add` asks on the terminal, twice, without echo; the
/// password typed there is the one that works.
#[tokio::test]
async fn a_password_is_asked_for_without_echo_on_a_terminal() {
    let ca = Ca::start();
    ca.admin()
        .add_tenant(&NewTenant {
            name: "acme".parse().unwrap(),
            max_key_days: None,
            dedicated_issuer: false,
        })
        .await
        .unwrap();
    let typed = "typed-at-the-prompt-4711";
    // A pseudo-terminal from Python's standard library: the CLI sees a real tty.
    let driver = r#"
import os, pty, sys, termios, time
typed, argv = sys.argv[1], sys.argv[2:]

def echo_off(fd, seconds=5.0):
    # The prompt is printed before echo is switched off: answer only once it is off (or
    # give up waiting, and let the echo show).
    end = time.time() + seconds
    while time.time() < end:
        if not termios.tcgetattr(fd)[3] & termios.ECHO:
            return
        time.sleep(0.01)

pid, fd = pty.fork()
if pid == 0:
    os.execv(argv[0], argv)
seen, prompts = b"", 0
while True:
    try:
        chunk = os.read(fd, 1024)
    except OSError:
        break
    if not chunk:
        break
    seen += chunk
    if seen.count(b":") > prompts and seen.rstrip().endswith(b":"):
        prompts = seen.count(b":")
        echo_off(fd)
        os.write(fd, typed.encode() + b"\n")
_, status = os.waitpid(pid, 0)
sys.stdout.write(seen.decode(errors="replace"))
sys.exit(os.waitstatus_to_exitcode(status))
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", driver, typed, crate::support::BIN])
        .args(["user", "add", "carol@acme", "--scopes", "read:metrics"])
        .current_dir(ca.dir.path())
        .env("LATCHKEY_SERVER", &ca.url)
        .env("LATCHKEY_HOME", ca.home())
        .env_remove("LATCHKEY_PASSWORD")
        .output()
        .expect("python3");
    let terminal = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{terminal}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(terminal.contains("again"), "asked twice: {terminal}");
    assert!(
        !terminal.contains(typed),
        "the password was echoed: {terminal}"
    );
    let auth = latchkey::client::Auth::Password {
        user: "carol@acme".into(),
        password: typed.into(),
    };
    ca.anonymous()
        .enroll(
            &auth,
            &crate::support::request(&crate::support::csr(), &["read:metrics"], "k"),
        )
        .await
        .expect("the typed password works");
}

/// Finding 12: a password is at least 12 characters, not whitespace only and free of control
/// characters, wherever one is set; each refusal is `weak_password` saying which rule.
#[tokio::test]
async fn weak_passwords_are_refused_with_the_rule_they_break() {
    let ca = Ca::start();
    let admin = ca.admin();
    admin
        .add_tenant(&NewTenant {
            name: "acme".parse().unwrap(),
            max_key_days: None,
            dedicated_issuer: false,
        })
        .await
        .unwrap();
    let before = ca.snapshot().await;
    let add = |pw: &str| {
        let admin = admin.clone();
        let req = latchkey::api::NewUser {
            user: "alice@acme".parse().unwrap(),
            password: pw.into(),
            scopes: crate::support::scope_set(&["read:metrics"]),
        };
        async move { admin.add_user(&req).await }
    };
    let refusal = |err: latchkey::client::ClientError| match err {
        latchkey::client::ClientError::Problem(p) => {
            assert_eq!(
                (p.status, p.code.as_str()),
                (422, "weak_password"),
                "{}",
                p.detail
            );
            p.detail
        }
        other => panic!("expected a problem document, got {other}"),
    };
    for (pw, rule) in [
        ("eleven-char", "12 characters"),
        ("            ", "whitespace"),
        (
            "\u{3000}\u{3000}\u{3000}\u{3000}\u{3000}\u{3000}\u{3000}\u{3000}\u{3000}\u{3000}\u{3000}\u{3000}",
            "whitespace",
        ),
        ("\0\0\0\0\0\0\0\0\0\0\0\0", "control"),
        ("\t\t\t\t\t\t\t\t\t\t\t\t", "control"),
        ("correct\thorse\tbattery", "control"),
    ] {
        let detail = refusal(add(pw).await.unwrap_err());
        assert!(detail.contains(rule), "{pw:?}: {detail}");
    }
    assert_eq!(
        ca.snapshot().await,
        before,
        "refused passwords change nothing"
    );

    // Twelve characters are enough, and the password works.
    add("twelve-chars").await.expect("a 12-character password");
    let alice = latchkey::client::Auth::Password {
        user: "alice@acme".into(),
        password: "twelve-chars".into(),
    };
    ca.anonymous()
        .list_keys(Some(&alice), &Default::default())
        .await
        .expect("the 12-character password logs in");

    // Changing a password follows the same rules.
    let before = ca.snapshot().await;
    let change = |pw: &str| latchkey::api::UserChange {
        password: Some(pw.into()),
        ..Default::default()
    };
    for pw in ["short", "            ", "\0\0\0\0\0\0\0\0\0\0\0\0"] {
        refusal(
            admin
                .change_user("alice@acme", &change(pw))
                .await
                .unwrap_err(),
        );
    }
    assert_eq!(ca.snapshot().await, before);

    // And so does the CLI: one line naming the code and the rule.
    let out = ca.cli_with_env(
        &["user", "add", "bob@acme", "--scopes", "read:metrics"],
        &[("LATCHKEY_PASSWORD", "only-eleven")],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("weak_password") && stderr.contains("12 characters"),
        "{stderr}"
    );
    let out = ca.cli_with_env(
        &["user", "reset-password", "alice@acme"],
        &[("LATCHKEY_PASSWORD", "            ")],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("weak_password"));
}

/// Finding 10: `/metrics` counts the whole CA's issuance across tenants, so it is open only
/// to the administrator certificate and to the addresses `serve --metrics-allow` names.
#[tokio::test]
async fn metrics_are_open_to_the_admin_and_allowed_addresses_only() {
    let ca = Ca::start();
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics"])
        .await;
    ca.enroll_into("alice@acme", &["read:metrics"], "alice")
        .await;
    let get = |identity: Option<std::path::PathBuf>, auth: Option<latchkey::client::Auth>| {
        let conn = ca.raw(identity.as_deref());
        async move {
            conn.send(Method::GET, "/metrics", auth.as_ref(), None)
                .await
                .unwrap()
        }
    };
    for (who, identity, auth) in [
        ("nobody", None, None),
        ("a key holder", Some(ca.path("alice")), None),
        ("a password", None, Some(password("alice@acme"))),
    ] {
        let (status, body) = get(identity, auth).await;
        let problem: Problem = serde_json::from_slice(&body)
            .unwrap_or_else(|_| panic!("{who}: {}", String::from_utf8_lossy(&body)));
        assert_eq!(
            (status.as_u16(), problem.code.as_str()),
            (403, "metrics_forbidden"),
            "{who}"
        );
        assert!(!String::from_utf8_lossy(&body).contains("latchkey_keys_issued"));
    }
    let (status, body) = get(Some(ca.home().join("admin")), None).await;
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body).contains("latchkey_keys_issued_total 1"));

    // An allowed network opens it without a certificate; another network does not.
    let allowed = Ca::start_with(&["--metrics-allow", "192.0.2.0/24,127.0.0.0/8"]);
    let (status, body) = allowed
        .raw(None)
        .send(Method::GET, "/metrics", None, None)
        .await
        .unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("latchkey_keys_issued_total"));
    let elsewhere = Ca::start_with(&["--metrics-allow", "10.0.0.0/8,::1"]);
    let (status, _) = elsewhere
        .raw(None)
        .send(Method::GET, "/metrics", None, None)
        .await
        .unwrap();
    assert_eq!(status, 403);

    // A malformed network is refused at start-up, with the value named.
    let out = std::process::Command::new(crate::support::BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--metrics-allow",
            "10.0.0.0/33",
        ])
        .env("LATCHKEY_HOME", ca.path("never-made"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("10.0.0.0/33"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !ca.path("never-made").exists(),
        "no CA made for a refused flag"
    );
}
