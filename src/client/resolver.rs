//! A rustls client-certificate resolver that keeps a key directory's certificate current:
//! it renews through the CA at two thirds of each certificate's lifetime and hands every new
//! connection the newest certificate, without a restart. While the CA is unreachable it
//! retries with backoff and keeps presenting the current certificate until it expires.

use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use rustls::client::ResolvesClientCert;
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, SignatureScheme};
use rustls_pki_types::CertificateDer;

use super::{ClientError, KeyDir, RenewalStatus, Renewer};

/// The current certificate of a key directory, renewed in the background.
pub struct AutoRenewingKey {
    current: ArcSwap<CertifiedKey>,
    dir: KeyDir,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    status: tokio::sync::watch::Receiver<RenewalStatus>,
}

impl std::fmt::Debug for AutoRenewingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AutoRenewingKey")
            .field("dir", &self.dir.dir())
            .finish_non_exhaustive()
    }
}

fn load(dir: &KeyDir) -> Result<CertifiedKey, ClientError> {
    let (chain, key) = dir.identity()?;
    let chain = crate::tls::load_certificates(&chain, "chain.pem")?;
    let key = crate::tls::load_private_key(&key, "key.pem")?;
    let signer = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|e| ClientError::Certificate(format!("key.pem: {e}")))?;
    Ok(CertifiedKey::new(chain, signer))
}

impl AutoRenewingKey {
    /// Loads `dir` and starts renewing it through `server` (trusting `ca_pem`). Must be
    /// called inside a Tokio runtime; renewal stops when the returned value is dropped.
    pub fn start(server: &str, ca_pem: &[u8], dir: KeyDir) -> Result<Arc<Self>, ClientError> {
        Self::start_with(Renewer::new(server, ca_pem, dir))
    }

    /// Loads the renewer's key directory and starts `renewer` in the background (one made
    /// with [`Renewer::with_clock`], say). Must be called inside a Tokio runtime.
    pub fn start_with(renewer: Renewer) -> Result<Arc<Self>, ClientError> {
        let dir = renewer.dir().clone();
        let this = Arc::new(Self {
            current: ArcSwap::from_pointee(load(&dir)?),
            dir,
            task: Mutex::new(None),
            status: renewer.status(),
        });
        let weak = Arc::downgrade(&this);
        let task = tokio::spawn(async move {
            let reason = renewer
                .watch_with(|_| {
                    if let Some(this) = weak.upgrade() {
                        match load(&this.dir) {
                            Ok(key) => this.current.store(Arc::new(key)),
                            Err(e) => {
                                tracing::error!(error = %e, "cannot load the renewed certificate")
                            }
                        }
                    }
                })
                .await;
            tracing::error!(error = %reason, "automatic renewal stopped");
        });
        if let Ok(mut slot) = this.task.lock() {
            *slot = Some(task);
        }
        Ok(this)
    }

    /// A client configuration that trusts `roots` and presents this key's newest certificate
    /// on every new connection.
    pub fn client_config(
        self: &Arc<Self>,
        roots: &[CertificateDer<'static>],
    ) -> Result<ClientConfig, ClientError> {
        let mut store = rustls::RootCertStore::empty();
        for root in roots {
            store
                .add(root.clone())
                .map_err(crate::tls::ConfigError::from)?;
        }
        let mut config = ClientConfig::builder_with_provider(crate::tls::provider())
            .with_safe_default_protocol_versions()
            .map_err(crate::tls::ConfigError::from)?
            .with_root_certificates(store)
            .with_client_cert_resolver(self.clone());
        config.resumption = rustls::client::Resumption::disabled();
        Ok(config)
    }

    /// Where renewal stands: waiting for the next one, failing (and how often), or stopped
    /// for good and why. `changed()` on the receiver wakes on every change, so a program can
    /// alert when its key stops renewing instead of finding out when the certificate expires.
    pub fn status(&self) -> tokio::sync::watch::Receiver<RenewalStatus> {
        self.status.clone()
    }

    /// The serial of the certificate presented now, lowercase hex.
    pub fn current_serial(&self) -> Option<String> {
        let key = self.current.load();
        let leaf = key.cert.first()?;
        let (_, cert) = x509_parser::parse_x509_certificate(leaf).ok()?;
        Some(hex::encode(cert.raw_serial()))
    }
}

impl Drop for AutoRenewingKey {
    fn drop(&mut self) {
        if let Ok(mut slot) = self.task.lock()
            && let Some(task) = slot.take()
        {
            task.abort();
        }
    }
}

impl ResolvesClientCert for AutoRenewingKey {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }

    fn has_certs(&self) -> bool {
        true
    }
}
