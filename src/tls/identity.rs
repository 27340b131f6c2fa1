use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{GeneralName, ParsedExtension};

use crate::model::profile::{self, SpiffeId};
use crate::model::{ScopeSet, Serial};

/// Why a certificate does not carry a latchkey identity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// Not a parseable X.509 certificate.
    #[error("not a valid certificate")]
    Malformed,
    /// The serial is not a 16-byte latchkey serial.
    #[error("serial is not a latchkey serial")]
    Serial,
    /// Not exactly one URI SAN in this trust domain with a latchkey path.
    #[error("certificate must carry exactly one latchkey URI SAN")]
    SpiffeId,
    /// The subject's CN and O do not match the SPIFFE id.
    #[error("subject does not match the SPIFFE id")]
    SubjectMismatch,
    /// The extended key usage lacks clientAuth.
    #[error("certificate is not for client authentication")]
    ExtendedKeyUsage,
    /// A key certificate whose scopes extension is missing or malformed.
    #[error("missing or malformed scopes extension")]
    Scopes,
}

/// What a latchkey client certificate says about its holder, read from the certificate alone.
/// The certificate's chain and revocation status must be checked separately.
#[derive(Debug, Clone)]
pub struct PeerIdentity {
    /// The SPIFFE id: a key (tenant and key id) or an administrator.
    pub id: SpiffeId,
    /// The subject's CN: the key's owner, or the administrator's name.
    pub owner: String,
    /// The scopes of a key certificate; empty for an administrator.
    pub scopes: ScopeSet,
    /// The serial.
    pub serial: Serial,
    /// End of validity.
    pub not_after: OffsetDateTime,
}

impl PeerIdentity {
    /// Reads the identity from a DER certificate issued in `trust_domain`.
    pub fn from_der(der: &[u8], trust_domain: &str) -> Result<Self, IdentityError> {
        let (rest, cert) =
            x509_parser::parse_x509_certificate(der).map_err(|_| IdentityError::Malformed)?;
        if !rest.is_empty() {
            return Err(IdentityError::Malformed);
        }
        Self::from_certificate(&cert, trust_domain)
    }

    /// Reads the identity from a parsed certificate.
    pub fn from_certificate(
        cert: &X509Certificate<'_>,
        trust_domain: &str,
    ) -> Result<Self, IdentityError> {
        let serial = Serial::from_slice(cert.raw_serial()).map_err(|_| IdentityError::Serial)?;
        let mut uris = Vec::new();
        let mut scopes = None;
        let mut client_auth = false;
        for ext in cert.extensions() {
            match ext.parsed_extension() {
                ParsedExtension::ExtendedKeyUsage(eku) => client_auth = eku.client_auth,
                ParsedExtension::SubjectAlternativeName(san) => {
                    for name in &san.general_names {
                        if let GeneralName::URI(uri) = name {
                            uris.push(*uri);
                        }
                    }
                }
                _ if ext.oid.as_bytes() == profile::SCOPES_OID_DER => {
                    if scopes.is_some() {
                        return Err(IdentityError::Scopes);
                    }
                    scopes = Some(profile::decode_scopes(ext.value).ok_or(IdentityError::Scopes)?);
                }
                _ => {}
            }
        }
        if !client_auth {
            return Err(IdentityError::ExtendedKeyUsage);
        }
        let [uri] = uris.as_slice() else {
            return Err(IdentityError::SpiffeId);
        };
        let id = SpiffeId::parse(uri, trust_domain).ok_or(IdentityError::SpiffeId)?;

        fn single<'a>(
            mut it: impl Iterator<Item = &'a x509_parser::x509::AttributeTypeAndValue<'a>>,
        ) -> Option<String> {
            let value = it.next()?.as_str().ok()?.to_owned();
            it.next().is_none().then_some(value)
        }
        let subject = cert.subject();
        let cn = single(subject.iter_common_name()).ok_or(IdentityError::SubjectMismatch)?;
        let o = single(subject.iter_organization()).ok_or(IdentityError::SubjectMismatch)?;
        let scopes = match &id {
            SpiffeId::Key { tenant, .. } => {
                if o != tenant.as_str() || cn.parse::<crate::model::OwnerName>().is_err() {
                    return Err(IdentityError::SubjectMismatch);
                }
                scopes.ok_or(IdentityError::Scopes)?
            }
            SpiffeId::Admin { name } => {
                if o != profile::ADMIN_ORGANIZATION || cn != name.as_str() || scopes.is_some() {
                    return Err(IdentityError::SubjectMismatch);
                }
                ScopeSet::default()
            }
        };
        Ok(Self {
            id,
            owner: cn,
            scopes,
            serial,
            not_after: cert.validity().not_after.to_datetime(),
        })
    }
}

/// The caller behind a verified latchkey key certificate: who, in which tenant, with which
/// scopes, until when. Read once per connection.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Identity {
    /// The key's tenant.
    pub tenant: crate::model::TenantName,
    /// The key's owner.
    pub owner: crate::model::OwnerName,
    /// The key's id.
    pub key_id: crate::model::KeyId,
    /// The scopes the key carries.
    pub scopes: ScopeSet,
    /// The certificate's serial.
    pub serial: Serial,
    /// The certificate's end.
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
}

impl Identity {
    /// Reads the identity of a key certificate (not an administrator's) issued in
    /// `trust_domain`. The certificate's chain and revocation must be checked separately
    /// (the latchkey verifier does both).
    pub fn from_der(der: &[u8], trust_domain: &str) -> Result<Self, IdentityError> {
        let peer = PeerIdentity::from_der(der, trust_domain)?;
        let SpiffeId::Key { tenant, key_id } = peer.id else {
            return Err(IdentityError::SpiffeId);
        };
        Ok(Self {
            tenant,
            owner: peer
                .owner
                .parse()
                .map_err(|_| IdentityError::SubjectMismatch)?,
            key_id,
            scopes: peer.scopes,
            serial: peer.serial,
            not_after: peer.not_after,
        })
    }

    /// True when the key carries `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s.as_str() == scope)
    }
}
