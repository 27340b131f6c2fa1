use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyIdMethod, KeyUsagePurpose, PublicKeyData, SanType, SerialNumber, SigningKey,
};
use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;

use super::IssuingKey;
use super::draft_key::DraftKey;
use crate::model::{KeyId, OwnerName, ScopeSet, Serial, TenantName};
use crate::profile::{self, SpiffeId};

/// What can go wrong while signing. None of these is the requester's fault: the authority
/// decides what is signed, so a signer error is an internal error.
#[derive(Debug, thiserror::Error)]
pub enum SignerError {
    /// The issuing certificate or key could not be loaded.
    #[error("cannot load the issuing CA: {0}")]
    Issuer(String),
    /// The order asks for a validity the issuer cannot give.
    #[error("validity {not_before} .. {not_after} is empty or outlives the issuer")]
    Validity {
        /// Requested start.
        not_before: OffsetDateTime,
        /// Requested end.
        not_after: OffsetDateTime,
    },
    /// rcgen refused to build or sign the certificate.
    #[error("signing failed: {0}")]
    Signing(#[from] rcgen::Error),
}

/// A public key taken from a verified CSR (or from a certificate this CA issued): the only
/// thing of a request that ever reaches a certificate.
#[derive(Debug, Clone)]
pub struct PublicKey {
    spki: rcgen::SubjectPublicKeyInfo,
    spki_der: Vec<u8>,
}

impl PublicKey {
    /// Wraps a DER SubjectPublicKeyInfo whose key the caller has already checked.
    pub(crate) fn from_checked_spki(spki_der: &[u8]) -> Result<Self, rcgen::Error> {
        Ok(Self {
            spki: rcgen::SubjectPublicKeyInfo::from_der(spki_der)?,
            spki_der: spki_der.to_vec(),
        })
    }

    /// The DER SubjectPublicKeyInfo.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// SHA-256 of the SubjectPublicKeyInfo, lowercase hex: the key's fingerprint.
    pub fn fingerprint(&self) -> String {
        hex::encode(ring::digest::digest(&ring::digest::SHA256, &self.spki_der))
    }
}

/// The subject key identifier of a public key: RFC 7093 method 1, the leftmost 160 bits of
/// the SHA-256 of the subjectPublicKey bits (a method linters recognise).
pub fn key_identifier(subject_public_key: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, subject_public_key).as_ref()[..20].to_vec()
}

/// What the store records of a CA certificate (a root or an intermediate) among its issuers.
#[derive(Debug, Clone)]
pub struct IssuerFacts {
    /// SHA-256 of the DER certificate, lowercase hex.
    pub fingerprint: String,
    /// Its subject, as printed (RFC 4514 order).
    pub subject: String,
    /// The end of its validity.
    pub not_after: OffsetDateTime,
}

impl IssuerFacts {
    /// The facts of the DER certificate `der`, or the parser's complaint.
    pub fn of(der: &[u8]) -> Result<Self, String> {
        let (_, parsed) = x509_parser::parse_x509_certificate(der).map_err(|e| e.to_string())?;
        Ok(Self {
            fingerprint: hex::encode(ring::digest::digest(&ring::digest::SHA256, der)),
            subject: parsed.subject().to_string(),
            not_after: parsed.validity().not_after.to_datetime(),
        })
    }
}

/// An approved request for a key certificate. Only the authority makes these; the signer
/// consumes one per certificate.
#[derive(Debug)]
pub struct KeyOrder {
    /// A fresh random serial (the store rejects a repeated one).
    pub serial: Serial,
    /// The key's tenant: `O=` and the SPIFFE path.
    pub tenant: TenantName,
    /// The key's owner: `CN=`.
    pub owner: OwnerName,
    /// The key's id: the SPIFFE path.
    pub key_id: KeyId,
    /// The scopes: one subject `OU` each.
    pub scopes: ScopeSet,
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity, already capped by the key's and the issuer's.
    pub not_after: OffsetDateTime,
    /// The subject public key.
    pub public_key: PublicKey,
}

/// A certificate that was signed: the proof that signing ran. It still has to be recorded
/// before anybody sees it.
#[derive(Debug, Clone)]
pub struct IssuedCertificate {
    /// The serial in the certificate.
    pub serial: Serial,
    /// The DER certificate.
    pub der: CertificateDer<'static>,
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
    /// The fingerprint of its public key.
    pub public_key_fingerprint: String,
}

impl IssuedCertificate {
    /// Reads back a certificate this CA issued earlier (to record one found on disk).
    pub fn from_der(der: CertificateDer<'static>) -> Result<Self, SignerError> {
        let bad = |e: String| SignerError::Issuer(format!("unreadable certificate: {e}"));
        let (_, parsed) =
            x509_parser::parse_x509_certificate(&der).map_err(|e| bad(e.to_string()))?;
        let serial = Serial::from_slice(parsed.raw_serial()).map_err(|e| bad(e.to_string()))?;
        let public_key = PublicKey::from_checked_spki(parsed.public_key().raw)?;
        let not_before = parsed.validity().not_before.to_datetime();
        let not_after = parsed.validity().not_after.to_datetime();
        Ok(Self {
            serial,
            public_key_fingerprint: public_key.fingerprint(),
            not_before,
            not_after,
            der,
        })
    }

    /// The certificate in PEM.
    pub fn pem(&self) -> String {
        crate::pem::encode("CERTIFICATE", &self.der)
    }
}

/// The issuing intermediate CA and what every certificate it signs says about it.
pub struct Signer {
    pub(super) issuer: Issuer<'static, IssuingKey>,
    /// The same issuer with a key that signs nothing, for key certificates' drafts.
    draft_issuer: Issuer<'static, DraftKey>,
    /// The issuer's subject key identifier: the authority key identifier of its CRLs.
    pub(super) key_identifier: Vec<u8>,
    certificate: CertificateDer<'static>,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    trust_domain: String,
    crl_url: String,
    /// What the CRLs it signs share (see `crl_der`).
    pub(super) crl_template: super::crl_der::CrlTemplate,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("trust_domain", &self.trust_domain)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// Loads the issuing CA from its certificate and PKCS#8 private key.
    pub fn new(
        certificate: CertificateDer<'static>,
        key_pem: &str,
        trust_domain: &str,
        crl_url: &str,
    ) -> Result<Self, SignerError> {
        let key = IssuingKey::from_pem(key_pem).map_err(|e| SignerError::Issuer(e.to_string()))?;
        Self::with_key(certificate, key, trust_domain, crl_url)
    }

    /// The issuing CA from its certificate and its key, wherever that is kept. Refuses a key
    /// that is not the certificate's.
    pub fn with_key(
        certificate: CertificateDer<'static>,
        key: IssuingKey,
        trust_domain: &str,
        crl_url: &str,
    ) -> Result<Self, SignerError> {
        let (_, parsed) = x509_parser::parse_x509_certificate(&certificate)
            .map_err(|e| SignerError::Issuer(e.to_string()))?;
        if parsed.public_key().raw != key.subject_public_key_info().as_slice() {
            return Err(SignerError::Issuer(
                "the issuing key does not match the issuing certificate".into(),
            ));
        }
        let not_before = parsed.validity().not_before.to_datetime();
        let not_after = parsed.validity().not_after.to_datetime();
        let key_identifier = crate::profile::subject_key_identifier(&parsed).ok_or_else(|| {
            SignerError::Issuer("the issuing certificate has no subject key identifier".into())
        })?;
        let draft_issuer = Issuer::from_ca_cert_der(&certificate, DraftKey::of(&key))
            .map_err(|e| SignerError::Issuer(e.to_string()))?;
        let issuer = Issuer::from_ca_cert_der(&certificate, key)
            .map_err(|e| SignerError::Issuer(e.to_string()))?;
        let crl_template = super::crl::crl_template(&issuer, &key_identifier)?;
        Ok(Self {
            crl_template,
            issuer,
            draft_issuer,
            key_identifier,
            certificate,
            not_before,
            not_after,
            trust_domain: trust_domain.to_owned(),
            crl_url: crl_url.to_owned(),
        })
    }

    /// The issuing CA's certificate.
    pub fn certificate(&self) -> &CertificateDer<'static> {
        &self.certificate
    }

    /// The end of the issuing CA's validity: no certificate it signs outlives it.
    pub fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }

    /// The SPIFFE trust domain written into every certificate.
    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    /// Signs a key certificate with the DESIGN.md profile: `CN=<owner>, O=<tenant>`,
    /// `UID=<key id>` and one `OU=<scope>` per scope, sorted.
    pub fn sign_key_certificate(&self, order: KeyOrder) -> Result<IssuedCertificate, SignerError> {
        let id = SpiffeId::Key {
            tenant: order.tenant.clone(),
            key_id: order.key_id.clone(),
        };
        let params = self.client_params(
            order.serial,
            order.owner.as_str(),
            order.tenant.as_str(),
            &id,
            order.not_before,
            order.not_after,
        )?;
        // rcgen keeps one value per attribute type and knows no `UID`: it writes a draft
        // with `CN, O`, the subject with the key id and the OUs is put in its place, and only
        // then is the certificate signed (`draft_key.rs`).
        let mut issued = sign_with(&self.draft_issuer, params, order.serial, &order.public_key)?;
        let written = profile::subject_der(
            order.owner.as_str(),
            order.tenant.as_str(),
            None,
            &ScopeSet::default(),
        );
        let subject = profile::subject_der(
            order.owner.as_str(),
            order.tenant.as_str(),
            Some(order.key_id.as_str()),
            &order.scopes,
        );
        let der = profile::replace_subject(&issued.der, &written, &subject, |tbs| {
            rcgen::SigningKey::sign(self.issuer.key(), tbs)
        })?
        .ok_or_else(|| {
            SignerError::Signing(rcgen::Error::X509(
                "the certificate's subject is not where it was written".into(),
            ))
        })?;
        issued.der = CertificateDer::from(der);
        Ok(issued)
    }

    /// Signs an administrator certificate: `CN=<name>, O=latchkey admin` and the admin
    /// SPIFFE URI, no scopes.
    pub fn sign_admin_certificate(
        &self,
        name: &OwnerName,
        serial: Serial,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
        public_key: &PublicKey,
    ) -> Result<IssuedCertificate, SignerError> {
        let id = SpiffeId::Admin { name: name.clone() };
        let params = self.client_params(
            serial,
            name.as_str(),
            profile::ADMIN_ORGANIZATION,
            &id,
            not_before,
            not_after,
        )?;
        sign_with(&self.issuer, params, serial, public_key)
    }

    /// Signs the TLS server certificate of the CA's own listener.
    pub fn sign_server_certificate(
        &self,
        hostnames: &[String],
        serial: Serial,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
        public_key: &PublicKey,
    ) -> Result<IssuedCertificate, SignerError> {
        let mut params = CertificateParams::new(hostnames.to_vec())?;
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(
            DnType::CommonName,
            hostnames.first().map_or("latchkey", |h| h.as_str()),
        );
        params
            .distinguished_name
            .push(DnType::OrganizationName, "latchkey");
        self.common(&mut params, serial, not_before, not_after)?;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        sign_with(&self.issuer, params, serial, public_key)
    }

    fn client_params(
        &self,
        serial: Serial,
        common_name: &str,
        organization: &str,
        id: &SpiffeId,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> Result<CertificateParams, SignerError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params
            .distinguished_name
            .push(DnType::OrganizationName, organization);
        params.subject_alt_names = vec![SanType::URI(id.to_uri(&self.trust_domain).try_into()?)];
        self.common(&mut params, serial, not_before, not_after)?;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.crl_distribution_points = super::bootstrap::distribution_point(Some(&self.crl_url));
        Ok(params)
    }

    /// What every end-entity certificate shares: serial, validity inside the issuer's,
    /// CA:FALSE (critical), digitalSignature (critical), subject and authority key identifiers.
    fn common(
        &self,
        params: &mut CertificateParams,
        serial: Serial,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> Result<(), SignerError> {
        if not_before >= not_after || not_before < self.not_before || not_after > self.not_after {
            return Err(SignerError::Validity {
                not_before,
                not_after,
            });
        }
        params.serial_number = Some(SerialNumber::from(serial.as_bytes().to_vec()));
        params.not_before = not_before;
        params.not_after = not_after;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        Ok(())
    }
}

/// Signs `params` for `public_key` as `issuer`.
fn sign_with(
    issuer: &Issuer<'static, impl SigningKey>,
    mut params: CertificateParams,
    serial: Serial,
    public_key: &PublicKey,
) -> Result<IssuedCertificate, SignerError> {
    params.key_identifier_method =
        KeyIdMethod::PreSpecified(key_identifier(public_key.spki.der_bytes()));
    let cert = params.signed_by(&public_key.spki, issuer)?;
    Ok(IssuedCertificate {
        serial,
        der: cert.der().clone(),
        not_before: params.not_before,
        not_after: params.not_after,
        public_key_fingerprint: public_key.fingerprint(),
    })
}
