//! The webhook vocabulary: which key changes a tenant's endpoints are told of, the endpoints
//! as an administrator sees them, and each message's delivery.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use time::OffsetDateTime;

use super::{KeyId, TenantName};

/// A key change a webhook can be told of: the `type` of the message sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WebhookEvent {
    /// A key and its first certificate were issued.
    KeyIssued,
    /// A key got a new certificate (renewal or rekey).
    KeyRenewed,
    /// A key was revoked (alone, or in a bulk revocation).
    KeyRevoked,
    /// A key's end is within one of the CA's notice lead times (`serve --expiry-notice`).
    KeyExpiring,
}

/// A string that is not a [`WebhookEvent`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown webhook event {0:?}: use key.issued, key.renewed, key.revoked or key.expiring")]
pub struct WebhookEventError(pub String);

impl WebhookEvent {
    /// Every event, in the order they are documented.
    pub const ALL: [WebhookEvent; 4] = [
        Self::KeyIssued,
        Self::KeyRenewed,
        Self::KeyRevoked,
        Self::KeyExpiring,
    ];

    /// The name in messages, in the API and in the store.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::KeyIssued => "key.issued",
            Self::KeyRenewed => "key.renewed",
            Self::KeyRevoked => "key.revoked",
            Self::KeyExpiring => "key.expiring",
        }
    }
}

impl fmt::Display for WebhookEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for WebhookEvent {
    type Err = WebhookEventError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|e| e.as_str() == s)
            .ok_or_else(|| WebhookEventError(s.to_owned()))
    }
}

deserialize_from_str!(WebhookEvent);

impl serde::Serialize for WebhookEvent {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// The events one webhook takes: a set, stored as `,key.issued,key.revoked,` so that one
/// `LIKE '%,key.issued,%'` finds the webhooks of an event.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct WebhookEvents(BTreeSet<WebhookEvent>);

impl WebhookEvents {
    /// True when it names no event.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// True when it takes `event`.
    pub fn contains(&self, event: WebhookEvent) -> bool {
        self.0.contains(&event)
    }

    /// The events, in order.
    pub fn iter(&self) -> impl Iterator<Item = WebhookEvent> + '_ {
        self.0.iter().copied()
    }

    /// The stored form: every event between commas, with a comma at each end.
    pub fn to_stored(&self) -> String {
        let mut out = String::from(",");
        for event in &self.0 {
            out.push_str(event.as_str());
            out.push(',');
        }
        out
    }

    /// The pattern that finds the stored sets holding `event`.
    pub fn like_pattern(event: WebhookEvent) -> String {
        format!("%,{event},%")
    }

    /// Reads the stored form back.
    pub fn from_stored(stored: &str) -> Result<Self, WebhookEventError> {
        stored
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map(Self)
    }
}

impl FromIterator<WebhookEvent> for WebhookEvents {
    fn from_iter<I: IntoIterator<Item = WebhookEvent>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

impl FromStr for WebhookEvents {
    type Err = WebhookEventError;

    /// A comma-separated list, as the command line takes it (`key.issued,key.revoked`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_stored(s)
    }
}

/// A webhook as an administrator sees it: never its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookRecord {
    /// Its id.
    pub id: i64,
    /// The tenant whose key changes it is told of.
    pub tenant: TenantName,
    /// Where messages are POSTed.
    pub url: String,
    /// What it is told of.
    pub events: WebhookEvents,
    /// Who added it (an audit actor).
    pub created_by: String,
    /// When it was added.
    pub created_at: OffsetDateTime,
}

/// Where one message to one webhook stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Not yet answered with a 2xx; another attempt is due at `next_attempt_at`.
    Pending,
    /// Answered with a 2xx.
    Delivered,
    /// Given up after the last attempt.
    Failed,
}

impl DeliveryStatus {
    /// The name in the API.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }
}

/// One message to one webhook and how its delivery went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRecord {
    /// The message id (`webhook-id` header), the same on every attempt.
    pub message_id: String,
    /// The webhook.
    pub webhook_id: i64,
    /// The key's tenant.
    pub tenant: TenantName,
    /// What happened.
    pub event: WebhookEvent,
    /// The key it happened to.
    pub key_id: KeyId,
    /// When it happened.
    pub occurred_at: OffsetDateTime,
    /// Attempts made so far.
    pub attempts: i64,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// When the next attempt is due, while pending.
    pub next_attempt_at: Option<OffsetDateTime>,
    /// When it was delivered or given up.
    pub finished_at: Option<OffsetDateTime>,
    /// The HTTP status of the last attempt, if one was answered.
    pub last_status: Option<u16>,
    /// Why the last attempt failed, if it did.
    pub last_error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_sets_round_trip_through_their_stored_form() {
        let events: WebhookEvents = "key.revoked,key.issued".parse().unwrap();
        assert_eq!(events.to_stored(), ",key.issued,key.revoked,");
        assert_eq!(
            WebhookEvents::from_stored(&events.to_stored()).unwrap(),
            events
        );
        assert!(events.contains(WebhookEvent::KeyIssued));
        assert!(!events.contains(WebhookEvent::KeyExpiring));
        assert_eq!(
            WebhookEvents::like_pattern(WebhookEvent::KeyRevoked),
            "%,key.revoked,%"
        );
    }

    #[test]
    fn unknown_events_are_refused() {
        assert!("key.issued,key.deleted".parse::<WebhookEvents>().is_err());
        assert!("KEY.ISSUED".parse::<WebhookEvent>().is_err());
    }
}
