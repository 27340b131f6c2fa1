//! The old scopes extension: read only, from certificates issued before the cut-over.

use time::OffsetDateTime;
use time::macros::datetime;

use crate::model::ScopeSet;

/// The old scopes extension's OID, `2.25.195384371966353938652200206769540452565.1`. Read
/// only, on certificates issued before [`LEGACY_SCOPES_ISSUED_BEFORE`]; never written.
pub const LEGACY_SCOPES_OID_STR: &str = "2.25.195384371966353938652200206769540452565.1";

/// The DER content octets of [`LEGACY_SCOPES_OID_STR`] (the OID value without tag and length).
///
/// The UUID arc does not fit in a `u64`, so it is encoded once here, base-128 by hand, and
/// checked against the dotted form in the tests.
pub const LEGACY_SCOPES_OID_DER: &[u8] = &[
    0x69, 0x82, 0xa5, 0xfd, 0xd4, 0xd2, 0x92, 0x91, 0x8a, 0x89, 0xc5, 0xa5, 0x89, 0xd2, 0xf7, 0x83,
    0xf0, 0x99, 0xa1, 0x55, 0x01,
];

/// The cut-over: latchkey releases from this date on carry scopes in `OU` attributes only.
/// The old extension is read only from a certificate that starts before it.
pub const LEGACY_SCOPES_ISSUED_BEFORE: OffsetDateTime = datetime!(2026-12-01 00:00 UTC);

/// The longest a key certificate can live: it never outlives its key, and no key lives longer
/// than 180 days (`authority::MAX_KEY_DAYS`), plus the backdating of its start.
pub const LONGEST_KEY_CERTIFICATE: time::Duration = time::Duration::days(180);

/// The end of the old extension's acceptance: the cut-over plus the longest key certificate
/// lifetime (and [`super::BACKDATE`]). A certificate carrying the old extension is read through it
/// only if it also ends by then, so after this date no certificate's scopes come from it.
pub const LEGACY_SCOPES_ACCEPTED_UNTIL: OffsetDateTime = datetime!(2027-05-30 00:01 UTC);

/// True when a certificate valid from `not_before` to `not_after` may have its scopes read
/// from the old extension: it starts before the cut-over and ends within the window.
pub fn legacy_scopes_accepted(not_before: OffsetDateTime, not_after: OffsetDateTime) -> bool {
    not_before < LEGACY_SCOPES_ISSUED_BEFORE && not_after <= LEGACY_SCOPES_ACCEPTED_UNTIL
}

/// The value of the old scopes extension: `SEQUENCE OF UTF8String`, sorted and
/// de-duplicated (a [`ScopeSet`] is both). Never written into a certificate any more: kept
/// to read the old extension exactly, and for tests that make old-profile certificates.
pub fn encode_legacy_scopes(scopes: &ScopeSet) -> Vec<u8> {
    yasna::construct_der(|w| {
        w.write_sequence_of(|w| {
            for scope in scopes.iter() {
                w.next().write_utf8_string(scope.as_str());
            }
        })
    })
}

/// Reads the value of the old scopes extension, refusing anything but a DER `SEQUENCE OF
/// UTF8String` of valid, sorted, distinct scopes.
pub fn decode_legacy_scopes(der: &[u8]) -> Option<ScopeSet> {
    let items: Vec<String> =
        yasna::parse_der(der, |r| r.collect_sequence_of(|r| r.read_utf8string())).ok()?;
    let set = ScopeSet::parse(&items).ok()?;
    // Re-encoding must give the same bytes: this refuses unsorted lists and non-DER forms.
    (encode_legacy_scopes(&set) == der).then_some(set)
}
