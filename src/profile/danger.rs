//! DANGER: reading a latchkey certificate without verifying it.
//!
//! What a certificate *says* is not what a handshake *proved*: nothing here checks the chain,
//! the validity dates or revocation, and nothing here makes an [`super::Identity`] (only the
//! verifier does). For the CA, which decides on every certificate against its store, for
//! tools that inspect a certificate, and for tests. Built only with the `server` feature (the
//! CA) or the `test-util` feature, so a relying service cannot reach it by accident.

use x509_parser::certificate::X509Certificate;

use super::read::IdentityError;
pub use super::read::PeerIdentity;

/// Reads what the DER certificate `der`, issued in `trust_domain`, says about its holder,
/// WITHOUT checking its chain, dates or revocation.
pub fn read_unverified(der: &[u8], trust_domain: &str) -> Result<PeerIdentity, IdentityError> {
    PeerIdentity::from_der(der, trust_domain)
}

/// [`read_unverified`] for an already parsed certificate.
pub fn read_unverified_certificate(
    cert: &X509Certificate<'_>,
    trust_domain: &str,
) -> Result<PeerIdentity, IdentityError> {
    PeerIdentity::from_certificate(cert, trust_domain)
}
