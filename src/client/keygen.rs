//! Key pairs and CSRs, made on the key holder's machine. The private key is PEM text in
//! memory until it is written to the key directory; it is never sent anywhere.

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};

use super::ClientError;

/// The key types the client can make (ring cannot generate RSA keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyType {
    /// ECDSA P-256 (the default).
    #[default]
    P256,
    /// ECDSA P-384.
    P384,
    /// Ed25519.
    Ed25519,
}

impl std::str::FromStr for KeyType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "p256" | "p-256" | "ecdsa-p256" => Ok(Self::P256),
            "p384" | "p-384" | "ecdsa-p384" => Ok(Self::P384),
            "ed25519" => Ok(Self::Ed25519),
            _ => Err(format!("unknown key type {s:?}: use p256, p384 or ed25519")),
        }
    }
}

/// A new private key and a CSR for it.
pub struct NewKeyPair {
    /// The private key, PKCS#8 PEM.
    pub key_pem: String,
    /// The CSR, PEM. It requests nothing: the CA decides the whole certificate.
    pub csr_pem: String,
}

/// Makes a key pair of `key_type` and a CSR signed with it.
pub fn new_key_pair(key_type: KeyType) -> Result<NewKeyPair, ClientError> {
    let alg = match key_type {
        KeyType::P256 => &rcgen::PKCS_ECDSA_P256_SHA256,
        KeyType::P384 => &rcgen::PKCS_ECDSA_P384_SHA384,
        KeyType::Ed25519 => &rcgen::PKCS_ED25519,
    };
    let key = KeyPair::generate_for(alg).map_err(|e| ClientError::KeyGen(e.to_string()))?;
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, "latchkey key");
    let csr = params
        .serialize_request(&key)
        .and_then(|csr| csr.pem())
        .map_err(|e| ClientError::KeyGen(e.to_string()))?;
    Ok(NewKeyPair {
        // Version 1, which every TLS stack reads (OpenSSL 3.0 cannot read ring's v2 Ed25519).
        key_pem: crate::pem::encode("PRIVATE KEY", &pkcs8_version_1(&key.serialize_der())),
        csr_pem: csr,
    })
}

/// The PKCS#8 `der` as version 1 (RFC 5208): a version 2 key (RFC 5958, which ring writes
/// for Ed25519) loses its optional public key and attributes, the rest byte for byte.
/// OpenSSL 3.0 cannot read version 2 (`openssl pkey`, curl and nginx with the key file, and
/// inside a PKCS#12), and the public key is the certificate's anyway. Anything else is
/// returned as it is.
pub(crate) fn pkcs8_version_1(der: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let parsed = yasna::parse_der(der, |r| {
        r.read_sequence(|r| {
            let version = r.next().read_u8()?;
            let algorithm = r.next().read_der()?;
            let key = r.next().read_bytes()?;
            // [0] attributes and [1] publicKey, whatever they hold.
            r.read_optional(|r| r.read_der())?;
            r.read_optional(|r| r.read_der())?;
            Ok((version, algorithm, key))
        })
    });
    match parsed {
        Ok((1, algorithm, key)) => std::borrow::Cow::Owned(yasna::construct_der(|w| {
            w.write_sequence(|w| {
                w.next().write_u8(0);
                w.next().write_der(&algorithm);
                w.next().write_bytes(&key);
            })
        })),
        _ => std::borrow::Cow::Borrowed(der),
    }
}
