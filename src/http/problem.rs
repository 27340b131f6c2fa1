//! The one table from errors to HTTP status codes. Bodies are RFC 9457 problem documents
//! with a stable `code`; internal errors get a generic body and the detail goes to the log.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::api::Problem;
use crate::authority::csr::CsrError;
use crate::authority::{AuthorityError, RenewalRefusal};

/// An error on its way to the client.
#[derive(Debug)]
pub enum ApiError {
    /// Refused or failed by the authority.
    Authority(AuthorityError),
    /// The request could not be read: `(status, code, detail)`.
    Request(StatusCode, &'static str, String),
}

impl From<AuthorityError> for ApiError {
    fn from(e: AuthorityError) -> Self {
        Self::Authority(e)
    }
}

fn authority_status(e: &AuthorityError) -> (StatusCode, &'static str) {
    use AuthorityError as E;
    match e {
        E::Unauthenticated => (StatusCode::UNAUTHORIZED, "unauthenticated"),
        E::InvalidCredentials => (StatusCode::UNAUTHORIZED, "invalid_credentials"),
        E::InvalidToken => (StatusCode::UNAUTHORIZED, "invalid_token"),
        E::InvalidCertificate(_) => (StatusCode::UNAUTHORIZED, "invalid_certificate"),
        E::AdminRequired => (StatusCode::FORBIDDEN, "admin_required"),
        E::MetricsForbidden => (StatusCode::FORBIDDEN, "metrics_forbidden"),
        E::Disabled(_) => (StatusCode::FORBIDDEN, "disabled"),
        E::ScopeNotGranted(_) => (StatusCode::FORBIDDEN, "scope_not_granted"),
        E::TtlOutOfRange(_) => (StatusCode::UNPROCESSABLE_ENTITY, "ttl_out_of_range"),
        E::Csr(csr) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            match csr {
                CsrError::Malformed(_) => "csr_malformed",
                CsrError::SignatureInvalid => "csr_signature_invalid",
                CsrError::WeakSignature(_) => "weak_signature",
                CsrError::UnsupportedKey(_) => "unsupported_key",
                CsrError::WeakKey(_) | CsrError::WeakExponent(_) => "weak_key",
                CsrError::ExtensionForbidden(_) => "csr_extension_forbidden",
            },
        ),
        E::PublicKeyInUse => (StatusCode::CONFLICT, "public_key_in_use"),
        E::NotKeyOwner => (StatusCode::FORBIDDEN, "not_key_owner"),
        E::KeyNotActive => (StatusCode::FORBIDDEN, "key_not_active"),
        E::RenewalRefused(why) => (
            StatusCode::FORBIDDEN,
            match why {
                RenewalRefusal::CertificateNotForKey => "certificate_not_for_key",
                RenewalRefusal::KeyRevoked => "key_revoked",
                RenewalRefusal::KeyExpired => "key_expired",
                RenewalRefusal::CertificateRevoked => "certificate_revoked",
                RenewalRefusal::CertificateExpired => "certificate_expired",
            },
        ),
        E::Invalid {
            code: "invalid_request",
            ..
        } => (StatusCode::BAD_REQUEST, "invalid_request"),
        E::Invalid { code, .. } => (StatusCode::UNPROCESSABLE_ENTITY, code),
        E::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
        E::AlreadyExists(_) => (StatusCode::CONFLICT, "already_exists"),
        E::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable"),
        E::Busy => (StatusCode::SERVICE_UNAVAILABLE, "busy"),
        E::TooManyAttempts { .. } => (StatusCode::TOO_MANY_REQUESTS, "too_many_attempts"),
        E::RenewalTooSoon { .. } => (StatusCode::TOO_MANY_REQUESTS, "renewal_too_soon"),
        E::NotReady(_) => (StatusCode::SERVICE_UNAVAILABLE, "not_ready"),
        E::CrlExpired { .. } => (StatusCode::SERVICE_UNAVAILABLE, "crl_expired"),
        E::Internal(_) | E::Store(_) | E::Signer(_) => {
            (StatusCode::INTERNAL_SERVER_ERROR, "internal")
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, detail) = match &self {
            ApiError::Authority(e) => {
                let (status, code) = authority_status(e);
                let detail = match e {
                    AuthorityError::Internal(_)
                    | AuthorityError::Store(_)
                    | AuthorityError::Signer(_)
                    | AuthorityError::Unavailable(_) => {
                        tracing::error!(error = %e, source = ?std::error::Error::source(e), "request failed");
                        match e {
                            AuthorityError::Unavailable(_) => {
                                "the CA's store is unavailable; nothing was changed, try again"
                                    .to_owned()
                            }
                            _ => "internal error; the CA's log has the details".to_owned(),
                        }
                    }
                    _ => e.to_string(),
                };
                (status, code, detail)
            }
            ApiError::Request(status, code, detail) => (*status, *code, detail.clone()),
        };
        let problem = Problem::new(status, code, detail);
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let ApiError::Authority(
            AuthorityError::TooManyAttempts { retry_after }
            | AuthorityError::RenewalTooSoon { retry_after, .. },
        ) = &self
            && let Ok(value) = HeaderValue::from_str(&retry_after.as_secs().max(1).to_string())
        {
            headers.insert(header::RETRY_AFTER, value);
        }
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"latchkey\", charset=\"UTF-8\""),
            );
        }
        response
    }
}
