//! Identity extraction: what a relying service reads from a verified client certificate
//! (tenant, key id, scopes) and what the CA reads from an administrator's.
//!
//! The first byte picks the mode: even, the rest is a certificate; odd, the rest is the
//! part of a TBSCertificate after the issuer name (validity, subject, key, extensions),
//! which the target completes and signs, as the verifier only hands over chain-verified
//! certificates.
#![no_main]

use latchkey::profile::SpiffeId;
use latchkey::profile::danger::read_unverified;
use latchkey_fuzz::{ECDSA_SHA256, der, signed};
use libfuzzer_sys::fuzz_target;

const TRUST_DOMAIN: &str = "latchkey.internal";

fuzz_target!(|data: &[u8]| {
    let Some((mode, rest)) = data.split_first() else {
        return;
    };
    let certificate = if mode % 2 == 0 {
        rest.to_vec()
    } else {
        let mut tbs = der(0xa0, &der(0x02, &[2]));
        // A 16-byte serial, the only length latchkey issues.
        tbs.extend(der(0x02, &[0x11; 16]));
        tbs.extend_from_slice(ECDSA_SHA256);
        tbs.extend(der(0x30, &[]));
        tbs.extend_from_slice(rest);
        signed(&der(0x30, &tbs))
    };
    // The verified `Identity` is made from this same reading (crate-private), so fuzzing
    // the reader covers both.
    if let Ok(peer) = read_unverified(&certificate, TRUST_DOMAIN) {
        // The identity that was read renders to a URI that reads back as itself.
        let uri = peer.id.to_uri(TRUST_DOMAIN);
        assert_eq!(SpiffeId::parse(&uri, TRUST_DOMAIN).as_ref(), Some(&peer.id));
        // Scopes read back sorted and distinct, as the CA writes them.
        let scopes: Vec<_> = peer.scopes.iter().collect();
        assert!(scopes.windows(2).all(|w| w[0] < w[1]));
    }
});
