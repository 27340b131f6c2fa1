//! Statements with optional conditions. Only fixed fragments are concatenated and every
//! value is bound; placeholders are numbered in the order the fragments are added, which is
//! the order the caller binds in (and the first-use order SQLite requires).

/// A statement under construction.
pub(super) struct Statement {
    sql: String,
    placeholders: usize,
}

impl Statement {
    /// Starts from fixed SQL without placeholders.
    pub(super) fn new(sql: &str) -> Self {
        Self {
            sql: sql.to_owned(),
            placeholders: 0,
        }
    }

    /// Appends a fragment; each `$?` in it becomes the next placeholder.
    pub(super) fn push(&mut self, fragment: &str) -> &mut Self {
        let mut parts = fragment.split("$?");
        if let Some(first) = parts.next() {
            self.sql.push_str(first);
        }
        for part in parts {
            self.placeholders += 1;
            self.sql.push('$');
            self.sql.push_str(&self.placeholders.to_string());
            self.sql.push_str(part);
        }
        self
    }

    /// The finished SQL.
    pub(super) fn sql(self) -> sqlx::AssertSqlSafe<String> {
        sqlx::AssertSqlSafe(self.sql)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_in_order() {
        let mut s = Statement::new("SELECT 1 WHERE a");
        s.push(" AND b = $?")
            .push(" AND c BETWEEN $? AND $?")
            .push(" LIMIT $?");
        assert_eq!(
            s.sql().0,
            "SELECT 1 WHERE a AND b = $1 AND c BETWEEN $2 AND $3 LIMIT $4"
        );
    }
}
