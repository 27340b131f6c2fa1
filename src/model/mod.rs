//! The vocabulary of latchkey: identifiers parsed once at the edge, scopes, serials, durations (the
//! certificate profile is [`crate::profile`]). Everything here is plain data, shared by the
//! server, the relying-service verifier and the client; none of it touches the network, the
//! store or a signing key.

/// `Deserialize` for a type whose wire form is the string its `FromStr` reads: a string that
/// does not parse is refused with the parse error's text, which the edge turns into the
/// field's problem code.
macro_rules! deserialize_from_str {
    ($type:ty) => {
        impl<'de> serde::Deserialize<'de> for $type {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                String::deserialize(d)?
                    .parse()
                    .map_err(serde::de::Error::custom)
            }
        }
    };
}

mod ip_net;
mod key_id;
mod name;
mod reason;
#[cfg(feature = "server")]
mod record;
mod scope;
mod serial;
mod source;
mod span;
#[cfg(feature = "server")]
mod tenant_id;
#[cfg(feature = "server")]
pub mod text;
mod time_ordered;
mod webhook;

pub use ip_net::{IpNet, IpNetError};
pub use key_id::KeyId;
pub use name::{NameError, OwnerName, TenantName, UserRef};
pub use reason::{ReasonError, RevocationReason};
#[cfg(feature = "server")]
pub use record::{
    AuditRecord, CertificateRecord, IssuedKey, IssuerKeyLocation, KeyCounts, KeyRecord, KeyStatus,
    KeyView, Listing, RevocationCount, TenantOverview, TenantRecord, TokenRecord, TokenStatus,
    TokenView, UserRecord,
};
pub use scope::{MAX_SCOPE_LEN, Scope, ScopeError, ScopeSet};
pub use serial::Serial;
pub use source::SourceNet;
pub use span::{Span, SpanError};
#[cfg(feature = "server")]
pub use tenant_id::TenantId;
pub use webhook::{
    DeliveryRecord, DeliveryStatus, WebhookEvent, WebhookEventError, WebhookEvents, WebhookRecord,
};
