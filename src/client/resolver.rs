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

use super::{ClientError, KeyDir, Renewer};

/// The current certificate of a key directory, renewed in the background.
pub struct AutoRenewingKey {
    current: ArcSwap<CertifiedKey>,
    dir: KeyDir,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
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
        let this = Arc::new(Self {
            current: ArcSwap::from_pointee(load(&dir)?),
            dir: dir.clone(),
            task: Mutex::new(None),
        });
        let renewer = Renewer::new(server, ca_pem, dir);
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
