//! Keyset paging, the same for every list: newest first, a page size within bounds, and an
//! opaque cursor that is the position of the last row given out.

use super::AuthorityError;

/// A requested page.
#[derive(Debug, Clone, Copy)]
pub(super) struct Page {
    /// How many rows to give out.
    pub(super) limit: i64,
    /// Only rows older than this position.
    pub(super) before: Option<i64>,
}

impl Page {
    /// Checks `limit` (1 to `max`, default `default`) and `cursor` (one this API gave out).
    pub(super) fn parse(
        limit: Option<i64>,
        cursor: Option<&str>,
        default: i64,
        max: i64,
    ) -> Result<Self, AuthorityError> {
        let limit = limit.unwrap_or(default);
        if !(1..=max).contains(&limit) {
            return Err(AuthorityError::invalid(
                "invalid_request",
                format!("limit must be 1 to {max}"),
            ));
        }
        let before = match cursor {
            None | Some("") => None,
            Some(c) => Some(c.parse::<i64>().map_err(|_| {
                AuthorityError::invalid("invalid_request", "cursor is not one this API gave out")
            })?),
        };
        Ok(Self { limit, before })
    }

    /// How many rows to fetch: one more than the page tells whether another page exists.
    pub(super) fn fetch(&self) -> i64 {
        self.limit + 1
    }

    /// Cuts fetched `rows` to the page and returns the next page's cursor, if there is one.
    pub(super) fn finish<T>(
        &self,
        rows: &mut Vec<T>,
        position: impl Fn(&T) -> i64,
    ) -> Option<String> {
        if rows.len() as i64 <= self.limit {
            return None;
        }
        rows.truncate(self.limit as usize);
        rows.last().map(|r| position(r).to_string())
    }
}
