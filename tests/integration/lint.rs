//! Independent checkers on everything latchkey signs: pkilint (RFC 5280 lints) on the CA,
//! administrator, server and key certificates and on the CRL, and Python `cryptography`'s
//! RFC 5280 client verifier on a key certificate. (Key certificates were once kept from
//! pkilint, whose decoder could not read the old scopes extension's 128-bit OID arc; the
//! scopes are subject OUs now.)

use std::process::Command;
use std::time::Duration;

use crate::support::{Ca, openssl};

/// pkilint and cryptography, installed from PyPI if missing.
pub(crate) fn python_tools() {
    let have = Command::new("python3")
        .args(["-c", "import pkilint, cryptography"])
        .status()
        .is_ok_and(|s| s.success());
    if !have {
        let installed = Command::new("python3")
            .args(["-m", "pip", "install", "-q", "pkilint", "cryptography"])
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            installed,
            "cannot install pkilint and cryptography (pip install pkilint cryptography)"
        );
    }
}

/// The findings (NOTICE and worse) pkilint reports for a file, minus the two known,
/// deliberate ones: SPIFFE
/// URIs (pkilint only knows web URIs) and `localhost` in the CA's own server certificate.
pub(crate) fn pkilint(args: &[&str], file: &std::path::Path) -> Vec<String> {
    let tool = args[0];
    let out = Command::new("python3")
        .args(["-m", &format!("pkilint.bin.{tool}")])
        .args(&args[1..])
        .arg(file)
        .output()
        .expect("pkilint runs");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        !text.contains("Failed to load"),
        "{tool} could not read {}: {text}",
        file.display()
    );
    text.lines()
        .filter(|l| l.starts_with("    "))
        // INFO findings describe what pkilint recognised (such as the key identifier method).
        .filter(|l| !l.contains("(INFO)"))
        .filter(|l| !(l.contains("pkix.invalid_uri_syntax") && l.contains("spiffe://")))
        .filter(|l| !(l.contains("pkix.invalid_domain_name_syntax") && l.contains("\"localhost\"")))
        .map(|l| l.trim().to_owned())
        .collect()
}

#[tokio::test]
async fn certificates_and_crls_pass_pkilint_and_python_cryptography() {
    python_tools();
    let ca = Ca::start_with(&[
        "--hostname",
        "ca.example.test",
        "--public-url",
        "https://ca.example.test:8443",
    ]);
    let der = crate::support::alice_and_a_revoked_key(&ca).await;
    let dir = ca.dir.path();
    std::fs::write(dir.join("crl.pem"), latchkey::pem::encode("X509 CRL", &der)).unwrap();
    openssl(
        dir,
        &["x509", "-in", "certs/server.pem", "-out", "server-leaf.pem"],
    );
    tokio::time::sleep(Duration::from_millis(10)).await;

    for file in [
        "certs/ca.pem",
        "certs/intermediate.pem",
        "certs/admin/cert.pem",
        "server-leaf.pem",
        "alice/cert.pem",
    ] {
        let findings = pkilint(&["lint_pkix_cert", "lint"], &dir.join(file));
        assert!(findings.is_empty(), "pkilint on {file}: {findings:#?}");
    }
    let findings = pkilint(
        &["lint_crl", "lint", "-t", "CRL", "-p", "PKIX"],
        &dir.join("crl.pem"),
    );
    assert!(findings.is_empty(), "pkilint on the CRL: {findings:#?}");
    // The root's CRL, which covers the intermediate.
    let (_, root_crl) = ca.anonymous().root_crl().await.unwrap();
    std::fs::write(
        dir.join("root-crl.pem"),
        latchkey::pem::encode("X509 CRL", &root_crl),
    )
    .unwrap();
    let findings = pkilint(
        &["lint_crl", "lint", "-t", "CRL", "-p", "PKIX"],
        &dir.join("root-crl.pem"),
    );
    assert!(
        findings.is_empty(),
        "pkilint on the root CRL: {findings:#?}"
    );

    // The key certificate: cryptography's RFC 5280 client path validation, and the profile
    // as it reads it.
    let script = r#"
import sys, datetime
from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store
load = lambda p: x509.load_pem_x509_certificates(open(p, 'rb').read())
root, = load('certs/ca.pem')
leaf, intermediate = load('alice/chain.pem')
verifier = PolicyBuilder().store(Store([root])).time(datetime.datetime.now(datetime.timezone.utc)).build_client_verifier()
verified = verifier.verify(leaf, [intermediate])
uris = [n.value for n in verified.subjects]
assert len(uris) == 1 and uris[0].startswith('spiffe://latchkey.internal/tenant/acme/key/'), uris
scopes = [a.value for a in leaf.subject.get_attributes_for_oid(x509.NameOID.ORGANIZATIONAL_UNIT_NAME)]
assert scopes == ['read:metrics', 'write:events'], scopes
assert __import__('re').fullmatch(r'OU=write:events,OU=read:metrics,UID=[0-9a-f]{24},O=acme,CN=alice', leaf.subject.rfc4514_string()), leaf.subject.rfc4514_string()
assert all(e.oid.dotted_string != '2.25.195384371966353938652200206769540452565.1' for e in leaf.extensions)
print('ok')
"#;
    let out = Command::new("python3")
        .args(["-c", script])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "ok",
        "cryptography: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
