//! The issuing key's public half, for drafts that are signed only once they are final.
//!
//! rcgen writes a certificate and signs it in one go, and cannot write the key certificate's
//! subject (a `UID` and one `OU` per scope): `Signer::sign_key_certificate` has rcgen write
//! a draft, puts the subject in place and signs the result. Signing the draft with the real
//! key too was an ECDSA signature thrown away at every issuance, some 5% of the CA's CPU per
//! certificate in a profile (BENCHMARKS.md, issue 14). A draft is "signed" by this key instead: the same
//! public key and algorithm, so the draft's issuer, key identifiers and algorithm fields are
//! the real ones, and a placeholder where the signature goes, which the final signing
//! replaces. `profile::replace_subject` refuses a certificate whose subject is not where the
//! draft had it, so a draft cannot leave the signer.

use rcgen::{PublicKeyData, SignatureAlgorithm, SigningKey};

/// The length of the placeholder signature: that of a P-384 ECDSA signature at most, which
/// no caller reads.
const PLACEHOLDER: usize = 104;

/// An issuing key's public key and algorithm, signing nothing.
#[derive(Debug)]
pub(super) struct DraftKey {
    public_key: Vec<u8>,
    algorithm: &'static SignatureAlgorithm,
}

impl DraftKey {
    /// The draft key of `key`.
    pub(super) fn of(key: &impl PublicKeyData) -> Self {
        Self {
            public_key: key.der_bytes().to_vec(),
            algorithm: key.algorithm(),
        }
    }
}

impl PublicKeyData for DraftKey {
    fn der_bytes(&self) -> &[u8] {
        &self.public_key
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.algorithm
    }
}

impl SigningKey for DraftKey {
    fn sign(&self, _draft: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        Ok(vec![0; PLACEHOLDER])
    }
}
