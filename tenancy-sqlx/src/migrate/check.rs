//! Refusing, before anything runs, migration text that would end or escape the transaction
//! tenancy runs it in: transaction control in any spelling (`BEGIN`, `START TRANSACTION`,
//! `COMMIT`, `END`, `ROLLBACK`, `ABORT`, `PREPARE TRANSACTION`, `COMMIT PREPARED`, savepoints),
//! `CALL` (a procedure may commit) and `DO` blocks that commit.
//!
//! This check gives the clear error, naming the file and the line. It is not what holds the
//! line: every migration runs inside a PL/pgSQL `EXECUTE` ([`super::apply`]), where PostgreSQL
//! itself refuses transaction control, so a spelling this check misses (or text it cannot read
//! with certainty, which it lets through) still cannot commit.

use crate::raw::lex::lex;
use crate::raw::split::{Statement, statements, word};
use crate::{Error, Migration, Migrations, Result};

impl Migrations {
    /// Refuses the first migration whose text would end or escape the transaction tenancy
    /// runs it in: transaction control in any spelling, `CALL`, a `DO` block that commits.
    /// Every call that runs migrations checks this first, before anything runs; call it
    /// yourself to fail at startup or in a unit test.
    ///
    /// ```
    /// use tenancy_sqlx::{Error, Migrations};
    /// let m = Migrations::from_static(&[(1, "plans", "CREATE TABLE plans (id int);\nCOMMIT;")])?;
    /// match m.check_runnable() {
    ///     Err(Error::MigrationRefused { file, line, .. }) => assert_eq!((file.as_str(), line), ("1_plans.sql", 2)),
    ///     other => panic!("{other:?}"),
    /// }
    /// # Ok::<(), tenancy_sqlx::Error>(())
    /// ```
    ///
    /// Text it cannot read with certainty (a backslash in a `'...'` string) passes; PostgreSQL
    /// still refuses any transaction control in it when it runs.
    ///
    /// # Errors
    /// [`Error::MigrationRefused`] naming the file, the line and why.
    pub fn check_runnable(&self) -> Result<()> {
        self.iter().try_for_each(check)
    }
}

/// Refuses `m` if a statement of it is transaction control, a `CALL`, or a `DO` block that
/// commits.
fn check(m: &Migration) -> Result<()> {
    // Text the lexer cannot read with certainty is left to PostgreSQL's refusal (see above):
    // refusing it here would refuse legitimate migrations (a backslash in a regex literal).
    let Ok(tokens) = lex(&m.sql) else {
        return Ok(());
    };
    for stmt in statements(&m.sql, &tokens) {
        if let Some(reason) = refusal(&m.sql, &stmt) {
            return Err(Error::MigrationRefused {
                file: m.file.clone(),
                line: m.sql[..stmt.text.start].matches('\n').count() + 1,
                reason,
            });
        }
    }
    Ok(())
}

/// Why `stmt` is refused, if it is.
fn refusal(sql: &str, stmt: &Statement<'_>) -> Option<String> {
    let first = word(&stmt.tokens[0])?;
    let second = stmt.tokens.get(1).and_then(word);
    let upper = first.to_ascii_uppercase();
    let ends = "ends the transaction tenancy runs each migration in";
    Some(match (first, second) {
        ("begin" | "start", _) => format!(
            "{upper} opens a transaction, and tenancy already runs each migration in one; \
             remove it"
        ),
        ("commit" | "end" | "rollback" | "abort", _) => {
            format!("{upper} {ends}; remove it (the migration commits with its history row)")
        }
        ("prepare", Some("transaction")) => format!("PREPARE TRANSACTION {ends}; remove it"),
        ("savepoint" | "release", _) => {
            format!("{upper} acts on the transaction tenancy runs each migration in; remove it")
        }
        ("call", _) => "CALL runs a procedure, which may commit the transaction tenancy runs \
                        each migration in; write its statements in the migration instead"
            .to_owned(),
        ("do", _) if mentions_transaction_control(&sql[stmt.text.clone()]) => format!(
            "this DO block may commit or roll back (COMMIT, ROLLBACK or CALL in its body), which \
             {ends}; remove that statement"
        ),
        _ => return None,
    })
}

/// Whether a `DO` block's text names COMMIT, ROLLBACK or CALL as a word, in any case.
fn mentions_transaction_control(text: &str) -> bool {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '$'))
        .any(|w| {
            ["commit", "rollback", "call"]
                .iter()
                .any(|k| w.eq_ignore_ascii_case(k))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(sql: &str) -> Option<usize> {
        match check(&Migration::new(1, "t", sql)) {
            Ok(()) => None,
            Err(Error::MigrationRefused { line, .. }) => Some(line),
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn finds_transaction_control_in_any_spelling() {
        assert_eq!(refused("SELECT 1;\n  commit"), Some(2));
        assert_eq!(refused("/* x */ RollBack TO SAVEPOINT a"), Some(1));
        assert_eq!(refused("select 1;\n\n--c\nEND WORK"), Some(4));
        assert_eq!(refused("do $x$ begin Commit; end $x$"), Some(1));
        assert_eq!(refused("prepare transaction 'x'"), Some(1));
        assert_eq!(refused("PREPARE q AS SELECT 1"), None);
    }

    #[test]
    fn leaves_bodies_and_strings_alone() {
        assert_eq!(refused("SELECT 'COMMIT'; SELECT \"commit\" FROM t"), None);
        assert_eq!(
            refused(
                "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END; SELECT 2"
            ),
            None
        );
        assert_eq!(
            refused(
                "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END; COMMIT"
            ),
            Some(1)
        );
        assert_eq!(
            refused("CREATE RULE r AS ON INSERT TO t DO ALSO (NOTIFY a; NOTIFY b)"),
            None
        );
    }
}
