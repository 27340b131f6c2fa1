use std::fmt;

/// A tenant's internal id: the store's key for a tenant, which never leaves the CA (the API
/// names tenants by [`super::TenantName`]). A newtype, so that it cannot be passed where a
/// token id, an issuer id or a count is meant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TenantId(i64);

impl TenantId {
    /// The id the store gave a tenant.
    pub fn new(id: i64) -> Self {
        Self(id)
    }

    /// The number, to bind in a statement.
    pub fn get(self) -> i64 {
        self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
