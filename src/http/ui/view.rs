//! The console's pages as askama templates (`templates/ui/`), each filled from the
//! authority's records by one conversion here: the templates only lay text out, and every
//! value is escaped by askama on the way in.

use askama::Template;
use time::OffsetDateTime;

use crate::api::KeyStatus as WireKeyStatus;
use crate::model::{
    AuditRecord, CertificateRecord, KeyView, RevocationReason, TenantOverview, TokenStatus,
    TokenView, UserRecord,
};

/// What every page's frame needs: the form token and the section to highlight.
pub struct Frame {
    /// The per-session token every form carries (see `guard`).
    pub csrf: String,
    /// The navigation entry of this page: `tenants`, `keys` or `audit`.
    pub section: &'static str,
}

/// A time as the console shows it: UTC to the minute, sortable.
pub fn when(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02} UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute()
    )
}

/// An optional time, or a dash.
fn maybe_when(t: Option<OffsetDateTime>) -> String {
    t.map_or_else(|| "—".to_owned(), when)
}

/// `/ui/`: every tenant with its keys counted.
#[derive(Template)]
#[template(path = "ui/tenants.html")]
pub struct TenantsPage {
    pub frame: Frame,
    /// The span "expiring" means, in days.
    pub expiring_days: u32,
    pub tenants: Vec<TenantLine>,
}

/// One tenant on the tenants page.
pub struct TenantLine {
    pub name: String,
    pub max_key_days: i64,
    pub disabled: bool,
    pub active: i64,
    pub expiring: i64,
    pub revoked: i64,
}

impl From<TenantOverview> for TenantLine {
    fn from(o: TenantOverview) -> Self {
        Self {
            name: o.tenant.name.to_string(),
            max_key_days: o.tenant.max_key_days,
            disabled: o.tenant.disabled_at.is_some(),
            active: o.keys.active,
            expiring: o.keys.expiring,
            revoked: o.keys.revoked,
        }
    }
}

/// `/ui/tenants/{tenant}`: its users and their grants, its enrollment tokens.
#[derive(Template)]
#[template(path = "ui/tenant.html")]
pub struct TenantPage {
    pub frame: Frame,
    pub tenant: String,
    pub users: Vec<UserLine>,
    pub tokens: Vec<TokenLine>,
}

/// One user of a tenant.
pub struct UserLine {
    pub owner: String,
    pub grants: Vec<String>,
    pub disabled: bool,
    pub created_at: String,
}

impl From<UserRecord> for UserLine {
    fn from(u: UserRecord) -> Self {
        Self {
            owner: u.user.owner.to_string(),
            grants: u.scopes.iter().map(|s| s.as_str().to_owned()).collect(),
            disabled: u.disabled_at.is_some(),
            created_at: when(u.created_at),
        }
    }
}

/// One enrollment token, never its secret.
pub struct TokenLine {
    pub id: i64,
    pub owner: String,
    pub scopes: String,
    pub status: &'static str,
    pub expires_at: String,
    pub key_id: Option<String>,
}

impl From<TokenView> for TokenLine {
    fn from(t: TokenView) -> Self {
        Self {
            id: t.token.id,
            owner: t.token.owner.to_string(),
            scopes: t.token.scopes.to_stored(),
            status: match t.status {
                TokenStatus::Unused => "unused",
                TokenStatus::Used => "used",
                TokenStatus::Expired => "expired",
                TokenStatus::Revoked => "revoked",
            },
            expires_at: when(t.token.expires_at),
            key_id: t.token.key_id.map(|id| id.to_string()),
        }
    }
}

/// `/ui/keys`: the search form and one page of keys.
#[derive(Template)]
#[template(path = "ui/keys.html")]
pub struct KeysPage {
    pub frame: Frame,
    /// The form as it was filled in.
    pub search: SearchEcho,
    pub keys: Vec<KeyLine>,
    /// The next page's address, with the same search.
    pub next: Option<String>,
}

/// The key search as submitted, to fill the form in again.
#[derive(Default)]
pub struct SearchEcho {
    pub tenant: String,
    pub owner: String,
    pub name: String,
    pub find: String,
    pub status: String,
    pub expiring_days: String,
}

/// One key in a list.
pub struct KeyLine {
    pub id: String,
    pub tenant: String,
    pub owner: String,
    pub name: String,
    pub status: &'static str,
    pub scopes: String,
    pub expires_at: String,
}

fn status_name(status: crate::model::KeyStatus) -> &'static str {
    WireKeyStatus::from(status).as_str()
}

impl From<KeyView> for KeyLine {
    fn from(v: KeyView) -> Self {
        Self {
            id: v.key.id.to_string(),
            tenant: v.key.tenant.to_string(),
            owner: v.key.owner.to_string(),
            name: v.key.name,
            status: status_name(v.status),
            scopes: v.key.scopes.to_stored(),
            expires_at: when(v.key.expires_at),
        }
    }
}

/// `/ui/keys/{id}`: a key, its certificates and its audit trail.
#[derive(Template)]
#[template(path = "ui/key.html")]
pub struct KeyPage {
    pub frame: Frame,
    pub key: KeyDetail,
    pub certificates: Vec<CertificateLine>,
    pub older_certificates: i64,
    pub events: Vec<EventLine>,
}

/// A key with every field the detail page shows.
pub struct KeyDetail {
    pub line: KeyLine,
    pub description: String,
    pub created_at: String,
    pub revoked_at: String,
    pub revocation_reason: String,
    pub revoked: bool,
}

impl KeyDetail {
    /// The detail of `view`; its certificates go to [`CertificateLine`]s.
    pub fn of(view: KeyView) -> (Self, Vec<CertificateLine>, i64) {
        let certificates = view
            .certificates
            .iter()
            .map(CertificateLine::from)
            .collect();
        let older = view.older_certificates;
        let detail = Self {
            description: view.key.description.clone(),
            created_at: when(view.key.created_at),
            revoked_at: maybe_when(view.key.revoked_at),
            revocation_reason: view
                .key
                .revocation_reason
                .map_or_else(String::new, |r| r.as_str().to_owned()),
            revoked: view.key.revoked_at.is_some(),
            line: KeyLine::from(view),
        };
        (detail, certificates, older)
    }
}

/// One certificate of a key.
pub struct CertificateLine {
    pub serial: String,
    pub not_before: String,
    pub not_after: String,
    pub revoked_at: String,
}

impl From<&CertificateRecord> for CertificateLine {
    fn from(c: &CertificateRecord) -> Self {
        Self {
            serial: c.serial.to_string(),
            not_before: when(c.not_before),
            not_after: when(c.not_after),
            revoked_at: maybe_when(c.revoked_at),
        }
    }
}

/// `/ui/audit`: the filter form and one page of events.
#[derive(Template)]
#[template(path = "ui/audit.html")]
pub struct AuditPage {
    pub frame: Frame,
    pub filter: AuditEcho,
    /// Every action, for the filter's choice.
    pub actions: Vec<&'static str>,
    pub events: Vec<EventLine>,
    pub next: Option<String>,
}

/// The audit filter as submitted.
#[derive(Default)]
pub struct AuditEcho {
    pub tenant: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub since: String,
    pub until: String,
}

/// One audit event.
pub struct EventLine {
    pub at: String,
    pub actor: String,
    pub action: String,
    pub tenant: String,
    pub target: String,
    /// The target is a key: link to it.
    pub target_is_key: bool,
    pub detail: String,
}

impl From<AuditRecord> for EventLine {
    fn from(e: AuditRecord) -> Self {
        let target = e.target.unwrap_or_default();
        Self {
            at: when(e.at),
            actor: e.actor,
            target_is_key: target.parse::<crate::model::KeyId>().is_ok(),
            action: e.action,
            tenant: e.tenant.unwrap_or_default(),
            target,
            detail: e.detail.to_string(),
        }
    }
}

/// The revocation reasons an administrator can choose, most likely first.
pub const REASONS: &[RevocationReason] = &[
    RevocationReason::KeyCompromise,
    RevocationReason::CessationOfOperation,
    RevocationReason::AffiliationChanged,
    RevocationReason::Superseded,
    RevocationReason::Unspecified,
];

/// The reasons as the form's choice lists them.
pub fn reason_names() -> Vec<&'static str> {
    REASONS.iter().map(|r| r.as_str()).collect()
}

/// A change shown before it is made: what it does, and the form that makes it.
#[derive(Template)]
#[template(path = "ui/confirm.html")]
pub struct ConfirmPage {
    pub frame: Frame,
    /// The heading: "Revoke key …".
    pub title: String,
    /// What will happen, one fact a line.
    pub facts: Vec<String>,
    /// Where the form posts.
    pub action: String,
    /// Fields carried as they are.
    pub hidden: Vec<(String, String)>,
    /// Offer a revocation reason.
    pub reasons: Vec<&'static str>,
    /// The button's words.
    pub button: String,
    /// Where "cancel" leads.
    pub back: String,
    /// Nothing would change: show the facts, no button.
    pub nothing_to_do: bool,
}

/// An enrollment token just made: its secret, shown this once.
#[derive(Template)]
#[template(path = "ui/token.html")]
pub struct TokenMadePage {
    pub frame: Frame,
    pub owner: String,
    pub tenant: String,
    pub scopes: String,
    pub expires_at: String,
    pub secret: String,
}

/// A change made: what it did.
#[derive(Template)]
#[template(path = "ui/done.html")]
pub struct DonePage {
    pub frame: Frame,
    pub title: String,
    pub facts: Vec<String>,
    pub back: String,
}

/// A refusal or failure, as a page.
#[derive(Template)]
#[template(path = "ui/error.html")]
pub struct ErrorPage {
    pub status: u16,
    pub title: String,
    pub code: String,
    pub detail: String,
}
