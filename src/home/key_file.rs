//! The CA's private key files at rest: plain PKCS#8 (`PRIVATE KEY`), or PKCS#8
//! `ENCRYPTED PRIVATE KEY` under the operator's passphrase.
//!
//! Encryption is PBES2 with PBKDF2-HMAC-SHA256 at 600,000 iterations (OWASP's
//! recommendation) and AES-256-CBC. scrypt would be the stronger function, but OpenSSL reads
//! scrypt-encrypted keys only up to N = 2^14 with r = 8 (its 32 MiB limit), below OWASP's
//! scrypt recommendation; PBKDF2 at full strength keeps every key checkable and recoverable
//! with `openssl pkey` on any host, which an operator of a CA needs more.

use std::fmt;
use std::path::{Path, PathBuf};

use pkcs8::der::{Decode, pem::PemLabel};
use pkcs8::pkcs5::pbes2;
use pkcs8::{EncryptedPrivateKeyInfoRef, LineEnding, PrivateKeyInfoRef};
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

/// PBKDF2-HMAC-SHA256 iterations (OWASP, 2023).
const PBKDF2_ITERATIONS: u32 = 600_000;

/// The passphrase that opens the CA's encrypted keys. Never printed.
#[derive(Clone)]
pub struct Passphrase(Zeroizing<String>);

impl Passphrase {
    /// A passphrase as given. Refuses an empty one: it would encrypt with nothing.
    pub fn new(text: impl Into<Zeroizing<String>>) -> Result<Self, KeyFileError> {
        let text = text.into();
        if text.is_empty() {
            return Err(KeyFileError::EmptyPassphrase);
        }
        Ok(Self(text))
    }

    /// The passphrase in a file (see [`read_secret_line`]).
    pub fn from_file(path: &Path) -> Result<Self, KeyFileError> {
        Self::new(read_secret_line(path, "CA passphrase")?)
    }
}

/// The secret on the one line of the file `path` (a systemd credential, a mounted secret),
/// without the line break an editor or `echo` leaves at its end; `what` names it in the error.
/// Read into memory that is wiped when dropped, and trimmed in place.
pub fn read_secret_line(
    path: &Path,
    what: &'static str,
) -> Result<Zeroizing<String>, KeyFileError> {
    let mut text =
        Zeroizing::new(
            std::fs::read_to_string(path).map_err(|e| KeyFileError::SecretFile {
                what,
                path: path.to_owned(),
                why: e.to_string(),
            })?,
        );
    if text.ends_with('\n') {
        text.pop();
    }
    if text.ends_with('\r') {
        text.pop();
    }
    Ok(text)
}

impl fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Passphrase(..)")
    }
}

/// Why a CA key file could not be read or protected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFileError {
    /// The key is encrypted and no passphrase was given.
    #[error(
        "{0} is encrypted: give its passphrase with --passphrase-file or LATCHKEY_CA_PASSPHRASE_FILE"
    )]
    Locked(PathBuf),
    /// Keys are to be encrypted and no passphrase was given.
    #[error(
        "encrypting the CA's keys needs a passphrase: give it with --passphrase-file or LATCHKEY_CA_PASSPHRASE_FILE, or at a terminal"
    )]
    NoPassphrase,
    /// The passphrase does not open the key.
    #[error("{0}: wrong passphrase")]
    WrongPassphrase(PathBuf),
    /// An empty passphrase was given.
    #[error("the CA passphrase is empty")]
    EmptyPassphrase,
    /// A file holding a secret (the passphrase, a PIN) could not be read.
    #[error("cannot read the {what} from {path}: {why}")]
    SecretFile {
        /// What the file holds.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What went wrong.
        why: String,
    },
    /// The file is neither a PKCS#8 key nor an encrypted one.
    #[error("{path}: not a PKCS#8 private key ({why})")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// The system's random source or the cipher failed.
    #[error("cannot encrypt {path}: {why}")]
    Encrypt {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        why: String,
    },
}

/// True when `pem` holds an `ENCRYPTED PRIVATE KEY`.
pub fn is_encrypted(pem: &str) -> bool {
    pem.trim_start().starts_with(&format!(
        "-----BEGIN {}-----",
        EncryptedPrivateKeyInfoRef::PEM_LABEL
    ))
}

/// The plain PKCS#8 PEM of the key file `path` holds in `pem`: as it is when it is not
/// encrypted, decrypted with `passphrase` when it is.
pub fn open(
    path: &Path,
    pem: &str,
    passphrase: Option<&Passphrase>,
) -> Result<Zeroizing<String>, KeyFileError> {
    if !is_encrypted(pem) {
        return Ok(Zeroizing::new(pem.to_owned()));
    }
    let passphrase = passphrase.ok_or_else(|| KeyFileError::Locked(path.to_owned()))?;
    let malformed = |why: String| KeyFileError::Malformed {
        path: path.to_owned(),
        why,
    };
    let (label, der) =
        pkcs8::der::pem::decode_vec(pem.as_bytes()).map_err(|e| malformed(e.to_string()))?;
    if label != EncryptedPrivateKeyInfoRef::PEM_LABEL {
        return Err(malformed(format!("unexpected PEM label {label}")));
    }
    let encrypted =
        EncryptedPrivateKeyInfoRef::from_der(&der).map_err(|e| malformed(e.to_string()))?;
    // A wrong passphrase shows as bad padding or as plaintext that is not a key.
    let plain = encrypted
        .decrypt(passphrase.0.as_bytes())
        .map_err(|_| KeyFileError::WrongPassphrase(path.to_owned()))?;
    PrivateKeyInfoRef::try_from(plain.as_bytes())
        .map_err(|_| KeyFileError::WrongPassphrase(path.to_owned()))?;
    let pem = plain
        .to_pem(PrivateKeyInfoRef::PEM_LABEL, LineEnding::LF)
        .map_err(|e| malformed(e.to_string()))?;
    Ok(pem)
}

/// The plain PKCS#8 key `pem` (of the file `path`), encrypted under `passphrase` as an
/// `ENCRYPTED PRIVATE KEY` PEM.
pub fn encrypt(path: &Path, pem: &str, passphrase: &Passphrase) -> Result<String, KeyFileError> {
    let failed = |why: String| KeyFileError::Encrypt {
        path: path.to_owned(),
        why,
    };
    let (label, der) =
        pkcs8::der::pem::decode_vec(pem.as_bytes()).map_err(|e| KeyFileError::Malformed {
            path: path.to_owned(),
            why: e.to_string(),
        })?;
    let der = Zeroizing::new(der);
    let key = PrivateKeyInfoRef::try_from(der.as_slice())
        .ok()
        .filter(|_| label == PrivateKeyInfoRef::PEM_LABEL)
        .ok_or_else(|| KeyFileError::Malformed {
            path: path.to_owned(),
            why: format!("expected a {} PEM", PrivateKeyInfoRef::PEM_LABEL),
        })?;
    let random = SystemRandom::new();
    let mut salt = [0u8; 16];
    let mut iv = [0u8; 16];
    random
        .fill(&mut salt)
        .and_then(|()| random.fill(&mut iv))
        .map_err(|_| failed("the system's random source failed".into()))?;
    let parameters =
        pbes2::Parameters::generate_pbkdf2_sha256_aes256cbc(PBKDF2_ITERATIONS, &salt, iv)
            .map_err(|e| failed(e.to_string()))?;
    let encrypted = key
        .encrypt_with_params(parameters, passphrase.0.as_bytes())
        .map_err(|e| failed(e.to_string()))?;
    let pem = encrypted
        .to_pem(EncryptedPrivateKeyInfoRef::PEM_LABEL, LineEnding::LF)
        .map_err(|e| failed(e.to_string()))?;
    Ok(pem.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_pem() -> String {
        rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .unwrap()
            .serialize_pem()
    }

    #[test]
    fn an_encrypted_key_opens_with_its_passphrase_and_no_other() {
        let path = Path::new("intermediate-key.pem");
        let plain = key_pem();
        let passphrase = Passphrase::new(String::from("correct horse")).unwrap();
        let sealed = encrypt(path, &plain, &passphrase).unwrap();
        assert!(is_encrypted(&sealed));
        assert!(!sealed.contains(&plain[30..60]));
        assert_eq!(
            open(path, &sealed, Some(&passphrase)).unwrap().as_str(),
            plain
        );
        let wrong = Passphrase::new(String::from("battery staple")).unwrap();
        assert!(matches!(
            open(path, &sealed, Some(&wrong)),
            Err(KeyFileError::WrongPassphrase(_))
        ));
        assert!(matches!(
            open(path, &sealed, None),
            Err(KeyFileError::Locked(_))
        ));
        // A plain key needs no passphrase and ignores one.
        assert_eq!(open(path, &plain, Some(&wrong)).unwrap().as_str(), plain);
    }

    #[test]
    fn a_passphrase_is_never_printed_nor_empty() {
        let passphrase = Passphrase::new(String::from("hunter2")).unwrap();
        assert!(!format!("{passphrase:?}").contains("hunter2"));
        assert!(matches!(
            Passphrase::new(String::new()),
            Err(KeyFileError::EmptyPassphrase)
        ));
    }
}
