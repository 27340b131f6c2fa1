//! The JSON wire format of the HTTP API: what the server sends and the client reads.
//! Field names are part of the API and stay stable.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::model::{
    OwnerName, RevocationReason, ScopeSet, Span, TenantName, UserRef, WebhookEvents,
};

/// A value that must never reach a log: its `Debug` says only that it is redacted, and on
/// the wire it is the bare value (`serde(transparent)`). Reading it takes [`Secret::expose`],
/// a word that is easy to find in review.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    /// Wraps a secret.
    pub fn new(value: T) -> Self {
        Self(value)
    }

    /// The secret itself.
    pub fn expose(&self) -> &T {
        &self.0
    }

    /// The secret itself, unwrapped.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> From<T> for Secret<T> {
    fn from(value: T) -> Self {
        Self(value)
    }
}

impl From<&str> for Secret<String> {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl<T> std::fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Where a key stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum KeyStatus {
    /// Neither revoked nor past its expiry.
    Active,
    /// Past its expiry; keys cannot be extended.
    Expired,
    /// Revoked.
    Revoked,
}

impl KeyStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
        }
    }
}

/// A string that is not a [`KeyStatus`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("status {0:?} is not one of active, expired, revoked")]
#[non_exhaustive]
pub struct UnknownKeyStatus(pub String);

impl std::str::FromStr for KeyStatus {
    type Err = UnknownKeyStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Self::Active, Self::Expired, Self::Revoked]
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| UnknownKeyStatus(s.to_owned()))
    }
}

/// Where an enrollment token stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TokenStatus {
    /// Usable.
    Unused,
    /// Spent on a key.
    Used,
    /// Past its expiry, unused.
    Expired,
    /// Revoked by an administrator before use.
    Revoked,
}

impl TokenStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unused => "unused",
            Self::Used => "used",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
        }
    }
}

/// What an audit event records. The names are stored in the audit log, so they never
/// change: a new action gets a new name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub enum AuditAction {
    /// A key and its first certificate were issued.
    #[serde(rename = "key.issue")]
    KeyIssue,
    /// A key got a new certificate.
    #[serde(rename = "key.renew")]
    KeyRenew,
    /// A key was revoked.
    #[serde(rename = "key.revoke")]
    KeyRevoke,
    /// Every key of a tenant, or of one owner, was revoked.
    #[serde(rename = "key.revoke_bulk")]
    KeyRevokeBulk,
    /// A tenant was made.
    #[serde(rename = "tenant.add")]
    TenantAdd,
    /// A tenant's policy or state changed.
    #[serde(rename = "tenant.change")]
    TenantChange,
    /// A user was made.
    #[serde(rename = "user.add")]
    UserAdd,
    /// A user's grants, password or state changed.
    #[serde(rename = "user.change")]
    UserChange,
    /// An enrollment token was made.
    #[serde(rename = "token.create")]
    TokenCreate,
    /// An enrollment token was revoked.
    #[serde(rename = "token.revoke")]
    TokenRevoke,
    /// The administrator certificate was issued.
    #[serde(rename = "admin_certificate.issue")]
    AdminCertificateIssue,
    /// The administrator certificate was replaced.
    #[serde(rename = "admin_certificate.rotate")]
    AdminCertificateRotate,
    /// The CA's own server certificate was issued.
    #[serde(rename = "server_certificate.issue")]
    ServerCertificateIssue,
    /// The CA's own keys were encrypted at rest.
    #[serde(rename = "ca.keys_encrypt")]
    CaKeysEncrypt,
    /// A new issuing intermediate took over from the active one (`latchkey ca rotate`, or
    /// the CA by itself when the active one neared its end).
    #[serde(rename = "ca.rotate")]
    CaRotate,
    /// An issuing intermediate whose last certificate expired stopped being published.
    #[serde(rename = "ca.retire")]
    CaRetire,
    /// A new root took over (`latchkey ca rotate --root`), with a new intermediate under it
    /// and cross-certificates of the intermediates by the other root.
    #[serde(rename = "ca.rotate_root")]
    CaRotateRoot,
    /// A tenant got an issuing intermediate of its own.
    #[serde(rename = "ca.dedicate")]
    CaDedicate,
    /// A tenant's own intermediate stopped signing: its keys renew under the shared one.
    #[serde(rename = "ca.undedicate")]
    CaUndedicate,
    /// A webhook was added to a tenant.
    #[serde(rename = "webhook.add")]
    WebhookAdd,
    /// A webhook was removed.
    #[serde(rename = "webhook.remove")]
    WebhookRemove,
}

impl AuditAction {
    /// Every action.
    pub const ALL: &[AuditAction] = &[
        Self::KeyIssue,
        Self::KeyRenew,
        Self::KeyRevoke,
        Self::KeyRevokeBulk,
        Self::TenantAdd,
        Self::TenantChange,
        Self::UserAdd,
        Self::UserChange,
        Self::TokenCreate,
        Self::TokenRevoke,
        Self::AdminCertificateIssue,
        Self::AdminCertificateRotate,
        Self::ServerCertificateIssue,
        Self::CaKeysEncrypt,
        Self::CaRotate,
        Self::CaRetire,
        Self::CaRotateRoot,
        Self::CaDedicate,
        Self::CaUndedicate,
        Self::WebhookAdd,
        Self::WebhookRemove,
    ];

    /// The name stored in the audit log and shown by the API.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::KeyIssue => "key.issue",
            Self::KeyRenew => "key.renew",
            Self::KeyRevoke => "key.revoke",
            Self::KeyRevokeBulk => "key.revoke_bulk",
            Self::TenantAdd => "tenant.add",
            Self::TenantChange => "tenant.change",
            Self::UserAdd => "user.add",
            Self::UserChange => "user.change",
            Self::TokenCreate => "token.create",
            Self::TokenRevoke => "token.revoke",
            Self::AdminCertificateIssue => "admin_certificate.issue",
            Self::AdminCertificateRotate => "admin_certificate.rotate",
            Self::ServerCertificateIssue => "server_certificate.issue",
            Self::CaKeysEncrypt => "ca.keys_encrypt",
            Self::CaRotate => "ca.rotate",
            Self::CaRetire => "ca.retire",
            Self::CaRotateRoot => "ca.rotate_root",
            Self::CaDedicate => "ca.dedicate",
            Self::CaUndedicate => "ca.undedicate",
            Self::WebhookAdd => "webhook.add",
            Self::WebhookRemove => "webhook.remove",
        }
    }
}

/// `GET /v1/keys` query: what the client sends and the server reads.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct KeyQuery {
    /// Only this tenant's keys (administrators only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<TenantName>,
    /// Only this owner's keys (administrators only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<OwnerName>,
    /// Only keys with exactly this name; an empty `name=` means any.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "empty_as_none"
    )]
    pub name: Option<String>,
    /// Only the key holding the certificate with this serial (hex; upper case and the colons
    /// `openssl x509 -text` prints are accepted); an empty `serial=` means any.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "empty_as_none"
    )]
    pub serial: Option<String>,
    /// Only keys in this state; an empty `status=` means any.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "empty_as_none"
    )]
    pub status: Option<KeyStatus>,
    /// Only active keys (neither revoked nor expired) whose `expires_at` is at most this far
    /// from now, by the CA's clock: `expiring_within=14d` (a [`Span`]: `14d`, `12h`, `30m`,
    /// `90s`). An empty `expiring_within=` means any; with `status=expired` or
    /// `status=revoked` it is refused (`invalid_request`), as no key can be both.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "empty_as_none"
    )]
    pub expiring_within: Option<Span>,
    /// The `next_cursor` of the previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// Page size, 1 to 100 (default 50).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
}

/// `GET /v1/admin/audit` query.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Only this tenant's events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Only this actor's (`admin:admin`, `user:alice@acme`, `key:<id>`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// Only this action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<AuditAction>,
    /// Only events about this target: a key id, `owner@tenant`, a tenant's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Only at or after this time (RFC 3339).
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub since: Option<OffsetDateTime>,
    /// Only before this time (RFC 3339).
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub until: Option<OffsetDateTime>,
    /// The `next_cursor` of the previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
}

/// `GET /v1/admin/tokens` query.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct TokenQuery {
    /// Only this tenant's tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<TenantName>,
}

/// `GET /v1/crl` query.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct CrlQuery {
    /// Answer with a CRL numbered above this…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newer_than: Option<i64>,
    /// …waiting up to this many seconds for one (at most 60), else 304.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait: Option<u64>,
}

/// `GET /v1/crl/delta` query.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct DeltaQuery {
    /// The number of the CRL the caller holds.
    pub base: i64,
}

/// `GET /v1/issuers/{id}/crl/latest`: the newest CRL of an intermediate, by number, and
/// where to fetch it whole or as a delta from the caller's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct LatestCrl {
    /// The intermediate's id.
    pub issuer: i64,
    /// The newest CRL's number.
    pub number: i64,
    /// Where the whole CRL is (immutable).
    pub crl: String,
    /// Where the delta from the caller's CRL (`newer_than`) is, when one was asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta: Option<String>,
}

/// `GET /v1/ca` query.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct CaQuery {
    /// The chain of this tenant's keys: its own intermediates when it has a dedicated one,
    /// else the shared ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<TenantName>,
}

/// `GET /v1/issuers` query: a long poll on the set of issuers.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct IssuerQuery {
    /// Answer once the issuers' revision is above this…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newer_than: Option<i64>,
    /// …waiting up to this many seconds (at most 60), else 304.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait: Option<u64>,
}

/// Where an issuing intermediate stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum IssuerStatus {
    /// Signs every new certificate (of every tenant without a dedicated issuer, or of its
    /// tenant).
    Active,
    /// Replaced by a newer one: signs nothing new, but its certificates are still valid, so
    /// its CRL is still published.
    Retiring,
    /// Its last certificate has expired (plus one CRL validity): no CRL any more.
    Retired,
}

impl IssuerStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Retiring => "retiring",
            Self::Retired => "retired",
        }
    }
}

/// One issuing intermediate of the CA.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct IssuerInfo {
    /// Its id: `GET /v1/issuers/{id}/crl`.
    pub id: i64,
    /// Its subject, as `openssl x509 -subject` prints it (RFC 4514 order).
    pub subject: String,
    /// Start of validity.
    #[serde(with = "time::serde::rfc3339")]
    pub not_before: OffsetDateTime,
    /// End of validity.
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    /// Where it stands.
    pub status: IssuerStatus,
    /// The tenant it is dedicated to; absent for a shared issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<TenantName>,
    /// Its certificate, PEM.
    pub certificate: String,
    /// The path of its CRL (long poll, ETag and formats as `/v1/crl`); absent once retired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crl: Option<String>,
}

/// `GET /v1/issuers`: every issuing intermediate the CA has had, oldest first.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct IssuerList {
    /// Grows whenever an issuer is added or changes status: the long poll's `newer_than`.
    pub revision: i64,
    /// The issuers.
    pub issuers: Vec<IssuerInfo>,
    /// After a root rollover (`latchkey ca rotate --root`): the cross-certificates, PEM: each
    /// intermediate still published certified by the root that did not sign it (same subject
    /// and key, the other root as issuer), so that a party trusting either root accepts keys
    /// of every intermediate. Empty before any rollover.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cross_certificates: Vec<String>,
}

/// An absent or empty query value is `None`; anything else must parse.
fn empty_as_none<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    let raw = Option::<String>::deserialize(d)?;
    match raw.as_deref() {
        None | Some("") => Ok(None),
        Some(text) => {
            T::deserialize(serde::de::value::StrDeserializer::<D::Error>::new(text)).map(Some)
        }
    }
}

/// `POST /v1/keys`: get a key.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    /// A PEM `CERTIFICATE REQUEST`; only its public key is used, after its signature verifies.
    pub csr: String,
    /// A short name for the key (such as the machine it lives on).
    pub name: String,
    /// A free-text description.
    #[serde(default)]
    pub description: String,
    /// The scopes the key carries: a subset of the caller's grants. Empty with a token
    /// means every scope the token names.
    pub scopes: ScopeSet,
    /// The key's lifetime in seconds (default 90 days, capped by the tenant).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<i64>,
    /// The key's end, instead of `ttl_seconds`.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub expires_at: Option<OffsetDateTime>,
}

/// `POST /v1/keys` answer: the key's metadata and its first certificate.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct EnrollResponse {
    /// The key.
    pub key: KeyInfo,
    /// The leaf certificate, PEM.
    pub certificate: String,
    /// The leaf and the issuing intermediate, PEM.
    pub chain: String,
    /// Seconds until the certificate expires.
    pub expires_in_seconds: i64,
}

/// A key's metadata. Never a secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct KeyInfo {
    /// The key id.
    pub id: String,
    /// Its tenant.
    pub tenant: String,
    /// Its owner.
    pub owner: String,
    /// Its name.
    pub name: String,
    /// Its description.
    pub description: String,
    /// Its scopes, sorted.
    pub scopes: Vec<String>,
    /// When it was made.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it expires; it cannot be extended.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// `active`, `expired` or `revoked`.
    pub status: KeyStatus,
    /// When it was revoked, if it was.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub revoked_at: Option<OffsetDateTime>,
    /// Its newest certificates (at most ten, which always include every one still valid),
    /// oldest first.
    pub certificates: Vec<CertificateInfo>,
    /// How many older certificates of the key are not listed.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub older_certificates: i64,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// One certificate of a key.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct CertificateInfo {
    /// Serial, lowercase hex.
    pub serial: String,
    /// Start of validity.
    #[serde(with = "time::serde::rfc3339")]
    pub not_before: OffsetDateTime,
    /// End of validity.
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    /// True when revoked.
    pub revoked: bool,
}

/// A page of keys, newest first.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct KeyPage {
    /// The keys.
    pub keys: Vec<KeyInfo>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// `POST /v1/admin/tenants`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewTenant {
    /// The tenant's name.
    pub name: TenantName,
    /// The longest key lifetime allowed in the tenant, in days (default and maximum 180).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_key_days: Option<i64>,
    /// Give the tenant an issuing intermediate of its own (`GET /v1/ca?tenant=`), so that a
    /// relying service trusting only it accepts no other tenant's key.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dedicated_issuer: bool,
}

/// A tenant.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct TenantInfo {
    /// Its name.
    pub name: String,
    /// The longest key lifetime allowed, in days.
    pub max_key_days: i64,
    /// True when disabled.
    pub disabled: bool,
    /// When it was made.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// `POST /v1/admin/users`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// `owner@tenant`.
    pub user: UserRef,
    /// The password, stored only as an argon2id hash.
    #[cfg_attr(feature = "server", schema(value_type = String, format = Password))]
    pub password: Secret<String>,
    /// The scopes the user may put into its keys (at least one).
    pub scopes: ScopeSet,
}

/// A user.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct UserInfo {
    /// `owner@tenant`.
    pub user: String,
    /// Granted scopes, sorted.
    pub scopes: Vec<String>,
    /// True when disabled.
    pub disabled: bool,
    /// When it was made.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// `POST /v1/admin/tokens`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// The owner of the key the token enrolls, `owner@tenant`.
    pub owner: UserRef,
    /// The scopes the key may carry (at least one).
    pub scopes: ScopeSet,
    /// How long the token stays usable, in seconds (default one hour, at most 30 days).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<i64>,
}

/// `POST /v1/admin/tokens/batch`: `count` tokens alike, for enrolling a fleet.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewTokenBatch {
    /// The owner of the keys the tokens enroll, `owner@tenant`.
    pub owner: UserRef,
    /// The scopes the keys may carry (at least one).
    pub scopes: ScopeSet,
    /// How long the tokens stay usable, in seconds (default one hour, at most 30 days).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<i64>,
    /// How many tokens, 1 to 1000.
    pub count: u32,
}

impl NewTokenBatch {
    /// The token each of the batch is, and how many of it.
    pub fn split(self) -> (NewToken, u32) {
        let token = NewToken {
            owner: self.owner,
            scopes: self.scopes,
            ttl_seconds: self.ttl_seconds,
        };
        (token, self.count)
    }
}

/// An enrollment token. `token` (the secret) is present only in the answer that creates it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct TokenInfo {
    /// The token's id.
    pub id: i64,
    /// The secret, shown once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "server", schema(value_type = Option<String>, format = Password))]
    pub token: Option<Secret<String>>,
    /// `owner@tenant` of the key it enrolls.
    pub owner: String,
    /// Its scopes.
    pub scopes: Vec<String>,
    /// When it stops working.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// `unused`, `used`, `expired` or `revoked`.
    pub status: TokenStatus,
    /// The key it enrolled, once used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
}

impl Problem {
    /// The problem document for `status` with the stable `code` and what went wrong.
    pub fn new(status: http::StatusCode, code: &str, detail: String) -> Self {
        Self {
            kind: format!("https://latchkey.dev/problems/{code}"),
            title: status.canonical_reason().unwrap_or("error").to_owned(),
            status: status.as_u16(),
            detail,
            code: code.to_owned(),
        }
    }
}

/// An RFC 9457 problem document: every error the API returns.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct Problem {
    /// A URI naming the problem type.
    #[serde(rename = "type")]
    pub kind: String,
    /// A short, human summary of the problem type.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong in this instance.
    #[serde(default)]
    pub detail: String,
    /// The stable machine-readable code, such as `scope_not_granted`.
    #[cfg_attr(feature = "server", schema(value_type = Code))]
    pub code: String,
}

/// `DELETE /v1/keys/{id}` body (optional): why the key is revoked.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RevokeRequest {
    /// `key_compromise`, `superseded`, `cessation_of_operation`, `affiliation_changed` or
    /// `unspecified` (the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<RevocationReason>,
}

/// `POST /v1/admin/revocations`: revoke every key of a tenant, or of one owner in it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BulkRevocation {
    /// The tenant.
    pub tenant: TenantName,
    /// Only this owner's keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<OwnerName>,
    /// Why (as in [`RevokeRequest`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<RevocationReason>,
}

/// The answer to a bulk revocation.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct BulkRevocationResult {
    /// Keys revoked.
    pub keys: i64,
    /// Certificates revoked.
    pub certificates: i64,
}

/// `POST /v1/admin/webhooks`: tell a tenant's endpoint of its key changes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewWebhook {
    /// The tenant whose key changes it hears of.
    pub tenant: TenantName,
    /// Where messages are POSTed: `https://…`, or `http://` to a loopback address with
    /// `allow_http`. Redirects are not followed.
    pub url: String,
    /// What it hears of (at least one): `key.issued`, `key.renewed`, `key.revoked`,
    /// `key.expiring`.
    pub events: WebhookEvents,
    /// Allow plain http, to a loopback address only (for a receiver on the CA's host).
    #[serde(default)]
    pub allow_http: bool,
}

/// A webhook. `secret` is present only in the answer that adds it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct WebhookInfo {
    /// Its id.
    pub id: i64,
    /// The tenant.
    pub tenant: String,
    /// Where messages go.
    pub url: String,
    /// What it hears of.
    pub events: Vec<String>,
    /// The signing secret, `whsec_<base64>`, shown once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "server", schema(value_type = Option<String>, format = Password))]
    pub secret: Option<Secret<String>>,
    /// Who added it.
    pub created_by: String,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// `GET /v1/admin/webhooks` and `GET /v1/admin/webhooks/deliveries` query.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct WebhookQuery {
    /// Only this tenant's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<TenantName>,
    /// Deliveries: at most this many, newest first, 1 to 1000 (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
}

/// One message to one webhook and how its delivery went.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct DeliveryInfo {
    /// The message id (`webhook-id`), the same on every attempt.
    pub id: String,
    /// The webhook.
    pub webhook_id: i64,
    /// The key's tenant.
    pub tenant: String,
    /// The event type.
    pub event: String,
    /// The key.
    pub key: String,
    /// When it happened.
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: OffsetDateTime,
    /// `pending`, `delivered` or `failed` (given up).
    pub status: String,
    /// Attempts made.
    pub attempts: i64,
    /// When the next attempt is due, while pending.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub next_attempt_at: Option<OffsetDateTime>,
    /// When it was delivered or given up.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub finished_at: Option<OffsetDateTime>,
    /// The HTTP status of the last attempt, if one was answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_status: Option<u16>,
    /// Why the last attempt failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// `POST /v1/keys/{id}/renew` body (optional).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RenewRequest {
    /// A CSR for a new key pair; without one the current public key is certified again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csr: Option<String>,
}

/// `PATCH /v1/admin/tenants/{tenant}`: fields left out stay as they are.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TenantChange {
    /// A new maximum key lifetime, in days (1 to 180).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_key_days: Option<i64>,
    /// Disable (true) or enable (false): a disabled tenant gets no new keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    /// Give the tenant an intermediate of its own (true; its keys renew under it), or go
    /// back to the shared one (false; the dedicated one stays published until its
    /// certificates expire).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedicated_issuer: Option<bool>,
}

/// `PATCH /v1/admin/users/{user}`: fields left out stay as they are.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UserChange {
    /// Disable (true) or enable (false): a disabled user gets no new keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    /// New grants (replacing the old ones; at least one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<ScopeSet>,
    /// A new password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "server", schema(value_type = Option<String>, format = Password))]
    pub password: Option<Secret<String>>,
}

/// One audit event.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct AuditEventInfo {
    /// Its position in the log (newer is higher).
    pub id: i64,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Who: `admin:<name>`, `user:<owner>@<tenant>`, `token:<id>`, `key:<id>`, `system`.
    pub actor: String,
    /// What, such as `key.issue`.
    pub action: String,
    /// The tenant concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// The object concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Details.
    pub detail: serde_json::Value,
}

/// A page of audit events, newest first.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct AuditPage {
    /// The events.
    pub events: Vec<AuditEventInfo>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Declares [`Code`] from one list, so that the variants, their wire strings and
/// [`Code::ALL`] cannot drift apart.
macro_rules! codes {
    ($($(#[$doc:meta])* $variant:ident => $text:literal,)*) => {
        /// The stable machine-readable code of a problem document the CA answers. The set is
        /// closed: the README's "The HTTP API" lists every one, and a test keeps it so.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum Code {
            $($(#[$doc])* $variant,)*
        }

        impl Code {
            /// Every code, in declaration order.
            pub const ALL: &[Code] = &[$(Code::$variant,)*];

            /// The code as it appears in a problem document's `code` field.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Code::$variant => $text,)*
                }
            }
        }
    };
}

codes! {
    /// No usable credential was presented, or the `Authorization` header is unusable.
    Unauthenticated => "unauthenticated",
    /// Wrong password, unknown user or unknown tenant, deliberately alike.
    InvalidCredentials => "invalid_credentials",
    /// An enrollment token that does not exist, was used, revoked or has expired.
    InvalidToken => "invalid_token",
    /// A client certificate that is not a current latchkey certificate of this CA.
    InvalidCertificate => "invalid_certificate",
    /// The operation needs the administrator certificate.
    AdminRequired => "admin_required",
    /// `/metrics` from a caller that may not scrape.
    MetricsForbidden => "metrics_forbidden",
    /// The user or tenant is disabled.
    Disabled => "disabled",
    /// The requested scopes are not all granted.
    ScopeNotGranted => "scope_not_granted",
    /// The key's lifetime is outside what the tenant allows.
    TtlOutOfRange => "ttl_out_of_range",
    /// The CSR does not parse.
    CsrMalformed => "csr_malformed",
    /// The CSR's signature does not verify.
    CsrSignatureInvalid => "csr_signature_invalid",
    /// The CSR is signed with a weak algorithm.
    WeakSignature => "weak_signature",
    /// The CSR's key type is not supported.
    UnsupportedKey => "unsupported_key",
    /// The CSR's key is too small or has a weak exponent.
    WeakKey => "weak_key",
    /// The CSR asks for an extension the CA does not allow.
    CsrExtensionForbidden => "csr_extension_forbidden",
    /// The public key is already certified for another key.
    PublicKeyInUse => "public_key_in_use",
    /// The key belongs to someone else.
    NotKeyOwner => "not_key_owner",
    /// The key is revoked or expired.
    KeyNotActive => "key_not_active",
    /// The certificate presented for a renewal belongs to another key.
    CertificateNotForKey => "certificate_not_for_key",
    /// The key to renew is revoked.
    KeyRevoked => "key_revoked",
    /// The key to renew has expired.
    KeyExpired => "key_expired",
    /// The certificate presented for a renewal is revoked.
    CertificateRevoked => "certificate_revoked",
    /// The certificate presented for a renewal has expired.
    CertificateExpired => "certificate_expired",
    /// The request is malformed: a query, path or field that does not parse.
    InvalidRequest => "invalid_request",
    /// A scope name is invalid.
    InvalidScope => "invalid_scope",
    /// A tenant, owner or key name is invalid.
    InvalidName => "invalid_name",
    /// A control, bidi/format or separator character in a key's name or description.
    InvalidCharacters => "invalid_characters",
    /// A revocation reason that is not one of the accepted ones.
    InvalidReason => "invalid_reason",
    /// A webhook URL that is not https (or, with `allow_http`, plain http to loopback).
    InvalidWebhookUrl => "invalid_webhook_url",
    /// A password that is too weak.
    WeakPassword => "weak_password",
    /// The enrollment token was used already and cannot be revoked.
    TokenNotRevocable => "token_not_revocable",
    /// The body is not the JSON the endpoint takes.
    InvalidJson => "invalid_json",
    /// The body is not declared as JSON.
    UnsupportedMediaType => "unsupported_media_type",
    /// The body is over the size limit.
    BodyTooLarge => "body_too_large",
    /// The body did not arrive in time.
    RequestTimeout => "request_timeout",
    /// No such endpoint or object, or the caller may not know that it exists.
    NotFound => "not_found",
    /// A known endpoint with a method it does not take.
    MethodNotAllowed => "method_not_allowed",
    /// An object with that name exists already.
    AlreadyExists => "already_exists",
    /// No CRL has been published yet.
    CrlUnavailable => "crl_unavailable",
    /// No delta CRL from that base: it is unknown here or older than the delta horizon.
    /// Fetch the whole CRL.
    DeltaUnavailable => "delta_unavailable",
    /// The newest CRL is past its nextUpdate and no newer one could be made.
    CrlExpired => "crl_expired",
    /// The CA cannot serve correctly right now.
    NotReady => "not_ready",
    /// A share of password checks or long polls is taken.
    Busy => "busy",
    /// Too many wrong passwords in a row.
    TooManyAttempts => "too_many_attempts",
    /// The key got a certificate too recently.
    RenewalTooSoon => "renewal_too_soon",
    /// The store cannot be reached; nothing was changed.
    StoreUnavailable => "store_unavailable",
    /// A bug; the CA's log has the details.
    Internal => "internal",
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not one of the [`Code`]s.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown problem code {0:?}")]
#[non_exhaustive]
pub struct UnknownCode(pub String);

impl std::str::FromStr for Code {
    type Err = UnknownCode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Code::ALL
            .iter()
            .copied()
            .find(|code| code.as_str() == s)
            .ok_or_else(|| UnknownCode(s.to_owned()))
    }
}

impl Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Code {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_stay_out_of_debug_but_not_off_the_wire() {
        let user = NewUser {
            user: "alice@acme".parse().unwrap(),
            password: "correct horse battery".into(),
            scopes: ScopeSet::default(),
        };
        let debug = format!("{user:?}");
        assert!(!debug.contains("correct horse"), "{debug}");
        assert!(
            debug.contains("alice@acme") && debug.contains("redacted"),
            "{debug}"
        );
        let change = UserChange {
            password: Some("another long password".into()),
            ..UserChange::default()
        };
        assert!(!format!("{change:?}").contains("another long"));
        let json = serde_json::to_value(&user).unwrap();
        assert_eq!(json["password"], "correct horse battery");
        let back: NewUser = serde_json::from_value(json).unwrap();
        assert_eq!(back.password.expose(), "correct horse battery");
        let token = TokenInfo {
            id: 7,
            token: Some("lkt_shown_once".into()),
            owner: "alice@acme".into(),
            scopes: vec![],
            expires_at: OffsetDateTime::UNIX_EPOCH,
            status: TokenStatus::Unused,
            key_id: None,
        };
        assert!(!format!("{token:?}").contains("lkt_shown_once"));
        assert_eq!(serde_json::to_value(&token).unwrap()["status"], "unused");
        assert_eq!(
            serde_json::to_value(&token).unwrap()["token"],
            "lkt_shown_once"
        );
    }
}

#[cfg(test)]
mod wire_tests {
    use super::*;

    /// Typed requests say on the wire exactly what the strings they replaced said: a name or
    /// reason as its string, a set of scopes as the list of its names (sorted, as a set).
    #[test]
    fn typed_requests_serialise_as_the_strings_they_replaced() {
        let scopes = ScopeSet::parse(["write:events", "read:metrics"]).unwrap();
        fn json<T: Serialize>(value: &T) -> String {
            serde_json::to_string(value).unwrap()
        }
        assert_eq!(
            json(&NewUser {
                user: "alice@acme".parse().unwrap(),
                password: "correct horse battery".into(),
                scopes: scopes.clone(),
            }),
            r#"{"user":"alice@acme","password":"correct horse battery","scopes":["read:metrics","write:events"]}"#
        );
        assert_eq!(
            json(&NewToken {
                owner: "bot@acme".parse().unwrap(),
                scopes: scopes.clone(),
                ttl_seconds: None,
            }),
            r#"{"owner":"bot@acme","scopes":["read:metrics","write:events"]}"#
        );
        assert_eq!(
            json(&NewTenant {
                name: "acme".parse().unwrap(),
                max_key_days: Some(30),
                dedicated_issuer: false,
            }),
            r#"{"name":"acme","max_key_days":30}"#
        );
        assert_eq!(
            json(&BulkRevocation {
                tenant: "acme".parse().unwrap(),
                owner: Some("bob".parse().unwrap()),
                reason: Some(RevocationReason::KeyCompromise),
            }),
            r#"{"tenant":"acme","owner":"bob","reason":"key_compromise"}"#
        );
        assert_eq!(json(&RevokeRequest::default()), "{}");
        assert_eq!(
            json(&UserChange {
                scopes: Some(scopes),
                ..UserChange::default()
            }),
            r#"{"scopes":["read:metrics","write:events"]}"#
        );
        assert_eq!(
            json(&KeyQuery {
                tenant: Some("acme".parse().unwrap()),
                ..KeyQuery::default()
            }),
            r#"{"tenant":"acme"}"#
        );
    }
}

#[cfg(test)]
mod enum_tests {
    use super::*;

    /// The audit names are stored: each must stay what it was, and serde must agree.
    #[test]
    fn audit_actions_keep_their_stored_names() {
        let names: Vec<&str> = AuditAction::ALL.iter().map(|a| a.as_str()).collect();
        assert_eq!(
            names,
            [
                "key.issue",
                "key.renew",
                "key.revoke",
                "key.revoke_bulk",
                "tenant.add",
                "tenant.change",
                "user.add",
                "user.change",
                "token.create",
                "token.revoke",
                "admin_certificate.issue",
                "admin_certificate.rotate",
                "server_certificate.issue",
                "ca.keys_encrypt",
                "ca.rotate",
                "ca.retire",
                "ca.rotate_root",
                "ca.dedicate",
                "ca.undedicate",
                "webhook.add",
                "webhook.remove",
            ]
        );
        for &action in AuditAction::ALL {
            assert_eq!(serde_json::to_value(action).unwrap(), action.as_str());
        }
    }

    #[test]
    fn statuses_are_snake_case_and_an_empty_status_is_none() {
        for status in [KeyStatus::Active, KeyStatus::Expired, KeyStatus::Revoked] {
            assert_eq!(serde_json::to_value(status).unwrap(), status.as_str());
        }
        let q: KeyQuery = serde_json::from_value(serde_json::json!({"status": ""})).unwrap();
        assert_eq!(q.status, None);
        let q: KeyQuery = serde_json::from_value(serde_json::json!({"status": "revoked"})).unwrap();
        assert_eq!(q.status, Some(KeyStatus::Revoked));
        assert!(serde_json::from_value::<KeyQuery>(serde_json::json!({"status": "gone"})).is_err());
        let q: KeyQuery =
            serde_json::from_value(serde_json::json!({"expiring_within": ""})).unwrap();
        assert_eq!(q.expiring_within, None);
        let q: KeyQuery =
            serde_json::from_value(serde_json::json!({"expiring_within": "14d"})).unwrap();
        assert_eq!(q.expiring_within, Some("1209600".parse().unwrap()));
        assert!(
            serde_json::from_value::<KeyQuery>(serde_json::json!({"expiring_within": "soon"}))
                .is_err()
        );
    }
}
