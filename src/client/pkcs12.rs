//! PKCS#12 files for clients that load credentials in that form: Java's `KeyStore`,
//! browsers, Windows and macOS key stores, .NET, curl with `--cert-type P12`.
//!
//! A key store holds one private key (the PKCS#8 of the key directory, as written) with its
//! chain, leaf then intermediate; the key bag and the leaf's certificate bag share a
//! `localKeyId` and a `friendlyName`, which is how Java finds a `PrivateKeyEntry` and a
//! browser names the certificate. A truststore holds the CA's root certificates, each
//! marked with Oracle's trusted-key-usage attribute, which is what `keytool` writes and
//! needs to list a `trustedCertEntry`.

use super::keygen::pkcs8_version_1;
use p12_keystore::{
    Certificate, EncryptionAlgorithm, KeyStore, KeyStoreEntry, LocalKeyId, MacAlgorithm,
    PrivateKey, PrivateKeyChain,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// PBKDF2-HMAC-SHA256 iterations of the modern protection, for the key, the certificates
/// and the MAC alike (the MAC checks the password too, so it must cost as much to attack).
/// Ten times Java's default and fifty times OpenSSL's: a client that loads the file at every
/// start (a JVM, in pure-Java PBKDF2, pays three derivations) stays well under a second,
/// while a guess at the password costs three times 100,000 HMACs.
pub const MODERN_ITERATIONS: u32 = 100_000;
/// Iterations of the legacy protection: OpenSSL's default (`PKCS12_DEFAULT_ITER`), what
/// `openssl pkcs12 -export -legacy` writes and what old consumers were tested with.
pub const LEGACY_ITERATIONS: u32 = 2048;

/// How a PKCS#12 file is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protection {
    /// PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC) for keys and certificates, an HMAC-SHA256
    /// MAC: what OpenSSL 3, Java 17 and current browsers write and read.
    #[default]
    Modern,
    /// PBE-SHA1-3DES for keys and certificates and an HMAC-SHA1 MAC, for consumers that
    /// predate PBES2 in PKCS#12 (Java 8 before 8u301, Windows 7, older macOS and Android).
    /// 3DES and SHA-1 are weak: use it only where the modern file is refused.
    Legacy,
}

/// Why a PKCS#12 file could not be made.
#[derive(Debug, thiserror::Error)]
pub enum Pkcs12Error {
    /// The password is empty: an empty password protects nothing, and tools disagree on how
    /// to encode it.
    #[error("the PKCS#12 password must not be empty")]
    EmptyPassword,
    /// The private key is not PEM, or not PKCS#8 (`BEGIN PRIVATE KEY`).
    #[error("the private key must be PKCS#8 PEM (BEGIN PRIVATE KEY): {0}")]
    Key(String),
    /// No certificate, or an unreadable one.
    #[error("unreadable certificates: {0}")]
    Certificates(String),
    /// The private key does not belong to the first certificate.
    #[error("the private key does not match the certificate")]
    KeyMismatch,
    /// The PKCS#12 encoder failed.
    #[error("cannot write the PKCS#12 file: {0}")]
    Encode(String),
}

/// A password-protected PKCS#12 key store of the private key `key_pem` (PKCS#8 PEM) and the
/// chain `chain_pem` (leaf first, then the intermediate, as in a key directory's
/// `chain.pem`). The key and leaf are named `alias` (Java's alias, a browser's label).
pub fn key_store(
    key_pem: &[u8],
    chain_pem: &[u8],
    alias: &str,
    password: &str,
    protection: Protection,
) -> Result<Vec<u8>, Pkcs12Error> {
    if password.is_empty() {
        return Err(Pkcs12Error::EmptyPassword);
    }
    let key = match PrivateKeyDer::from_pem_slice(key_pem) {
        Ok(PrivateKeyDer::Pkcs8(key)) => key,
        Ok(_) => return Err(Pkcs12Error::Key("PKCS#1 or SEC1 key".into())),
        Err(e) => return Err(Pkcs12Error::Key(e.to_string())),
    };
    let chain = certificates(chain_pem)?;
    // A PKCS#12 with a key that does not sign for its certificate loads everywhere and
    // fails only at the handshake, far from the cause: check here.
    let signing = crate::tls::provider()
        .key_provider
        .load_private_key(PrivateKeyDer::Pkcs8(key.clone_key()))
        .map_err(|e| Pkcs12Error::Key(e.to_string()))?;
    rustls::sign::CertifiedKey::new(chain.clone(), signing)
        .keys_match()
        .map_err(|_| Pkcs12Error::KeyMismatch)?;

    let private_key = PrivateKey::from_der(&pkcs8_version_1(key.secret_pkcs8_der()))
        .map_err(|e| Pkcs12Error::Key(e.to_string()))?;
    let certs = chain
        .iter()
        .map(|c| Certificate::from_der(c).map_err(|e| Pkcs12Error::Certificates(e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    // OpenSSL's choice of localKeyId: the SHA-1 of the leaf. Any bytes shared by the key and
    // its leaf do; these are stable across re-exports of the same certificate.
    let local_key_id = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &chain[0]);
    let entry = PrivateKeyChain::new(LocalKeyId::from(local_key_id.as_ref()), private_key, certs);
    let mut store = KeyStore::new();
    store.add_entry(alias, KeyStoreEntry::PrivateKeyChain(entry));
    write(&store, password, protection)
}

/// A password-protected PKCS#12 truststore of the certificates in `ca_pem` (the CA's root),
/// each a trusted certificate entry named `alias` (with `-2`, `-3`… after the first).
pub fn trust_store(
    ca_pem: &[u8],
    alias: &str,
    password: &str,
    protection: Protection,
) -> Result<Vec<u8>, Pkcs12Error> {
    if password.is_empty() {
        return Err(Pkcs12Error::EmptyPassword);
    }
    let mut store = KeyStore::new();
    for (i, cert) in certificates(ca_pem)?.iter().enumerate() {
        let cert =
            Certificate::from_der(cert).map_err(|e| Pkcs12Error::Certificates(e.to_string()))?;
        let name = match i {
            0 => alias.to_owned(),
            n => format!("{alias}-{}", n + 1),
        };
        store.add_entry(&name, KeyStoreEntry::Certificate(cert));
    }
    write(&store, password, protection)
}

fn certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, Pkcs12Error> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Pkcs12Error::Certificates(e.to_string()))?;
    if certs.is_empty() {
        return Err(Pkcs12Error::Certificates("no certificate found".into()));
    }
    Ok(certs)
}

fn write(store: &KeyStore, password: &str, protection: Protection) -> Result<Vec<u8>, Pkcs12Error> {
    let writer = store.writer(password);
    let writer = match protection {
        Protection::Modern => writer
            .encryption_algorithm(EncryptionAlgorithm::PbeWithHmacSha256AndAes256)
            .encryption_iterations(MODERN_ITERATIONS)
            .mac_algorithm(MacAlgorithm::HmacSha256)
            .mac_iterations(MODERN_ITERATIONS),
        Protection::Legacy => writer
            .encryption_algorithm(EncryptionAlgorithm::PbeWithShaAnd3KeyTripleDesCbc)
            .encryption_iterations(LEGACY_ITERATIONS)
            .mac_algorithm(MacAlgorithm::HmacSha1)
            .mac_iterations(LEGACY_ITERATIONS),
    };
    writer
        .write()
        .map_err(|e| Pkcs12Error::Encode(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_an_empty_password_and_a_foreign_key() {
        let a = crate::client::new_key_pair(crate::client::KeyType::P256).unwrap();
        let b = crate::client::new_key_pair(crate::client::KeyType::P256).unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["x".into()]).unwrap();
        params.is_ca = rcgen::IsCa::NoCa;
        let key = rcgen::KeyPair::from_pem(&a.key_pem).unwrap();
        let cert = params.self_signed(&key).unwrap().pem();
        assert!(matches!(
            key_store(
                a.key_pem.as_bytes(),
                cert.as_bytes(),
                "k",
                "",
                Protection::Modern
            ),
            Err(Pkcs12Error::EmptyPassword)
        ));
        assert!(matches!(
            key_store(
                b.key_pem.as_bytes(),
                cert.as_bytes(),
                "k",
                "pw",
                Protection::Legacy
            ),
            Err(Pkcs12Error::KeyMismatch)
        ));
        let p12 = key_store(
            a.key_pem.as_bytes(),
            cert.as_bytes(),
            "k",
            "pw",
            Protection::Legacy,
        )
        .unwrap();
        let back =
            KeyStore::from_pkcs12(&p12, "pw", p12_keystore::Pkcs12ImportPolicy::Relaxed).unwrap();
        assert_eq!(back.private_key_chain().unwrap().0, "k");
        // An Ed25519 key of ring's (PKCS#8 v2) goes in as v1 with the same private key...
        let ring_v2 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)
            .unwrap()
            .serialize_der();
        let v1 = pkcs8_version_1(&ring_v2);
        assert_eq!((ring_v2[4], v1[4]), (1, 0));
        assert_eq!(v1[5..], ring_v2[5..v1.len()]);
        // ...and the client writes its key files as v1 in the first place.
        let ed = crate::client::new_key_pair(crate::client::KeyType::Ed25519).unwrap();
        let der = PrivateKeyDer::from_pem_slice(ed.key_pem.as_bytes()).unwrap();
        assert_eq!(der.secret_der()[4], 0);
        assert!(
            KeyStore::from_pkcs12(&p12, "wrong", p12_keystore::Pkcs12ImportPolicy::Relaxed)
                .is_err()
        );
    }
}
