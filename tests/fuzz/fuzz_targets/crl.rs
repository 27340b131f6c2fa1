//! The relying side's CRL reader: what a service runs on every CRL it fetches.
//!
//! The first byte picks the mode: even, the rest is a CRL; odd, the rest is the part of a
//! TBSCertList after the issuer name (thisUpdate, nextUpdate, revoked entries, extensions),
//! which the target completes with version, algorithm and its issuer's name, and signs, so
//! that the fuzzer reaches the checks behind the signature.
#![no_main]

use std::sync::OnceLock;

use latchkey::tls::RevocationSet;
use latchkey_fuzz::{ECDSA_SHA256, der, signed, signer};
use libfuzzer_sys::fuzz_target;
use rcgen::{BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa};
use rustls_pki_types::CertificateDer;

/// The issuing CA: the signer's key in a self-signed certificate, and its subject DER.
fn issuer() -> &'static (CertificateDer<'static>, Vec<u8>) {
    static ISSUER: OnceLock<(CertificateDer<'static>, Vec<u8>)> = OnceLock::new();
    ISSUER.get_or_init(|| {
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, "latchkey fuzz intermediate");
        params.distinguished_name = name;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = params.self_signed(signer()).expect("issuer certificate");
        let der = cert.der().clone();
        let (_, parsed) = x509_parser::parse_x509_certificate(&der).expect("parses");
        let subject = parsed.subject().as_raw().to_vec();
        (der, subject)
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((mode, rest)) = data.split_first() else {
        return;
    };
    let (issuer, subject) = issuer();
    let crl = if mode % 2 == 0 {
        rest.to_vec()
    } else {
        let mut tbs = der(0x02, &[1]);
        tbs.extend_from_slice(ECDSA_SHA256);
        tbs.extend_from_slice(subject);
        tbs.extend_from_slice(rest);
        signed(&der(0x30, &tbs))
    };
    if let Ok(set) = RevocationSet::from_crl(&crl, issuer) {
        // What was accepted must read the same way again, and hold no serial it did not list.
        let (_, reread) = x509_parser::parse_x509_crl(&crl).expect("an accepted CRL re-parses");
        assert!(set.len() <= reread.iter_revoked_certificates().count());
        for entry in reread.iter_revoked_certificates() {
            if entry.raw_serial().len() == 16 {
                assert!(set.is_revoked(entry.raw_serial()));
            }
        }
    }
});
