//! What the CA knows about its keys, certificates, tokens, tenants, users and audit events,
//! as the authority hands it out: domain values with typed fields, read from the store and
//! judged by the authority (a key's status at the request's time), never wire types. The HTTP
//! edge turns them into the API's JSON (`http/views.rs`).

use time::{Duration, OffsetDateTime};

use super::{KeyId, OwnerName, RevocationReason, ScopeSet, Serial, TenantName, UserRef};

/// Where a key stands at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyStatus {
    /// Neither revoked nor past its end.
    Active,
    /// Past its end, not revoked; keys are never extended.
    Expired,
    /// Revoked, whatever its end.
    Revoked,
}

/// A key as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    /// The key id.
    pub id: KeyId,
    /// Its tenant.
    pub tenant: TenantName,
    /// Its owner.
    pub owner: OwnerName,
    /// The short name its holder gave it.
    pub name: String,
    /// Its description.
    pub description: String,
    /// Its scopes: every certificate of the key carries these.
    pub scopes: ScopeSet,
    /// When it was made.
    pub created_at: OffsetDateTime,
    /// When it ends; no certificate of it outlives this.
    pub expires_at: OffsetDateTime,
    /// When it was revoked, if it was.
    pub revoked_at: Option<OffsetDateTime>,
    /// Why it was revoked, if it was.
    pub revocation_reason: Option<RevocationReason>,
}

impl KeyRecord {
    /// The key's status at `now`: a revoked key is revoked even once past its end.
    pub fn status(&self, now: OffsetDateTime) -> KeyStatus {
        if self.revoked_at.is_some() {
            KeyStatus::Revoked
        } else if self.expires_at <= now {
            KeyStatus::Expired
        } else {
            KeyStatus::Active
        }
    }
}

/// A certificate of a key, as recorded (without its DER).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateRecord {
    /// Its serial.
    pub serial: Serial,
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
    /// When it was revoked, if it was.
    pub revoked_at: Option<OffsetDateTime>,
}

/// A key as a caller sees it: the record, its status when asked, and its newest
/// certificates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyView {
    /// The key.
    pub key: KeyRecord,
    /// Its status at the time of the request.
    pub status: KeyStatus,
    /// Its newest certificates, oldest first.
    pub certificates: Vec<CertificateRecord>,
    /// How many older certificates of the key are not in `certificates`.
    pub older_certificates: i64,
}

impl KeyView {
    /// The view at `now` of `key`, listing `certificates` of the `total` it has.
    pub fn new(
        key: KeyRecord,
        certificates: Vec<CertificateRecord>,
        total: i64,
        now: OffsetDateTime,
    ) -> Self {
        let listed = i64::try_from(certificates.len()).unwrap_or(i64::MAX);
        Self {
            status: key.status(now),
            older_certificates: total.saturating_sub(listed).max(0),
            key,
            certificates,
        }
    }
}

/// A certificate just issued for a key (by enrollment or renewal), with the key as it stands
/// after the issuance.
#[derive(Debug, Clone)]
pub struct IssuedKey {
    /// The key, with its newest certificates.
    pub key: KeyView,
    /// The new certificate, PEM.
    pub certificate_pem: String,
    /// The new certificate and the issuing intermediate, PEM.
    pub chain_pem: String,
    /// How long the new certificate is valid from the request's time.
    pub expires_in: Duration,
}

/// A tenant's keys counted by state, for an administrator's overview.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyCounts {
    /// Neither revoked nor expired.
    pub active: i64,
    /// Of the active ones, those whose end is near (within the span the overview was asked
    /// for).
    pub expiring: i64,
    /// Revoked.
    pub revoked: i64,
}

/// A tenant with its keys counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantOverview {
    /// The tenant.
    pub tenant: TenantRecord,
    /// Its keys by state.
    pub keys: KeyCounts,
}

/// What a bulk revocation revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RevocationCount {
    /// Keys revoked.
    pub keys: i64,
    /// Certificates revoked, of those keys and of keys revoked before.
    pub certificates: i64,
}

/// Where an enrollment token stands at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenStatus {
    /// Usable.
    Unused,
    /// Spent on a key.
    Used,
    /// Past its end, unused.
    Expired,
    /// Revoked before use.
    Revoked,
}

/// An enrollment token as recorded; the secret is never recorded, only its hash, which is
/// not here either.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// Its id, shown to administrators.
    pub id: i64,
    /// The tenant it enrolls into.
    pub tenant: TenantName,
    /// The owner of the key it enrolls.
    pub owner: OwnerName,
    /// The scopes it may grant.
    pub scopes: ScopeSet,
    /// Who made it (an audit actor).
    pub created_by: String,
    /// When it was made.
    pub created_at: OffsetDateTime,
    /// When it stops working.
    pub expires_at: OffsetDateTime,
    /// When it was used, if it was.
    pub used_at: Option<OffsetDateTime>,
    /// The key it enrolled, once used.
    pub key_id: Option<KeyId>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<OffsetDateTime>,
}

impl TokenRecord {
    /// The token's status at `now`: revoked, then used, then expired, else unused.
    pub fn status(&self, now: OffsetDateTime) -> TokenStatus {
        if self.revoked_at.is_some() {
            TokenStatus::Revoked
        } else if self.used_at.is_some() {
            TokenStatus::Used
        } else if self.expires_at <= now {
            TokenStatus::Expired
        } else {
            TokenStatus::Unused
        }
    }
}

/// A token as an administrator sees it: the record and its status when asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenView {
    /// The token.
    pub token: TokenRecord,
    /// Its status at the time of the request.
    pub status: TokenStatus,
}

impl TokenView {
    /// The view of `token` at `now`.
    pub fn new(token: TokenRecord, now: OffsetDateTime) -> Self {
        Self {
            status: token.status(now),
            token,
        }
    }
}

/// A tenant as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantRecord {
    /// Its name.
    pub name: TenantName,
    /// The longest key lifetime it allows, in days.
    pub max_key_days: i64,
    /// When it was disabled, if it is.
    pub disabled_at: Option<OffsetDateTime>,
    /// When it was made.
    pub created_at: OffsetDateTime,
}

/// A user as an administrator sees it (never its password hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// `owner@tenant`.
    pub user: UserRef,
    /// The scopes it may put into keys.
    pub scopes: ScopeSet,
    /// When it was disabled, if it is.
    pub disabled_at: Option<OffsetDateTime>,
    /// When it was made.
    pub created_at: OffsetDateTime,
}

/// An audit event as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    /// Its position in the log (newer is higher).
    pub id: i64,
    /// When.
    pub at: OffsetDateTime,
    /// Who: `admin:<name>`, `user:<owner>@<tenant>`, `token:<id>`, `key:<id>`, `system`.
    pub actor: String,
    /// What, such as `key.issue`.
    pub action: String,
    /// The tenant concerned, if any.
    pub tenant: Option<String>,
    /// The object concerned, if any.
    pub target: Option<String>,
    /// Details, a JSON object.
    pub detail: serde_json::Value,
}

/// One page of a list, newest first.
#[derive(Debug, Clone)]
pub struct Listing<T> {
    /// The items.
    pub items: Vec<T>,
    /// Where the next page starts; `None` on the last page.
    pub next_cursor: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(unix: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(unix).unwrap()
    }

    fn key(revoked_at: Option<i64>) -> KeyRecord {
        KeyRecord {
            id: "0000000000000000000000a1".parse().unwrap(),
            tenant: "acme".parse().unwrap(),
            owner: "alice".parse().unwrap(),
            name: "laptop".into(),
            description: String::new(),
            scopes: ScopeSet::parse_list("read:metrics").unwrap(),
            created_at: at(0),
            expires_at: at(100),
            revoked_at: revoked_at.map(at),
            revocation_reason: revoked_at.map(|_| RevocationReason::KeyCompromise),
        }
    }

    /// A key is active until its end, expired from it on, and revoked from its revocation
    /// on, even once past its end.
    #[test]
    fn key_status_follows_the_end_and_the_revocation() {
        assert_eq!(key(None).status(at(99)), KeyStatus::Active);
        assert_eq!(key(None).status(at(100)), KeyStatus::Expired);
        assert_eq!(key(Some(50)).status(at(60)), KeyStatus::Revoked);
        assert_eq!(key(Some(50)).status(at(200)), KeyStatus::Revoked);
    }

    #[test]
    fn a_view_counts_the_certificates_it_leaves_out() {
        let certificate = CertificateRecord {
            serial: Serial::generate(),
            not_before: at(0),
            not_after: at(10),
            revoked_at: None,
        };
        let view = KeyView::new(key(None), vec![certificate.clone(), certificate], 12, at(5));
        assert_eq!(
            (view.status, view.older_certificates),
            (KeyStatus::Active, 10)
        );
        assert_eq!(
            KeyView::new(key(None), Vec::new(), 0, at(5)).older_certificates,
            0
        );
    }

    /// Revoked beats used beats expired.
    #[test]
    fn token_status_order() {
        let token = TokenRecord {
            id: 1,
            tenant: "acme".parse().unwrap(),
            owner: "bot".parse().unwrap(),
            scopes: ScopeSet::parse_list("read:metrics").unwrap(),
            created_by: "admin:admin".into(),
            created_at: at(0),
            expires_at: at(100),
            used_at: None,
            key_id: None,
            revoked_at: None,
        };
        assert_eq!(token.status(at(99)), TokenStatus::Unused);
        assert_eq!(token.status(at(100)), TokenStatus::Expired);
        let used = TokenRecord {
            used_at: Some(at(10)),
            ..token.clone()
        };
        assert_eq!(used.status(at(200)), TokenStatus::Used);
        let revoked = TokenRecord {
            revoked_at: Some(at(20)),
            ..used
        };
        assert_eq!(revoked.status(at(50)), TokenStatus::Revoked);
    }
}

/// Where an intermediate's private key is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IssuerKeyLocation {
    /// In the CA home (`intermediate-key.pem`, or the PKCS#11 key `latchkey.json` names):
    /// the intermediate made at initialization.
    Home,
    /// Here, as PKCS#8 `ENCRYPTED PRIVATE KEY` PEM: every replica can open it.
    Stored(String),
    /// In the PKCS#11 token `latchkey.json` names, under this label.
    Token(String),
}
