//! CSR parsing and the CSR policy (key kinds, signature algorithms, requested extensions),
//! and the enrollment request around it.
//!
//! The first byte picks the mode: even, the rest is a CSR (DER, or PEM if it looks like
//! text); odd, the rest is the `attributes` of a CertificationRequestInfo (the extension
//! requests), which the target completes with an empty subject and its own key and signs.
#![no_main]

use latchkey::api::EnrollRequest;
use latchkey::authority::csr::{verify_der, verify_pem};
use latchkey::model::ScopeSet;
use latchkey_fuzz::{der, signed, signer_spki};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        let _ = verify_der(rest);
        if let Ok(text) = std::str::from_utf8(rest) {
            let _ = verify_pem(text);
            if let Ok(request) = serde_json::from_str::<EnrollRequest>(text) {
                let _ = verify_pem(&request.csr);
                // The scopes were parsed as the request was read: their wire form must read
                // back as the same set.
                let wire = serde_json::to_string(&request.scopes).expect("scopes serialise");
                let again: ScopeSet = serde_json::from_str(&wire).expect("scopes read back");
                assert_eq!(again, request.scopes);
            }
        }
    } else {
        let mut info = der(0x02, &[0]);
        info.extend(der(0x30, &[]));
        info.extend(signer_spki());
        info.extend_from_slice(rest);
        let csr = signed(&der(0x30, &info));
        if let Ok(verified) = verify_der(&csr) {
            // The only thing a certificate takes from a CSR is its key: it must be ours.
            assert_eq!(verified.public_key.spki_der(), signer_spki().as_slice());
        }
    }
});
