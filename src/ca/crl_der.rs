//! The DER of a CRL, written from entries encoded once.
//!
//! A million-entry CRL is 49 MB. Encoding every entry again for each CRL (as a CRL builder
//! taking a list does) costs a third of a second per CRL; here each revoked certificate is
//! encoded once, when it is first listed, into [`CrlEntries`], which the publisher keeps
//! between CRLs. A CRL is then its header, that buffer copied once, its extensions, and a
//! signature. The same writer makes delta CRLs (RFC 5280 §5.2.4), which no CRL crate here
//! writes.
//!
//! What does not change between CRLs of one issuer (the version, the signature algorithm
//! and the issuer's name, in the encoding rcgen gives them) is taken once from a CRL rcgen
//! signs when the signer is loaded, so the bytes of both writers agree; a test compares them.

use bytes::Bytes;
use time::{OffsetDateTime, Time};
use yasna::models::{GeneralizedTime, ObjectIdentifier, UTCTime};
use yasna::{DERWriter, Tag};

use super::SignerError;
use super::crl::CrlEntry;
use crate::model::Serial;

/// id-ce-cRLReasons.
const REASON_CODE: &[u64] = &[2, 5, 29, 21];
/// id-ce-authorityKeyIdentifier.
const AUTHORITY_KEY_IDENTIFIER: &[u64] = &[2, 5, 29, 35];
/// id-ce-cRLNumber.
const CRL_NUMBER: &[u64] = &[2, 5, 29, 20];
/// id-ce-deltaCRLIndicator.
const DELTA_CRL_INDICATOR: &[u64] = &[2, 5, 29, 27];
/// The reason code of a delta CRL entry that takes a certificate off the CRL (it expired).
const REMOVE_FROM_CRL: i64 = 8;

/// The revoked certificates of a CRL, each encoded as its `revokedCertificates` item once,
/// with the `notAfter` of its certificate so that expired ones can be dropped.
#[derive(Debug, Default, Clone)]
pub struct CrlEntries {
    /// The items, one after the other: the content of `revokedCertificates`.
    der: Vec<u8>,
    /// Where each item is, in the order of `der`.
    slots: Vec<Slot>,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    /// The certificate's notAfter, unix seconds.
    not_after: i64,
    start: u32,
    len: u32,
}

impl CrlEntries {
    /// No entries.
    pub fn new() -> Self {
        Self::default()
    }

    /// Lists a revoked certificate whose validity ends at `not_after`.
    pub fn insert(&mut self, entry: &CrlEntry, not_after: OffsetDateTime) {
        let reason = entry.reason_code().map(|r| i64::from(r.code()));
        self.push(&entry.serial, entry.revoked_at, reason, not_after);
    }

    /// Lists, in a delta CRL, that the certificate `serial` (revoked at `revoked_at`) is off
    /// the CRL from now on: reason removeFromCRL, because it has expired.
    pub fn insert_removal(&mut self, serial: &Serial, revoked_at: OffsetDateTime) {
        self.push(
            serial,
            revoked_at,
            Some(REMOVE_FROM_CRL),
            OffsetDateTime::UNIX_EPOCH,
        );
    }

    fn push(
        &mut self,
        serial: &Serial,
        revoked_at: OffsetDateTime,
        reason: Option<i64>,
        not_after: OffsetDateTime,
    ) {
        let start = self.der.len();
        let item = yasna::construct_der(|w| {
            w.write_sequence(|w| {
                w.next().write_bigint_bytes(serial.as_bytes(), true);
                write_time(w.next(), revoked_at);
                if let Some(reason) = reason {
                    w.next().write_sequence(|w| {
                        write_extension(w.next(), REASON_CODE, false, |w| w.write_enum(reason));
                    });
                }
            });
        });
        self.der.extend_from_slice(&item);
        self.slots.push(Slot {
            not_after: not_after.unix_timestamp(),
            // A CRL of more than 4 GiB is not one anybody could fetch.
            start: u32::try_from(start).unwrap_or(u32::MAX),
            len: item.len() as u32,
        });
    }

    /// Drops the entries of certificates whose validity ended at or before `cutoff`; returns
    /// how many. One pass over the buffer, in place.
    pub fn retain_unexpired(&mut self, cutoff: OffsetDateTime) -> usize {
        let cutoff = cutoff.unix_timestamp();
        if self.slots.iter().all(|s| s.not_after > cutoff) {
            return 0;
        }
        let before = self.slots.len();
        let mut end = 0usize;
        let der = &mut self.der;
        self.slots.retain_mut(|slot| {
            if slot.not_after <= cutoff {
                return false;
            }
            let (start, len) = (slot.start as usize, slot.len as usize);
            der.copy_within(start..start + len, end);
            slot.start = end as u32;
            end += len;
            true
        });
        der.truncate(end);
        before - self.slots.len()
    }

    /// How many certificates are listed.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// True when none is.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The encoded items, for tests.
    #[cfg(test)]
    pub(super) fn der_for_tests(&self) -> Vec<u8> {
        self.der.clone()
    }

    /// The bytes the entries take in a CRL.
    pub fn encoded_len(&self) -> usize {
        self.der.len()
    }
}

/// What kind of CRL to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrlKind {
    /// A complete CRL.
    Complete,
    /// A delta CRL: what changed since the complete CRL numbered `base` (its critical Delta
    /// CRL Indicator names it).
    Delta {
        /// The number of the CRL it applies to.
        base: u64,
    },
}

/// The parts of an issuer's CRLs that never change, as rcgen encodes them.
#[derive(Debug, Clone)]
pub(super) struct CrlTemplate {
    /// version, signature (the algorithm) and issuer: the first three fields of TBSCertList.
    tbs_prefix: Vec<u8>,
    /// The outer signatureAlgorithm.
    algorithm: Vec<u8>,
}

impl CrlTemplate {
    /// Reads the template from `der`, a CRL rcgen signed with the issuer's key.
    pub(super) fn from_signed_crl(der: &[u8]) -> Result<Self, SignerError> {
        let bad = || SignerError::Issuer("cannot read back the CRL template".into());
        let outer = items(der).ok_or_else(bad)?;
        let [list] = outer.as_slice() else {
            return Err(bad());
        };
        let fields = items(content(list).ok_or_else(bad)?).ok_or_else(bad)?;
        let (Some(tbs), Some(algorithm)) = (fields.first(), fields.get(1)) else {
            return Err(bad());
        };
        let tbs_fields = items(content(tbs).ok_or_else(bad)?).ok_or_else(bad)?;
        if tbs_fields.len() < 3 {
            return Err(bad());
        }
        Ok(Self {
            tbs_prefix: tbs_fields[..3].concat(),
            algorithm: algorithm.to_vec(),
        })
    }

    /// Writes and signs a CRL of `kind` listing `entries`, with `key_identifier` as its
    /// authority key identifier. `sign` signs the TBSCertList.
    pub(super) fn sign(
        &self,
        header: &CrlHeader,
        kind: CrlKind,
        key_identifier: &[u8],
        entries: &CrlEntries,
        sign: impl FnOnce(&[u8]) -> Result<Vec<u8>, SignerError>,
    ) -> Result<Bytes, SignerError> {
        let times = yasna::construct_der_seq(|w| {
            write_time(w.next(), header.this_update);
            write_time(w.next(), header.next_update);
        });
        let extensions = yasna::construct_der(|w| {
            w.write_tagged(Tag::context(0), |w| {
                w.write_sequence(|w| {
                    write_extension(w.next(), AUTHORITY_KEY_IDENTIFIER, false, |w| {
                        w.write_sequence(|w| {
                            w.next().write_tagged_implicit(Tag::context(0), |w| {
                                w.write_bytes(key_identifier)
                            });
                        });
                    });
                    write_extension(w.next(), CRL_NUMBER, false, |w| w.write_u64(header.number));
                    if let CrlKind::Delta { base } = kind {
                        write_extension(w.next(), DELTA_CRL_INDICATOR, true, |w| w.write_u64(base));
                    }
                });
            });
        });
        // RFC 5280 §5.1.2.6: with no revoked certificates the list is absent.
        let list_header = if entries.is_empty() {
            Vec::new()
        } else {
            header_of(0x30, entries.der.len())
        };
        let tbs_len = self.tbs_prefix.len()
            + times.len()
            + list_header.len()
            + entries.der.len()
            + extensions.len();
        // Room in front for the CertificateList header, written once the signature's length
        // is known: the TBSCertList is copied once, not again into its envelope.
        const ROOM: usize = 16;
        let tbs_header = header_of(0x30, tbs_len);
        let mut out = Vec::with_capacity(ROOM + tbs_header.len() + tbs_len + 160);
        out.resize(ROOM, 0);
        for part in [
            &tbs_header[..],
            &self.tbs_prefix,
            &times,
            &list_header,
            &entries.der,
            &extensions,
        ] {
            out.extend_from_slice(part);
        }
        let signature = sign(&out[ROOM..])?;
        out.extend_from_slice(&self.algorithm);
        out.extend_from_slice(&header_of(0x03, signature.len() + 1));
        out.push(0); // no unused bits
        out.extend_from_slice(&signature);
        let envelope = header_of(0x30, out.len() - ROOM);
        let start = ROOM - envelope.len();
        out[start..ROOM].copy_from_slice(&envelope);
        Ok(Bytes::from(out).slice(start..))
    }
}

/// Number and times of a CRL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrlHeader {
    /// The CRL number.
    pub number: u64,
    /// thisUpdate.
    pub this_update: OffsetDateTime,
    /// nextUpdate.
    pub next_update: OffsetDateTime,
}

/// A DER tag and length.
fn header_of(tag: u8, len: usize) -> Vec<u8> {
    let mut out = vec![tag];
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out
}

/// The TLVs one after the other in `der` (low tag numbers only, definite lengths: DER that
/// rcgen wrote). `None` when they do not fill it exactly.
pub(super) fn items(mut der: &[u8]) -> Option<Vec<&[u8]>> {
    let mut out = Vec::new();
    while !der.is_empty() {
        let (head, len) = tlv_len(der)?;
        let total = head.checked_add(len)?;
        out.push(der.get(..total)?);
        der = &der[total..];
    }
    Some(out)
}

/// The content of one TLV.
pub(super) fn content(tlv: &[u8]) -> Option<&[u8]> {
    let (head, len) = tlv_len(tlv)?;
    tlv.get(head..head.checked_add(len)?)
}

/// The header's length and the content's length of the TLV at the start of `der`.
fn tlv_len(der: &[u8]) -> Option<(usize, usize)> {
    let first = *der.get(1)?;
    if first < 0x80 {
        return Some((2, usize::from(first)));
    }
    let n = usize::from(first & 0x7f);
    if n == 0 || n > 4 {
        return None;
    }
    let len = der
        .get(2..2 + n)?
        .iter()
        .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
    Some((2 + n, len))
}

/// A time as RFC 5280 wants it in a CRL: UTCTime before 2050, GeneralizedTime from then,
/// whole seconds.
fn write_time(w: DERWriter, t: OffsetDateTime) {
    let t =
        t.replace_time(Time::from_hms(t.hour(), t.minute(), t.second()).unwrap_or(Time::MIDNIGHT));
    if (1950..2050).contains(&t.year()) {
        w.write_utctime(&UTCTime::from_datetime(t));
    } else {
        w.write_generalized_time(&GeneralizedTime::from_datetime(t));
    }
}

/// An Extension: its OID, `critical` when true, and the DER of its value in an OCTET STRING.
fn write_extension(w: DERWriter, oid: &[u64], critical: bool, value: impl FnOnce(DERWriter)) {
    w.write_sequence(|w| {
        w.next().write_oid(&ObjectIdentifier::from_slice(oid));
        if critical {
            w.next().write_bool(true);
        }
        w.next().write_bytes(&yasna::construct_der(value));
    });
}
