//! A CRL as served: the signed bytes and the figures the HTTP edge and readiness read.

use bytes::Bytes;
use time::OffsetDateTime;

use crate::store::{CrlBasis, CrlRow, RootCrlRow};

/// A CRL as served, ready to copy out: DER, and PEM once somebody has asked for it (a
/// million-entry CRL is 49 MB of DER and 66 MB of PEM, and most clients take DER).
#[derive(Debug)]
pub struct PublishedCrl {
    /// The CRL number.
    pub number: i64,
    /// DER (`application/pkix-crl`).
    pub der: Bytes,
    pem: std::sync::OnceLock<Bytes>,
    /// thisUpdate.
    pub this_update: OffsetDateTime,
    /// nextUpdate.
    pub next_update: OffsetDateTime,
    /// How many certificates it lists.
    pub entries: i64,
    /// The store's revocation revision it was built from: it lists every revocation up to it.
    pub covers: i64,
    /// It lists the revoked certificates whose notAfter is after this (`None`: built before
    /// CRLs recorded it; no delta starts from it).
    pub cutoff: Option<OffsetDateTime>,
    /// For a delta CRL, the number of the CRL it applies to.
    pub delta_base: Option<i64>,
}

impl PublishedCrl {
    /// The issuing intermediate's CRL as stored.
    pub(super) fn from_row(row: CrlRow) -> Self {
        Self {
            number: row.number,
            covers: row.covers,
            cutoff: row.cutoff,
            delta_base: None,
            this_update: row.this_update,
            next_update: row.next_update,
            entries: row.entries,
            der: row.der,
            pem: std::sync::OnceLock::new(),
        }
    }

    /// The root's CRL as stored: no entries (intermediates are not revoked yet), and no
    /// revision (root CRLs do not follow key revocations).
    pub(super) fn from_root_row(row: RootCrlRow) -> Self {
        Self {
            number: row.number,
            covers: 0,
            cutoff: None,
            delta_base: None,
            this_update: row.this_update,
            next_update: row.next_update,
            entries: 0,
            der: Bytes::from(row.der),
            pem: std::sync::OnceLock::new(),
        }
    }

    /// A delta CRL to `target` from CRL `base`: `der`, listing `entries` changes.
    pub(super) fn delta(target: &CrlBasis, base: i64, der: Bytes, entries: i64) -> Self {
        Self {
            number: target.number,
            der,
            pem: std::sync::OnceLock::new(),
            this_update: target.this_update,
            next_update: target.next_update,
            entries,
            covers: target.covers,
            cutoff: Some(target.cutoff),
            delta_base: Some(base),
        }
    }

    /// What it lists, for deltas from or to it; `None` for one built without a cutoff.
    pub fn basis(&self) -> Option<CrlBasis> {
        Some(CrlBasis {
            number: self.number,
            this_update: self.this_update,
            next_update: self.next_update,
            covers: self.covers,
            cutoff: self.cutoff?,
        })
    }

    /// PEM (`application/x-pem-file`), encoded on first use.
    pub fn pem(&self) -> Bytes {
        self.pem
            .get_or_init(|| Bytes::from(crate::pem::encode("X509 CRL", &self.der)))
            .clone()
    }
}
