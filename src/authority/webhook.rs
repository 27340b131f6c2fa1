//! Webhooks: which endpoint hears of a tenant's key changes. The authority checks the URL
//! (https, or plain http to a loopback address when asked by name), makes the signing secret
//! (shown once) and records the change with its audit event; the outbox rows themselves are
//! written by the store in the transaction of each key change, and sent by `crate::webhook`.

use std::net::IpAddr;

use base64::Engine;

use super::{Admin, Authority, AuthorityError};
use crate::api::{AuditAction, Code, NewWebhook, Secret, WebhookQuery};
use crate::model::{DeliveryRecord, TenantName, WebhookRecord};
use crate::store::NewWebhook as StoredWebhook;

/// The prefix of a secret, as the Standard Webhooks specification writes it.
const SECRET_PREFIX: &str = "whsec_";
/// The longest URL accepted.
const MAX_URL_LEN: usize = 2048;
/// Deliveries listed when no limit is asked for, and the most.
const DEFAULT_DELIVERIES: i64 = 100;
const MAX_DELIVERIES: i64 = 1000;

/// A new secret: `whsec_` and the base64 of 32 random bytes, the HMAC-SHA256 key.
fn new_secret() -> String {
    let bytes: [u8; 32] = crate::random_bytes();
    format!(
        "{SECRET_PREFIX}{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

/// Checks a webhook URL: `https://host[:port]/path` with no user information, or, with
/// `allow_http`, `http://` to a loopback address (`127.0.0.0/8`, `::1`, `localhost`) for a
/// receiver on the CA's own host. Anything else is `invalid_webhook_url`.
pub(super) fn check_url(url: &str, allow_http: bool) -> Result<(), AuthorityError> {
    let refuse = |why: &str| {
        AuthorityError::invalid(
            Code::InvalidWebhookUrl,
            format!("webhook URL {url:?}: {why}"),
        )
    };
    if url.len() > MAX_URL_LEN {
        return Err(refuse("longer than 2048 characters"));
    }
    let uri: http::Uri = url.parse().map_err(|_| refuse("not a URL"))?;
    let authority = uri.authority().ok_or_else(|| refuse("no host"))?;
    if authority.as_str().contains('@') {
        return Err(refuse("user information is not allowed"));
    }
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    if host.is_empty() {
        return Err(refuse("no host"));
    }
    match uri.scheme_str() {
        Some("https") => Ok(()),
        Some("http") if !allow_http => Err(refuse(
            "https only (plain http needs allow_http, to a loopback address)",
        )),
        Some("http") => {
            let loopback = host.eq_ignore_ascii_case("localhost")
                || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
            if loopback {
                Ok(())
            } else {
                Err(refuse("plain http is allowed to a loopback address only"))
            }
        }
        _ => Err(refuse("https only")),
    }
}

impl Authority {
    /// Adds a webhook to a tenant; the answer holds its secret, shown this once.
    pub async fn add_webhook(
        &self,
        admin: &Admin,
        request: NewWebhook,
    ) -> Result<(WebhookRecord, Secret<String>), AuthorityError> {
        if request.events.is_empty() {
            return Err(AuthorityError::invalid(
                Code::InvalidRequest,
                "name at least one event",
            ));
        }
        check_url(&request.url, request.allow_http)?;
        let tenant = self.existing_tenant(&request.tenant).await?;
        let secret = new_secret();
        let now = self.now();
        let stored = StoredWebhook {
            tenant_id: tenant.id,
            url: request.url.clone(),
            events: request.events.clone(),
            secret: secret.clone(),
            allow_http: request.allow_http,
            created_by: admin.actor(),
            created_at: now,
        };
        let event = self.event(
            &stored.created_by,
            AuditAction::WebhookAdd,
            Some(request.tenant.as_str()),
            None,
            serde_json::json!({
                "url": request.url,
                "events": request.events.iter().map(|e| e.as_str()).collect::<Vec<_>>(),
                "allow_http": request.allow_http,
            }),
        );
        let id = self.store.insert_webhook(&stored, &event).await?;
        let record = WebhookRecord {
            id,
            tenant: request.tenant,
            url: stored.url,
            events: stored.events,
            created_by: stored.created_by,
            created_at: crate::store::whole_second(now),
        };
        Ok((record, secret.into()))
    }

    /// The webhooks of a tenant (or all), without their secrets.
    pub async fn webhooks(
        &self,
        _admin: &Admin,
        tenant: Option<&TenantName>,
    ) -> Result<Vec<WebhookRecord>, AuthorityError> {
        let tenant_id = match tenant {
            Some(name) => Some(self.existing_tenant(name).await?.id),
            None => None,
        };
        Ok(self
            .store
            .webhooks(tenant_id)
            .await?
            .into_iter()
            .map(|row| row.webhook)
            .collect())
    }

    /// Removes a webhook: its undelivered messages are dropped, none is sent any more.
    pub async fn remove_webhook(&self, admin: &Admin, id: i64) -> Result<(), AuthorityError> {
        let row = self
            .store
            .webhook(id)
            .await?
            .ok_or(AuthorityError::NotFound("webhook"))?;
        let event = self.event(
            &admin.actor(),
            AuditAction::WebhookRemove,
            Some(row.webhook.tenant.as_str()),
            Some(id.to_string()),
            serde_json::json!({ "url": row.webhook.url }),
        );
        if !self.store.remove_webhook(id, event.at, &event).await? {
            return Err(AuthorityError::NotFound("webhook"));
        }
        Ok(())
    }

    /// The newest messages to webhooks (of a tenant, or all) and how their delivery went.
    pub async fn webhook_deliveries(
        &self,
        _admin: &Admin,
        query: &WebhookQuery,
    ) -> Result<Vec<DeliveryRecord>, AuthorityError> {
        let limit = query.limit.unwrap_or(DEFAULT_DELIVERIES);
        if !(1..=MAX_DELIVERIES).contains(&limit) {
            return Err(AuthorityError::invalid(
                Code::InvalidRequest,
                format!("limit must be 1 to {MAX_DELIVERIES}"),
            ));
        }
        let tenant_id = match &query.tenant {
            Some(name) => Some(self.existing_tenant(name).await?.id),
            None => None,
        };
        Ok(self.store.deliveries(tenant_id, limit).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::check_url;

    #[test]
    fn webhook_urls_are_https_or_loopback_http_by_name() {
        assert!(check_url("https://hooks.example.com/latchkey", false).is_ok());
        assert!(check_url("https://10.0.0.5:8443/", false).is_ok());
        assert!(check_url("http://127.0.0.1:9000/hook", true).is_ok());
        assert!(check_url("http://[::1]:9000/hook", true).is_ok());
        assert!(check_url("http://localhost/hook", true).is_ok());
        for (url, allow_http) in [
            ("http://127.0.0.1:9000/hook", false),
            ("http://hooks.example.com/", true),
            ("http://10.0.0.5/", true),
            ("ftp://hooks.example.com/", true),
            ("https://user:pass@hooks.example.com/", false),
            ("hooks.example.com/path", false),
            ("https:///path", false),
        ] {
            let err = check_url(url, allow_http).unwrap_err();
            assert_eq!(err.code(), crate::api::Code::InvalidWebhookUrl, "{url}");
        }
    }

    #[test]
    fn secrets_are_whsec_and_32_bytes_of_base64() {
        use base64::Engine;
        let secret = super::new_secret();
        let key = secret.strip_prefix("whsec_").unwrap();
        assert_eq!(
            base64::engine::general_purpose::STANDARD
                .decode(key)
                .unwrap()
                .len(),
            32
        );
        assert_ne!(secret, super::new_secret());
    }
}
