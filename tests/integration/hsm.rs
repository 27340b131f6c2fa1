//! The intermediate's key in a PKCS#11 token, against SoftHSM2 (Debian's `softhsm2`): made
//! there by `init`, never in a file, and every certificate and CRL signed through it, across
//! a restart. OpenSSL and pkilint judge what the token signed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::support::{BIN, Ca};

const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
const TOKEN: &str = "latchkey-test";

/// A SoftHSM2 token of its own in `dir` (its configuration file and token directory), with
/// the user PIN in `dir/pin`; `None` (with a SKIPPED line) without SoftHSM2, except in CI.
fn softhsm_token(dir: &Path, test: &str) -> Option<PathBuf> {
    if !Path::new(MODULE).exists() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{test}: SoftHSM2 ({MODULE}) is missing and CI=true: .ci/run installs softhsm2"
        );
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED {test}: SoftHSM2 is not installed (apt-get install softhsm2)"
        );
        return None;
    }
    let tokens = dir.join("tokens");
    std::fs::create_dir_all(&tokens).unwrap();
    let conf = dir.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens.display()
        ),
    )
    .unwrap();
    let made = Command::new("softhsm2-util")
        .args(["--init-token", "--free", "--label", TOKEN])
        .args(["--pin", "1234", "--so-pin", "5678"])
        .env("SOFTHSM2_CONF", &conf)
        .output()
        .expect("softhsm2-util");
    assert!(made.status.success(), "{}", text(&made));
    std::fs::write(dir.join("pin"), "1234\n").unwrap();
    std::fs::write(dir.join("wrong-pin"), "9999\n").unwrap();
    Some(conf)
}

/// What a command printed, and how it ended (a signal shows as such: a crash at exit prints
/// nothing of its own).
fn text(out: &Output) -> String {
    format!(
        "{}{}({})",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        out.status
    )
}

/// `latchkey ARGS` on the home `dir/certs` with `SOFTHSM2_CONF`.
fn latchkey(dir: &Path, conf: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars() {
        if k.starts_with("LATCHKEY_") && k != "LATCHKEY_TEST_POSTGRES_URL" {
            cmd.env_remove(k);
        }
    }
    cmd.args(args)
        .env("LATCHKEY_HOME", dir.join("certs"))
        .env("SOFTHSM2_CONF", conf)
        .current_dir(dir)
        .stdin(Stdio::null());
    cmd.output().expect("run latchkey")
}

fn openssl(dir: &Path, args: &[&str]) -> Output {
    Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl")
}

/// `openssl verify -crl_check_all` of the key certificate `cert` with the CA's CRL bundle,
/// fetched now: whether it passes, and what openssl said.
fn verify_with_crls(ca: &Ca, cert: &Path) -> (bool, String) {
    let bundle = ca.path("bundle.pem");
    let fetched = Command::new("curl")
        .args(["-sS", "-f", "--cacert", "certs/ca.pem", "-o"])
        .arg(&bundle)
        .arg(format!("{}/v1/crl/bundle.pem", ca.url))
        .current_dir(ca.path(""))
        .status()
        .unwrap();
    assert!(fetched.success());
    crate::crl_chain::verify_all(ca, "bundle.pem", &cert.display().to_string())
}

#[tokio::test]
async fn an_intermediate_key_in_a_pkcs11_token_signs_everything_and_never_touches_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let Some(conf) = softhsm_token(dir.path(), "an_intermediate_key_in_a_pkcs11_token") else {
        return;
    };
    let conf_text = conf.display().to_string();

    // init makes the key inside the token; a second key of the same label is refused.
    let init = [
        "init",
        "--pkcs11-module",
        MODULE,
        "--pkcs11-token",
        TOKEN,
        "--pkcs11-pin-file",
        "pin",
        // A name pkilint accepts in the distribution points (it refuses `localhost`).
        "--public-url",
        "https://ca.example.test:8443",
    ];
    let out = latchkey(dir.path(), &conf, &init);
    assert!(out.status.success(), "{}", text(&out));
    let home = dir.path().join("certs");
    assert!(!home.join("intermediate-key.pem").exists());
    assert!(home.join("root-key.pem").exists());
    let settings = std::fs::read_to_string(home.join("latchkey.json")).unwrap();
    assert!(settings.contains("\"pkcs11\"") && !settings.contains("1234"));
    let verified = openssl(&home, &["verify", "-CAfile", "ca.pem", "intermediate.pem"]);
    assert!(verified.status.success(), "{}", text(&verified));
    let again = tempfile::tempdir().unwrap();
    std::fs::copy(dir.path().join("pin"), again.path().join("pin")).unwrap();
    let out = latchkey(again.path(), &conf, &init);
    assert!(!out.status.success());
    assert!(text(&out).contains("already holds a key"), "{}", text(&out));
    assert!(!again.path().join("certs").exists(), "nothing is written");

    // Without the PIN, or with a wrong one, serve refuses with one line.
    for (extra, says) in [
        (vec![], "--pkcs11-pin-file"),
        (vec!["--pkcs11-pin-file", "wrong-pin"], "refused the PIN"),
    ] {
        let mut args = vec!["serve", "--listen", "127.0.0.1:0"];
        args.extend(extra);
        let out = latchkey(dir.path(), &conf, &args);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        let errors: Vec<&str> = err.lines().filter(|l| l.contains("error")).collect();
        assert_eq!(errors.len(), 1, "{err}");
        assert!(errors[0].contains(says), "{err}");
    }

    // Served with the PIN: enroll, renew and revoke, each signed by the token.
    let pin = dir.path().join("pin").display().to_string();
    let mut ca = Ca::start_in(
        dir,
        &["--pkcs11-pin-file", &pin, "--renew-interval", "0s"],
        &[("SOFTHSM2_CONF", &conf_text)],
    );
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics"])
        .await;
    let enrolled = ca
        .enroll_into("alice@acme", &["read:metrics"], "laptop")
        .await;
    let cert = ca.path("laptop").join("cert.pem");
    assert!(verify_with_crls(&ca, &cert).0);
    let renewed = ca
        .with_identity(&ca.path("laptop"))
        .renew(&enrolled.key.id, None)
        .await
        .expect("renew through the token");
    std::fs::write(ca.path("renewed.pem"), &renewed.certificate).unwrap();
    assert!(verify_with_crls(&ca, &ca.path("renewed.pem")).0);

    // After a restart the token still signs: a revocation reaches a CRL it signed.
    ca.restart();
    crate::crl_chain::revoke_and_wait(&ca, &enrolled.key.id).await;
    let (ok, said) = verify_with_crls(&ca, &ca.path("renewed.pem"));
    assert!(!ok && said.contains("certificate revoked"), "{said}");

    // What the token signed passes pkilint as what a file key signs does (lint.rs).
    crate::lint::python_tools();
    for file in ["certs/intermediate.pem", "laptop/cert.pem", "renewed.pem"] {
        let findings = crate::lint::pkilint(&["lint_pkix_cert", "lint"], &ca.path(file));
        assert!(findings.is_empty(), "pkilint on {file}: {findings:#?}");
    }
    let (_, crl) = ca.anonymous().crl(None, 0).await.unwrap().unwrap();
    std::fs::write(ca.path("crl.pem"), latchkey::pem::encode("X509 CRL", &crl)).unwrap();
    let findings = crate::lint::pkilint(
        &["lint_crl", "lint", "-t", "CRL", "-p", "PKIX"],
        &ca.path("crl.pem"),
    );
    assert!(findings.is_empty(), "pkilint on the CRL: {findings:#?}");
    ca.enroll_into("alice@acme", &["read:metrics"], "desktop")
        .await;
    assert!(verify_with_crls(&ca, &ca.path("desktop").join("cert.pem")).0);

    // A rotation makes the next intermediate's key in the token too, under a label of its
    // own; the running CA opens it there and signs with it.
    let out = ca.cli_with_env(
        &["--pkcs11-pin-file", &pin, "ca", "rotate"],
        &[("SOFTHSM2_CONF", &conf_text)],
    );
    assert!(out.status.success(), "{}", text(&out));
    let store = ca.store().await;
    let records = store.intermediates().await.unwrap();
    assert_eq!(records.len(), 2);
    assert!(
        matches!(&records[1].key, latchkey::model::IssuerKeyLocation::Token(label)
            if label.starts_with("latchkey-intermediate-")),
        "{:?}",
        records[1].key
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut attempt = 0;
    let rotated = loop {
        attempt += 1;
        let key = ca
            .enroll_into(
                "alice@acme",
                &["read:metrics"],
                &format!("rotated-{attempt}"),
            )
            .await;
        if key.chain.matches("BEGIN CERTIFICATE").count() == 2
            && key.chain.contains(
                &latchkey::pem::encode("CERTIFICATE", &records[1].certificate)
                    .trim()
                    .to_owned(),
            )
        {
            break key;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the CA never signed with the new key"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert!(!ca.log().contains("CANNOT OPEN"), "{}", ca.log());
    std::fs::write(ca.path("rotated.pem"), &rotated.certificate).unwrap();
    std::fs::write(
        ca.path("intermediates.pem"),
        latchkey::pem::encode_certificates(records.iter().map(|r| r.certificate.as_slice())),
    )
    .unwrap();
    std::fs::write(
        ca.path("new-intermediate.pem"),
        latchkey::pem::encode("CERTIFICATE", &records[1].certificate),
    )
    .unwrap();
    let bundle = Command::new("curl")
        .args(["-sS", "-f", "--cacert", "certs/ca.pem", "-o", "bundle.pem"])
        .arg(format!("{}/v1/crl/bundle.pem", ca.url))
        .current_dir(ca.path(""))
        .status()
        .unwrap();
    assert!(bundle.success());
    let (ok, said) =
        crate::crl_chain::verify_all_with(&ca, "intermediates.pem", "bundle.pem", "rotated.pem");
    assert!(ok, "{said}");
    for file in ["new-intermediate.pem", "rotated.pem"] {
        let findings = crate::lint::pkilint(&["lint_pkix_cert", "lint"], &ca.path(file));
        assert!(findings.is_empty(), "pkilint on {file}: {findings:#?}");
    }
}
