//! The CA listener's client-certificate check, which leaves a certificate's dates to the
//! authority.
//!
//! The CA answers a key holder whose certificate or key has expired with 403 and a code
//! (`certificate_expired`, `key_expired`), so that `renew` can say why, rather than with a
//! TLS alert that reaches the holder as "handshake failure". The handshake therefore checks
//! the chain and the proof of possession as webpki always does, but an expired leaf is
//! checked again as of its last valid second. That is safe because the CA never trusts a
//! handshake alone: every request that presents a certificate is decided against the store,
//! which holds only certificates this CA issued and refuses expired and revoked ones and
//! their keys (`Authority::authenticate`). Nothing outside the CA server uses this.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};
use rustls_pki_types::{CertificateDer, UnixTime};

/// Wraps a webpki client verifier; passes everything through except an expired leaf, which
/// is verified again as of the second before its `notAfter`.
#[derive(Debug)]
pub(super) struct ExpiryDeferred {
    inner: Arc<dyn ClientCertVerifier>,
}

impl ExpiryDeferred {
    pub(super) fn new(inner: Arc<dyn ClientCertVerifier>) -> Self {
        Self { inner }
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

impl ClientCertVerifier for ExpiryDeferred {
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
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        match self
            .inner
            .verify_client_cert(end_entity, intermediates, now)
        {
            Err(Error::InvalidCertificate(
                CertificateError::Expired | CertificateError::ExpiredContext { .. },
            )) => {
                // Checked again as of the leaf's last valid second: the chain and signatures
                // as they were then. (The CA's leaves never outlive their issuer, so an issuer
                // expired since passes too; readiness reports an expired issuer, and nothing
                // is trusted beyond what the store says.)
                let then = last_valid_second(end_entity)
                    .ok_or(Error::InvalidCertificate(CertificateError::BadEncoding))?;
                self.inner
                    .verify_client_cert(end_entity, intermediates, then)
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
