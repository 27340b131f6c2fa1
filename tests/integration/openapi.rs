//! The OpenAPI document, `GET /v1/openapi.json`, against the real server: anyone may fetch it
//! (with curl) and cache it; every operation it describes is routed, and answers only with
//! statuses and problem codes it lists for that operation; an independent validator
//! (`openapi-spec-validator`, PyPI) accepts it; and schemathesis (PyPI), generating requests
//! from it, finds no answer it does not describe. That every route of the router is in the
//! document is `http::tests::the_document_names_exactly_the_routers_routes` (axum lists its
//! routes only to code inside the crate).

use std::path::Path;
use std::process::Command;

use http::Method;
use latchkey::authority::Policy;
use latchkey::client::{Auth, Connection};
use serde_json::Value;

use crate::support::{Ca, password};

/// The document as curl fetches it, and the answer's headers (lower-cased names).
fn curl_document(ca: &Ca, extra: &[&str]) -> (String, Vec<u8>, String) {
    let dir = ca.dir.path();
    let out = Command::new("curl")
        .args([
            "-sS",
            "-D",
            "headers.txt",
            "-o",
            "openapi.json",
            "-w",
            "%{http_code}",
        ])
        .args(["--cacert", "certs/ca.pem"])
        .args(extra)
        .arg(format!("{}/v1/openapi.json", ca.url))
        .current_dir(dir)
        .output()
        .expect("curl");
    assert!(out.status.success(), "{out:?}");
    let headers = std::fs::read_to_string(dir.join("headers.txt")).unwrap();
    let body = std::fs::read(dir.join("openapi.json")).unwrap_or_default();
    (
        String::from_utf8(out.stdout).unwrap(),
        body,
        headers.to_ascii_lowercase(),
    )
}

fn header<'a>(headers: &'a str, name: &str) -> Option<&'a str> {
    headers.lines().find_map(|line| {
        let (n, v) = line.split_once(':')?;
        (n.trim() == name).then(|| v.trim())
    })
}

#[tokio::test]
async fn openapi_document_is_served_to_anyone_and_cacheable() {
    let ca = Ca::in_process(Policy::default());
    // No client certificate, no Authorization header.
    let (status, body, headers) = curl_document(&ca, &[]);
    assert_eq!(status, "200", "{headers}");
    assert_eq!(header(&headers, "content-type"), Some("application/json"));
    let cache = header(&headers, "cache-control").unwrap_or_default();
    assert!(
        cache.contains("public") && cache.contains("max-age="),
        "{cache}"
    );
    let document: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(document["openapi"], "3.1.0");
    let schemes = &document["components"]["securitySchemes"];
    assert_eq!(schemes["client_certificate"]["type"], "mutualTLS");
    assert_eq!(schemes["password"]["scheme"], "basic");
    assert_eq!(schemes["enrollment_token"]["scheme"], "bearer");

    // A cache holding it asks with its tag and is told to keep it.
    let etag = header(&headers, "etag").expect("an ETag").to_owned();
    let (status, _, headers) = curl_document(&ca, &["-H", &format!("If-None-Match: {etag}")]);
    assert_eq!(status, "304", "{headers}");
    assert_eq!(header(&headers, "etag"), Some(etag.as_str()));
}

/// `path` with each `{parameter}` filled with a value of the right form that names nothing.
fn concrete(path: &str) -> String {
    path.replace("{key_id}", "0123456789abcdef01234567")
        .replace("{tenant}", "nosuchtenant")
        .replace("{user}", "nobody@nosuchtenant")
        .replace("{token_id}", "999999")
        .replace("{id}", "999999")
}

/// What one operation answered, checked against what the document says it may answer: a
/// listed status, and for a problem document a code listed for that status.
fn check_answer(operation: &Value, what: &str, status: http::StatusCode, body: &[u8]) {
    let listed = &operation["responses"][status.as_str()];
    assert!(
        listed.is_object(),
        "{what}: answered {status}, which the document does not list: {}",
        String::from_utf8_lossy(body)
    );
    if status.is_client_error() || status.is_server_error() {
        let problem: Value = serde_json::from_slice(body)
            .unwrap_or_else(|_| panic!("{what}: {status} is not a problem document"));
        let codes = &listed["content"]["application/problem+json"]["schema"]["allOf"][1]["properties"]
            ["code"]["enum"];
        assert!(
            codes
                .as_array()
                .is_some_and(|codes| codes.contains(&problem["code"])),
            "{what}: answered {status} `{}`, but the document lists only {codes} there",
            problem["code"]
        );
    }
}

async fn send(
    connection: &Connection,
    auth: Option<&Auth>,
    method: &Method,
    path: &str,
    body: Option<&[u8]>,
) -> (http::StatusCode, Vec<u8>) {
    let (status, body) = connection
        .send(method.clone(), path, auth, body.map(<[u8]>::to_vec))
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    (status, body.to_vec())
}

/// Each documented path is routed (a method no route takes is 405 there, where an unrouted
/// path is the fallback's 404), each documented method on it too (not 405), and whatever
/// each kind of caller gets back — the administrator, a key's holder, a user by password,
/// an enrollment token's holder, a stranger; with no body, and with a body of the wrong
/// shape — is an answer the document lists for that operation.
#[tokio::test]
async fn every_documented_operation_is_routed_and_answers_as_documented() {
    let ca = Ca::in_process(Policy::default());
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics"])
        .await;
    ca.enroll_into("alice@acme", &["read:metrics"], "alice")
        .await;
    let token = Auth::Token(ca.token("alice@acme", &["read:metrics"]).await);
    let document: Value = serde_json::from_slice(&curl_document(&ca, &[]).1).unwrap();
    let admin = ca.raw(Some(&ca.home().join("admin")));
    let holder = ca.raw(Some(&ca.path("alice")));
    let anonymous = ca.raw(None);
    let alice = password("alice@acme");
    let callers = [
        ("the administrator", &admin, None),
        ("a key's holder", &holder, None),
        ("a user by password", &anonymous, Some(&alice)),
        ("a token's holder", &anonymous, Some(&token)),
        ("a stranger", &anonymous, None),
    ];
    let paths = document["paths"].as_object().expect("paths");
    assert!(paths.len() >= 20, "{paths:?}");
    for (template, item) in paths {
        let path = concrete(template);
        let (status, body) = send(&admin, None, &Method::TRACE, &path, None).await;
        assert_eq!(
            status,
            http::StatusCode::METHOD_NOT_ALLOWED,
            "{template} is in the document but not routed: {}",
            String::from_utf8_lossy(&body)
        );
        for (method, operation) in item.as_object().expect("path item") {
            let method: Method = method.to_uppercase().parse().unwrap();
            let wrong_shape: &[u8] = br#"{"no_such_field": 1}"#;
            let bodies: &[Option<&[u8]>] = if operation.get("requestBody").is_some() {
                &[None, Some(wrong_shape)]
            } else {
                &[None]
            };
            for (who, connection, auth) in &callers {
                for body in bodies {
                    let what = format!(
                        "{method} {path} as {who}{}",
                        if body.is_some() {
                            " with a wrong body"
                        } else {
                            ""
                        }
                    );
                    let (status, answer) = send(connection, *auth, &method, &path, *body).await;
                    assert_ne!(status, http::StatusCode::METHOD_NOT_ALLOWED, "{what}");
                    check_answer(operation, &what, status, &answer);
                }
            }
        }
    }
}

/// Whether the PyPI `package` a test runs is there (`probe` ran it successfully); if not,
/// a SKIPPED line, or a failure in CI, where `.ci/run` installs it.
fn installed(test: &str, package: &str, probe: std::io::Result<std::process::Output>) -> bool {
    if probe.is_ok_and(|out| out.status.success()) {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{test}: {package} is missing and CI=true: .ci/run installs it"
    );
    eprintln!("SKIPPED {test}: pip install {package}");
    false
}

/// `openapi-spec-validator` (PyPI), run on the document as served.
#[tokio::test]
async fn openapi_document_passes_an_independent_validator() {
    let probe = Command::new("python3")
        .args(["-c", "import openapi_spec_validator"])
        .output();
    if !installed(
        "openapi_document_passes_an_independent_validator",
        "openapi-spec-validator",
        probe,
    ) {
        return;
    }
    let ca = Ca::in_process(Policy::default());
    let (status, _, _) = curl_document(&ca, &[]);
    assert_eq!(status, "200");
    let file = ca.dir.path().join("openapi.json");
    let out = validate(&file);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // The validator is not one that passes anything: a reference to no schema fails.
    let broken = std::fs::read_to_string(&file).unwrap().replace(
        "#/components/schemas/KeyInfo",
        "#/components/schemas/NoSuchSchema",
    );
    let broken_file = ca.dir.path().join("broken.json");
    std::fs::write(&broken_file, broken).unwrap();
    assert!(!validate(&broken_file).status.success());
}

fn validate(file: &Path) -> std::process::Output {
    Command::new("python3")
        .args(["-m", "openapi_spec_validator"])
        .arg(file)
        .output()
        .expect("python3")
}

/// Schemathesis (PyPI) generates requests from the document, a few per operation and
/// deterministically, as the administrator, and checks that every answer's status, media
/// type and body are ones the document describes for that operation. The long polls
/// (`/v1/crl`, `/v1/issuers`, an issuer's CRL) are left out: a generated `wait` holds a
/// request for up to a minute; the test above calls each of them.
#[tokio::test]
async fn schemathesis_finds_no_answer_the_document_does_not_describe() {
    let probe = Command::new("schemathesis").arg("--version").output();
    if !installed(
        "schemathesis_finds_no_answer_the_document_does_not_describe",
        "schemathesis",
        probe,
    ) {
        return;
    }
    let ca = Ca::in_process(Policy::default());
    let (status, _, _) = curl_document(&ca, &[]);
    assert_eq!(status, "200");
    let out = tokio::task::spawn_blocking(move || {
        let out = Command::new("schemathesis")
            .args(["run", "openapi.json", "--url", &ca.url])
            .args(["--tls-verify", "certs/ca.pem"])
            .args(["--request-cert", "certs/admin/chain.pem"])
            .args(["--request-cert-key", "certs/admin/key.pem"])
            .args([
                "--max-examples",
                "5",
                "--generation-deterministic",
                "--workers",
                "1",
            ])
            .args([
                "--checks",
                "status_code_conformance,content_type_conformance,response_schema_conformance",
            ])
            .args(["--exclude-path", "/v1/crl"])
            .args(["--exclude-path", "/v1/issuers"])
            .args(["--exclude-path", "/v1/issuers/{id}/crl"])
            .current_dir(ca.dir.path())
            .output()
            .expect("schemathesis");
        drop(ca);
        out
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
