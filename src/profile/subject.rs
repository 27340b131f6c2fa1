//! The subject a latchkey client certificate carries, written by the signer.

use crate::model::ScopeSet;

use super::USER_ID;

/// The subject of a client certificate: `CN=<common_name>, O=<organization>`, then for a key
/// `UID=<key id>`, then one `OU=<scope>` per scope in sorted order, each a single-valued RDN
/// of a UTF8String. The key id is also in the URI SAN, the canonical identity; it is in the
/// subject too because TLS terminators (nginx's `$ssl_client_s_dn`, HAProxy's
/// `ssl_c_s_dn(UID)`) can pass subject attributes to an upstream but not URI SANs.
pub fn subject_der(
    common_name: &str,
    organization: &str,
    key_id: Option<&str>,
    scopes: &ScopeSet,
) -> Vec<u8> {
    const CN: &[u64] = &[2, 5, 4, 3];
    const O: &[u64] = &[2, 5, 4, 10];
    const OU: &[u64] = &[2, 5, 4, 11];
    let attributes: Vec<(&[u64], &str)> = [(CN, common_name), (O, organization)]
        .into_iter()
        .chain(key_id.map(|id| (USER_ID, id)))
        .chain(scopes.iter().map(|s| (OU, s.as_str())))
        .collect();
    name_der(&attributes)
}

/// A DER Name of these attributes in this order, one single-valued RDN each, UTF8String
/// values (the tests build deliberately wrong subjects with it too).
pub(crate) fn name_der(attributes: &[(&[u64], &str)]) -> Vec<u8> {
    yasna::construct_der(|w| {
        w.write_sequence(|w| {
            for (oid, value) in attributes {
                w.next().write_set(|w| {
                    w.next().write_sequence(|w| {
                        w.next()
                            .write_oid(&yasna::models::ObjectIdentifier::from_slice(oid));
                        w.next().write_utf8_string(value);
                    })
                });
            }
        })
    })
}

/// Replaces the subject of the DER certificate `cert` by `subject` (a DER Name) and signs the
/// new to-be-signed bytes with `sign`, keeping the signature algorithm. Used because rcgen
/// keeps one value per attribute type and so cannot write one `OU` per scope. The subject
/// found must be `expected` (what rcgen was asked to write), so nothing else is ever replaced.
#[cfg(any(feature = "server", test))]
pub(crate) fn replace_subject<E>(
    cert: &[u8],
    expected: &[u8],
    subject: &[u8],
    sign: impl FnOnce(&[u8]) -> Result<Vec<u8>, E>,
) -> Result<Option<Vec<u8>>, E> {
    let Ok((tbs, algorithm)) = yasna::parse_der(cert, |r| {
        r.read_sequence(|r| {
            let tbs = r.next().read_der()?;
            let algorithm = r.next().read_der()?;
            r.next().read_bitvec_bytes()?;
            Ok((tbs, algorithm))
        })
    }) else {
        return Ok(None);
    };
    // version, serial, signature, issuer, validity, subject, subjectPublicKeyInfo, extensions
    let Ok(mut fields) = yasna::parse_der(&tbs, |r| {
        r.read_sequence(|r| {
            (0..8)
                .map(|_| r.next().read_der())
                .collect::<Result<Vec<_>, _>>()
        })
    }) else {
        return Ok(None);
    };
    if fields[5] != expected {
        return Ok(None);
    }
    fields[5] = subject.to_vec();
    let tbs = yasna::construct_der(|w| {
        w.write_sequence(|w| {
            for field in &fields {
                w.next().write_der(field);
            }
        })
    });
    let signature = sign(&tbs)?;
    Ok(Some(yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_der(&tbs);
            w.next().write_der(&algorithm);
            w.next().write_bitvec_bytes(&signature, signature.len() * 8);
        })
    })))
}
