//! The CA's keys encrypted at rest: `init --encrypt-keys`, `ca encrypt-keys`, and a `serve`
//! that needs the passphrase. OpenSSL is the independent judge of the files.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::support::{BIN, Ca, openssl};

const PASSPHRASE: &str = "correct horse battery staple";

/// `latchkey ARGS` with the home `home` and no latchkey variables but `env`.
fn latchkey(home: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars() {
        if k.starts_with("LATCHKEY_") && k != "LATCHKEY_TEST_POSTGRES_URL" {
            cmd.env_remove(k);
        }
    }
    cmd.args(args)
        .env("LATCHKEY_HOME", home)
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run latchkey")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A file holding `text` and a line break, as `echo` writes it.
fn passphrase_file(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, format!("{text}\n")).unwrap();
    path.display().to_string()
}

/// OpenSSL opens `key` with the passphrase in `pass_file` and finds the public key of the
/// certificate `cert`; it also names the scheme: PBES2 with PBKDF2-SHA256 and AES-256-CBC.
fn assert_openssl_opens(home: &Path, key: &str, cert: &str, pass_file: &str) {
    let text = std::fs::read_to_string(home.join(key)).unwrap();
    assert!(
        text.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"),
        "{key}: {text}"
    );
    let parsed = openssl(home, &["asn1parse", "-in", key]);
    let parsed = String::from_utf8_lossy(&parsed.stdout);
    for scheme in [":PBES2", ":PBKDF2", ":hmacWithSHA256", ":aes-256-cbc"] {
        assert!(parsed.contains(scheme), "{key} lacks {scheme}: {parsed}");
    }
    let pass = format!("file:{pass_file}");
    let from_key = openssl(home, &["pkey", "-in", key, "-passin", &pass, "-pubout"]);
    assert!(from_key.status.success(), "{}", stderr(&from_key));
    let from_cert = openssl(home, &["x509", "-in", cert, "-noout", "-pubkey"]);
    assert_eq!(
        from_key.stdout, from_cert.stdout,
        "{key} is not {cert}'s key"
    );
    let wrong = Command::new("openssl")
        .args(["pkey", "-in", key, "-passin", "pass:wrong"])
        .current_dir(home)
        .output()
        .unwrap();
    assert!(
        !wrong.status.success(),
        "{key} opens with a wrong passphrase"
    );
}

/// The audit event that says the CA's keys were encrypted.
async fn keys_encrypt_event(ca: &Ca) -> latchkey::api::AuditEventInfo {
    let audit = ca.admin().audit(&[]).await.unwrap();
    audit
        .events
        .into_iter()
        .find(|e| e.action == "ca.keys_encrypt")
        .expect("the audit log records the encryption")
}

#[tokio::test]
async fn a_ca_made_with_encrypted_keys_needs_its_passphrase_to_start() {
    let secrets = tempfile::tempdir().unwrap();
    let pass = passphrase_file(secrets.path(), "passphrase", PASSPHRASE);
    let mut ca = Ca::start_with(&["--encrypt-keys", "--passphrase-file", &pass]);
    let home = ca.home();
    assert_openssl_opens(&home, "root-key.pem", "ca.pem", &pass);
    assert_openssl_opens(&home, "intermediate-key.pem", "intermediate.pem", &pass);

    // It serves: a key is issued by the intermediate the passphrase opened.
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics"])
        .await;
    ca.enroll_into("alice@acme", &["read:metrics"], "laptop")
        .await;
    let event = keys_encrypt_event(&ca).await;
    assert!(event.detail.to_string().contains("intermediate-key.pem"));

    // Without the passphrase, or with a wrong one, it refuses to start with one line and
    // writes nothing.
    ca.stop();
    let before = std::fs::read(home.join("intermediate-key.pem")).unwrap();
    let wrong = passphrase_file(secrets.path(), "wrong", "not it");
    for (args, says) in [
        (vec!["serve", "--listen", "127.0.0.1:0"], "is encrypted"),
        (
            vec![
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--passphrase-file",
                &wrong,
            ],
            "wrong passphrase",
        ),
    ] {
        let out = latchkey(&home, &args, &[]);
        assert!(!out.status.success());
        let err = stderr(&out);
        let lines: Vec<&str> = err
            .lines()
            .filter(|l| l.starts_with("latchkey:") || l.starts_with("Error"))
            .collect();
        assert_eq!(lines.len(), 1, "{err}");
        assert!(lines[0].contains(says), "{err}");
        assert!(lines[0].contains("intermediate-key.pem"), "{err}");
    }
    assert_eq!(
        std::fs::read(home.join("intermediate-key.pem")).unwrap(),
        before
    );

    // The variable works as the flag does (a systemd credential's path, say).
    let out = latchkey(
        &home,
        &["rotate-admin"],
        &[("LATCHKEY_CA_PASSPHRASE_FILE", pass.as_str())],
    );
    assert!(out.status.success(), "{}", stderr(&out));
}

#[tokio::test]
async fn ca_encrypt_keys_seals_an_existing_ca_and_is_recorded() {
    let mut ca = Ca::start();
    let home = ca.home();
    ca.stop();
    let secrets = tempfile::tempdir().unwrap();
    let pass = passphrase_file(secrets.path(), "passphrase", PASSPHRASE);
    let plain = std::fs::read_to_string(home.join("intermediate-key.pem")).unwrap();
    assert!(plain.starts_with("-----BEGIN PRIVATE KEY-----"));

    // `serve --encrypt-keys` does not pretend to encrypt an existing CA.
    let out = latchkey(
        &home,
        &["serve", "--encrypt-keys", "--passphrase-file", &pass],
        &[],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("latchkey ca encrypt-keys"),
        "{}",
        stderr(&out)
    );

    let out = latchkey(
        &home,
        &["ca", "encrypt-keys", "--passphrase-file", &pass],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_openssl_opens(&home, "root-key.pem", "ca.pem", &pass);
    assert_openssl_opens(&home, "intermediate-key.pem", "intermediate.pem", &pass);

    // Again with the same passphrase: nothing to do. With another: refused, nothing written.
    let out = latchkey(
        &home,
        &["ca", "encrypt-keys", "--passphrase-file", &pass],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("encrypted already"));
    let sealed = std::fs::read(home.join("intermediate-key.pem")).unwrap();
    let wrong = passphrase_file(secrets.path(), "wrong", "not it");
    let out = latchkey(
        &home,
        &["ca", "encrypt-keys", "--passphrase-file", &wrong],
        &[],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("wrong passphrase"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read(home.join("intermediate-key.pem")).unwrap(),
        sealed
    );

    // The root key signs a root CRL through the passphrase too; OpenSSL checks it.
    let crl = secrets.path().join("root.crl.pem").display().to_string();
    let out = latchkey(
        &home,
        &[
            "crl",
            "sign-root",
            "--out",
            &crl,
            "--passphrase-file",
            &pass,
        ],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let checked = openssl(&home, &["crl", "-in", &crl, "-CAfile", "ca.pem", "-noout"]);
    assert!(
        String::from_utf8_lossy(&checked.stderr).contains("verify OK"),
        "{}",
        stderr(&checked)
    );

    // It serves with the passphrase, and the audit log says what happened to the keys.
    ca.restart_with(&["--passphrase-file", &pass]);
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics"])
        .await;
    ca.enroll_into("alice@acme", &["read:metrics"], "laptop")
        .await;
    let event = keys_encrypt_event(&ca).await;
    assert!(event.detail.to_string().contains("root-key.pem"));
}
