//! The CA listener's client-certificate check: paths only through the CA's own
//! intermediates, a bounded certificate message, and dates left to the authority.
//!
//! **Own intermediates only.** webpki builds a path through whatever intermediates it is
//! given, parsing each at every step of a search that may take 200,000 steps before any
//! signature is checked. Given the client's, a 64 KiB Certificate message of fake CA
//! certificates cost ten seconds of CPU on a runtime worker (SECURITY-FINDINGS 1). The CA
//! knows every intermediate that can sign for it, so it ignores the client's and offers
//! webpki only its own: the search is one short path, whatever arrives. A client that
//! sends only its leaf (`curl --cert cert.pem`) is accepted for the same reason.
//!
//! **A bounded message.** A chain larger than any certificate this CA issues, with room
//! for the intermediate and root a client may add, is refused before webpki parses it.
//!
//! **Dates to the authority.** The CA answers a key holder whose certificate or key has
//! expired with 403 and a code (`certificate_expired`, `key_expired`), so that `renew` can
//! say why, rather than with a TLS alert that reaches the holder as "handshake failure". An
//! expired leaf is therefore checked again as of its last valid second. That is safe
//! because the CA never trusts a handshake alone: every request that presents a certificate
//! is decided against the store, which holds only certificates this CA issued and refuses
//! expired and revoked ones and their keys (`Authority::authenticate`). Nothing outside the
//! CA server uses this.
//!
//! **The CA's clock.** Dates are judged by the clock the authority decides by, not by the
//! time rustls passes in, so the handshake and the request agree on what "now" is: in
//! tests that move the CA's clock forward, a certificate issued after the move is valid
//! here too, not "not yet valid" by the system's time.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};
use rustls_pki_types::{CertificateDer, UnixTime};

use super::verifier::refused;
use crate::clock::Clock;

/// The most certificate bytes a client may present (leaf plus anything it sends along).
/// A latchkey leaf is 1-2 KiB (RSA-4096 included); an intermediate and a root of this CA
/// fit several times over.
pub(crate) const MAX_CLIENT_CHAIN_BYTES: usize = 16 * 1024;
/// The most certificates a client may present: its leaf, and at most the CA's
/// intermediate and root after it.
pub(crate) const MAX_CLIENT_CHAIN_CERTIFICATES: usize = 3;

/// The CA's own intermediates, shared with whoever follows them (the server replaces the list
/// when an intermediate is made or retired): read on every handshake, lock-free.
#[derive(Debug, Clone)]
pub(crate) struct CaIntermediates(Arc<arc_swap::ArcSwap<Vec<CertificateDer<'static>>>>);

impl CaIntermediates {
    /// The list `intermediates`, to be replaced as they change.
    pub(crate) fn new(intermediates: Vec<CertificateDer<'static>>) -> Self {
        Self(Arc::new(arc_swap::ArcSwap::from_pointee(intermediates)))
    }

    /// Replaces the list.
    pub(crate) fn replace(&self, intermediates: Vec<CertificateDer<'static>>) {
        self.0.store(Arc::new(intermediates));
    }
}

/// The CA's own TLS certificate chain (its `server.pem`) with the certificates sent after
/// it, replaceable while serving: after a root rollover, the cross-certificates, so that a
/// client trusting only the new root still verifies a server certificate the old root's
/// intermediate signed.
#[derive(Debug, Clone)]
pub(crate) struct CaServerChain {
    chain: Vec<CertificateDer<'static>>,
    key: Arc<dyn rustls::sign::SigningKey>,
    current: Arc<arc_swap::ArcSwap<rustls::sign::CertifiedKey>>,
}

impl CaServerChain {
    /// `chain` (leaf first) and its `key`, followed by `extra`.
    pub(crate) fn new(
        chain: Vec<CertificateDer<'static>>,
        key: rustls_pki_types::PrivateKeyDer<'static>,
        extra: Vec<CertificateDer<'static>>,
    ) -> Result<Self, rustls::Error> {
        let key = super::provider().key_provider.load_private_key(key)?;
        let certified = Self::certified(&chain, &key, extra);
        Ok(Self {
            chain,
            key,
            current: Arc::new(arc_swap::ArcSwap::from_pointee(certified)),
        })
    }

    /// Sends `extra` after the chain from the next handshake on.
    pub(crate) fn set_extra(&self, extra: Vec<CertificateDer<'static>>) {
        self.current
            .store(Arc::new(Self::certified(&self.chain, &self.key, extra)));
    }

    fn certified(
        chain: &[CertificateDer<'static>],
        key: &Arc<dyn rustls::sign::SigningKey>,
        extra: Vec<CertificateDer<'static>>,
    ) -> rustls::sign::CertifiedKey {
        let mut certificates = chain.to_vec();
        certificates.extend(extra);
        rustls::sign::CertifiedKey::new(certificates, key.clone())
    }
}

impl rustls::server::ResolvesServerCert for CaServerChain {
    fn resolve(
        &self,
        _hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// Wraps a webpki client verifier built over the CA's root: checks a presented leaf through
/// the CA's own intermediates only, refuses oversized chains unparsed, and verifies an
/// expired leaf again as of the second before its `notAfter`.
#[derive(Debug)]
pub(super) struct CaListenerVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    intermediates: CaIntermediates,
    clock: Arc<dyn Clock>,
}

impl CaListenerVerifier {
    /// Checks through `inner` with the CA's own `intermediates`, at the time `clock` reads.
    pub(super) fn new(
        inner: Arc<dyn ClientCertVerifier>,
        intermediates: CaIntermediates,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            inner,
            intermediates,
            clock,
        }
    }

    /// Now by the CA's clock, as rustls counts time (a clock before 1970 reads as 1970).
    fn now(&self) -> UnixTime {
        let seconds = u64::try_from(self.clock.now().unix_timestamp()).unwrap_or(0);
        UnixTime::since_unix_epoch(std::time::Duration::from_secs(seconds))
    }
}

/// The last second at which `der` was valid, if it parses.
fn last_valid_second(der: &CertificateDer<'_>) -> Option<UnixTime> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let not_after = cert.validity().not_after.timestamp();
    let seconds = u64::try_from(not_after.checked_sub(1)?).ok()?;
    Some(UnixTime::since_unix_epoch(std::time::Duration::from_secs(
        seconds,
    )))
}

impl ClientCertVerifier for CaListenerVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        presented: &[CertificateDer<'_>],
        _system_now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        let bytes = end_entity.len() + presented.iter().map(|c| c.len()).sum::<usize>();
        if bytes > MAX_CLIENT_CHAIN_BYTES || 1 + presented.len() > MAX_CLIENT_CHAIN_CERTIFICATES {
            return Err(refused("client certificate message too large"));
        }
        let own = self.intermediates.0.load();
        let own = own.as_slice();
        match self.inner.verify_client_cert(end_entity, own, self.now()) {
            Err(Error::InvalidCertificate(
                CertificateError::Expired | CertificateError::ExpiredContext { .. },
            )) => {
                // Checked again as of the leaf's last valid second: the chain and signatures
                // as they were then. (The CA's leaves never outlive their issuer, so an issuer
                // expired since passes too; readiness reports an expired issuer, and nothing
                // is trusted beyond what the store says.)
                let then = last_valid_second(end_entity)
                    .ok_or(Error::InvalidCertificate(CertificateError::BadEncoding))?;
                self.inner.verify_client_cert(end_entity, own, then)
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
