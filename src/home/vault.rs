//! The keys of the intermediates made after initialization (`latchkey ca rotate`, a tenant's
//! dedicated issuer): where they are made and how they are opened again.
//!
//! Every replica must sign with a new intermediate without a file being copied to it, so its
//! key lives in the store, sealed as PKCS#8 `ENCRYPTED PRIVATE KEY` (the same PBES2 as the
//! CA's key files): under the CA's passphrase when the home's keys are encrypted, otherwise
//! under `issuer-keys.secret`, a random secret the home keeps (mode 0600) and its copies at
//! the replicas share. A stolen database alone therefore opens no CA key. With a PKCS#11
//! token, the key is made inside the token under a label of its own and never leaves it.

use std::path::PathBuf;

use zeroize::Zeroizing;

use super::key_file::{self, Passphrase};
use super::{Home, HomeError};
use crate::ca::{IssuingKey, Pkcs11Key, Pkcs11Location, Pkcs11Pin, Signer};
use crate::files;
use crate::model::IssuerKeyLocation;

/// What opens and makes intermediate keys, taken from the CA home once at start.
pub struct IssuerVault {
    /// The home's own intermediate, opened at start (its key is in the home's files or token).
    home_signer: std::sync::Arc<Signer>,
    /// The passphrase stored keys are sealed under, if the home has one.
    passphrase: Option<Passphrase>,
    /// `issuer-keys.secret`.
    secret_path: PathBuf,
    /// The token and its PIN, when the home's keys are in one.
    pkcs11: Option<(Pkcs11Location, Pkcs11Pin)>,
    trust_domain: String,
    crl_base: String,
}

impl std::fmt::Debug for IssuerVault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuerVault")
            .field("secret_path", &self.secret_path)
            .field("pkcs11", &self.pkcs11.as_ref().map(|(l, _)| l))
            .finish_non_exhaustive()
    }
}

impl Home {
    /// The secret that seals intermediate keys kept in the store when the home's keys are
    /// not encrypted.
    pub fn issuer_keys_secret(&self) -> PathBuf {
        self.dir.join("issuer-keys.secret")
    }

    /// Writes a new `issuer-keys.secret` unless the home has one, or its keys are encrypted
    /// (the passphrase seals then). Returns true when it wrote one.
    pub fn ensure_issuer_keys_secret(&self) -> Result<bool, HomeError> {
        let path = self.issuer_keys_secret();
        if path.exists() || self.keys_encrypted() {
            return Ok(false);
        }
        let secret = Zeroizing::new(hex::encode(crate::random_bytes::<32>()));
        files::create_new(&path, secret.as_bytes(), true)?;
        Ok(true)
    }

    /// The vault of this home's intermediates; `home_signer` is its own intermediate, opened.
    pub fn issuer_vault(
        &self,
        home_signer: std::sync::Arc<Signer>,
    ) -> Result<IssuerVault, HomeError> {
        let settings = self.settings()?;
        let pkcs11 = match &settings.pkcs11 {
            Some(location) => Some((location.clone(), self.pkcs11_pin(location)?.clone())),
            None => None,
        };
        Ok(IssuerVault {
            home_signer,
            // Only an encrypted home's passphrase seals: a plain home started with one by
            // mistake must not seal keys that its next start, without it, cannot open.
            passphrase: self.passphrase.clone().filter(|_| self.keys_encrypted()),
            secret_path: self.issuer_keys_secret(),
            pkcs11,
            trust_domain: settings.trust_domain.clone(),
            crl_base: settings.crl_base().to_owned(),
        })
    }
}

impl IssuerVault {
    /// The home's own intermediate.
    pub fn home_signer(&self) -> &std::sync::Arc<Signer> {
        &self.home_signer
    }

    /// Where the first root's CRL is served (`/v1/crl/root`), or with `Some(key id)`, the
    /// CRL of a root a rollover made (`/v1/roots/{key id, hex}/crl`): what an intermediate
    /// or a cross-certificate it signs names as its distribution point.
    pub fn root_crl_url(&self, rolled: Option<&[u8]>) -> String {
        match rolled {
            None => format!("{}/v1/crl/root", self.crl_base),
            Some(key_id) => format!("{}/v1/roots/{}/crl", self.crl_base, hex::encode(key_id)),
        }
    }

    /// The signer of a recorded intermediate. Key certificates of the home's intermediate
    /// name `/v1/crl` as their distribution point (as they always have), the others their
    /// issuer's own CRL.
    pub fn open(
        &self,
        id: i64,
        certificate: &[u8],
        key: &IssuerKeyLocation,
    ) -> Result<std::sync::Arc<Signer>, HomeError> {
        let certificate = rustls_pki_types::CertificateDer::from(certificate.to_vec());
        let crl_url = format!("{}/v1/issuers/{id}/crl", self.crl_base);
        let key = match key {
            IssuerKeyLocation::Home => {
                if certificate.as_ref() != self.home_signer.certificate().as_ref() {
                    return Err(HomeError::Material {
                        path: self.secret_path.with_file_name("intermediate.pem"),
                        why: format!(
                            "issuer {} is recorded as the home's intermediate, which is another",
                            id
                        ),
                    });
                }
                return Ok(self.home_signer.clone());
            }
            IssuerKeyLocation::Stored(sealed) => {
                let pem = self.unseal(id, sealed)?;
                IssuingKey::from_pem(&pem).map_err(|e| self.material(id, e.to_string()))?
            }
            IssuerKeyLocation::Token(label) => {
                let (location, pin) = self.pkcs11.as_ref().ok_or_else(|| {
                    self.material(
                        id,
                        "its key is in a PKCS#11 token, and latchkey.json names none".into(),
                    )
                })?;
                let location = Pkcs11Location {
                    key_label: label.clone(),
                    ..location.clone()
                };
                IssuingKey::Pkcs11(Pkcs11Key::open(&location, pin)?)
            }
        };
        Ok(std::sync::Arc::new(Signer::with_key(
            certificate,
            key,
            &self.trust_domain,
            &crl_url,
        )?))
    }

    /// A new key for an intermediate: inside the token when the home's keys are in one
    /// (under a new label), else a P-256 key sealed for the store. Returns the key and where
    /// to record it.
    pub fn new_key(&self) -> Result<(IssuingKey, IssuerKeyLocation), HomeError> {
        if let Some((location, pin)) = &self.pkcs11 {
            let label = format!(
                "{}-{}",
                location.key_label,
                hex::encode(crate::random_bytes::<4>())
            );
            let location = Pkcs11Location {
                key_label: label.clone(),
                ..location.clone()
            };
            let key = Pkcs11Key::generate(&location, pin)?;
            return Ok((IssuingKey::Pkcs11(key), IssuerKeyLocation::Token(label)));
        }
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(crate::ca::BootstrapError::from)?;
        let sealed = self.seal(&key)?;
        Ok((IssuingKey::File(Box::new(key)), sealed))
    }

    /// `key` sealed for the store (a new root's key, or an intermediate's outside a token).
    pub fn seal(&self, key: &rcgen::KeyPair) -> Result<IssuerKeyLocation, HomeError> {
        let pem = Zeroizing::new(key.serialize_pem());
        let sealed = key_file::encrypt(&self.secret_path, &pem, &self.sealing_passphrase()?)?;
        Ok(IssuerKeyLocation::Stored(sealed))
    }

    /// The signer of a root a rollover made, from its certificate and its sealed key.
    pub fn open_root(
        &self,
        id: i64,
        certificate: &[u8],
        sealed: &str,
    ) -> Result<crate::ca::RootSigner, HomeError> {
        let pem = self.unseal(id, sealed)?;
        let certificate = rustls_pki_types::CertificateDer::from(certificate.to_vec());
        Ok(crate::ca::RootSigner::new(&certificate, &pem)?)
    }

    /// The passphrase new keys are sealed under: the CA's, else `issuer-keys.secret`.
    fn sealing_passphrase(&self) -> Result<Passphrase, HomeError> {
        match &self.passphrase {
            Some(passphrase) => Ok(passphrase.clone()),
            None => Ok(Passphrase::new(key_file::read_secret_line(
                &self.secret_path,
                "intermediate keys' secret",
            )?)?),
        }
    }

    /// The plain PKCS#8 PEM of a stored key: sealed under the CA's passphrase, or (when the
    /// home's keys were encrypted after it was made) under `issuer-keys.secret`.
    fn unseal(&self, id: i64, sealed: &str) -> Result<Zeroizing<String>, HomeError> {
        let mut tried = Vec::new();
        if let Some(passphrase) = &self.passphrase {
            match key_file::open(&self.secret_path, sealed, Some(passphrase)) {
                Ok(pem) => return Ok(pem),
                Err(e) => tried.push(e.to_string()),
            }
        }
        if self.secret_path.exists() {
            let secret = Passphrase::new(key_file::read_secret_line(
                &self.secret_path,
                "intermediate keys' secret",
            )?)?;
            match key_file::open(&self.secret_path, sealed, Some(&secret)) {
                Ok(pem) => return Ok(pem),
                Err(e) => tried.push(e.to_string()),
            }
        } else if self.passphrase.is_none() {
            tried.push(format!(
                "{} is missing: copy it from the CA host where `latchkey ca rotate` ran",
                self.secret_path.display()
            ));
        }
        Err(self.material(
            id,
            format!("its stored key does not open: {}", tried.join("; ")),
        ))
    }

    fn material(&self, id: i64, why: String) -> HomeError {
        HomeError::Material {
            path: PathBuf::from(format!("issuer {id}")),
            why,
        }
    }
}
