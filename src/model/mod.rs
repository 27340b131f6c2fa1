//! The vocabulary of latchkey: identifiers parsed once at the edge, scopes, serials (the
//! certificate profile is [`crate::profile`]). Everything here is plain data, shared by the
//! server, the relying-service verifier and the client; none of it touches the network, the
//! store or a signing key.

mod ip_net;
mod key_id;
mod name;
mod reason;
#[cfg(feature = "server")]
mod record;
mod scope;
mod serial;
mod source;
#[cfg(feature = "server")]
mod tenant_id;
#[cfg(feature = "server")]
pub mod text;

pub use ip_net::{IpNet, IpNetError};
pub use key_id::KeyId;
pub use name::{NameError, OwnerName, TenantName, UserRef};
pub use reason::{ReasonError, RevocationReason};
#[cfg(feature = "server")]
pub use record::{
    AuditRecord, CertificateRecord, IssuedKey, KeyRecord, KeyStatus, KeyView, Listing,
    RevocationCount, TenantRecord, TokenRecord, TokenStatus, TokenView, UserRecord,
};
pub use scope::{MAX_SCOPE_LEN, Scope, ScopeError, ScopeSet};
pub use serial::Serial;
pub use source::SourceNet;
#[cfg(feature = "server")]
pub use tenant_id::TenantId;
