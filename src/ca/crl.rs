//! Signing CRLs: v2, with the authority key identifier, the CRL number and reason codes
//! (RFC 5280 §5). What goes into one is decided by the authority.

use rcgen::{
    CertificateRevocationListParams, Issuer, KeyIdMethod, KeyPair, PublicKeyData,
    RevokedCertParams, SerialNumber,
};
use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;

use super::{Signer, SignerError};
use crate::model::{RevocationReason, Serial};

/// One revoked certificate in a CRL.
#[derive(Debug, Clone)]
pub struct CrlEntry {
    /// Its serial.
    pub serial: Serial,
    /// When it was revoked.
    pub revoked_at: OffsetDateTime,
    /// Why.
    pub reason: RevocationReason,
}

/// An approved CRL: the authority decides number, times and entries.
#[derive(Debug, Clone)]
pub struct CrlOrder {
    /// The CRL number, higher than any before.
    pub number: u64,
    /// thisUpdate.
    pub this_update: OffsetDateTime,
    /// nextUpdate.
    pub next_update: OffsetDateTime,
    /// The revoked certificates.
    pub entries: Vec<CrlEntry>,
}

fn rcgen_reason(reason: RevocationReason) -> rcgen::RevocationReason {
    match reason {
        RevocationReason::Unspecified => rcgen::RevocationReason::Unspecified,
        RevocationReason::KeyCompromise => rcgen::RevocationReason::KeyCompromise,
        RevocationReason::AffiliationChanged => rcgen::RevocationReason::AffiliationChanged,
        RevocationReason::Superseded => rcgen::RevocationReason::Superseded,
        RevocationReason::CessationOfOperation => rcgen::RevocationReason::CessationOfOperation,
    }
}

/// The CRL of `order` signed by `issuer`, whose subject key identifier is `key_identifier`.
fn sign_crl_with(
    issuer: &Issuer<'static, KeyPair>,
    key_identifier: &[u8],
    order: &CrlOrder,
) -> Result<Vec<u8>, SignerError> {
    let params = CertificateRevocationListParams {
        this_update: order.this_update,
        next_update: order.next_update,
        crl_number: SerialNumber::from(order.number),
        issuing_distribution_point: None,
        revoked_certs: order
            .entries
            .iter()
            .map(|e| RevokedCertParams {
                serial_number: SerialNumber::from(e.serial.as_bytes().to_vec()),
                revocation_time: e.revoked_at,
                // RFC 5280 §5.3.1: the reason code "unspecified" SHOULD be absent.
                reason_code: (e.reason != RevocationReason::Unspecified)
                    .then(|| rcgen_reason(e.reason)),
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: KeyIdMethod::PreSpecified(key_identifier.to_vec()),
    };
    let crl = params.signed_by(issuer)?;
    Ok(rustls_pki_types::CertificateRevocationListDer::from(crl).to_vec())
}

impl Signer {
    /// Signs a CRL. Returns its DER.
    pub fn sign_crl(&self, order: &CrlOrder) -> Result<Vec<u8>, SignerError> {
        sign_crl_with(&self.issuer, &self.key_identifier, order)
    }
}

/// The root CA as a CRL signer: it signs the CRL that lists revoked intermediates. Only
/// where the root key is (the CA home, unless the key is kept offline).
pub struct RootCrlSigner {
    issuer: Issuer<'static, KeyPair>,
    key_identifier: Vec<u8>,
}

impl std::fmt::Debug for RootCrlSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RootCrlSigner").finish_non_exhaustive()
    }
}

impl RootCrlSigner {
    /// Loads the root from its certificate and PKCS#8 private key.
    pub fn new(certificate: &CertificateDer<'_>, key_pem: &str) -> Result<Self, SignerError> {
        let bad = |e: String| SignerError::Issuer(format!("root: {e}"));
        let key = KeyPair::from_pem(key_pem).map_err(|e| bad(e.to_string()))?;
        let (_, parsed) =
            x509_parser::parse_x509_certificate(certificate).map_err(|e| bad(e.to_string()))?;
        if parsed.public_key().raw != key.subject_public_key_info().as_slice() {
            return Err(bad("the root key does not match ca.pem".into()));
        }
        let key_identifier = parsed
            .extensions()
            .iter()
            .find_map(|ext| match ext.parsed_extension() {
                x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(ski) => {
                    Some(ski.0.to_vec())
                }
                _ => None,
            })
            .ok_or_else(|| bad("the root certificate has no subject key identifier".into()))?;
        let issuer = Issuer::from_ca_cert_der(certificate, key).map_err(|e| bad(e.to_string()))?;
        Ok(Self {
            issuer,
            key_identifier,
        })
    }

    /// Signs a root CRL. Returns its DER.
    pub fn sign(&self, order: &CrlOrder) -> Result<Vec<u8>, SignerError> {
        sign_crl_with(&self.issuer, &self.key_identifier, order)
    }
}
