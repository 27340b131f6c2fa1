//! An issuance flattened into the values its record is made of, once, for both writers.

use super::Issuance;
use crate::model::{Serial, WebhookEvent};
use crate::store::rows::seconds;
use crate::store::webhooks;

/// An issuance as the values both engines record, in the order of SQLite's `issuances` view
/// and named as `latchkey_issue_once`'s parameters on PostgreSQL, which reads them as a
/// JSON object (the DER in hex), serialized straight from the issuance's fields.
#[derive(serde::Serialize)]
pub(super) struct IssuanceValues<'a> {
    pub(super) key_id: &'a str,
    pub(super) tenant_id: i64,
    pub(super) owner: &'a str,
    pub(super) name: &'a str,
    pub(super) description: &'a str,
    pub(super) scopes: String,
    pub(super) created_at: i64,
    pub(super) expires_at: i64,
    pub(super) token_id: Option<i64>,
    pub(super) used_at: i64,
    pub(super) serial: Serial,
    pub(super) issuer_id: i64,
    pub(super) subject: &'a str,
    pub(super) public_key_sha256: &'a str,
    pub(super) not_before: i64,
    pub(super) not_after: i64,
    #[serde(serialize_with = "as_hex")]
    pub(super) der: &'a [u8],
    pub(super) recorded_at: i64,
    pub(super) event_at: i64,
    pub(super) actor: &'a str,
    pub(super) action: &'a str,
    pub(super) event_tenant: Option<&'a str>,
    pub(super) target: Option<&'a str>,
    pub(super) detail: String,
    pub(super) webhook_event: &'a str,
    pub(super) webhook_detail: String,
}

impl<'a> IssuanceValues<'a> {
    /// The values of `issuance`.
    pub(super) fn of(
        Issuance {
            key,
            certificate: c,
            token,
            now,
            event,
        }: &'a Issuance,
    ) -> Self {
        Self {
            key_id: key.id.as_str(),
            tenant_id: key.tenant_id.get(),
            owner: key.owner.as_str(),
            name: &key.name,
            description: &key.description,
            scopes: key.scopes.to_stored(),
            created_at: seconds(key.created_at),
            expires_at: seconds(key.expires_at),
            token_id: token.map(|t| t.token_id),
            used_at: seconds(*now),
            serial: c.serial,
            issuer_id: c.issuer_id,
            subject: &c.subject,
            public_key_sha256: &c.public_key_sha256,
            not_before: seconds(c.not_before),
            not_after: seconds(c.not_after),
            der: &c.der,
            recorded_at: seconds(c.created_at),
            event_at: seconds(event.at),
            actor: &event.actor,
            action: event.action,
            event_tenant: event.tenant.as_deref(),
            target: event.target.as_deref(),
            detail: event.detail.to_string(),
            webhook_event: WebhookEvent::KeyIssued.as_str(),
            webhook_detail: webhooks::issued_detail(key, c).to_string(),
        }
    }
}

/// The DER as PostgreSQL's `decode(…, 'hex')` reads it.
fn as_hex<S: serde::Serializer>(der: &&[u8], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&hex::encode(der))
}
