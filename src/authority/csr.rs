//! CSR checks. The only way to get a [`VerifiedCsr`] is to pass all of them; the only thing
//! taken from it is the public key.

use rustls_pki_types::pem::SectionKind;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::cri_attributes::ParsedCriAttribute;
use x509_parser::oid_registry as oids;
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey as ParsedKey;

use crate::ca::PublicKey;

/// Why a CSR was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsrError {
    /// Not one PEM `CERTIFICATE REQUEST` holding a well-formed PKCS#10 request.
    #[error("malformed CSR: {0}")]
    Malformed(String),
    /// The self-signature does not verify.
    #[error("the CSR's signature does not verify")]
    SignatureInvalid,
    /// Signed with MD5, SHA-1 or an algorithm latchkey does not accept.
    #[error(
        "the CSR is signed with {0}, which is not accepted (use SHA-256 or better, or Ed25519)"
    )]
    WeakSignature(String),
    /// A key type other than P-256, P-384, Ed25519 or RSA of 2048 to 4096 bits.
    #[error(
        "unsupported key: {0} (accepted: ECDSA P-256, P-384, Ed25519, RSA of 2048 to 4096 bits)"
    )]
    UnsupportedKey(String),
    /// An RSA key shorter than 2048 bits.
    #[error("RSA key of {0} bits is too short (at least 2048)")]
    WeakKey(usize),
    /// An RSA key whose public exponent is not 65537: Go, Boulder and FIPS 186-5 draw the
    /// line there, so such a key would be refused far from here, by a relying party.
    #[error("RSA public exponent {0} is not accepted (only 65537)")]
    WeakExponent(String),
    /// The CSR asks for an extension; latchkey decides every extension itself.
    #[error("the CSR requests the {0} extension; CSRs must request no extensions")]
    ExtensionForbidden(String),
}

/// The kinds of key latchkey certifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// ECDSA on P-256 (the default).
    P256,
    /// ECDSA on P-384.
    P384,
    /// Ed25519.
    Ed25519,
    /// RSA with this many modulus bits (2048 to 4096).
    Rsa(usize),
}

/// A CSR whose self-signature verified, whose key is acceptable, and which asks for nothing.
#[derive(Debug, Clone)]
pub struct VerifiedCsr {
    /// The only thing a certificate takes from the CSR.
    pub public_key: PublicKey,
    /// The key's kind.
    pub kind: KeyKind,
}

/// Parses and checks a PEM CSR.
pub fn verify_pem(pem: &str) -> Result<VerifiedCsr, CsrError> {
    let der = single_csr_block(pem.as_bytes())?;
    verify_der(&der)
}

fn single_csr_block(pem: &[u8]) -> Result<Vec<u8>, CsrError> {
    let mut rest = pem;
    let mut found = None;
    loop {
        match rustls_pki_types::pem::from_buf(&mut rest) {
            Ok(Some((kind, der))) => {
                match kind {
                    SectionKind::Csr if found.is_none() => found = Some(der),
                    SectionKind::Csr => {
                        return Err(CsrError::Malformed("more than one PEM block".into()));
                    }
                    SectionKind::PrivateKey
                    | SectionKind::RsaPrivateKey
                    | SectionKind::EcPrivateKey => {
                        // The key itself goes nowhere: not into the error, not into a log.
                        return Err(CsrError::Malformed(
                            "this is a private key; send only the CSR and keep the key".into(),
                        ));
                    }
                    _ => {
                        return Err(CsrError::Malformed(
                            "expected a PEM block labelled CERTIFICATE REQUEST".into(),
                        ));
                    }
                }
            }
            Ok(None) => break,
            Err(_) => return Err(CsrError::Malformed("invalid PEM".into())),
        }
    }
    found.ok_or_else(|| CsrError::Malformed("no PEM block labelled CERTIFICATE REQUEST".into()))
}

/// Checks a DER CSR: structure, key, signature algorithm, signature, requested extensions.
pub fn verify_der(der: &[u8]) -> Result<VerifiedCsr, CsrError> {
    let (rest, csr) = X509CertificationRequest::from_der(der)
        .map_err(|_| CsrError::Malformed("not a PKCS#10 certification request".into()))?;
    if !rest.is_empty() {
        return Err(CsrError::Malformed(
            "trailing bytes after the request".into(),
        ));
    }
    let info = &csr.certification_request_info;
    // The key is judged before the signature, so an absurd key costs nothing to refuse.
    let kind = key_kind(&info.subject_pki)?;
    check_signature_algorithm(&csr.signature_algorithm.algorithm)?;
    csr.verify_signature()
        .map_err(|_| CsrError::SignatureInvalid)?;
    for attr in info.attributes() {
        if attr.oid != oids::OID_PKCS9_EXTENSION_REQUEST {
            continue;
        }
        match attr.parsed_attribute() {
            ParsedCriAttribute::ExtensionRequest(request) => {
                if let Some(ext) = request.extensions.first() {
                    return Err(CsrError::ExtensionForbidden(extension_name(ext)));
                }
            }
            // An extension request the parser could not read still asks for something.
            _ if !extension_request_is_empty(attr.value) => {
                return Err(CsrError::ExtensionForbidden("an unreadable".into()));
            }
            _ => {}
        }
    }
    let public_key = PublicKey::from_checked_spki(info.subject_pki.raw)
        .map_err(|_| CsrError::UnsupportedKey("key encoding not recognised".into()))?;
    Ok(VerifiedCsr { public_key, kind })
}

fn key_kind(spki: &x509_parser::x509::SubjectPublicKeyInfo<'_>) -> Result<KeyKind, CsrError> {
    let alg = &spki.algorithm.algorithm;
    if *alg == oids::OID_SIG_ED25519 {
        return Ok(KeyKind::Ed25519);
    }
    if *alg == oids::OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok())
            .ok_or_else(|| CsrError::UnsupportedKey("EC key without a named curve".into()))?;
        return if curve == oids::OID_EC_P256 {
            Ok(KeyKind::P256)
        } else if curve == oids::OID_NIST_EC_P384 {
            Ok(KeyKind::P384)
        } else {
            Err(CsrError::UnsupportedKey(format!("EC curve {curve}")))
        };
    }
    if *alg == oids::OID_PKCS1_RSAENCRYPTION {
        let Ok(ParsedKey::RSA(rsa)) = spki.parsed() else {
            return Err(CsrError::Malformed("unreadable RSA key".into()));
        };
        let bits = rsa_modulus_bits(rsa.modulus)
            .ok_or_else(|| CsrError::Malformed("RSA modulus is zero or negative".into()))?;
        let exponent: &[u8] = match rsa.exponent.iter().position(|&b| b != 0) {
            Some(i) => &rsa.exponent[i..],
            None => &[0],
        };
        if exponent != RSA_EXPONENT {
            return Err(CsrError::WeakExponent(exponent_text(exponent)));
        }
        return match bits {
            MIN_RSA_BITS..=MAX_RSA_BITS => Ok(KeyKind::Rsa(bits)),
            b if b < MIN_RSA_BITS => Err(CsrError::WeakKey(b)),
            b => Err(CsrError::UnsupportedKey(format!("RSA {b} bits"))),
        };
    }
    Err(CsrError::UnsupportedKey(format!("key algorithm {alg}")))
}

/// RSA moduli latchkey certifies, in bits.
const MIN_RSA_BITS: usize = 2048;
const MAX_RSA_BITS: usize = 4096;

/// The only RSA public exponent latchkey certifies, 65537, big-endian.
const RSA_EXPONENT: &[u8] = &[0x01, 0x00, 0x01];

/// A refused exponent for the error message: decimal when it fits in a u64, else its size.
fn exponent_text(exponent: &[u8]) -> String {
    if exponent.len() <= 8 {
        let value = exponent.iter().fold(0u64, |v, &b| v << 8 | u64::from(b));
        value.to_string()
    } else {
        format!("of {} bytes", exponent.len())
    }
}

/// The true bit length of a DER INTEGER modulus (x509-parser's `key_size` assumes one
/// leading zero byte). `None` for a zero or negative modulus.
fn rsa_modulus_bits(modulus: &[u8]) -> Option<usize> {
    if modulus.first().is_some_and(|b| b & 0x80 != 0) {
        return None;
    }
    let significant: &[u8] = match modulus.iter().position(|&b| b != 0) {
        Some(i) => &modulus[i..],
        None => return None,
    };
    Some(8 * (significant.len() - 1) + (8 - significant[0].leading_zeros() as usize))
}

fn check_signature_algorithm(alg: &x509_parser::der_parser::oid::Oid<'_>) -> Result<(), CsrError> {
    let accepted = [
        oids::OID_PKCS1_SHA256WITHRSA,
        oids::OID_PKCS1_SHA384WITHRSA,
        oids::OID_PKCS1_SHA512WITHRSA,
        oids::OID_PKCS1_RSASSAPSS,
        oids::OID_SIG_ECDSA_WITH_SHA256,
        oids::OID_SIG_ECDSA_WITH_SHA384,
        oids::OID_SIG_ED25519,
    ];
    if accepted.contains(alg) {
        return Ok(());
    }
    let name = match alg.to_id_string().as_str() {
        "1.2.840.113549.1.1.4" => "MD5 with RSA".to_owned(),
        "1.2.840.113549.1.1.5" | "1.3.14.3.2.29" => "SHA-1 with RSA".to_owned(),
        "1.2.840.10045.4.1" => "ECDSA with SHA-1".to_owned(),
        other => format!("signature algorithm {other}"),
    };
    Err(CsrError::WeakSignature(name))
}

/// The extension's usual name, or its dotted OID.
fn extension_name(ext: &x509_parser::extensions::X509Extension<'_>) -> String {
    use x509_parser::extensions::ParsedExtension as E;
    let name = match ext.parsed_extension() {
        E::BasicConstraints(_) => "basicConstraints",
        E::KeyUsage(_) => "keyUsage",
        E::ExtendedKeyUsage(_) => "extendedKeyUsage",
        E::SubjectAlternativeName(_) => "subjectAltName",
        E::SubjectKeyIdentifier(_) => "subjectKeyIdentifier",
        E::AuthorityKeyIdentifier(_) => "authorityKeyIdentifier",
        E::NameConstraints(_) => "nameConstraints",
        E::CRLDistributionPoints(_) => "cRLDistributionPoints",
        E::AuthorityInfoAccess(_) => "authorityInfoAccess",
        E::CertificatePolicies(_) => "certificatePolicies",
        _ => return format!("{} (critical: {})", ext.oid.to_id_string(), ext.critical),
    };
    name.to_owned()
}

/// True when an extensionRequest attribute's value (`SET { SEQUENCE OF Extension }`)
/// holds no extension.
fn extension_request_is_empty(value: &[u8]) -> bool {
    // SET (0x31) of one empty SEQUENCE (0x30 0x00): OpenSSL writes this for "no extensions".
    matches!(
        value,
        [0x31, 0x02, 0x30, 0x00] | [0x30, 0x00] | [0x31, 0x00]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A CSR from its parts, signed with garbage: enough to reach the key and signature checks.
    fn forged_csr(spki: impl FnOnce(yasna::DERWriter), sig_alg: &[u64]) -> Vec<u8> {
        use yasna::models::ObjectIdentifier;
        yasna::construct_der(|w| {
            w.write_sequence(|w| {
                w.next().write_sequence(|w| {
                    w.next().write_u8(0);
                    w.next().write_sequence(|_| {});
                    spki(w.next());
                    w.next()
                        .write_tagged_implicit(yasna::Tag::context(0), |w| w.write_set(|_| {}));
                });
                w.next().write_sequence(|w| {
                    w.next().write_oid(&ObjectIdentifier::from_slice(sig_alg));
                });
                w.next().write_bitvec_bytes(&[0x30, 0x00], 16);
            })
        })
    }

    fn rsa_spki(modulus_bytes: usize) -> impl FnOnce(yasna::DERWriter) {
        move |w: yasna::DERWriter| {
            w.write_sequence(|w| {
                w.next().write_sequence(|w| {
                    w.next()
                        .write_oid(&yasna::models::ObjectIdentifier::from_slice(&[
                            1, 2, 840, 113549, 1, 1, 1,
                        ]));
                    w.next().write_null();
                });
                let key = yasna::construct_der(|w| {
                    w.write_sequence(|w| {
                        let mut modulus = vec![0xc5u8; modulus_bytes];
                        modulus.insert(0, 0);
                        w.next().write_bigint_bytes(&modulus, true);
                        w.next().write_u32(65537);
                    })
                });
                w.next().write_bitvec_bytes(&key, key.len() * 8);
            })
        }
    }

    const SHA256_WITH_RSA: &[u64] = &[1, 2, 840, 113549, 1, 1, 11];
    const ECDSA_WITH_SHA256: &[u64] = &[1, 2, 840, 10045, 4, 3, 2];

    #[test]
    fn an_absurd_rsa_key_is_refused_before_any_signature_work() {
        let csr = forged_csr(rsa_spki(2048), SHA256_WITH_RSA);
        assert_eq!(
            verify_der(&csr).unwrap_err(),
            CsrError::UnsupportedKey("RSA 16384 bits".into())
        );
        let csr = forged_csr(rsa_spki(128), SHA256_WITH_RSA);
        assert_eq!(verify_der(&csr).unwrap_err(), CsrError::WeakKey(1024));
    }

    #[test]
    fn refused_exponents_are_named_in_decimal() {
        assert_eq!(exponent_text(&[3]), "3");
        assert_eq!(exponent_text(&[0x01, 0x00, 0x03]), "65539");
        assert_eq!(exponent_text(&[1; 9]), "of 9 bytes");
    }

    #[test]
    fn a_point_not_on_the_curve_never_verifies() {
        let spki = |w: yasna::DERWriter| {
            w.write_sequence(|w| {
                w.next().write_sequence(|w| {
                    w.next()
                        .write_oid(&yasna::models::ObjectIdentifier::from_slice(&[
                            1, 2, 840, 10045, 2, 1,
                        ]));
                    w.next()
                        .write_oid(&yasna::models::ObjectIdentifier::from_slice(&[
                            1, 2, 840, 10045, 3, 1, 7,
                        ]));
                });
                let mut point = vec![0x04u8];
                point.extend([0x01u8; 64]);
                w.next().write_bitvec_bytes(&point, point.len() * 8);
            })
        };
        assert_eq!(
            verify_der(&forged_csr(spki, ECDSA_WITH_SHA256)).unwrap_err(),
            CsrError::SignatureInvalid
        );
    }

    #[test]
    fn a_csr_truncated_anywhere_or_garbage_or_deeply_nested_is_malformed_without_panicking() {
        let good = crate::client::new_key_pair(crate::client::KeyType::P256)
            .unwrap()
            .csr_pem;
        let der = single_csr_block(good.as_bytes()).unwrap();
        assert!(verify_der(&der).is_ok());
        for cut in 0..der.len() {
            assert!(
                verify_der(&der[..cut]).is_err(),
                "accepted a CSR cut at {cut}"
            );
        }
        let garbage: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        assert!(matches!(verify_der(&garbage), Err(CsrError::Malformed(_))));
        // 100,000 nested indefinite SEQUENCEs: refused, without exhausting the stack.
        let mut nested = Vec::new();
        for _ in 0..100_000 {
            nested.extend([0x30, 0x80]);
        }
        assert!(matches!(verify_der(&nested), Err(CsrError::Malformed(_))));
    }

    #[test]
    fn rsa_modulus_bits_counts_the_true_length() {
        let mut m2048 = vec![0x00, 0x80];
        m2048.extend([0u8; 255]);
        assert_eq!(rsa_modulus_bits(&m2048), Some(2048));
        let mut m2049 = vec![0x01];
        m2049.extend([0u8; 256]);
        assert_eq!(rsa_modulus_bits(&m2049), Some(2049));
        assert_eq!(rsa_modulus_bits(&[0x00, 0x00]), None);
        assert_eq!(rsa_modulus_bits(&[0x80, 0x01]), None);
        assert_eq!(rsa_modulus_bits(&[0x00, 0x7f]), Some(7));
    }
}
