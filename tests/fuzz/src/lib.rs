//! What the fuzz targets share: DER framing and a signing key made once per process.
//!
//! Random bytes almost never carry a valid signature, so a target that only fed them to the
//! parser would never reach the checks behind the signature. Each target therefore has a
//! second mode in which the input is the *signed part* of the object and the target signs
//! it: the fuzzer then explores the CSR policy and the CRL reader, not just the parsers.

use std::sync::OnceLock;

use rcgen::{KeyPair, PublicKeyData, SigningKey};

/// `ecdsa-with-SHA256` as an AlgorithmIdentifier, the algorithm of [`signer`].
pub const ECDSA_SHA256: &[u8] = &[
    0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02,
];

/// A P-256 key made once per fuzzing process.
pub fn signer() -> &'static KeyPair {
    static KEY: OnceLock<KeyPair> = OnceLock::new();
    KEY.get_or_init(|| KeyPair::generate().expect("a P-256 key"))
}

/// The signer's SubjectPublicKeyInfo.
pub fn signer_spki() -> Vec<u8> {
    signer().subject_public_key_info()
}

/// A DER element: `tag`, definite length, `content`.
pub fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

/// `SEQUENCE { tbs, ecdsa-with-SHA256, BIT STRING signature }`: the shape of a signed
/// certificate, CSR and CRL alike.
pub fn signed(tbs: &[u8]) -> Vec<u8> {
    let signature = signer().sign(tbs).expect("signing");
    let mut bits = vec![0];
    bits.extend(signature);
    let mut content = tbs.to_vec();
    content.extend_from_slice(ECDSA_SHA256);
    content.extend(der(0x03, &bits));
    der(0x30, &content)
}
