//! Signing CRLs: v2, with the authority key identifier, the CRL number and reason codes
//! (RFC 5280 §5). What goes into one is decided by the authority.

use bytes::Bytes;
use rcgen::SigningKey;
use rcgen::{
    CertificateRevocationListParams, Issuer, KeyIdMethod, KeyPair, PublicKeyData,
    RevokedCertParams, SerialNumber,
};
use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;

use super::crl_der::{CrlEntries, CrlHeader, CrlKind, CrlTemplate};
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

impl CrlEntry {
    /// The reason code the CRL entry carries: none for "unspecified", which RFC 5280 §5.3.1
    /// says SHOULD be absent. The one place this rule is written: signing and
    /// [`crl_lists_exactly`] both use it.
    pub fn reason_code(&self) -> Option<RevocationReason> {
        (self.reason != RevocationReason::Unspecified).then_some(self.reason)
    }
}

/// Whether the signed CRL `der` has number `number` and lists exactly `entries` (serials and
/// reason codes, in any order): how a CA checks at start-up that the CRL it stored still
/// says what its store says. False for DER that does not parse.
pub fn crl_lists_exactly(der: &[u8], number: u64, entries: &[CrlEntry]) -> bool {
    let Ok((_, crl)) = x509_parser::parse_x509_crl(der) else {
        return false;
    };
    if crl.crl_number().and_then(|n| u64::try_from(n).ok()) != Some(number) {
        return false;
    }
    let mut expected: Vec<(Vec<u8>, Option<u8>)> = entries
        .iter()
        .map(|e| {
            (
                e.serial.as_bytes().to_vec(),
                e.reason_code().map(RevocationReason::code),
            )
        })
        .collect();
    let mut listed: Vec<(Vec<u8>, Option<u8>)> = crl
        .iter_revoked_certificates()
        .map(|r| (r.raw_serial().to_vec(), r.reason_code().map(|(_, c)| c.0)))
        .collect();
    expected.sort();
    listed.sort();
    expected == listed
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
    issuer: &Issuer<'static, impl rcgen::SigningKey>,
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
                reason_code: e.reason_code().map(rcgen_reason),
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: KeyIdMethod::PreSpecified(key_identifier.to_vec()),
    };
    let crl = params.signed_by(issuer)?;
    Ok(rustls_pki_types::CertificateRevocationListDer::from(crl).to_vec())
}

/// The template of the CRLs `issuer` signs: a CRL with no entries, signed by rcgen, read
/// back (see `crl_der`).
pub(super) fn crl_template(
    issuer: &Issuer<'static, impl rcgen::SigningKey>,
    key_identifier: &[u8],
) -> Result<CrlTemplate, SignerError> {
    let now = OffsetDateTime::now_utc();
    let order = CrlOrder {
        number: 1,
        this_update: now,
        next_update: now + time::Duration::HOUR,
        entries: Vec::new(),
    };
    CrlTemplate::from_signed_crl(&sign_crl_with(issuer, key_identifier, &order)?)
}

impl Signer {
    /// Signs a CRL listing `order`'s entries. Returns its DER.
    pub fn sign_crl(&self, order: &CrlOrder) -> Result<Vec<u8>, SignerError> {
        let mut entries = CrlEntries::new();
        for entry in &order.entries {
            entries.insert(entry, order.next_update);
        }
        let header = CrlHeader {
            number: order.number,
            this_update: order.this_update,
            next_update: order.next_update,
        };
        Ok(self
            .sign_crl_of(&header, CrlKind::Complete, &entries)?
            .to_vec())
    }

    /// Signs a complete or delta CRL listing `entries` (encoded once, kept by the caller
    /// between CRLs). Returns its DER.
    pub fn sign_crl_of(
        &self,
        header: &CrlHeader,
        kind: CrlKind,
        entries: &CrlEntries,
    ) -> Result<Bytes, SignerError> {
        self.crl_template
            .sign(header, kind, &self.key_identifier, entries, |tbs| {
                Ok(self.issuer.key().sign(tbs)?)
            })
    }
}

/// The root CA where its key is (the CA home, unless the key is kept offline): it signs the
/// CRL that lists revoked intermediates, and new intermediates (`latchkey ca rotate`).
pub struct RootSigner {
    issuer: Issuer<'static, KeyPair>,
    key_identifier: Vec<u8>,
    not_after: time::OffsetDateTime,
}

impl std::fmt::Debug for RootSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RootSigner").finish_non_exhaustive()
    }
}

impl RootSigner {
    /// Loads the root from its certificate and PKCS#8 private key.
    pub fn new(certificate: &CertificateDer<'_>, key_pem: &str) -> Result<Self, SignerError> {
        let bad = |e: String| SignerError::Issuer(format!("root: {e}"));
        let key = KeyPair::from_pem(key_pem).map_err(|e| bad(e.to_string()))?;
        let (_, parsed) =
            x509_parser::parse_x509_certificate(certificate).map_err(|e| bad(e.to_string()))?;
        if parsed.public_key().raw != key.subject_public_key_info().as_slice() {
            return Err(bad("the root key does not match ca.pem".into()));
        }
        let key_identifier = crate::profile::subject_key_identifier(&parsed)
            .ok_or_else(|| bad("the root certificate has no subject key identifier".into()))?;
        let not_after = parsed.validity().not_after.to_datetime();
        let issuer = Issuer::from_ca_cert_der(certificate, key).map_err(|e| bad(e.to_string()))?;
        Ok(Self {
            issuer,
            key_identifier,
            not_after,
        })
    }

    /// The end of the root's validity.
    pub fn not_after(&self) -> time::OffsetDateTime {
        self.not_after
    }

    /// The root as rcgen signs with it.
    pub(super) fn issuer(&self) -> &Issuer<'static, KeyPair> {
        &self.issuer
    }

    /// Signs a root CRL. Returns its DER.
    pub fn sign(&self, order: &CrlOrder) -> Result<Vec<u8>, SignerError> {
        sign_crl_with(&self.issuer, &self.key_identifier, order)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::Bootstrap;

    /// The signer of a fresh CA's intermediate.
    fn a_signer(now: OffsetDateTime) -> Signer {
        let ca = Bootstrap::generate(now).unwrap();
        Signer::new(
            ca.intermediate_certificate.clone(),
            &ca.intermediate_key_pem,
            "latchkey.internal",
            "https://localhost/v1/crl",
        )
        .unwrap()
    }

    /// The start-up check reads back what signing wrote: the same entries agree, a changed
    /// reason, a missing entry, another number or broken DER do not. "Unspecified" is
    /// absent in the DER and still agrees.
    #[test]
    fn a_signed_crl_lists_exactly_its_entries() {
        let now = OffsetDateTime::now_utc();
        let signer = a_signer(now);
        let entry = |reason| CrlEntry {
            serial: Serial::generate(),
            revoked_at: now,
            reason,
        };
        let entries = vec![
            entry(RevocationReason::KeyCompromise),
            entry(RevocationReason::Unspecified),
        ];
        let order = CrlOrder {
            number: 7,
            this_update: now,
            next_update: now + time::Duration::hours(1),
            entries: entries.clone(),
        };
        let der = signer.sign_crl(&order).unwrap();
        assert!(crl_lists_exactly(&der, 7, &entries));
        let reversed: Vec<_> = entries.iter().rev().cloned().collect();
        assert!(
            crl_lists_exactly(&der, 7, &reversed),
            "order does not matter"
        );
        assert!(!crl_lists_exactly(&der, 8, &entries));
        assert!(!crl_lists_exactly(&der, 7, &entries[..1]));
        let mut other_reason = entries.clone();
        other_reason[1].reason = RevocationReason::Superseded;
        assert!(!crl_lists_exactly(&der, 7, &other_reason));
        assert!(!crl_lists_exactly(b"not a CRL", 7, &entries));
    }

    /// The CRL writer of `crl_der` writes, byte for byte, the TBSCertList rcgen writes for
    /// the same CRL (so both are read alike everywhere), with and without entries; its
    /// signature verifies; a delta CRL carries a critical Delta CRL Indicator naming its base
    /// and removeFromCRL entries.
    #[test]
    fn crls_are_written_as_rcgen_writes_them() {
        let now = OffsetDateTime::now_utc();
        let signer = a_signer(now);
        let tbs = |der: &[u8]| {
            let outer = super::super::crl_der::items(der).unwrap();
            let content = super::super::crl_der::content(outer[0]).unwrap();
            super::super::crl_der::items(content).unwrap()[0].to_vec()
        };
        let later = now + time::Duration::days(20_000); // GeneralizedTime from 2050
        for entries in [
            vec![],
            (0..300)
                .map(|i| CrlEntry {
                    serial: Serial::generate(),
                    revoked_at: if i % 7 == 0 { later } else { now },
                    reason: [
                        RevocationReason::Unspecified,
                        RevocationReason::KeyCompromise,
                        RevocationReason::Superseded,
                    ][i % 3],
                })
                .collect(),
        ] {
            let order = CrlOrder {
                number: 70_000,
                this_update: now,
                next_update: now + time::Duration::hours(1),
                entries,
            };
            let ours = signer.sign_crl(&order).unwrap();
            let theirs = sign_crl_with(&signer.issuer, &signer.key_identifier, &order).unwrap();
            assert_eq!(tbs(&ours), tbs(&theirs), "{} entries", order.entries.len());
            let (rest, parsed) = x509_parser::parse_x509_crl(&ours).unwrap();
            assert!(rest.is_empty());
            let (_, issuer) = x509_parser::parse_x509_certificate(signer.certificate()).unwrap();
            parsed.verify_signature(issuer.public_key()).unwrap();
        }

        let mut delta = CrlEntries::new();
        let (gone, added) = (Serial::generate(), Serial::generate());
        delta.insert_removal(&gone, now);
        delta.insert(
            &CrlEntry {
                serial: added,
                revoked_at: now,
                reason: RevocationReason::KeyCompromise,
            },
            now,
        );
        let header = CrlHeader {
            number: 12,
            this_update: now,
            next_update: now + time::Duration::hours(1),
        };
        let der = signer
            .sign_crl_of(&header, CrlKind::Delta { base: 9 }, &delta)
            .unwrap();
        let (_, parsed) = x509_parser::parse_x509_crl(&der).unwrap();
        let indicator = parsed
            .extensions()
            .iter()
            .find(|e| e.oid.to_id_string() == "2.5.29.27")
            .expect("a delta CRL indicator");
        assert!(indicator.critical);
        assert_eq!(indicator.value, [2, 1, 9]);
        let listed: Vec<_> = parsed
            .iter_revoked_certificates()
            .map(|r| (r.raw_serial().to_vec(), r.reason_code().map(|(_, c)| c.0)))
            .collect();
        assert_eq!(
            listed,
            [
                (gone.as_bytes().to_vec(), Some(8)),
                (added.as_bytes().to_vec(), Some(1))
            ]
        );
    }

    /// Expired entries go in one pass; the rest stay, in order.
    #[test]
    fn expired_entries_are_dropped() {
        let now = OffsetDateTime::now_utc();
        let mut entries = CrlEntries::new();
        let serials: Vec<Serial> = (0..10).map(|_| Serial::generate()).collect();
        for (i, serial) in serials.iter().enumerate() {
            let entry = CrlEntry {
                serial: *serial,
                revoked_at: now,
                reason: RevocationReason::Superseded,
            };
            entries.insert(&entry, now + time::Duration::minutes(i as i64 - 5));
        }
        assert_eq!(entries.retain_unexpired(now), 6);
        assert_eq!(entries.len(), 4);
        assert_eq!(entries.retain_unexpired(now), 0);
        let der = entries.der_for_tests();
        let kept = super::super::crl_der::items(&der).unwrap();
        for (item, serial) in kept.iter().zip(&serials[6..]) {
            assert!(item.windows(16).any(|w| w == serial.as_bytes()));
        }
    }
}
