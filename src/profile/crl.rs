//! What a latchkey CRL says: the CA writes complete, direct CRLs with a number and a
//! `nextUpdate` (`ca::crl`); this reads one back, checking its issuer's signature once, into
//! the set of revoked serials a handshake looks up.

use std::collections::HashSet;
use std::sync::Arc;

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
    /// A delta CRL applies to another CRL than the one held.
    #[error("the delta CRL applies to CRL {base}, not to the {held} held")]
    WrongBase {
        /// The base it names.
        base: i64,
        /// The number held.
        held: i64,
    },
    /// A complete CRL was given where a delta was expected.
    #[error("not a delta CRL")]
    NotDelta,
    /// Its number is not above the one held.
    #[error("CRL number {got} is not newer than the {held} held")]
    NotNewer {
        /// The number offered.
        got: i64,
        /// The number held.
        held: i64,
    },
}

/// The revoked serials of one verified CRL, or of a CRL and the delta CRLs applied to it.
///
/// A delta does not copy the million serials of its base: the set keeps the base's serials
/// shared and what the deltas since added and removed beside them, and folds those into a
/// new base only once they have grown to a fraction of it.
#[derive(Debug, Clone)]
pub struct RevocationSet {
    pub(crate) number: i64,
    this_update: OffsetDateTime,
    pub(crate) next_update: OffsetDateTime,
    /// The serials of the last complete CRL (or of the last fold).
    base: Arc<HashSet<[u8; 16]>>,
    /// Revoked since, by deltas; none of them is in `base`.
    added: HashSet<[u8; 16]>,
    /// In `base`, and off the CRL since (they expired).
    removed: HashSet<[u8; 16]>,
}

/// The reason code of a delta CRL entry that takes a certificate off the CRL.
const REMOVE_FROM_CRL: u8 = 8;

/// The parts of a CRL this reader takes, its signature checked.
struct ReadCrl {
    number: i64,
    this_update: OffsetDateTime,
    next_update: OffsetDateTime,
    /// The Delta CRL Indicator's base, for a delta CRL.
    delta_base: Option<i64>,
    /// Serials, with true for removeFromCRL entries.
    entries: Vec<([u8; 16], bool)>,
}

/// Reads a DER CRL, checking that `issuer` (the issuing CA's certificate) signed it and that
/// it is a direct CRL with nothing critical this reader does not understand.
fn read_crl(der: &[u8], issuer: &CertificateDer<'_>) -> Result<ReadCrl, CrlError> {
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
    let mut delta_base = None;
    for ext in crl.extensions() {
        let oid = ext.oid.to_id_string();
        match oid.as_str() {
            "2.5.29.20" | "2.5.29.35" => {}
            // The delta CRL indicator: an INTEGER, the base CRL's number.
            "2.5.29.27" => {
                let base = yasna::parse_der(ext.value, |r| r.read_i64())
                    .map_err(|_| CrlError::Unsupported(oid.clone()))?;
                delta_base = Some(base);
            }
            // An issuing distribution point would narrow the CRL's scope.
            "2.5.29.28" => return Err(CrlError::Unsupported(oid)),
            _ if ext.critical => return Err(CrlError::Unsupported(oid)),
            _ => {}
        }
    }
    let number = crl
        .crl_number()
        .and_then(|n| i64::try_from(n).ok())
        .ok_or(CrlError::Incomplete)?;
    let next_update = crl.next_update().ok_or(CrlError::Incomplete)?.to_datetime();
    let entries = crl
        .iter_revoked_certificates()
        // Serials of other lengths were never issued by latchkey; nothing can match them.
        .filter_map(|r| {
            let serial = <[u8; 16]>::try_from(r.raw_serial()).ok()?;
            let removal = r.reason_code().is_some_and(|(_, c)| c.0 == REMOVE_FROM_CRL);
            Some((serial, removal))
        })
        .collect();
    Ok(ReadCrl {
        number,
        this_update: crl.last_update().to_datetime(),
        next_update,
        delta_base,
        entries,
    })
}

impl RevocationSet {
    /// Reads a complete DER CRL, checking that `issuer` (the issuing CA's certificate)
    /// signed it. A delta CRL is refused: it says nothing of what its base listed.
    pub fn from_crl(der: &[u8], issuer: &CertificateDer<'_>) -> Result<Self, CrlError> {
        let crl = read_crl(der, issuer)?;
        if crl.delta_base.is_some() {
            return Err(CrlError::Unsupported("2.5.29.27".into()));
        }
        Ok(Self {
            number: crl.number,
            this_update: crl.this_update,
            next_update: crl.next_update,
            base: Arc::new(crl.entries.into_iter().map(|(s, _)| s).collect()),
            added: HashSet::new(),
            removed: HashSet::new(),
        })
    }

    /// This set with the delta CRL `der` applied: checked that `issuer` signed it, that it is
    /// a delta whose base is this set's number, and that it is newer. The result lists
    /// exactly what the complete CRL of the delta's number lists.
    pub fn apply_delta(&self, der: &[u8], issuer: &CertificateDer<'_>) -> Result<Self, CrlError> {
        let crl = read_crl(der, issuer)?;
        let base = crl.delta_base.ok_or(CrlError::NotDelta)?;
        if base != self.number {
            return Err(CrlError::WrongBase {
                base,
                held: self.number,
            });
        }
        if crl.number <= self.number {
            return Err(CrlError::NotNewer {
                got: crl.number,
                held: self.number,
            });
        }
        let mut next = Self {
            number: crl.number,
            this_update: crl.this_update,
            next_update: crl.next_update,
            base: self.base.clone(),
            added: self.added.clone(),
            removed: self.removed.clone(),
        };
        for (serial, removal) in crl.entries {
            if removal {
                if !next.added.remove(&serial) && next.base.contains(&serial) {
                    next.removed.insert(serial);
                }
            } else if !next.removed.remove(&serial) && !next.base.contains(&serial) {
                next.added.insert(serial);
            }
        }
        // Folded once the changes are a sixteenth of the base: a lookup stays three probes,
        // and a delta copies little.
        if next.added.len() + next.removed.len() > (next.base.len() / 16).max(4096) {
            let mut folded: HashSet<[u8; 16]> = next
                .base
                .iter()
                .filter(|s| !next.removed.contains(*s))
                .copied()
                .collect();
            folded.extend(next.added.drain());
            next.base = Arc::new(folded);
            next.removed.clear();
        }
        Ok(next)
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
            base: Arc::new(serials.into_iter().map(|s| *s.as_bytes()).collect()),
            added: HashSet::new(),
            removed: HashSet::new(),
        }
    }

    /// True when `serial` is revoked.
    pub fn is_revoked(&self, serial: &[u8]) -> bool {
        <[u8; 16]>::try_from(serial).is_ok_and(|s| {
            !self.removed.contains(&s) && (self.added.contains(&s) || self.base.contains(&s))
        })
    }

    /// How many serials are revoked.
    pub fn len(&self) -> usize {
        self.base.len() - self.removed.len() + self.added.len()
    }

    /// True when nothing is revoked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
