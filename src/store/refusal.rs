//! The refusals the database itself raises, typed. Migrations 0005 and 0009 of each engine
//! (`migrations/{sqlite,postgres}/0005_issuance_procedure.sql`, `…/0009_public_key_rule.sql`)
//! check an issuance, and any key certificate's public key, under the database's own locks
//! and abort the statement with a message `latchkey:<name>`; [`Refusal::from_error`] is the
//! one place that reads those messages. A new `RAISE` in a migration needs a variant here,
//! and the test below lists every name the migrations raise.

use super::StoreError;

/// The message prefix of a refusal raised in SQL.
const PREFIX: &str = "latchkey:";

/// Why the database refused a statement of the CA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    /// `latchkey:token_spent`: the enrollment token was used, revoked or expired meanwhile.
    TokenSpent,
    /// `latchkey:disabled`: the tenant or the owner is disabled.
    Disabled,
    /// `latchkey:public_key_in_use`: another key holds this public key.
    PublicKeyInUse,
}

impl Refusal {
    /// Every refusal, with the name its migration raises.
    const ALL: [(Refusal, &'static str); 3] = [
        (Refusal::TokenSpent, "token_spent"),
        (Refusal::Disabled, "disabled"),
        (Refusal::PublicKeyInUse, "public_key_in_use"),
    ];

    /// The refusal `err` carries, if it is one: `Ok(None)` for any other error, and
    /// [`StoreError::Corrupt`] for a `latchkey:` message this build does not know (a
    /// migration newer than the code).
    pub(super) fn from_error(err: &sqlx::Error) -> Result<Option<Self>, StoreError> {
        match err {
            sqlx::Error::Database(db) => Self::from_message(db.message()),
            _ => Ok(None),
        }
    }

    /// The refusal a failed statement's `message` names, as [`Refusal::from_error`] reads
    /// it; for errors of the embedded database's own connections (`embedded.rs`).
    pub(super) fn from_message(message: &str) -> Result<Option<Self>, StoreError> {
        let Some(name) = message.strip_prefix(PREFIX) else {
            return Ok(None);
        };
        Self::ALL
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(refusal, _)| Some(*refusal))
            .ok_or_else(|| StoreError::corrupt("issuances", "refusal", message))
    }
}

impl From<Refusal> for StoreError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::TokenSpent => Self::TokenSpent,
            Refusal::Disabled => Self::Disabled,
            Refusal::PublicKeyInUse => Self::PublicKeyInUse,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `latchkey:` name raised by either engine's migrations is a known refusal, and
    /// every refusal is raised by both.
    #[test]
    fn the_migrations_raise_exactly_the_known_refusals() {
        for (engine, sql) in [
            (
                "sqlite 0005",
                include_str!("../../migrations/sqlite/0005_issuance_procedure.sql"),
            ),
            (
                "postgres 0005",
                include_str!("../../migrations/postgres/0005_issuance_procedure.sql"),
            ),
            (
                "sqlite 0009",
                include_str!("../../migrations/sqlite/0009_public_key_rule.sql"),
            ),
            (
                "postgres 0009",
                include_str!("../../migrations/postgres/0009_public_key_rule.sql"),
            ),
        ] {
            let mut raised: Vec<&str> = sql
                .match_indices("'latchkey:")
                .map(|(at, _)| {
                    let name = &sql[at + 1 + PREFIX.len()..];
                    &name[..name.find('\'').unwrap()]
                })
                // The bare prefix, quoted in a comment.
                .filter(|name| !name.is_empty())
                .collect();
            raised.sort_unstable();
            raised.dedup();
            let mut known: Vec<&str> = Refusal::ALL.iter().map(|(_, n)| *n).collect();
            known.sort_unstable();
            assert_eq!(raised, known, "{engine}");
        }
    }

    /// Against a real database: a raised refusal parses, an unknown one is corrupt, other
    /// errors are not refusals.
    #[tokio::test]
    async fn refusals_parse_from_database_errors() {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect("sqlite::memory:")
            .await
            .unwrap();
        // RAISE works only in a trigger, as in the migrations.
        let messages = [
            "latchkey:public_key_in_use",
            "latchkey:no_such_rule",
            "something else",
        ];
        sqlx::query("CREATE TABLE t (x INTEGER)")
            .execute(&mut conn)
            .await
            .unwrap();
        for (i, message) in messages.iter().enumerate() {
            let sql = format!(
                "CREATE TRIGGER t{i} BEFORE INSERT ON t WHEN NEW.x = {i} \
                 BEGIN SELECT RAISE(ABORT, '{message}'); END"
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&mut conn)
                .await
                .unwrap();
        }
        let mut errors = Vec::new();
        for i in 0..messages.len() as i64 {
            let err = sqlx::query("INSERT INTO t (x) VALUES ($1)")
                .bind(i)
                .execute(&mut conn)
                .await
                .unwrap_err();
            errors.push(err);
        }
        assert_eq!(
            Refusal::from_error(&errors[0]).unwrap(),
            Some(Refusal::PublicKeyInUse)
        );
        assert!(matches!(
            Refusal::from_error(&errors[1]),
            Err(StoreError::Corrupt { .. })
        ));
        assert_eq!(Refusal::from_error(&errors[2]).unwrap(), None);
        assert_eq!(Refusal::from_error(&sqlx::Error::PoolClosed).unwrap(), None);
    }
}
