//! A key directory: `key.pem` (the private key, mode 0600), `cert.pem` (the leaf) and
//! `chain.pem` (the leaf and the issuing intermediate).

use std::path::{Path, PathBuf};

use crate::files::{self, FileError};

/// What went wrong with a key directory.
#[derive(Debug, thiserror::Error)]
pub enum KeyDirError {
    /// The directory holds a key already; enrolling again would destroy it.
    #[error("{0} already holds a key; choose another directory")]
    NotEmpty(PathBuf),
    /// A file could not be read or written.
    #[error(transparent)]
    File(#[from] FileError),
}

/// A key directory on disk.
#[derive(Debug, Clone)]
pub struct KeyDir {
    dir: PathBuf,
}

impl KeyDir {
    /// The key directory at `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The private key.
    pub fn key(&self) -> PathBuf {
        self.dir.join("key.pem")
    }

    /// The leaf certificate.
    pub fn cert(&self) -> PathBuf {
        self.dir.join("cert.pem")
    }

    /// The leaf and the intermediate: what a client presents.
    pub fn chain(&self) -> PathBuf {
        self.dir.join("chain.pem")
    }

    /// Fails if the directory holds a key already.
    pub fn check_empty(&self) -> Result<(), KeyDirError> {
        if self.key().exists() || self.cert().exists() {
            return Err(KeyDirError::NotEmpty(self.dir.clone()));
        }
        Ok(())
    }

    /// Writes the private key of a new key directory (mode 0600), refusing to replace a key.
    pub fn write_key(&self, key_pem: &str) -> Result<(), KeyDirError> {
        self.check_empty()?;
        files::create_private_dir(&self.dir)?;
        files::create_new(&self.key(), key_pem.as_bytes(), true)?;
        Ok(())
    }

    /// Removes the private key written by [`KeyDir::write_key`] when enrollment failed.
    pub fn remove_key(&self) {
        let _ = std::fs::remove_file(self.key());
    }

    /// Writes (or atomically replaces) the certificate and the chain.
    pub fn write_certificates(&self, cert_pem: &str, chain_pem: &str) -> Result<(), KeyDirError> {
        files::replace(&self.cert(), cert_pem.as_bytes(), false)?;
        files::replace(&self.chain(), chain_pem.as_bytes(), false)?;
        Ok(())
    }

    /// Reads `(chain.pem, key.pem)`, the identity a client presents.
    pub fn identity(&self) -> Result<(Vec<u8>, Vec<u8>), KeyDirError> {
        Ok((files::read(&self.chain())?, files::read(&self.key())?))
    }
}
