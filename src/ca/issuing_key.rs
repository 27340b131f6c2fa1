//! The issuing intermediate's private key, wherever it is kept.

use rcgen::{KeyPair, PublicKeyData, SignatureAlgorithm, SigningKey};

use super::pkcs11::Pkcs11Key;

/// The issuing key: read from a PKCS#8 file at start, or held by a PKCS#11 token that signs
/// for us. Both sign through rcgen's [`SigningKey`], the one signing interface, so the signer
/// neither knows nor cares which it holds.
#[derive(Debug)]
pub enum IssuingKey {
    /// A key from a file (plain or decrypted with the CA's passphrase).
    File(Box<KeyPair>),
    /// A key inside a PKCS#11 token.
    Pkcs11(Pkcs11Key),
}

impl IssuingKey {
    /// A key from its PKCS#8 PEM.
    pub fn from_pem(pem: &str) -> Result<Self, rcgen::Error> {
        Ok(Self::File(Box::new(KeyPair::from_pem(pem)?)))
    }
}

impl PublicKeyData for IssuingKey {
    fn der_bytes(&self) -> &[u8] {
        match self {
            Self::File(key) => key.der_bytes(),
            Self::Pkcs11(key) => key.der_bytes(),
        }
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        match self {
            Self::File(key) => key.algorithm(),
            Self::Pkcs11(key) => key.algorithm(),
        }
    }
}

impl SigningKey for IssuingKey {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        match self {
            Self::File(key) => key.sign(message),
            Self::Pkcs11(key) => key.sign(message),
        }
    }
}
