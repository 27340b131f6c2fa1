//! Keyset paging, the same for every list: newest first, a page size within bounds, and a
//! cursor that is the public id of the last row given out (a key id, an audit event id), so
//! that it tells the caller nothing it was not already shown. Each list turns that id back
//! into a position in the store, and refuses an id the caller could not have been given.

use super::AuthorityError;
use crate::api::Code;

/// A requested page.
#[derive(Debug, Clone, Copy)]
pub(super) struct Page {
    /// How many rows to give out.
    pub(super) limit: i64,
}

impl Page {
    /// Checks `limit` (1 to `max`, default `default`).
    pub(super) fn parse(
        limit: Option<i64>,
        default: i64,
        max: i64,
    ) -> Result<Self, AuthorityError> {
        let limit = limit.unwrap_or(default);
        if !(1..=max).contains(&limit) {
            return Err(AuthorityError::invalid(
                Code::InvalidRequest,
                format!("limit must be 1 to {max}"),
            ));
        }
        Ok(Self { limit })
    }

    /// How many rows to fetch: one more than the page tells whether another page exists.
    pub(super) fn fetch(&self) -> i64 {
        self.limit + 1
    }

    /// Cuts fetched `rows` to the page and returns the next page's cursor (the last row's
    /// public id), if there is one.
    pub(super) fn finish<T>(&self, rows: &mut Vec<T>, id: impl Fn(&T) -> String) -> Option<String> {
        if rows.len() as i64 <= self.limit {
            return None;
        }
        rows.truncate(self.limit as usize);
        rows.last().map(id)
    }
}

/// The cursor given, or none for the first page.
pub(super) fn given(cursor: Option<&str>) -> Option<&str> {
    cursor.filter(|c| !c.is_empty())
}

/// The one answer for a cursor this API did not give to this caller: malformed, unknown and
/// another tenant's are indistinguishable, so a cursor cannot probe for ids.
pub(super) fn invalid_cursor() -> AuthorityError {
    AuthorityError::invalid(Code::InvalidRequest, "cursor is not one this API gave out")
}
