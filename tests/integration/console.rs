//! Issue 15 points 1 and 2: the admin console at `/ui/`, driven in headless Chromium with the
//! admin certificate imported from the PKCS#12 `latchkey export` writes: find a key, revoke
//! it, see it revoked, see a bulk revocation's preview count and make it, make an enrollment
//! token and enroll with it; every page is saved to `target/ui-screenshots/` for a person to
//! look at. With a key certificate, or none, every `/ui/` path is 403; a change without the
//! session's form token or from another origin is refused and changes nothing (curl).

use std::path::{Path, PathBuf};
use std::process::Command;

use latchkey::api::KeyQuery;

use crate::support::browser::{self, Browser};
use crate::support::{Ca, PASSWORD};

const P12_PASSWORD: &str = "console-p12-pass";

fn screenshots() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/ui-screenshots")
}

/// acme with alice (two keys) and bob (two keys); globex with carol (one key).
async fn populated() -> Ca {
    populate(Ca::start()).await
}

async fn populate(ca: Ca) -> Ca {
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics", "write:events"])
        .await;
    ca.user("bob@acme", &["read:metrics"]).await;
    ca.tenant_with_user("globex", "carol@globex", &["read:metrics"])
        .await;
    ca.enroll_into("alice@acme", &["read:metrics"], "laptop")
        .await;
    ca.enroll_into("alice@acme", &["write:events"], "ci").await;
    ca.enroll_into("bob@acme", &["read:metrics"], "bob-1").await;
    ca.enroll_into("bob@acme", &["read:metrics"], "bob-2").await;
    ca.enroll_into("carol@globex", &["read:metrics"], "carol")
        .await;
    ca
}

/// The admin certificate as the PKCS#12 file a person imports into a browser.
fn admin_p12(ca: &Ca) -> PathBuf {
    let out = ca.cli_with_env(
        &["export", "--dir", "certs/admin", "--p12", "admin.p12"],
        &[("LATCHKEY_P12_PASSWORD", P12_PASSWORD)],
    );
    assert!(
        out.status.success(),
        "latchkey export --p12: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    ca.path("admin.p12")
}

#[tokio::test]
async fn console_in_chromium_finds_revokes_previews_and_makes_a_token() {
    let test = "console_in_chromium_finds_revokes_previews_and_makes_a_token";
    if !browser::available(test) {
        return;
    }
    let ca = populated().await;
    let p12 = admin_p12(&ca);
    let browser = Browser::start(&ca.url, &p12, P12_PASSWORD, &ca.home().join("ca.pem"));
    let shots = screenshots();
    let ui = |path: &str| format!("{}{path}", ca.url);

    // Tenants, with their keys counted.
    browser.open(&ui("/ui/"));
    let text = browser.text();
    assert!(text.contains("Tenants"), "{text}");
    let acme = browser.element_text(&browser.find("tbody tr:first-child"));
    assert!(acme.starts_with("acme 4 0 0"), "acme's row: {acme}");
    browser.screenshot(&shots, "tenants");

    // A tenant's users and their grants.
    browser.click("a[href='/ui/tenants/acme']");
    let text = browser.text();
    assert!(text.contains("alice@acme"), "{text}");
    assert!(text.contains("read:metrics write:events"), "{text}");
    browser.screenshot(&shots, "tenant");

    // Find alice's keys by owner, then one by name.
    browser.click("nav a[href='/ui/keys']");
    browser.fill("input[name=tenant]", "acme");
    browser.fill("input[name=owner]", "alice");
    browser.click("form.search button");
    let listed = browser.text();
    assert!(
        listed.contains("laptop") && listed.contains("ci"),
        "{listed}"
    );
    assert!(!listed.contains("bob-1"), "{listed}");
    browser.screenshot(&shots, "keys");
    browser.fill("input[name=name]", "laptop");
    browser.click("form.search button");
    let laptop = ca
        .admin()
        .list_keys(
            None,
            &KeyQuery {
                name: Some("laptop".into()),
                ..KeyQuery::default()
            },
        )
        .await
        .unwrap()
        .keys;
    assert_eq!(laptop.len(), 1);
    let laptop = &laptop[0];
    assert!(browser.text().contains(laptop.id.as_str()));
    assert!(
        !browser.text().contains("ci "),
        "the name filter keeps laptop alone"
    );

    // By serial (as `openssl x509 -serial` prints it: upper case), straight to the key.
    browser.open(&ui("/ui/keys"));
    let serial = laptop.certificates[0].serial.to_uppercase();
    browser.fill("input[name=find]", &serial);
    browser.click("form.search button");
    browser.click(&format!("a[href='/ui/keys/{}']", laptop.id));
    assert!(browser.url().ends_with(&format!("/ui/keys/{}", laptop.id)));
    let detail = browser.text();
    assert!(detail.contains(&laptop.certificates[0].serial), "{detail}");
    assert!(detail.contains("key.issue"), "the audit trail: {detail}");
    assert_eq!(browser.element_text(&browser.find("#status")), "active");
    browser.screenshot(&shots, "key");

    // Revoke it: the confirmation first, then the key's page says revoked.
    browser.click("a.button.danger");
    assert!(browser.text().contains("A revoked key cannot be used"));
    browser.choose("select[name=reason]", "key_compromise");
    browser.screenshot(&shots, "revoke-confirm");
    browser.click("#confirm");
    assert!(
        browser.url().ends_with(&format!("/ui/keys/{}", laptop.id)),
        "{}: {}",
        browser.url(),
        browser.text()
    );
    assert_eq!(browser.element_text(&browser.find("#status")), "revoked");
    assert!(browser.text().contains("key.revoke"), "{}", browser.text());
    browser.screenshot(&shots, "key-revoked");
    let shown = ca.admin().key(None, &laptop.id).await.unwrap();
    assert_eq!(shown.status, latchkey::api::KeyStatus::Revoked);
    let audit = ca
        .admin()
        .audit(&[("target", laptop.id.clone())])
        .await
        .unwrap();
    let revoke = audit
        .events
        .iter()
        .find(|e| e.action == "key.revoke")
        .expect("the console's revocation is in the audit log");
    assert!(revoke.actor.starts_with("admin:"), "{revoke:?}");
    assert_eq!(revoke.detail["reason"], "key_compromise", "{revoke:?}");

    // Bulk: bob's keys. The preview counts them (2 keys, 2 certificates) and changes nothing.
    browser.open(&ui("/ui/tenants/acme"));
    browser.click("a[href='/ui/revocations?tenant=acme&owner=bob']");
    let facts = browser.element_text(&browser.find("#facts"));
    assert!(
        facts.contains("This revokes 2 keys and 2 certificates"),
        "{facts}"
    );
    browser.screenshot(&shots, "bulk-preview");
    let bob_active = KeyQuery {
        tenant: Some("acme".parse().unwrap()),
        owner: Some("bob".parse().unwrap()),
        status: Some(latchkey::api::KeyStatus::Active),
        ..KeyQuery::default()
    };
    assert_eq!(
        ca.admin()
            .list_keys(None, &bob_active)
            .await
            .unwrap()
            .keys
            .len(),
        2,
        "the preview revoked nothing"
    );
    browser.click("#confirm");
    let facts = browser.element_text(&browser.find("#facts"));
    assert!(
        facts.contains("Revoked 2 keys and 2 certificates"),
        "{facts}"
    );
    browser.screenshot(&shots, "bulk-done");
    assert!(
        ca.admin()
            .list_keys(None, &bob_active)
            .await
            .unwrap()
            .keys
            .is_empty()
    );
    // The tenants page counts what is left: alice's ci key active, three revoked.
    browser.open(&ui("/ui/"));
    let acme = browser.element_text(&browser.find("tbody tr:first-child"));
    assert!(acme.starts_with("acme 1 0 3"), "acme's row: {acme}");

    // An enrollment token: asked for, confirmed, shown once with its copy button, and it
    // enrolls a key.
    browser.open(&ui("/ui/tenants/acme"));
    browser.fill("input[name=owner]", "build-bot");
    browser.fill("input[name=scopes]", "write:events");
    browser.fill("input[name=ttl]", "2h");
    browser.click("form.inline button");
    assert!(
        browser
            .text()
            .contains("New enrollment token for build-bot@acme")
    );
    browser.click("#confirm");
    let secret = browser.element_text(&browser.find("#token"));
    assert!(secret.starts_with("lkt_"), "{secret}");
    browser.find("button[data-copy=token]");
    browser.screenshot(&shots, "token");
    let pair = latchkey::client::new_key_pair(latchkey::client::KeyType::P256).unwrap();
    let enrolled = ca
        .anonymous()
        .enroll(
            &latchkey::client::Auth::Token(secret.clone()),
            &crate::support::request(&pair.csr_pem, &["write:events"], "from-console"),
        )
        .await
        .expect("the console's token enrolls a key");
    assert_eq!(enrolled.key.owner, "build-bot");

    // The audit log, filtered by action.
    browser.open(&ui("/ui/audit"));
    browser.choose("select[name=action]", "key.revoke_bulk");
    browser.click("form.search button");
    let text = browser.element_text(&browser.find("table.events tbody"));
    assert!(
        text.contains("key.revoke_bulk") && !text.contains("key.issue"),
        "{text}"
    );
    browser.screenshot(&shots, "audit");
    browser.open(&ui("/ui/audit"));
    browser.screenshot(&shots, "audit-all");
}

/// curl against the CA: `args` then the URL; returns (status, headers and body).
fn curl(ca: &Ca, identity: Option<&str>, args: &[&str], path: &str) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.current_dir(ca.dir.path())
        .args(["-s", "-i", "--cacert", "certs/ca.pem"]);
    if let Some(dir) = identity {
        cmd.args([
            "--cert",
            &format!("{dir}/cert.pem"),
            "--key",
            &format!("{dir}/key.pem"),
        ]);
    }
    let out = cmd
        .args(args)
        .arg(format!("{}{path}", ca.url))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP answer from curl: {text}"));
    (status, text)
}

#[tokio::test]
async fn console_refuses_key_certificates_strangers_and_forged_changes() {
    refuses_strangers_and_forgeries(populated().await).await;
}

/// The same on PostgreSQL, with the pages that read what the console added to the store
/// (counts, the bulk preview, search by name and serial, a key's audit trail).
#[tokio::test]
async fn console_reads_and_refuses_the_same_on_postgresql() {
    let test = "console_reads_and_refuses_the_same_on_postgresql";
    let Some(schema) = crate::support::PgSchema::create(test).await else {
        return;
    };
    let ca = populate(Ca::start_on(&schema.url)).await;
    let admin = Some("certs/admin");
    let (status, page) = curl(&ca, admin, &[], "/ui/");
    assert_eq!(status, 200, "{page}");
    let acme = page.split("/ui/tenants/acme").nth(1).unwrap_or_default();
    assert!(acme.contains("status=active\">4</a>"), "{page}");
    let (_, page) = curl(&ca, admin, &[], "/ui/revocations?tenant=acme&owner=bob");
    assert!(
        page.contains("This revokes 2 keys and 2 certificates"),
        "{page}"
    );
    let (_, page) = curl(&ca, admin, &[], "/ui/keys?name=laptop");
    assert!(page.contains("laptop") && !page.contains("bob-1"), "{page}");
    let keys = ca
        .admin()
        .list_keys(None, &KeyQuery::default())
        .await
        .unwrap()
        .keys;
    let carol = keys.iter().find(|k| k.name == "carol").unwrap();
    let (_, page) = curl(
        &ca,
        admin,
        &[],
        &format!("/ui/keys?find={}", carol.certificates[0].serial),
    );
    assert!(
        page.contains(&carol.id) && !page.contains("laptop"),
        "{page}"
    );
    let (_, page) = curl(&ca, admin, &[], &format!("/ui/keys/{}", carol.id));
    assert!(page.contains("key.issue"), "{page}");
    refuses_strangers_and_forgeries(ca).await;
}

async fn refuses_strangers_and_forgeries(ca: Ca) {
    let laptop = ca.path("laptop");
    let laptop = laptop.to_str().unwrap();
    let key_id = ca
        .admin()
        .list_keys(None, &KeyQuery::default())
        .await
        .unwrap()
        .keys[0]
        .id
        .to_string();
    let paths = [
        "/ui".to_owned(),
        "/ui/".to_owned(),
        "/ui/tenants/acme".to_owned(),
        "/ui/keys?owner=alice".to_owned(),
        format!("/ui/keys/{key_id}"),
        format!("/ui/keys/{key_id}/revoke"),
        "/ui/revocations?tenant=acme".to_owned(),
        "/ui/tokens/new?tenant=acme&owner=x&scopes=a:b".to_owned(),
        "/ui/audit".to_owned(),
        "/ui/static/console.js".to_owned(),
        "/ui/no-such-page".to_owned(),
    ];
    for path in &paths {
        for identity in [Some(laptop), None] {
            let (status, answer) = curl(&ca, identity, &[], path);
            assert_eq!(status, 403, "{path} with {identity:?}: {answer}");
            assert!(answer.contains("text/html"), "{answer}");
        }
        // Nor with a user's password.
        let (status, _) = curl(&ca, None, &["-u", &format!("alice@acme:{PASSWORD}")], path);
        assert_eq!(status, 403, "{path} with a password");
    }
    let before = ca.snapshot().await;
    let bulk = ["--data", "tenant=acme&reason=unspecified&csrf=x"];
    let origin = format!("Origin: {}", ca.url);
    let (status, _) = curl(
        &ca,
        Some(laptop),
        &["-H", &origin, bulk[0], bulk[1]],
        "/ui/revocations",
    );
    assert_eq!(status, 403, "a key certificate cannot post");

    // The admin certificate, but no session cookie / a wrong token / another origin / none.
    let admin = Some("certs/admin");
    let (status, page) = curl(&ca, admin, &[], "/ui/");
    assert_eq!(status, 200, "{page}");
    for header in [
        "content-security-policy: default-src 'none'; script-src 'self'",
        "x-frame-options: deny",
        "cache-control: no-store",
    ] {
        assert!(
            page.to_ascii_lowercase().contains(header),
            "{header}: {page}"
        );
    }
    let cookie_line = page
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .expect("a session cookie");
    for attribute in [
        "__Host-latchkey-console=",
        "Secure",
        "HttpOnly",
        "SameSite=Strict",
        "Path=/",
    ] {
        assert!(
            cookie_line.contains(attribute),
            "{attribute}: {cookie_line}"
        );
    }
    let token = cookie_line
        .split_once('=')
        .unwrap()
        .1
        .split(';')
        .next()
        .unwrap()
        .trim()
        .to_owned();
    let cookie = format!("Cookie: __Host-latchkey-console={token}");
    let good = format!("tenant=acme&reason=unspecified&csrf={token}");
    let forged = [
        // No token in the form.
        vec![
            "-H",
            &origin,
            "-H",
            &cookie,
            "--data",
            "tenant=acme&reason=unspecified",
        ],
        // The cookie's token but another origin.
        vec![
            "-H",
            "Origin: https://evil.example",
            "-H",
            &cookie,
            "--data",
            &good,
        ],
        // No origin at all.
        vec!["-H", &cookie, "--data", &good],
        // The form's token without the cookie (another site cannot send it).
        vec!["-H", &origin, "--data", &good],
    ];
    for args in &forged {
        let (status, answer) = curl(&ca, admin, args, "/ui/revocations");
        assert_eq!(status, 403, "{args:?}: {answer}");
    }
    assert_eq!(
        ca.snapshot().await,
        before,
        "a refused change changed nothing"
    );
    // The same form with the cookie, its token and this origin does what it says.
    let (status, answer) = curl(
        &ca,
        admin,
        &["-H", &origin, "-H", &cookie, "--data", &good],
        "/ui/revocations",
    );
    assert_eq!(status, 200, "{answer}");
    assert!(
        answer.contains("Revoked 4 keys and 4 certificates"),
        "{answer}"
    );
}
