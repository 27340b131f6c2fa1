//! Identity extraction: what a relying service reads from a verified client certificate
//! (tenant, key id, scopes) and what the CA reads from an administrator's.
//!
//! The first byte picks the mode: even, the rest is a certificate; odd, the rest is the
//! part of a TBSCertificate after the issuer name (validity, subject, key, extensions),
//! which the target completes and signs, as the verifier only hands over chain-verified
//! certificates.
#![no_main]

use latchkey::model::profile::SpiffeId;
use latchkey::tls::{Identity, PeerIdentity};
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
    let peer = PeerIdentity::from_der(&certificate, TRUST_DOMAIN);
    let identity = Identity::from_der(&certificate, TRUST_DOMAIN);
    if let Ok(peer) = &peer {
        // The identity that was read renders to a URI that reads back as itself.
        let uri = peer.id.to_uri(TRUST_DOMAIN);
        assert_eq!(SpiffeId::parse(&uri, TRUST_DOMAIN).as_ref(), Some(&peer.id));
    }
    match (&peer, &identity) {
        // A key's identity is the peer identity's, field for field.
        (Ok(peer), Ok(identity)) => {
            assert_eq!(peer.scopes, identity.scopes);
            assert_eq!(peer.serial, identity.serial);
            for scope in identity.scopes.iter() {
                assert!(identity.has_scope(scope.as_str()));
            }
        }
        (Err(_), Ok(_)) => panic!("a key identity from a certificate without a peer identity"),
        _ => {}
    }
});
