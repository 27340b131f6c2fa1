//! Who is calling. The HTTP edge hands over what it saw ([`Caller`]) to one of the
//! `authenticate_*` methods, once per request, and gets a proof or an error; the policy
//! methods take the proof and never look at a credential again:
//!
//! - [`Admin`]: an administrator certificate (the admin wall, for `/v1/admin`);
//! - [`Reader`]: an administrator certificate, a user's password or a key's current
//!   certificate (the key inventory and revocation);
//! - [`KeyHolder`]: a key certificate this CA recorded, presented over mTLS (renewal, which
//!   judges revocation and expiry itself, with codes of its own);
//! - [`Enroller`]: a user's password or an enrollment token (getting a key).
//!
//! Each proof's fields are private to the authority, so only these methods make one.

use rustls_pki_types::CertificateDer;

use super::error::RenewalRefusal;
use super::{Authority, AuthorityError};
use crate::ca::PublicKey;
use crate::model::{KeyId, OwnerName, ScopeSet, SourceNet, TenantId, TenantName, UserRef};
use crate::profile::PeerIdentity;
use crate::profile::SpiffeId;
use crate::store::{CertificateKind, CertificateRow, TokenUse};

/// A credential from the `Authorization` header.
#[derive(Clone)]
pub enum Credential {
    /// HTTP Basic: `owner@tenant` and a password.
    Password {
        /// `owner@tenant`, unparsed.
        user: String,
        /// The password.
        password: String,
    },
    /// `Bearer`: an enrollment token.
    Token(String),
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Password { user, .. } => write!(f, "Password({user}, [elided])"),
            Credential::Token(_) => f.write_str("Token([elided])"),
        }
    }
}

/// What the edge knows about the caller: the `Authorization` header and the client
/// certificate of the TLS connection (already chain-verified by the listener).
#[derive(Debug, Clone, Default)]
pub struct Caller {
    /// The parsed `Authorization` header, if any.
    pub authorization: Option<Credential>,
    /// The client certificate, if the client presented one.
    pub certificate: Option<CertificateDer<'static>>,
    /// The client's address, if known (for throttling password guessing).
    pub source: Option<std::net::IpAddr>,
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub enum Principal {
    /// An administrator of the whole CA (admin certificate).
    Admin {
        /// The administrator's name.
        name: OwnerName,
    },
    /// A user, by password.
    User {
        /// Tenant internal id.
        tenant_id: TenantId,
        /// The tenant.
        tenant: TenantName,
        /// The user.
        owner: OwnerName,
        /// The scopes it may put into keys.
        grants: ScopeSet,
        /// The tenant's longest key lifetime in days, as read when authenticating.
        max_key_days: i64,
    },
    /// The holder of an enrollment token.
    Token {
        /// The token's id.
        token_id: i64,
        /// Tenant internal id.
        tenant_id: TenantId,
        /// The tenant.
        tenant: TenantName,
        /// The owner of the key it enrolls.
        owner: OwnerName,
        /// The scopes the key may carry.
        grants: ScopeSet,
        /// The tenant's longest key lifetime in days, as read when authenticating.
        max_key_days: i64,
    },
    /// The holder of a key, by one of the key's current certificates.
    Key {
        /// Tenant internal id.
        tenant_id: TenantId,
        /// The tenant.
        tenant: TenantName,
        /// The key's owner.
        owner: OwnerName,
        /// The key.
        key_id: KeyId,
    },
}

/// Proof that the caller presented a current administrator certificate. Only
/// [`Authority::authenticate_admin`] makes one (the field is private), so a method that takes
/// `&Admin` needs no second look at the certificate or the store.
#[derive(Debug, Clone)]
pub struct Admin {
    name: OwnerName,
}

impl Admin {
    /// The administrator's name, from its certificate.
    pub fn name(&self) -> &OwnerName {
        &self.name
    }

    /// The audit log's name for this administrator (as [`Principal::actor`] says it).
    pub(super) fn actor(&self) -> String {
        format!("admin:{}", self.name)
    }

    /// The same administrator as a reader of the key inventory: what the inventory and
    /// revocation methods take. An administrator certificate passes every reader check, so
    /// this grants nothing the proof did not.
    pub fn reader(&self) -> Reader {
        Reader {
            principal: Principal::Admin {
                name: self.name.clone(),
            },
        }
    }
}

/// Proof that the caller may read the key inventory and revoke keys: an administrator
/// certificate, a user's password, or a current certificate of a key, checked by
/// [`Authority::authenticate_reader`], the only maker of one. Never an enrollment token:
/// tokens only enroll.
#[derive(Debug, Clone)]
pub struct Reader {
    principal: Principal,
}

impl Reader {
    /// Who the caller is: [`Principal::Admin`], [`Principal::User`] or [`Principal::Key`].
    pub fn principal(&self) -> &Principal {
        &self.principal
    }
}

/// Proof that the caller presented, over mTLS, a key certificate this CA recorded (this very
/// certificate, not a look-alike), with its stored row and public key. Made only by
/// [`Authority::authenticate_key_holder`]. Whether the key or the certificate is revoked or
/// expired is not checked here: renewal judges that, answering with its own codes.
#[derive(Debug, Clone)]
pub struct KeyHolder {
    pub(super) certificate: CertificateRow,
    pub(super) public_key: PublicKey,
}

/// Proof of who a new key is for and what it may carry: a user by password, or the holder
/// of an enrollment token. Made only by [`Authority::authenticate_enroller`].
#[derive(Debug, Clone)]
pub struct Enroller {
    pub(super) tenant_id: TenantId,
    pub(super) tenant: TenantName,
    pub(super) owner: OwnerName,
    /// The scopes the key may carry: the user's grants, or the token's scopes.
    pub(super) grants: ScopeSet,
    pub(super) max_key_days: i64,
    /// The token spent on the key, when enrolling with one.
    pub(super) token: Option<TokenUse>,
    pub(super) actor: String,
}

impl Principal {
    /// The audit log's name for this principal.
    pub fn actor(&self) -> String {
        match self {
            Principal::Admin { name } => format!("admin:{name}"),
            Principal::User { tenant, owner, .. } => format!("user:{owner}@{tenant}"),
            Principal::Token { token_id, .. } => format!("token:{token_id}"),
            Principal::Key { key_id, .. } => format!("key:{key_id}"),
        }
    }
}

impl Authority {
    /// Authenticates by the `Authorization` header only (password or token).
    pub(super) async fn authenticate_header(
        &self,
        caller: &Caller,
    ) -> Result<Principal, AuthorityError> {
        match &caller.authorization {
            Some(Credential::Password { user, password }) => {
                self.authenticate_password(user, password, caller.source)
                    .await
            }
            Some(Credential::Token(secret)) => self.authenticate_token(secret).await,
            None => Err(AuthorityError::Unauthenticated),
        }
    }

    /// Authenticates by password if the `Authorization` header has one, otherwise by client
    /// certificate (an administrator's or a key's). Tokens only enroll.
    pub async fn authenticate_reader(&self, caller: &Caller) -> Result<Reader, AuthorityError> {
        let principal = match (&caller.authorization, &caller.certificate) {
            (Some(Credential::Token(_)), _) => return Err(AuthorityError::Unauthenticated),
            (Some(_), _) => self.authenticate_header(caller).await?,
            (None, Some(der)) => self.authenticate_certificate(der).await?,
            (None, None) => return Err(AuthorityError::Unauthenticated),
        };
        Ok(Reader { principal })
    }

    /// Authenticates who a new key is for: a user by password, or an enrollment token. The
    /// token is spent only when the key is recorded, in the same transaction.
    pub async fn authenticate_enroller(&self, caller: &Caller) -> Result<Enroller, AuthorityError> {
        let principal = self.authenticate_header(caller).await?;
        let actor = principal.actor();
        match principal {
            Principal::User {
                tenant_id,
                tenant,
                owner,
                grants,
                max_key_days,
            } => Ok(Enroller {
                tenant_id,
                tenant,
                owner,
                grants,
                max_key_days,
                token: None,
                actor,
            }),
            Principal::Token {
                token_id,
                tenant_id,
                tenant,
                owner,
                grants,
                max_key_days,
            } => Ok(Enroller {
                tenant_id,
                tenant,
                owner,
                grants,
                max_key_days,
                token: Some(TokenUse { token_id }),
                actor,
            }),
            Principal::Admin { .. } | Principal::Key { .. } => Err(AuthorityError::Unauthenticated),
        }
    }

    /// Requires a key certificate this CA recorded, presented over mTLS: the stored row of
    /// this very certificate (not a look-alike) and its public key. An administrator
    /// certificate is no key's.
    pub async fn authenticate_key_holder(
        &self,
        caller: &Caller,
    ) -> Result<KeyHolder, AuthorityError> {
        let Some(der) = &caller.certificate else {
            return Err(AuthorityError::Unauthenticated);
        };
        let unknown = || AuthorityError::InvalidCertificate("unknown certificate".into());
        let identity = PeerIdentity::from_der(der, &self.trust_domain)
            .map_err(|e| AuthorityError::InvalidCertificate(e.to_string()))?;
        let certificate = self
            .store
            .recorded_certificate(&identity.serial, der)
            .await?
            .ok_or_else(unknown)?;
        if certificate.kind != CertificateKind::Key {
            return Err(AuthorityError::RenewalRefused(
                RenewalRefusal::CertificateNotForKey,
            ));
        }
        let (_, parsed) = x509_parser::parse_x509_certificate(der).map_err(|_| unknown())?;
        let public_key = PublicKey::from_checked_spki(parsed.public_key().raw)
            .map_err(|e| AuthorityError::Internal(e.to_string()))?;
        Ok(KeyHolder {
            certificate,
            public_key,
        })
    }

    /// Requires a current administrator certificate and gives the proof the admin methods
    /// take. A key certificate, a password or a token is never enough.
    pub async fn authenticate_admin(&self, caller: &Caller) -> Result<Admin, AuthorityError> {
        let Some(der) = &caller.certificate else {
            return Err(if caller.authorization.is_some() {
                AuthorityError::AdminRequired
            } else {
                AuthorityError::Unauthenticated
            });
        };
        match self.authenticate_certificate(der).await? {
            Principal::Admin { name } => Ok(Admin { name }),
            _ => Err(AuthorityError::AdminRequired),
        }
    }

    async fn authenticate_password(
        &self,
        user: &str,
        password: &str,
        source: Option<std::net::IpAddr>,
    ) -> Result<Principal, AuthorityError> {
        // Only the parsed name (at most 127 characters) and the source network reach the
        // throttle: nothing of an unparseable name is kept past this request.
        let user_ref: Option<UserRef> = user.parse().ok();
        let source = source.map(SourceNet::from);
        self.throttle.check(user_ref.as_ref(), source)?;
        // Every path runs one argon2id verification, so the answer's timing does not tell
        // an unknown tenant from an unknown user from a wrong password.
        let mut found = None;
        if let Some(user_ref) = &user_ref
            && let Some(tenant) = self.store.tenant(&user_ref.tenant).await?
            && let Some(row) = self.store.user(tenant.id, &user_ref.owner).await?
        {
            found = Some((tenant, row));
        }
        let hash = found.as_ref().map(|(_, row)| row.password_hash.clone());
        if !self
            .passwords
            .verify(password.to_owned(), hash, source)
            .await?
        {
            self.throttle.failed(user_ref.as_ref(), source);
            return Err(AuthorityError::InvalidCredentials);
        }
        let (Some(user_ref), Some((tenant, row))) = (user_ref, found) else {
            return Err(AuthorityError::InvalidCredentials);
        };
        self.throttle.succeeded(&user_ref, source);
        if tenant.tenant.disabled_at.is_some() {
            return Err(AuthorityError::Disabled(format!(
                "tenant {}",
                tenant.tenant.name
            )));
        }
        if row.disabled_at.is_some() {
            return Err(AuthorityError::Disabled(format!("user {user_ref}")));
        }
        Ok(Principal::User {
            tenant_id: tenant.id,
            tenant: user_ref.tenant,
            owner: user_ref.owner,
            grants: row.scopes,
            max_key_days: tenant.tenant.max_key_days,
        })
    }

    async fn authenticate_token(&self, secret: &str) -> Result<Principal, AuthorityError> {
        let credential = self
            .store
            .token_credential(&super::token::hash(secret))
            .await?
            .ok_or(AuthorityError::InvalidToken)?;
        let tenant_id = credential.token.tenant_id;
        let row = credential.token.token;
        let now = self.now();
        if row.used_at.is_some() || row.revoked_at.is_some() || row.expires_at <= now {
            return Err(AuthorityError::InvalidToken);
        }
        if credential.tenant_disabled_at.is_some() {
            return Err(AuthorityError::Disabled(format!("tenant {}", row.tenant)));
        }
        // A token for a user that was disabled since does not get around the disable.
        if credential.owner_disabled_at.is_some() {
            return Err(AuthorityError::Disabled(format!(
                "user {}@{}",
                row.owner, row.tenant
            )));
        }
        Ok(Principal::Token {
            token_id: row.id,
            tenant_id,
            tenant: row.tenant,
            owner: row.owner,
            grants: row.scopes,
            max_key_days: credential.max_key_days,
        })
    }

    /// A client certificate counts only if this CA recorded it, for the identity it names,
    /// and neither it nor its key is revoked or expired. This reads the store, not a CRL,
    /// so a revocation takes effect here at once.
    async fn authenticate_certificate(
        &self,
        der: &CertificateDer<'_>,
    ) -> Result<Principal, AuthorityError> {
        let bad = |why: &str| AuthorityError::InvalidCertificate(why.to_owned());
        let identity = PeerIdentity::from_der(der, &self.trust_domain)
            .map_err(|e| AuthorityError::InvalidCertificate(e.to_string()))?;
        // The serial must name this very certificate, not a look-alike from another CA.
        let row = self
            .store
            .recorded_certificate(&identity.serial, der)
            .await?
            .ok_or_else(|| bad("unknown certificate"))?;
        let now = self.now();
        if row.revoked_at.is_some() {
            return Err(bad("certificate revoked"));
        }
        if row.not_after <= now {
            return Err(bad("certificate expired"));
        }
        match identity.id {
            SpiffeId::Admin { name } if row.kind == CertificateKind::Admin => {
                Ok(Principal::Admin { name })
            }
            SpiffeId::Key { tenant, key_id } if row.kind == CertificateKind::Key => {
                let stored = self
                    .store
                    .key(&key_id)
                    .await?
                    .filter(|k| row.key_id.as_ref() == Some(&k.key.id) && k.key.tenant == tenant)
                    .ok_or_else(|| bad("unknown key"))?;
                if stored.key.revoked_at.is_some() {
                    return Err(bad("key revoked"));
                }
                if stored.key.expires_at <= now {
                    return Err(bad("key expired"));
                }
                Ok(Principal::Key {
                    tenant_id: stored.tenant_id,
                    tenant,
                    owner: stored.key.owner,
                    key_id,
                })
            }
            _ => Err(bad("certificate kind does not match its identity")),
        }
    }
}
