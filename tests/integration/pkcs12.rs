//! Issue 11 point 4: `latchkey enroll --p12`, `latchkey export --p12` and `--truststore`
//! write PKCS#12 files that independent readers load: OpenSSL (which also names the
//! algorithms), Java's keytool and a JSSE client calling the real CA over mTLS, and Python's
//! `cryptography`. A wrong password is refused by each.

use std::path::Path;
use std::process::{Command, Output};

use base64::Engine;
use latchkey::client::KeyDir;

use crate::support::*;

const P12_PASSWORD: &str = "p12-secret-pass";
const JAVA_CLIENT: &str = include_str!("java/Pkcs12Client.java");

fn ok(out: &Output, what: &str) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{what} failed: {text}");
    text
}

fn run(dir: &Path, program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .current_dir(dir)
        .env("P12_PASSWORD", P12_PASSWORD)
        .env("WRONG_PASSWORD", "not-the-password")
        .output()
        .unwrap_or_else(|e| panic!("{program} must be installed (.ci/run installs it): {e}"))
}

/// `openssl pkcs12 -info`: the algorithms of `file`, which must open with the password
/// and not with another one.
fn openssl_info(dir: &Path, file: &str, legacy: bool) -> String {
    let mut args = vec!["pkcs12", "-info", "-nokeys", "-in", file];
    if legacy {
        args.push("-legacy");
    }
    let good = [args.as_slice(), &["-passin", "env:P12_PASSWORD"]].concat();
    let text = ok(&run(dir, "openssl", &good), "openssl pkcs12");
    let bad = [args.as_slice(), &["-passin", "env:WRONG_PASSWORD"]].concat();
    assert!(
        !run(dir, "openssl", &bad).status.success(),
        "{file} opened with a wrong password"
    );
    text
}

/// `keytool -list -v` of `file`, which must refuse a wrong password.
fn keytool_list(dir: &Path, file: &str) -> String {
    let args = [
        "-list",
        "-v",
        "-storetype",
        "PKCS12",
        "-keystore",
        file,
        "-storepass",
    ];
    let text = ok(
        &run(dir, "keytool", &[args.as_slice(), &[P12_PASSWORD]].concat()),
        "keytool -list",
    );
    let bad = run(
        dir,
        "keytool",
        &[args.as_slice(), &["not-the-password"]].concat(),
    );
    assert!(
        !bad.status.success(),
        "keytool opened {file} with a wrong password"
    );
    text
}

/// Python `cryptography` loads the key store: the key, the leaf and one more certificate;
/// and refuses a wrong password. Prints the key's type and the leaf's subject.
fn python_load(dir: &Path, file: &str) -> String {
    let script = r#"
import os, sys
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
data = open(sys.argv[1], "rb").read()
key, cert, extra = pkcs12.load_key_and_certificates(data, os.environ["P12_PASSWORD"].encode())
assert key is not None and cert is not None and len(extra) == 1, (key, cert, extra)
try:
    pkcs12.load_key_and_certificates(data, b"not-the-password")
    sys.exit("a wrong password was accepted")
except ValueError:
    pass
if isinstance(key, ec.EllipticCurvePrivateKey):
    kind = "ec:" + key.curve.name
elif isinstance(key, ed25519.Ed25519PrivateKey):
    kind = "ed25519"
elif isinstance(key, rsa.RSAPrivateKey):
    kind = "rsa"
print(kind, cert.subject.rfc4514_string())
"#;
    ok(
        &run(dir, "python3", &["-c", script, file]),
        "python cryptography",
    )
}

/// The JSSE client calls `GET /v1/keys` on the CA with the key store and truststore.
fn java_get_keys(ca: &Ca, key_store: &str, truststore: &str) -> String {
    let source = ca.path("Pkcs12Client.java");
    std::fs::write(&source, JAVA_CLIENT).unwrap();
    let url = format!("{}/v1/keys", ca.url.replace("127.0.0.1", "localhost"));
    ok(
        &run(
            ca.dir.path(),
            "java",
            &[source.to_str().unwrap(), &url, key_store, truststore],
        ),
        "java Pkcs12Client",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enroll_and_export_write_pkcs12_that_openssl_keytool_python_and_java_load() {
    let ca = Ca::start();
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics"])
        .await;
    let env = [
        ("LATCHKEY_PASSWORD", PASSWORD),
        ("LATCHKEY_P12_PASSWORD", P12_PASSWORD),
    ];
    let enrolled = ca.cli_with_env(
        &[
            "enroll",
            "--user",
            "alice@acme",
            "--scopes",
            "read:metrics",
            "--name",
            "laptop",
            "--out",
            "alice",
            "--p12",
            "alice.p12",
        ],
        &env,
    );
    ok(&enrolled, "latchkey enroll --p12");
    ok(
        &ca.cli_with_env(
            &[
                "export",
                "--dir",
                "alice",
                "--p12",
                "alice-legacy.p12",
                "--p12-legacy",
            ],
            &env,
        ),
        "latchkey export --p12-legacy",
    );
    ok(
        &ca.cli_with_env(&["export", "--truststore", "trust.p12"], &env),
        "latchkey export --truststore",
    );
    let dir = ca.dir.path();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.join("alice.p12"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o077,
        0,
        "the key store is readable by others: {mode:o}"
    );

    // OpenSSL names the protection of each file.
    let modern = openssl_info(dir, "alice.p12", false);
    assert!(modern.contains("MAC: sha256, Iteration 100000"), "{modern}");
    assert!(
        modern.contains("PBES2, PBKDF2, AES-256-CBC, Iteration 100000, PRF hmacWithSHA256"),
        "{modern}"
    );
    assert!(
        modern.contains("Shrouded Keybag: PBES2, PBKDF2, AES-256-CBC"),
        "{modern}"
    );
    assert!(
        !modern.contains("3DES") && !modern.contains("RC2"),
        "{modern}"
    );
    let legacy = openssl_info(dir, "alice-legacy.p12", true);
    assert!(legacy.contains("MAC: sha1, Iteration 2048"), "{legacy}");
    assert!(
        legacy.contains("Shrouded Keybag: pbeWithSHA1And3-KeyTripleDES-CBC, Iteration 2048"),
        "{legacy}"
    );
    assert!(!legacy.contains("PBES2"), "{legacy}");
    let trust = openssl_info(dir, "trust.p12", false);
    assert!(trust.contains("PBES2, PBKDF2, AES-256-CBC"), "{trust}");

    // keytool sees a private key with its chain of two, and a trusted certificate.
    for file in ["alice.p12", "alice-legacy.p12"] {
        let listing = keytool_list(dir, file);
        assert!(listing.contains("Alias name: alice@acme"), "{listing}");
        assert!(listing.contains("Entry type: PrivateKeyEntry"), "{listing}");
        assert!(listing.contains("Certificate chain length: 2"), "{listing}");
    }
    let listing = keytool_list(dir, "trust.p12");
    assert!(listing.contains("Alias name: latchkey-ca"), "{listing}");
    assert!(
        listing.contains("Entry type: trustedCertEntry"),
        "{listing}"
    );
    assert!(
        listing.contains("Your keystore contains 1 entry"),
        "{listing}"
    );

    // Python's cryptography loads key and certificates.
    for file in ["alice.p12", "alice-legacy.p12"] {
        let loaded = python_load(dir, file);
        assert!(loaded.starts_with("ec:secp256r1 "), "{loaded}");
    }

    // And Java calls the CA with them over mTLS.
    let answer = java_get_keys(&ca, "alice.p12", "trust.p12");
    assert!(answer.starts_with("200\n"), "{answer}");
    assert!(answer.contains("\"laptop\""), "{answer}");
    let answer = java_get_keys(&ca, "alice-legacy.p12", "trust.p12");
    assert!(answer.starts_with("200\n"), "{answer}");
}

/// Every key type the CA certifies goes into the PKCS#12 as the PKCS#8 key.pem holds, and
/// the file works: P-384 and Ed25519 made by `enroll`, RSA made by openssl.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_accepted_key_type_exports_and_java_uses_it() {
    let ca = Ca::start();
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics"])
        .await;
    let env = [
        ("LATCHKEY_PASSWORD", PASSWORD),
        ("LATCHKEY_P12_PASSWORD", P12_PASSWORD),
    ];
    for key_type in ["p384", "ed25519"] {
        ok(
            &ca.cli_with_env(
                &[
                    "enroll",
                    "--user",
                    "alice@acme",
                    "--scopes",
                    "read:metrics",
                    "--name",
                    key_type,
                    "--key-type",
                    key_type,
                    "--out",
                    key_type,
                ],
                &env,
            ),
            "latchkey enroll",
        );
    }
    // RSA: a key and CSR made by openssl (ring cannot make RSA keys), enrolled through the
    // API, written as a key directory.
    let csr = openssl_csr(ca.dir.path(), "rsa", &["rsa:2048"], &[]);
    let answer = ca
        .anonymous()
        .enroll(
            &password("alice@acme"),
            &request(&csr, &["read:metrics"], "rsa"),
        )
        .await
        .expect("enroll rsa");
    let rsa = KeyDir::new(ca.path("rsa"));
    rsa.write_key(&std::fs::read_to_string(ca.path("rsa.key")).unwrap())
        .unwrap();
    rsa.write_certificates(&answer.certificate, &answer.chain)
        .unwrap();
    ok(
        &ca.cli_with_env(&["export", "--truststore", "trust.p12"], &env),
        "latchkey export --truststore",
    );
    let dir = ca.dir.path();
    for (name, python_type) in [
        ("p384", "ec:secp384r1 "),
        ("ed25519", "ed25519 "),
        ("rsa", "rsa "),
    ] {
        let file = format!("{name}.p12");
        ok(
            &ca.cli_with_env(&["export", "--dir", name, "--p12", &file], &env),
            "latchkey export --p12",
        );
        let listing = keytool_list(dir, &file);
        assert!(
            listing.contains("Certificate chain length: 2"),
            "{name}: {listing}"
        );
        let loaded = python_load(dir, &file);
        assert!(loaded.starts_with(python_type), "{name}: {loaded}");
        // The key inside is the PKCS#8 of key.pem (for Ed25519, whose key.pem ring writes as
        // PKCS#8 v2, the same key as v1, which OpenSSL 3.0 reads: version and algorithm,
        // then the private key byte for byte, without the optional public key).
        let pem = run(
            dir,
            "openssl",
            &[
                "pkcs12",
                "-in",
                &file,
                "-nocerts",
                "-nodes",
                "-passin",
                "env:P12_PASSWORD",
            ],
        );
        let inside = ok(&pem, "openssl pkcs12 -nocerts");
        let key_pem = std::fs::read_to_string(ca.path(&format!("{name}/key.pem"))).unwrap();
        let der = |s: &str| -> Vec<u8> {
            let b64: String = s
                .lines()
                .skip_while(|l| !l.starts_with("-----BEGIN PRIVATE KEY"))
                .skip(1)
                .take_while(|l| !l.starts_with("-----END"))
                .collect();
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap()
        };
        // Every key file is PKCS#8 v1 (an Ed25519 one too), and goes in unchanged.
        let (inside, written) = (der(&inside), der(&key_pem));
        assert_eq!(inside, written, "{name}: the key was re-encoded");
        let answer = java_get_keys(&ca, &file, "trust.p12");
        assert!(answer.starts_with("200\n"), "{name}: {answer}");
    }
}

/// A key store is not written without a password, nor for a key that is not the
/// certificate's: the error says so and no file appears.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_refuses_an_empty_password_and_a_mismatched_key() {
    let ca = Ca::start();
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics"])
        .await;
    ca.enroll_into("alice@acme", &["read:metrics"], "alice")
        .await;
    ca.enroll_into("alice@acme", &["read:metrics"], "other")
        .await;
    let empty = ca.cli_with_env(
        &["export", "--dir", "alice", "--p12", "a.p12"],
        &[("LATCHKEY_P12_PASSWORD", "")],
    );
    assert!(!empty.status.success());
    assert!(String::from_utf8_lossy(&empty.stderr).contains("must not be empty"));
    assert!(!ca.path("a.p12").exists());

    std::fs::copy(ca.path("other/key.pem"), ca.path("alice/key.pem")).unwrap();
    let mismatched = ca.cli_with_env(
        &["export", "--dir", "alice", "--p12", "a.p12"],
        &[("LATCHKEY_P12_PASSWORD", P12_PASSWORD)],
    );
    assert!(!mismatched.status.success());
    assert!(
        String::from_utf8_lossy(&mismatched.stderr).contains("does not match"),
        "{}",
        String::from_utf8_lossy(&mismatched.stderr)
    );
    assert!(!ca.path("a.p12").exists());
}
