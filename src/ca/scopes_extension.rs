//! Writing the scopes extension through rcgen.
//!
//! The scopes OID (`2.25.<128-bit UUID>.1`) has an arc that does not fit the `u64` arcs rcgen's
//! `CustomExtension` takes. rcgen is given a placeholder OID whose DER encoding has exactly the
//! same length, and the placeholder's bytes are replaced by the real OID's in the
//! to-be-signed bytes just before they are signed, and in the finished certificate. Equal
//! lengths mean no enclosing DER length changes; the placeholder is 23 bytes of tag, length
//! and two 10-byte arcs, and the replacement insists on finding it exactly once.

use crate::model::profile::SCOPES_OID_DER;

/// The placeholder: `2.25.9223372036856511563.9223372036854791775`, DER content 21 bytes,
/// the same as the real OID's.
pub(crate) const PLACEHOLDER_ARCS: &[u64] = &[2, 25, 9223372036856511563, 9223372036854791775];

/// The placeholder OID as it appears in DER: tag, length, content.
const PLACEHOLDER_TLV: &[u8] = &[
    0x06, 0x15, 0x69, 0x81, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0xe9, 0xf8, 0x4b, 0x81, 0x80, 0x80,
    0x80, 0x80, 0x80, 0x80, 0x80, 0xfc, 0x5f,
];

/// True when `der` holds the placeholder's bytes: a public key crafted to contain them
/// would make the replacement ambiguous, so such a key is refused up front.
pub(crate) fn contains_placeholder(der: &[u8]) -> bool {
    der.windows(PLACEHOLDER_TLV.len())
        .any(|w| w == PLACEHOLDER_TLV)
}

/// How many placeholders [`replace_placeholder`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Placeholder {
    /// None: the DER has no scopes extension (a CA certificate, a CRL).
    Absent,
    /// Exactly one, now replaced by the scopes OID.
    Replaced,
    /// More than one: nothing was replaced, and nothing must be signed.
    Ambiguous,
}

/// Replaces the one placeholder OID in `der` by the scopes OID.
pub(crate) fn replace_placeholder(der: &mut [u8]) -> Placeholder {
    let mut found = der
        .windows(PLACEHOLDER_TLV.len())
        .enumerate()
        .filter(|(_, w)| *w == PLACEHOLDER_TLV)
        .map(|(i, _)| i);
    match (found.next(), found.next()) {
        (None, _) => Placeholder::Absent,
        (Some(_), Some(_)) => Placeholder::Ambiguous,
        (Some(at), None) => {
            der[at + 2..at + PLACEHOLDER_TLV.len()].copy_from_slice(SCOPES_OID_DER);
            Placeholder::Replaced
        }
    }
}

/// The issuing key, wrapped so that it swaps the placeholder OID for the scopes OID in
/// whatever it signs.
pub(crate) struct PatchingKey(pub(crate) rcgen::KeyPair);

impl rcgen::PublicKeyData for PatchingKey {
    fn der_bytes(&self) -> &[u8] {
        self.0.der_bytes()
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        rcgen::PublicKeyData::algorithm(&self.0)
    }
}

impl rcgen::SigningKey for PatchingKey {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        let mut tbs = msg.to_vec();
        if replace_placeholder(&mut tbs) == Placeholder::Ambiguous {
            return Err(rcgen::Error::X509(
                "scopes extension placeholder found more than once".into(),
            ));
        }
        rcgen::SigningKey::sign(&self.0, &tbs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholder_tlv_is_the_encoding_of_the_placeholder_arcs() {
        let der = yasna::construct_der(|w| {
            w.write_oid(&yasna::models::ObjectIdentifier::from_slice(
                PLACEHOLDER_ARCS,
            ))
        });
        assert_eq!(der, PLACEHOLDER_TLV);
        assert_eq!(PLACEHOLDER_TLV.len() - 2, SCOPES_OID_DER.len());
    }
}
