//! What a latchkey CRL says: the CA writes complete, direct CRLs with a number and a
//! `nextUpdate` (`ca::crl`); this reads one back, checking its issuer's signature once, into
//! the set of revoked serials a handshake looks up.

use std::collections::HashSet;

use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;

/// Why a CRL was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CrlError {
    /// Not a DER CRL.
    #[error("not a CRL")]
    Malformed,
    /// Not issued by the issuing CA, or its signature does not verify.
    #[error("the CRL is not signed by the issuing CA")]
    BadSignature,
    /// A delta, partial or otherwise unsupported CRL (the extension's OID).
    #[error("unsupported CRL extension {0}: only complete, direct CRLs are taken")]
    Unsupported(String),
    /// It lacks a CRL number or a nextUpdate.
    #[error("the CRL lacks a CRL number or nextUpdate")]
    Incomplete,
    /// Its number is not above the one held.
    #[error("CRL number {got} is not newer than the {held} held")]
    NotNewer {
        /// The number offered.
        got: i64,
        /// The number held.
        held: i64,
    },
}

/// The revoked serials of one verified CRL.
#[derive(Debug, Clone)]
pub struct RevocationSet {
    pub(crate) number: i64,
    this_update: OffsetDateTime,
    pub(crate) next_update: OffsetDateTime,
    serials: HashSet<[u8; 16]>,
}

impl RevocationSet {
    /// Reads a DER CRL, checking that `issuer` (the issuing CA's certificate) signed it.
    pub fn from_crl(der: &[u8], issuer: &CertificateDer<'_>) -> Result<Self, CrlError> {
        let (_, issuer) =
            x509_parser::parse_x509_certificate(issuer).map_err(|_| CrlError::BadSignature)?;
        let (rest, crl) = x509_parser::parse_x509_crl(der).map_err(|_| CrlError::Malformed)?;
        if !rest.is_empty() {
            return Err(CrlError::Malformed);
        }
        if crl.issuer() != issuer.subject() {
            return Err(CrlError::BadSignature);
        }
        crl.verify_signature(issuer.public_key())
            .map_err(|_| CrlError::BadSignature)?;
        // A complete, direct CRL only: no delta CRL, no issuing distribution point that would
        // narrow its scope, no critical extension this reader does not understand.
        for ext in crl.extensions() {
            let oid = ext.oid.to_id_string();
            let understood = matches!(oid.as_str(), "2.5.29.20" | "2.5.29.35");
            if matches!(oid.as_str(), "2.5.29.27" | "2.5.29.28") || (ext.critical && !understood) {
                return Err(CrlError::Unsupported(oid));
            }
        }
        let number = crl
            .crl_number()
            .and_then(|n| i64::try_from(n).ok())
            .ok_or(CrlError::Incomplete)?;
        let next_update = crl.next_update().ok_or(CrlError::Incomplete)?.to_datetime();
        let serials = crl
            .iter_revoked_certificates()
            // Serials of other lengths were never issued by latchkey; nothing can match them.
            .filter_map(|r| <[u8; 16]>::try_from(r.raw_serial()).ok())
            .collect();
        Ok(Self {
            number,
            this_update: crl.last_update().to_datetime(),
            next_update,
            serials,
        })
    }

    /// The CRL number: a newer CRL has a higher one.
    pub fn number(&self) -> i64 {
        self.number
    }

    /// The CRL's thisUpdate.
    pub fn this_update(&self) -> OffsetDateTime {
        self.this_update
    }

    /// The CRL's nextUpdate: past it (plus the verifier's grace) the set is stale and
    /// handshakes fail.
    pub fn next_update(&self) -> OffsetDateTime {
        self.next_update
    }

    /// A set from a list, for the crate's tests: number 1, valid for `validity` from now.
    #[cfg(test)]
    pub(crate) fn from_serials(
        serials: impl IntoIterator<Item = crate::model::Serial>,
        validity: time::Duration,
    ) -> Self {
        let now = OffsetDateTime::now_utc();
        Self {
            number: 1,
            this_update: now,
            next_update: now + validity,
            serials: serials.into_iter().map(|s| *s.as_bytes()).collect(),
        }
    }

    /// True when `serial` is revoked.
    pub fn is_revoked(&self, serial: &[u8]) -> bool {
        <[u8; 16]>::try_from(serial).is_ok_and(|s| self.serials.contains(&s))
    }

    /// How many serials are revoked.
    pub fn len(&self) -> usize {
        self.serials.len()
    }

    /// True when nothing is revoked.
    pub fn is_empty(&self) -> bool {
        self.serials.is_empty()
    }
}
