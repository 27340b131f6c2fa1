//! Every kind of certificate the CA issues (root, intermediate, server, administrator, key)
//! and its CRL parse with the X.509 stacks that refused the first profile's 128-bit OID arc:
//! Go's `crypto/x509` (through `tests/go/x509check`, run with `go run`) and RustCrypto's
//! `x509-cert`. Go also loads an enrolled key with `tls.LoadX509KeyPair` and verifies its
//! chain for client authentication, and both read the scopes from the subject's OUs.

use std::path::Path;
use std::process::Command;

use x509_cert::der::Decode;

use crate::support::{Ca, openssl};

/// The PEM files of everything the CA signs, relative to the CA's directory, after
/// [`issue_everything`].
const FILES: &[&str] = &[
    "certs/ca.pem",
    "certs/intermediate.pem",
    "certs/server.pem",
    "certs/admin/cert.pem",
    "alice/cert.pem",
    "alice/chain.pem",
    "crl.pem",
];

/// A CA with a key of alice (two scopes), a revoked key, and the CRL listing it in crl.pem.
async fn issue_everything() -> Ca {
    let ca = Ca::start();
    let der = crate::support::alice_and_a_revoked_key(&ca).await;
    std::fs::write(ca.path("crl.pem"), latchkey::pem::encode("X509 CRL", &der)).unwrap();
    ca
}

/// Runs the Go checker in `dir` with `args`; its stdout, or a panic with its stderr.
fn go_check(dir: &Path, args: &[&str]) -> String {
    let program = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/go/x509check/main.go");
    let out = Command::new("go")
        .arg("run")
        .arg(&program)
        .args(args)
        .current_dir(dir)
        // The standard library only: nothing may be downloaded.
        .env("GOPROXY", "off")
        .env("GOFLAGS", "-mod=mod")
        .output()
        .expect("go is installed (.ci/run installs golang-go)");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "Go's crypto/x509 refused: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[tokio::test]
async fn go_parses_every_certificate_and_crl_and_loads_an_enrolled_key() {
    let ca = issue_everything().await;
    let dir = ca.dir.path();
    let mut args: Vec<&str> = vec![
        "-keypair",
        "alice/cert.pem",
        "alice/key.pem",
        "-keypair",
        "alice/chain.pem",
        "alice/key.pem",
        "-keypair",
        "certs/admin/cert.pem",
        "certs/admin/key.pem",
        "-verify",
        "certs/ca.pem",
        "alice/chain.pem",
    ];
    args.extend_from_slice(FILES);
    let out = go_check(dir, &args);
    assert!(
        out.contains("keypair alice/cert.pem certificates=1"),
        "{out}"
    );
    assert!(out.contains("verified alice/chain.pem"), "{out}");
    assert!(
        out.contains("certificate alice/cert.pem cn=alice ou=read:metrics,write:events"),
        "{out}"
    );
    assert!(out.contains("crl crl.pem entries=1"), "{out}");
    for file in FILES {
        assert!(
            out.contains(&format!(" {file} ")),
            "{file} not parsed: {out}"
        );
    }
}

/// Every PEM block of `path`: its label and DER.
fn pem_blocks(path: &Path) -> Vec<(String, Vec<u8>)> {
    let text = std::fs::read(path).unwrap();
    x509_parser::pem::Pem::iter_from_buffer(&text)
        .map(|pem| {
            let pem = pem.unwrap();
            (pem.label, pem.contents)
        })
        .collect()
}

#[tokio::test]
async fn rustcrypto_x509_cert_parses_every_certificate_and_crl() {
    let ca = issue_everything().await;
    let dir = ca.dir.path();
    let mut certificates = 0;
    for file in FILES {
        for (label, der) in pem_blocks(&dir.join(file)) {
            match label.as_str() {
                "CERTIFICATE" => {
                    let cert = x509_cert::Certificate::from_der(&der)
                        .unwrap_or_else(|e| panic!("x509-cert refused {file}: {e}"));
                    certificates += 1;
                    if *file == "alice/cert.pem" {
                        let subject = cert.tbs_certificate().subject().to_string();
                        // RFC 4514 order: the last RDN first.
                        let key_id = subject
                            .strip_prefix("OU=write:events,OU=read:metrics,UID=")
                            .and_then(|rest| rest.strip_suffix(",O=acme,CN=alice"))
                            .unwrap_or_else(|| panic!("{file}: {subject}"));
                        assert!(
                            key_id.len() == 24 && key_id.bytes().all(|b| b.is_ascii_hexdigit())
                        );
                    }
                }
                "X509 CRL" => {
                    let crl = x509_cert::crl::CertificateList::<x509_cert::certificate::Rfc5280>::from_der(&der)
                        .unwrap_or_else(|e| panic!("x509-cert refused {file}: {e}"));
                    assert_eq!(
                        crl.tbs_cert_list
                            .revoked_certificates
                            .map_or(0, |r| r.len()),
                        1
                    );
                }
                other => panic!("{file}: unexpected PEM block {other}"),
            }
        }
    }
    // Root, intermediate, server (and its chain), admin, the key alone and in its chain.
    assert!(certificates >= 7, "{certificates} certificates parsed");
    // The files are what the CA serves: openssl agrees the key chains to the root.
    openssl(
        dir,
        &[
            "verify",
            "-CAfile",
            "certs/ca.pem",
            "-untrusted",
            "alice/chain.pem",
            "alice/cert.pem",
        ],
    );
}
