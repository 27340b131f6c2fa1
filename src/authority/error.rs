use crate::api::Code;
use crate::model::Scope;
use crate::store::StoreError;

use super::csr::CsrError;

/// Why the authority refused or failed a request. Every variant names what went wrong;
/// only the HTTP edge (`http::problem`) knows which status code each one becomes.
#[derive(Debug, thiserror::Error)]
pub enum AuthorityError {
    /// No usable credential was presented.
    #[error("authentication required")]
    Unauthenticated,
    /// Wrong password, unknown user or unknown tenant: deliberately indistinguishable.
    #[error("invalid user, tenant or password")]
    InvalidCredentials,
    /// An enrollment token that does not exist, was used, revoked or has expired.
    #[error("invalid, used or expired enrollment token")]
    InvalidToken,
    /// A client certificate that is not a current latchkey certificate of this CA.
    #[error("client certificate not accepted: {0}")]
    InvalidCertificate(String),
    /// The operation needs an administrator certificate.
    #[error("this operation needs an administrator certificate")]
    AdminRequired,
    /// `/metrics` needs the administrator certificate or an address allowed to scrape.
    #[error(
        "/metrics is open only to the administrator certificate and to the addresses given to serve --metrics-allow"
    )]
    MetricsForbidden,
    /// The user or tenant is disabled.
    #[error("{0} is disabled")]
    Disabled(String),
    /// The requested scopes are not all granted.
    #[error("scopes not granted: {}", .0.iter().map(Scope::as_str).collect::<Vec<_>>().join(", "))]
    ScopeNotGranted(Vec<Scope>),
    /// The requested key lifetime is outside what the tenant allows.
    #[error("{0}")]
    TtlOutOfRange(String),
    /// The CSR was refused.
    #[error(transparent)]
    Csr(#[from] CsrError),
    /// The key belongs to someone else in the caller's tenant.
    #[error("only the key's owner or an administrator may do that")]
    NotKeyOwner,
    /// A renewal was refused: the certificate presented cannot renew this key.
    #[error("{0}")]
    RenewalRefused(RenewalRefusal),
    /// The key was revoked or has expired; its certificates cannot be renewed.
    #[error("the key is revoked or expired; make a new key")]
    KeyNotActive,
    /// The public key is already certified for another key, or is the CA's own.
    #[error("this public key is already in use by another key; make a new key pair")]
    PublicKeyInUse,
    /// A field of the request is invalid.
    #[error("{detail}")]
    Invalid {
        /// The stable code, such as [`Code::InvalidScope`] or [`Code::WeakPassword`].
        code: Code,
        /// What is wrong.
        detail: String,
    },
    /// The object does not exist, or the caller may not know that it does.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// An object with that name exists already.
    #[error("{0} already exists")]
    AlreadyExists(&'static str),
    /// The CA cannot serve correctly right now (readiness).
    #[error("not ready: {0}")]
    NotReady(String),
    /// Too many wrong passwords in a row for this user from this source.
    #[error("too many wrong passwords; try again in {} s", retry_after.as_secs().max(1))]
    TooManyAttempts {
        /// How long until the next attempt is allowed.
        retry_after: std::time::Duration,
    },
    /// The key got a certificate less than the renewal interval ago; nothing was done.
    #[error("this key was renewed less than {} s ago; try again in {} s", interval.as_secs(), retry_after.as_secs().max(1))]
    RenewalTooSoon {
        /// How long until a renewal of this key is allowed.
        retry_after: std::time::Duration,
        /// The minimum interval between two certificates of a key.
        interval: std::time::Duration,
    },
    /// Too many password checks are waiting; nothing was done.
    #[error("the CA is busy; try again shortly")]
    Busy,
    /// The store cannot be reached; nothing was done.
    #[error("the store is unavailable")]
    Unavailable(#[source] StoreError),
    /// The store answered with an error no request can cause: bad SQL, a corrupt row. A bug
    /// or damaged data, not an outage; details go to the log only.
    #[error("store failure: {0}")]
    Store(#[source] StoreError),
    /// The signer failed on an order the authority approved: a bug or a broken issuer.
    #[error("signing failed: {0}")]
    Signer(#[from] crate::ca::SignerError),
    /// A bug or a broken invariant; details go to the log only.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Why a renewal was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RenewalRefusal {
    /// The certificate belongs to another key.
    #[error("the certificate presented belongs to another key")]
    CertificateNotForKey,
    /// The key is revoked.
    #[error("the key is revoked; make a new key")]
    KeyRevoked,
    /// The key is past its expiry; keys cannot be extended.
    #[error("the key has expired; keys cannot be extended, make a new key")]
    KeyExpired,
    /// The certificate presented is revoked.
    #[error("the certificate presented is revoked")]
    CertificateRevoked,
    /// The certificate presented has expired.
    #[error("the certificate presented has expired")]
    CertificateExpired,
}

impl AuthorityError {
    pub(crate) fn invalid(code: Code, detail: impl Into<String>) -> Self {
        Self::Invalid {
            code,
            detail: detail.into(),
        }
    }

    /// The stable code a client sees for this error. The status it travels with is the
    /// HTTP edge's business (`http::problem::status`), decided by the code alone.
    pub fn code(&self) -> Code {
        use AuthorityError as E;
        match self {
            E::Unauthenticated => Code::Unauthenticated,
            E::InvalidCredentials => Code::InvalidCredentials,
            E::InvalidToken => Code::InvalidToken,
            E::InvalidCertificate(_) => Code::InvalidCertificate,
            E::AdminRequired => Code::AdminRequired,
            E::MetricsForbidden => Code::MetricsForbidden,
            E::Disabled(_) => Code::Disabled,
            E::ScopeNotGranted(_) => Code::ScopeNotGranted,
            E::TtlOutOfRange(_) => Code::TtlOutOfRange,
            E::Csr(csr) => match csr {
                CsrError::Malformed(_) => Code::CsrMalformed,
                CsrError::SignatureInvalid => Code::CsrSignatureInvalid,
                CsrError::WeakSignature(_) => Code::WeakSignature,
                CsrError::UnsupportedKey(_) => Code::UnsupportedKey,
                CsrError::WeakKey(_) | CsrError::WeakExponent(_) => Code::WeakKey,
                CsrError::ExtensionForbidden(_) => Code::CsrExtensionForbidden,
            },
            E::PublicKeyInUse => Code::PublicKeyInUse,
            E::NotKeyOwner => Code::NotKeyOwner,
            E::KeyNotActive => Code::KeyNotActive,
            E::RenewalRefused(why) => match why {
                RenewalRefusal::CertificateNotForKey => Code::CertificateNotForKey,
                RenewalRefusal::KeyRevoked => Code::KeyRevoked,
                RenewalRefusal::KeyExpired => Code::KeyExpired,
                RenewalRefusal::CertificateRevoked => Code::CertificateRevoked,
                RenewalRefusal::CertificateExpired => Code::CertificateExpired,
            },
            E::Invalid { code, .. } => *code,
            E::NotFound(_) => Code::NotFound,
            E::AlreadyExists(_) => Code::AlreadyExists,
            E::Unavailable(_) => Code::StoreUnavailable,
            E::Busy => Code::Busy,
            E::TooManyAttempts { .. } => Code::TooManyAttempts,
            E::RenewalTooSoon { .. } => Code::RenewalTooSoon,
            E::NotReady(_) => Code::NotReady,
            E::Internal(_) | E::Store(_) | E::Signer(_) => Code::Internal,
        }
    }
}

impl From<crate::model::NameError> for AuthorityError {
    fn from(err: crate::model::NameError) -> Self {
        Self::invalid(Code::InvalidName, err.to_string())
    }
}

impl From<crate::issuers::IssuerError> for AuthorityError {
    fn from(err: crate::issuers::IssuerError) -> Self {
        use crate::issuers::IssuerError as E;
        match err {
            E::Store(e) => e.into(),
            // Not this CA's to fix by itself: the operator must bring the root key, or sign
            // where it is.
            E::NoRootKey => Self::NotReady(err.to_string()),
            E::RotatedElsewhere => Self::Busy,
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<StoreError> for AuthorityError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::AlreadyExists(what) => Self::AlreadyExists(what),
            StoreError::TokenSpent => Self::InvalidToken,
            StoreError::PublicKeyInUse => Self::PublicKeyInUse,
            StoreError::KeyNotActive => Self::KeyNotActive,
            // The authority turns this into `RenewalTooSoon`, knowing the interval; reaching
            // here means a caller forgot to.
            StoreError::TooSoon { .. } => Self::Store(err),
            StoreError::Disabled => Self::Disabled("the tenant or the user".into()),
            StoreError::Unavailable(_) | StoreError::BatchFailed(_) => Self::Unavailable(err),
            StoreError::Internal(_) | StoreError::Corrupt { .. } => Self::Store(err),
            // A serial or key id drawn again after its retries ran out: with 80 and 52 random
            // bits to each millisecond that is a store misbehaving, not a request to refuse;
            // nothing was issued, and the client may try again.
            StoreError::Collision => {
                tracing::error!("unique values collided after every retry");
                Self::Busy
            }
            StoreError::Migration(_)
            | StoreError::NotEmpty
            | StoreError::CopyMismatch(_)
            | StoreError::Unsupported(_) => Self::Store(err),
        }
    }
}
