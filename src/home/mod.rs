//! The CA home (`certs/` by default): the key material and settings a CA is made of, on
//! disk. Private keys are written with mode 0600 in a 0700 directory, and an existing CA is
//! never overwritten.

mod init;
pub mod key_file;
mod vault;

use std::path::{Path, PathBuf};

use crate::files;

pub use init::{ADMIN_NAME, InitOptions, ServiceCertificateFile};
pub use key_file::{KeyFileError, Passphrase};
pub use vault::IssuerVault;

/// Why the CA home could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum HomeError {
    /// A file could not be read or written.
    #[error(transparent)]
    File(#[from] crate::files::FileError),
    /// A CA exists here already; `init` never overwrites one.
    #[error("a CA already exists in {0}; refusing to overwrite it")]
    AlreadyInitialized(PathBuf),
    /// Some CA files exist but the CA was never completed.
    #[error(
        "{0} holds CA files from an initialization that did not finish ({1}); move them away, then start again"
    )]
    Incomplete(PathBuf, String),
    /// The settings file is unreadable.
    #[error("{path}: {why}")]
    Settings {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// A certificate or key file is unreadable.
    #[error("{path}: {why}")]
    Material {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// Making the CA failed.
    #[error(transparent)]
    Bootstrap(#[from] crate::ca::BootstrapError),
    /// The issuing CA could not be loaded.
    #[error(transparent)]
    Signer(#[from] crate::ca::SignerError),
    /// A CA key file could not be opened or protected.
    #[error(transparent)]
    Key(#[from] KeyFileError),
    /// The PKCS#11 token holding the intermediate's key could not be used.
    #[error(transparent)]
    Pkcs11(#[from] crate::ca::Pkcs11Error),
}

/// The settings chosen at initialization, kept in `latchkey.json`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The SPIFFE trust domain of every key's URI.
    pub trust_domain: String,
    /// The names the server certificate carries besides the loopback ones.
    pub hostnames: Vec<String>,
    /// The base URL relying parties reach the CA at (for the CRL distribution point).
    pub public_url: String,
    /// The base URL CRL distribution points name, when not the public URL: an `http://`
    /// URL served by `serve --crl-http-listen`, for relying parties that fetch CRLs
    /// themselves and speak only plain HTTP (CRLs are signed; RFC 5280 §4.2.1.13).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crl_url: Option<String>,
    /// Where the intermediate's key is, when it is in a PKCS#11 token rather than in
    /// `intermediate-key.pem`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pkcs11: Option<crate::ca::Pkcs11Location>,
}

impl Settings {
    /// The base of the CRL URLs: `<base>/v1/crl` (keys) and `<base>/v1/crl/root` (the
    /// intermediate).
    pub fn crl_base(&self) -> &str {
        self.crl_url
            .as_deref()
            .unwrap_or(&self.public_url)
            .trim_end_matches('/')
    }
}

/// The files of a CA home.
#[derive(Debug, Clone)]
pub struct Home {
    dir: PathBuf,
    passphrase: Option<Passphrase>,
    pkcs11_pin: Option<crate::ca::Pkcs11Pin>,
}

impl Home {
    /// The CA home at `dir` (which need not exist yet).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            passphrase: None,
            pkcs11_pin: None,
        }
    }

    /// This home, with the PIN of the PKCS#11 token that holds (or, at `init`, is to make)
    /// the intermediate's key.
    pub fn with_pkcs11_pin(mut self, pin: Option<crate::ca::Pkcs11Pin>) -> Self {
        self.pkcs11_pin = pin;
        self
    }

    /// The PKCS#11 token's PIN, or why there is none.
    pub(super) fn pkcs11_pin(
        &self,
        location: &crate::ca::Pkcs11Location,
    ) -> Result<&crate::ca::Pkcs11Pin, HomeError> {
        self.pkcs11_pin
            .as_ref()
            .ok_or_else(|| crate::ca::Pkcs11Error::NoPin(location.token.clone()).into())
    }

    /// This home, with the passphrase that opens (or, at `init` or `encrypt_keys`, seals) the
    /// CA's keys.
    pub fn with_passphrase(mut self, passphrase: Option<Passphrase>) -> Self {
        self.passphrase = passphrase;
        self
    }

    /// True when the CA's keys here are encrypted, so that a passphrase is needed to serve.
    pub fn keys_encrypted(&self) -> bool {
        [self.intermediate_key(), self.root_key()]
            .iter()
            .any(|path| {
                files::read(path)
                    .is_ok_and(|pem| key_file::is_encrypted(&String::from_utf8_lossy(&pem)))
            })
    }

    /// The plain PKCS#8 PEM of the CA key at `path`, decrypted when it is encrypted.
    fn private_key(&self, path: &Path) -> Result<zeroize::Zeroizing<String>, HomeError> {
        let pem = String::from_utf8(files::read(path)?).map_err(|_| HomeError::Material {
            path: path.to_owned(),
            why: "not PEM text".into(),
        })?;
        Ok(key_file::open(path, &pem, self.passphrase.as_ref())?)
    }

    /// Encrypts every CA key here that is not encrypted yet under this home's passphrase.
    /// Keys already encrypted must open with it. Every key is checked and sealed in memory
    /// before any file is replaced (atomically), so a wrong passphrase writes nothing, and an
    /// interrupted run leaves each key either plain or sealed, never lost; running again
    /// finishes it. Returns the files it encrypted.
    pub fn encrypt_keys(&self) -> Result<Vec<PathBuf>, HomeError> {
        let passphrase = self.passphrase.as_ref().ok_or(KeyFileError::NoPassphrase)?;
        let mut sealed = Vec::new();
        for path in [self.root_key(), self.intermediate_key()] {
            if !path.exists() {
                continue; // The root key kept offline, the intermediate's in a token.
            }
            let pem = String::from_utf8(files::read(&path)?).map_err(|_| HomeError::Material {
                path: path.clone(),
                why: "not PEM text".into(),
            })?;
            if key_file::is_encrypted(&pem) {
                key_file::open(&path, &pem, Some(passphrase))?;
                continue;
            }
            let encrypted = key_file::encrypt(&path, &pem, passphrase)?;
            // Never replace a key with something that does not give it back.
            if key_file::open(&path, &encrypted, Some(passphrase))?.as_str() != pem {
                return Err(KeyFileError::Encrypt {
                    path,
                    why: "the encrypted key does not decrypt to the same key".into(),
                }
                .into());
            }
            sealed.push((path, encrypted));
        }
        for (path, encrypted) in &sealed {
            self.replace(path, encrypted.as_bytes(), true)?;
        }
        Ok(sealed.into_iter().map(|(path, _)| path).collect())
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The root certificate: the file clients trust. Written last, so its presence means
    /// the CA is complete.
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }
    /// The root's private key.
    pub fn root_key(&self) -> PathBuf {
        self.dir.join("root-key.pem")
    }
    /// The issuing intermediate's certificate.
    pub fn intermediate_cert(&self) -> PathBuf {
        self.dir.join("intermediate.pem")
    }
    /// The issuing intermediate's private key.
    pub fn intermediate_key(&self) -> PathBuf {
        self.dir.join("intermediate-key.pem")
    }
    /// The HTTPS listener's certificate chain (leaf, intermediate).
    pub fn server_cert(&self) -> PathBuf {
        self.dir.join("server.pem")
    }
    /// The HTTPS listener's private key.
    pub fn server_key(&self) -> PathBuf {
        self.dir.join("server-key.pem")
    }
    /// The administrator's directory: `cert.pem`, `chain.pem`, `key.pem`.
    pub fn admin_dir(&self) -> PathBuf {
        self.dir.join("admin")
    }
    /// The settings.
    pub fn settings_file(&self) -> PathBuf {
        self.dir.join("latchkey.json")
    }
    /// The embedded SQLite database.
    pub fn database(&self) -> PathBuf {
        self.dir.join("latchkey.db")
    }

    /// True when the CA is complete (its root certificate exists).
    pub fn is_initialized(&self) -> bool {
        self.ca_cert().exists()
    }

    /// Reads the settings.
    pub fn settings(&self) -> Result<Settings, HomeError> {
        let path = self.settings_file();
        let text = files::read(&path)?;
        serde_json::from_slice(&text).map_err(|e| HomeError::Settings {
            path,
            why: e.to_string(),
        })
    }

    /// Reads a PEM file.
    pub fn read(&self, path: &Path) -> Result<Vec<u8>, HomeError> {
        Ok(files::read(path)?)
    }

    /// Replaces a file atomically (write, fsync, rename), with mode 0600 if `secret`.
    pub fn replace(&self, path: &Path, contents: &[u8], secret: bool) -> Result<(), HomeError> {
        Ok(files::replace(path, contents, secret)?)
    }

    /// The issuing CA as a signer, from the files and settings.
    pub fn signer(&self) -> Result<crate::ca::Signer, HomeError> {
        let settings = self.settings()?;
        let cert_path = self.intermediate_cert();
        let cert = crate::tls::load_certificates(&files::read(&cert_path)?, "intermediate.pem")
            .map_err(|e| HomeError::Material {
                path: cert_path.clone(),
                why: e.to_string(),
            })?
            .remove(0);
        let key = match &settings.pkcs11 {
            Some(location) => crate::ca::IssuingKey::Pkcs11(crate::ca::Pkcs11Key::open(
                location,
                self.pkcs11_pin(location)?,
            )?),
            None => {
                let pem = self.private_key(&self.intermediate_key())?;
                crate::ca::IssuingKey::from_pem(&pem).map_err(|e| HomeError::Material {
                    path: self.intermediate_key(),
                    why: e.to_string(),
                })?
            }
        };
        Ok(crate::ca::Signer::with_key(
            cert,
            key,
            &settings.trust_domain,
            &format!("{}/v1/crl", settings.crl_base()),
        )?)
    }

    /// The root as a CRL signer, or `None` when its key is not in the home (kept offline).
    pub fn root_signer(&self) -> Result<Option<crate::ca::RootSigner>, HomeError> {
        let key_path = self.root_key();
        if !key_path.exists() {
            return Ok(None);
        }
        let cert_path = self.ca_cert();
        let cert = crate::tls::load_certificates(&files::read(&cert_path)?, "ca.pem")
            .map_err(|e| HomeError::Material {
                path: cert_path.clone(),
                why: e.to_string(),
            })?
            .remove(0);
        let key = self.private_key(&key_path)?;
        Ok(Some(crate::ca::RootSigner::new(&cert, &key)?))
    }
}
