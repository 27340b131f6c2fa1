//! Signing CRLs: v2, with the authority key identifier, the CRL number and reason codes
//! (RFC 5280 §5). What goes into one is decided by the authority.

use rcgen::{CertificateRevocationListParams, KeyIdMethod, RevokedCertParams, SerialNumber};
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

impl Signer {
    /// Signs a CRL. Returns its DER.
    pub fn sign_crl(&self, order: &CrlOrder) -> Result<Vec<u8>, SignerError> {
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
            key_identifier_method: KeyIdMethod::PreSpecified(self.key_identifier.clone()),
        };
        let crl = params.signed_by(&self.issuer)?;
        Ok(rustls_pki_types::CertificateRevocationListDer::from(crl).to_vec())
    }
}
