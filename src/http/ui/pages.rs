//! The console's reading pages: tenants, a tenant, keys, a key, the audit log. Each reads
//! through the authority methods its API twin calls, with the administrator's proof.

use axum::Extension;
use axum::extract::State;
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::form::{UiPath, UiQuery, given, page_link, parse};
use super::guard::FormToken;
use super::view::{
    AuditEcho, AuditPage, EventLine, KeyDetail, KeyLine, KeyPage, KeysPage, SearchEcho, TenantPage,
    TenantsPage,
};
use super::{UiError, frame, html};
use crate::api::{AuditAction, AuditQuery, Code, KeyQuery, KeyStatus};
use crate::authority::Admin;
use crate::http::AppState;
use crate::http::RequestError;
use crate::model::{KeyId, OwnerName, Span, TenantName};

/// "Expiring" on the tenants page when the address does not say: two weeks, the first
/// warning an administrator wants.
const EXPIRING_DAYS: u32 = 14;
/// Rows a page lists.
const PAGE: i64 = 50;
/// The events a key's page lists: its newest.
const KEY_EVENTS: i64 = 50;

/// `/ui/?expiring_days=N`.
#[derive(Deserialize, Default)]
pub struct TenantsQuery {
    expiring_days: Option<String>,
}

/// `GET /ui/`: every tenant with its keys counted.
pub async fn tenants(
    State(authority): State<AppState>,
    admin: Admin,
    Extension(token): Extension<FormToken>,
    UiQuery(query): UiQuery<TenantsQuery>,
) -> Result<Html<String>, UiError> {
    let days = parse::<u32>(query.expiring_days, Code::InvalidRequest)?.unwrap_or(EXPIRING_DAYS);
    let within = time::Duration::days(days.into());
    let tenants = authority.tenant_overview(&admin, within).await?;
    html(&TenantsPage {
        frame: frame(token, "tenants"),
        expiring_days: days,
        tenants: tenants.into_iter().map(Into::into).collect(),
    })
}

/// `GET /ui/tenants/{tenant}`: its users with their grants, and its enrollment tokens.
pub async fn tenant(
    State(authority): State<AppState>,
    admin: Admin,
    Extension(token): Extension<FormToken>,
    UiPath(tenant): UiPath<TenantName>,
) -> Result<Html<String>, UiError> {
    let users = authority.users(&admin, &tenant).await?;
    let tokens = authority.tokens(&admin, Some(&tenant)).await?;
    html(&TenantPage {
        frame: frame(token, "tenants"),
        tenant: tenant.to_string(),
        users: users.into_iter().map(Into::into).collect(),
        tokens: tokens.into_iter().rev().map(Into::into).collect(),
    })
}

/// `/ui/keys` search form: every field may be empty.
#[derive(Deserialize, Default)]
pub struct KeySearch {
    tenant: Option<String>,
    owner: Option<String>,
    name: Option<String>,
    /// A key id (goes straight to the key) or a certificate's serial.
    find: Option<String>,
    status: Option<String>,
    expiring_days: Option<String>,
    cursor: Option<String>,
}

/// `GET /ui/keys`: search and page through keys, newest first, exactly as `GET /v1/keys`.
pub async fn keys(
    State(authority): State<AppState>,
    admin: Admin,
    Extension(token): Extension<FormToken>,
    UiQuery(search): UiQuery<KeySearch>,
) -> Result<Response, UiError> {
    let echo = SearchEcho {
        tenant: given(search.tenant.clone()).unwrap_or_default(),
        owner: given(search.owner.clone()).unwrap_or_default(),
        name: given(search.name.clone()).unwrap_or_default(),
        find: given(search.find.clone()).unwrap_or_default(),
        status: given(search.status.clone()).unwrap_or_default(),
        expiring_days: given(search.expiring_days.clone()).unwrap_or_default(),
    };
    if let Ok(id) = echo.find.parse::<KeyId>() {
        return Ok(Redirect::to(&format!("/ui/keys/{id}")).into_response());
    }
    let days = parse::<u32>(search.expiring_days, Code::InvalidRequest)?;
    let query = KeyQuery {
        tenant: parse::<TenantName>(search.tenant, Code::InvalidName)?,
        owner: parse::<OwnerName>(search.owner, Code::InvalidName)?,
        name: given(search.name),
        serial: given(search.find),
        status: parse::<KeyStatus>(search.status, Code::InvalidRequest)?,
        expiring_within: days.map(|d| Span::from_seconds(d.saturating_mul(86_400))),
        cursor: given(search.cursor),
        limit: Some(PAGE),
    };
    let listing = authority.list_keys(&admin.reader(), query).await?;
    let next = listing.next_cursor.map(|cursor| {
        page_link(
            "/ui/keys",
            &[
                ("tenant", &echo.tenant),
                ("owner", &echo.owner),
                ("name", &echo.name),
                ("find", &echo.find),
                ("status", &echo.status),
                ("expiring_days", &echo.expiring_days),
            ],
            &cursor,
        )
    });
    Ok(html(&KeysPage {
        frame: frame(token, "keys"),
        search: echo,
        keys: listing.items.into_iter().map(KeyLine::from).collect(),
        next,
    })?
    .into_response())
}

/// `GET /ui/keys/{id}`: the key, its certificates and its audit trail.
pub async fn key(
    State(authority): State<AppState>,
    admin: Admin,
    Extension(token): Extension<FormToken>,
    UiPath(id): UiPath<KeyId>,
) -> Result<Html<String>, UiError> {
    let view = authority.show_key(&admin.reader(), &id).await?;
    let trail = AuditQuery {
        target: Some(id.to_string()),
        limit: Some(KEY_EVENTS),
        ..AuditQuery::default()
    };
    let events = authority.audit_log(&admin, trail).await?;
    let (key, certificates, older_certificates) = KeyDetail::of(view);
    html(&KeyPage {
        frame: frame(token, "keys"),
        key,
        certificates,
        older_certificates,
        events: events.items.into_iter().map(EventLine::from).collect(),
    })
}

/// `/ui/audit` filter form; `since` and `until` are days (`YYYY-MM-DD`, UTC, both included).
#[derive(Deserialize, Default)]
pub struct AuditSearch {
    tenant: Option<String>,
    actor: Option<String>,
    action: Option<String>,
    target: Option<String>,
    since: Option<String>,
    until: Option<String>,
    cursor: Option<String>,
}

/// `GET /ui/audit`: the audit log, newest first, as `GET /v1/admin/audit` filters it.
pub async fn audit(
    State(authority): State<AppState>,
    admin: Admin,
    Extension(token): Extension<FormToken>,
    UiQuery(search): UiQuery<AuditSearch>,
) -> Result<Html<String>, UiError> {
    let echo = AuditEcho {
        tenant: given(search.tenant).unwrap_or_default(),
        actor: given(search.actor).unwrap_or_default(),
        action: given(search.action).unwrap_or_default(),
        target: given(search.target).unwrap_or_default(),
        since: given(search.since).unwrap_or_default(),
        until: given(search.until).unwrap_or_default(),
    };
    let action = match echo.action.as_str() {
        "" => None,
        name => Some(
            AuditAction::ALL
                .iter()
                .copied()
                .find(|a| a.as_str() == name)
                .ok_or_else(|| RequestError::Query(format!("no audit action is named {name:?}")))?,
        ),
    };
    let day = |text: &str, after: i64| -> Result<Option<time::OffsetDateTime>, UiError> {
        if text.is_empty() {
            return Ok(None);
        }
        let format = time::macros::format_description!("[year]-[month]-[day]");
        let date = time::Date::parse(text, &format)
            .map_err(|e| RequestError::Query(format!("{text:?} is not a day (YYYY-MM-DD): {e}")))?;
        Ok(Some(
            date.midnight().assume_utc() + time::Duration::days(after),
        ))
    };
    let query = AuditQuery {
        tenant: some(&echo.tenant),
        actor: some(&echo.actor),
        action,
        target: some(&echo.target),
        since: day(&echo.since, 0)?,
        until: day(&echo.until, 1)?,
        cursor: given(search.cursor),
        limit: Some(PAGE),
    };
    let listing = authority.audit_log(&admin, query).await?;
    let next = listing.next_cursor.map(|cursor| {
        page_link(
            "/ui/audit",
            &[
                ("tenant", &echo.tenant),
                ("actor", &echo.actor),
                ("action", &echo.action),
                ("target", &echo.target),
                ("since", &echo.since),
                ("until", &echo.until),
            ],
            &cursor,
        )
    });
    html(&AuditPage {
        frame: frame(token, "audit"),
        filter: echo,
        actions: AuditAction::ALL.iter().map(|a| a.as_str()).collect(),
        events: listing.items.into_iter().map(EventLine::from).collect(),
        next,
    })
}

/// A filled-in filter, or none.
fn some(value: &str) -> Option<String> {
    (!value.is_empty()).then(|| value.to_owned())
}
