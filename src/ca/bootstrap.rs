//! Making a new CA: the root, the issuing intermediate, and the first certificates the CA
//! needs for itself (its TLS server certificate and the administrator's client certificate).

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PublicKeyData, SerialNumber,
};
use rustls_pki_types::CertificateDer;
use time::{Duration, OffsetDateTime};

use super::{IssuedCertificate, PublicKey, Signer, SignerError};
use crate::model::{OwnerName, Serial};

/// The root CA's lifetime: ten years.
const ROOT_LIFETIME: Duration = Duration::days(3653);
/// The issuing intermediate's lifetime: five years.
pub const INTERMEDIATE_LIFETIME: Duration = Duration::days(1826);
/// The CA's own TLS and administrator certificates: one year, renewed at start-up when
/// fewer than 30 days remain.
pub const SERVICE_CERTIFICATE_LIFETIME: Duration = Duration::days(365);
/// Certificates start a minute in the past so a client whose clock runs slightly behind
/// does not see them as not yet valid.
pub const BACKDATE: Duration = crate::profile::BACKDATE;

/// Why a CA could not be made.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// Key generation or signing failed.
    #[error("cannot make the CA: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// The new intermediate could not be loaded as a signer.
    #[error(transparent)]
    Signer(#[from] SignerError),
    /// The root ends too soon to sign another intermediate: roll it over.
    #[error("the root expires at {0}: it cannot sign a new intermediate; roll the root over")]
    RootExpiring(OffsetDateTime),
}

/// A freshly made root and issuing intermediate, with their PKCS#8 private keys in PEM.
pub struct Bootstrap {
    /// The self-signed root certificate: what clients trust.
    pub root_certificate: CertificateDer<'static>,
    /// The root's private key.
    pub root_key_pem: String,
    /// The issuing intermediate, signed by the root.
    pub intermediate_certificate: CertificateDer<'static>,
    /// The intermediate's private key.
    pub intermediate_key_pem: String,
}

impl Bootstrap {
    /// Generates an ECDSA P-256 root (10 years) and intermediate (5 years).
    pub fn generate(now: OffsetDateTime) -> Result<Self, BootstrapError> {
        Self::generate_with_crl_url(now, None)
    }

    /// Like [`Bootstrap::generate`], with the intermediate naming `root_crl_url` (where the
    /// root's CRL is served) as its CRL distribution point, so that relying parties that
    /// check every level of the chain can find the CRL that covers the intermediate.
    pub fn generate_with_crl_url(
        now: OffsetDateTime,
        root_crl_url: Option<&str>,
    ) -> Result<Self, BootstrapError> {
        let intermediate_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let made = RootAndIntermediate::generate(now, root_crl_url, &intermediate_key)?;
        Ok(Self {
            root_certificate: made.root_certificate,
            root_key_pem: made.root_key_pem,
            intermediate_certificate: made.intermediate_certificate,
            intermediate_key_pem: intermediate_key.serialize_pem(),
        })
    }
}

/// A freshly made root (with its key) and an intermediate certificate for a key the caller
/// holds: one kept in a PKCS#11 token, which never leaves it.
pub struct RootAndIntermediate {
    /// The self-signed root certificate: what clients trust.
    pub root_certificate: CertificateDer<'static>,
    /// The root's private key.
    pub root_key_pem: String,
    /// The issuing intermediate, signed by the root, for the caller's key.
    pub intermediate_certificate: CertificateDer<'static>,
}

impl RootAndIntermediate {
    /// Generates an ECDSA P-256 root (10 years) and signs an intermediate (5 years) for
    /// `intermediate_key`, both naming `root_crl_url` as their CRL distribution point.
    pub fn generate(
        now: OffsetDateTime,
        root_crl_url: Option<&str>,
        intermediate_key: &impl PublicKeyData,
    ) -> Result<Self, BootstrapError> {
        let not_before = now - BACKDATE;
        let root_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let root_params = root_params("latchkey root CA", now, root_crl_url, &root_key);
        let root_certificate = root_params.self_signed(&root_key)?;
        let root = Issuer::new(root_params, &root_key);

        let params = intermediate_params(
            "latchkey issuing CA",
            not_before,
            now + INTERMEDIATE_LIFETIME,
            root_crl_url,
            intermediate_key,
        );
        let intermediate_certificate = params.signed_by(intermediate_key, &root)?;

        Ok(Self {
            root_certificate: root_certificate.der().clone(),
            root_key_pem: root_key.serialize_pem(),
            intermediate_certificate: intermediate_certificate.der().clone(),
        })
    }
}

/// A root's parameters: a CA over one level of intermediates, ten years from `now`
/// (backdated), with its key identifier, naming its own CRL (a relying party checking every
/// certificate of the path, `openssl verify -crl_check_all -crl_download`, looks for one).
fn root_params(
    common_name: &str,
    now: OffsetDateTime,
    crl_url: Option<&str>,
    key: &impl PublicKeyData,
) -> CertificateParams {
    let mut params = ca_params(common_name, 1, now - BACKDATE, now + ROOT_LIFETIME);
    params.key_identifier_method =
        rcgen::KeyIdMethod::PreSpecified(super::signer::key_identifier(key.der_bytes()));
    params.crl_distribution_points = distribution_point(crl_url);
    params
}

/// A new root for a root rollover (`latchkey ca rotate --root`): its self-signed
/// certificate, its key (which the caller seals for the store) and its key identifier.
pub struct NewRoot {
    /// The self-signed certificate.
    pub certificate: CertificateDer<'static>,
    /// Its key.
    pub key: KeyPair,
    /// Its subject key identifier.
    pub key_id: Vec<u8>,
}

impl NewRoot {
    /// An ECDSA P-256 root named `common_name`, ten years from `now`, naming as its
    /// distribution point the URL `crl_url` gives for its key identifier.
    pub fn generate(
        common_name: &str,
        now: OffsetDateTime,
        crl_url: impl FnOnce(&[u8]) -> String,
    ) -> Result<Self, BootstrapError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let key_id = super::signer::key_identifier(key.der_bytes());
        let certificate = root_params(common_name, now, Some(&crl_url(&key_id)), &key)
            .self_signed(&key)?
            .der()
            .clone();
        Ok(Self {
            certificate,
            key,
            key_id,
        })
    }
}

/// An intermediate's parameters: a CA that signs end entities only (path length 0), with
/// its key identifiers, naming the root's CRL when there is one.
fn intermediate_params(
    common_name: &str,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    root_crl_url: Option<&str>,
    key: &impl PublicKeyData,
) -> CertificateParams {
    let mut params = ca_params(common_name, 0, not_before, not_after);
    params.use_authority_key_identifier_extension = true;
    params.crl_distribution_points = distribution_point(root_crl_url);
    params.key_identifier_method =
        rcgen::KeyIdMethod::PreSpecified(super::signer::key_identifier(key.der_bytes()));
    params
}

/// What a new intermediate is for: the name it gets and how long it may live.
#[derive(Debug, Clone)]
pub struct IntermediateOrder {
    /// Its common name: distinct for each intermediate, because relying parties such as
    /// OpenSSL (nginx, HAProxy) find a certificate's CRL by its issuer's name.
    pub common_name: String,
    /// When it is made.
    pub now: OffsetDateTime,
    /// Where the root's CRL is served (`<CRL URL>/v1/crl/root`), named as its distribution
    /// point.
    pub root_crl_url: Option<String>,
}

impl super::RootSigner {
    /// Signs an intermediate for `key` (made by the caller, in a file or a token): five
    /// years from now, never past the root's own end. Refuses when the root has less than a
    /// CRL validity left.
    pub fn sign_intermediate(
        &self,
        order: &IntermediateOrder,
        key: &impl PublicKeyData,
    ) -> Result<CertificateDer<'static>, BootstrapError> {
        let not_after = (order.now + INTERMEDIATE_LIFETIME).min(self.not_after());
        if not_after <= order.now + Duration::days(1) {
            return Err(BootstrapError::RootExpiring(self.not_after()));
        }
        let params = intermediate_params(
            &order.common_name,
            order.now - BACKDATE,
            not_after,
            order.root_crl_url.as_deref(),
            key,
        );
        Ok(params.signed_by(key, self.issuer())?.der().clone())
    }
}

impl super::RootSigner {
    /// A cross-certificate: the intermediate `other` (its subject, key and key identifier),
    /// certified by this root, which did not sign it: after a root rollover, the paths that
    /// let a party trusting only one root accept keys of the other root's intermediates.
    /// (Certifying the other root itself would put two CA certificates under a root, and
    /// every latchkey root allows one: OpenSSL and Go enforce that on the trust anchor.) An
    /// intermediate of path length 0, from `now` (backdated) until the first of `other` and
    /// this root ends, naming `crl_url` (this root's CRL) as its distribution point.
    pub fn sign_cross(
        &self,
        other: &CertificateDer<'_>,
        now: OffsetDateTime,
        crl_url: Option<&str>,
    ) -> Result<CertificateDer<'static>, BootstrapError> {
        let bad = |why: String| BootstrapError::Signer(SignerError::Issuer(why));
        let (_, parsed) =
            x509_parser::parse_x509_certificate(other).map_err(|e| bad(e.to_string()))?;
        let attribute = |value: Option<&x509_parser::x509::AttributeTypeAndValue<'_>>| {
            value
                .and_then(|v| v.as_str().ok())
                .map(str::to_owned)
                .ok_or_else(|| bad("an intermediate without a CN and an O".into()))
        };
        let subject = parsed.subject();
        let common_name = attribute(subject.iter_common_name().next())?;
        let organization = attribute(subject.iter_organization().next())?;
        let key_identifier = crate::profile::subject_key_identifier(&parsed)
            .ok_or_else(|| bad("an intermediate without a subject key identifier".into()))?;
        let not_after = parsed
            .validity()
            .not_after
            .to_datetime()
            .min(self.not_after());
        let key = rcgen::SubjectPublicKeyInfo::from_der(parsed.public_key().raw)?;
        // An intermediate's parameters, with the intermediate's own name (CN, then O, as
        // every latchkey CA writes it) and key identifier as it was issued: paths and CRLs
        // are found by them.
        let mut params =
            intermediate_params(&common_name, now - BACKDATE, not_after, crl_url, &key);
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params
            .distinguished_name
            .push(DnType::OrganizationName, organization);
        params.key_identifier_method = rcgen::KeyIdMethod::PreSpecified(key_identifier);
        Ok(params.signed_by(&key, self.issuer())?.der().clone())
    }
}

/// The distribution point naming `url`, where a CRL covering the certificate is served.
pub(super) fn distribution_point(url: Option<&str>) -> Vec<rcgen::CrlDistributionPoint> {
    url.map(|url| rcgen::CrlDistributionPoint {
        uris: vec![url.to_owned()],
    })
    .into_iter()
    .collect()
}

fn ca_params(
    common_name: &str,
    path_len: u8,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params
        .distinguished_name
        .push(DnType::OrganizationName, "latchkey");
    params.serial_number = Some(SerialNumber::from(Serial::generate().as_bytes().to_vec()));
    params.not_before = not_before;
    params.not_after = not_after;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(path_len));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
}

/// A certificate the CA issues for its own use, with a key it makes for it.
///
/// Only the authority issues these (`Authority::issue_service_certificate`), so that each one
/// is recorded before any file holds it; this type says what to sign, never whether to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceCertificate {
    /// The HTTPS listener's certificate, for these DNS names and IP addresses.
    Server {
        /// The names, loopback ones included.
        names: Vec<String>,
    },
    /// An administrator's client certificate.
    Admin {
        /// The administrator.
        name: OwnerName,
    },
}

impl ServiceCertificate {
    /// Makes a key pair and signs a certificate for it, valid from `now` (backdated) for a
    /// year or until the issuer ends. Returns the certificate and the key's PKCS#8 PEM.
    pub fn issue(
        &self,
        signer: &Signer,
        now: OffsetDateTime,
    ) -> Result<(IssuedCertificate, String), BootstrapError> {
        let not_before = now - BACKDATE;
        let not_after = (now + SERVICE_CERTIFICATE_LIFETIME).min(signer.not_after());
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let public_key = PublicKey::from_checked_spki(&key.subject_public_key_info())?;
        let serial = Serial::generate();
        let certificate = match self {
            Self::Server { names } => {
                signer.sign_server_certificate(names, serial, not_before, not_after, &public_key)
            }
            Self::Admin { name } => {
                signer.sign_admin_certificate(name, serial, not_before, not_after, &public_key)
            }
        }?;
        Ok((certificate, key.serialize_pem()))
    }
}
