//! Global writes: the application's own global tables (an outbox, an audit of its own) written
//! in a tenant's transaction, so that they commit or roll back with the tenant's change.
//!
//! The statement is one `INSERT`, `UPDATE` or `DELETE` on a table declared with
//! [`TenancyBuilder::global_tables`](crate::TenancyBuilder::global_tables), and everything else
//! in it is held to raw SQL's rules (`parse.rs`, `check.rs`): what it reads besides (`SELECT`,
//! `FROM`, `USING`, subqueries, CTEs) only declared global tables, no placeholders (a global
//! write reads no tenant rows), only the allowed built-in functions, operators and casts, no
//! data-modifying CTE, one statement. The table it writes is judged as every table raw SQL
//! names: declared, resolving (with the connection's `search_path`, on the transaction's own
//! connection) to the declared table, a plain or partitioned table without tenant data.
//!
//! A write also runs what the statement does not name: triggers, rules, the actions of
//! foreign keys that reference the table, column defaults and generated columns, check and
//! domain constraints, row-level security policies. Any of them could write a tenant table,
//! so `write_target.sql` refuses a table (or a partition of its tree) with a trigger of the
//! application's, a rule, a foreign key whose action writes the referencing table
//! (`CASCADE`, `SET NULL`, `SET DEFAULT`), an operator class outside `pg_catalog` on an index
//! or a partition key (its support functions run on every key), or an expression (a default,
//! a constraint, an index's expression or predicate, a partition key, a policy, a domain's
//! check reached through the columns' types) that calls what raw SQL may not call: a function
//! outside `allow.rs` (a built-in such as `query_to_xml` runs SQL text that reads any tenant's
//! rows), an operator defined in the database, or `nextval` of a sequence the table does not
//! own. A table that inherits from another is refused too: its rows are read as its parent's,
//! a tenant table's perhaps.
//!
//! A write also reads: the tables its foreign keys reference (the key looked up and locked),
//! and, for a statement that removes rows or sets a referenced key (`DELETE`, an `UPDATE` or
//! upsert setting one), the tables whose foreign keys reference it, every row past their policies (the write fails if
//! any uses the key: a tenant would learn whether another tenant does). Those are held to
//! what the statement may read: declared global tables, so a tenant table is refused.

use sqlx::error::BoxDynError;
use sqlx::postgres::PgArguments;
use sqlx::postgres::types::Oid;
use sqlx::{Arguments, Encode, PgConnection, Postgres, SqlStr, Type};

use super::lex::{Tok, lex};
use super::parse::{Named, Uses};
use super::{Pinned, RawSqlRefusal, RefusalKind, allow, check, lexical, parse};
use crate::ctx::TenantTx;
use crate::{Error, Result, Scope};

const WRITE_TARGET: &str = include_str!("write_target.sql");

/// One write to a global table, in a tenant's transaction. Made by
/// [`TenantTx::write_global`]; bind its `$n` values with [`GlobalWrite::bind`], then
/// [`execute`](GlobalWrite::execute) it.
///
/// ```no_run
/// # async fn demo(tenancy: tenancy_sqlx::Tenancy) -> tenancy_sqlx::Result<()> {
/// // Tenancy::builder().global_tables(["outbox"]) declared the table.
/// let ctx = tenancy.resolve_slug("acme").await?;
/// let mut tx = ctx.begin().await?;
/// // ... the tenant's change, through the repository on `&mut tx` ...
/// let written = tx
///     .write_global("INSERT INTO outbox (tenant_id, topic) VALUES ($1, $2)")
///     .bind(ctx.id().as_uuid())
///     .bind("spin.created")
///     .execute()
///     .await?;
/// assert_eq!(written, 1);
/// tx.commit().await?; // both, or neither
/// # Ok(()) }
/// ```
#[must_use = "a global write does nothing until it is executed"]
pub struct GlobalWrite<'t> {
    tx: &'t mut TenantTx,
    sql: SqlStr,
    args: PgArguments,
    param_types: Vec<Option<Oid>>,
    bind_error: Option<BoxDynError>,
}

impl TenantTx {
    /// Writes one of the application's global tables in this transaction: it commits with the
    /// tenant's change, or rolls back with it.
    ///
    /// `sql` is one `INSERT`, `UPDATE` or `DELETE` (without `RETURNING`) on a table declared
    /// with [`TenancyBuilder::global_tables`](crate::TenancyBuilder::global_tables). What it
    /// reads besides is held to raw SQL's rules (declared global tables only, no placeholders,
    /// the allowed built-ins), and the table must not run anything that could write elsewhere
    /// (triggers, rules, foreign keys that cascade into other tables, defaults or constraints
    /// calling functions defined in the database). See [`GlobalWrite`] for an example.
    ///
    /// For a tenant with a database of its own, the transaction is in that database: the table
    /// must be there.
    pub fn write_global(&mut self, sql: impl sqlx::SqlSafeStr) -> GlobalWrite<'_> {
        GlobalWrite {
            tx: self,
            sql: sql.into_sql_str(),
            args: PgArguments::default(),
            param_types: Vec::new(),
            bind_error: None,
        }
    }
}

impl GlobalWrite<'_> {
    /// Binds the next `$n` parameter.
    ///
    /// ```no_run
    /// # async fn demo(mut tx: tenancy_sqlx::TenantTx) -> tenancy_sqlx::Result<()> {
    /// tx.write_global("UPDATE outbox SET sent = true WHERE id = $1")
    ///     .bind(42_i64)
    ///     .execute()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn bind<T>(mut self, value: T) -> Self
    where
        T: for<'q> Encode<'q, Postgres> + Type<Postgres>,
    {
        // As raw SQL's: the type judged is the type sent, and the encoder sees no other value.
        let ty = value.produces().unwrap_or_else(T::type_info);
        let pinned = Pinned {
            value: crate::bind::Fenced(&value),
            ty: ty.clone(),
        };
        if self.bind_error.is_none() {
            match self.args.add(pinned) {
                Ok(()) => self.param_types.push(ty.oid()),
                Err(e) => self.bind_error = Some(e),
            }
        }
        self
    }

    /// Checks the statement and runs it in the transaction; the number of rows it wrote.
    ///
    /// ```no_run
    /// # async fn demo(mut tx: tenancy_sqlx::TenantTx) -> tenancy_sqlx::Result<()> {
    /// let gone = tx.write_global("DELETE FROM outbox WHERE sent").execute().await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::UnscopedSql`] if the statement is not one write of a declared global table
    /// that the check can read with certainty, or could write anything else; nothing is sent
    /// then. [`Error::Encode`] for a value that cannot be bound. [`Error::Database`] if the
    /// server refuses the statement (the transaction is then aborted, and its `commit` returns
    /// [`Error::TransactionAborted`]).
    pub async fn execute(self) -> Result<u64> {
        if let Some(e) = self.bind_error {
            return Err(Error::Encode(e));
        }
        let sql = self.sql.as_str();
        lexed(sql, self.args.len())?;
        // Judged by the connection's database: an own-database tenant's tables are its own.
        let key = format!(
            "global write\n{:?}\n{sql}\n{:?}",
            self.tx.ctx.home().database(),
            self.param_types
        );
        let mut unit = (&mut *self.tx).open()?;
        let rt = unit.runtime();
        if rt.raw.verdicts.get(&key).is_none() {
            let (target, uses, changes) = parse::read_write(sql)?;
            // What the statement names first (a tenant table is refused as one), then what
            // writing its table runs; the verdict is kept once both pass.
            let tenant_columns = [tenancy_core::DEFAULT_TENANT_COLUMN.to_owned()];
            check::catalog(
                &mut unit,
                None,
                &uses,
                &[],
                &tenant_columns,
                &self.param_types,
            )
            .await?;
            target_runs_nothing_else(&mut unit, &target, changes.as_deref()).await?;
            rt.raw.verdicts.put(key, false);
        }
        let persistent = rt.persistent;
        let args = self.args;
        let sql = self.sql;
        unit.with_conn(async |conn: &mut PgConnection| {
            Ok(sqlx::query_with(sql, args)
                .persistent(persistent)
                .execute(conn)
                .await?
                .rows_affected())
        })
        .await
    }
}

/// The lexical checks: one statement read one way, no placeholders, every `$n` bound.
fn lexed(sql: &str, bound: usize) -> Result<()> {
    let tokens = lex(sql).map_err(lexical)?;
    for (n, t) in tokens.iter().enumerate() {
        match &t.tok {
            Tok::Placeholder(name) => {
                return Err(RawSqlRefusal::new(
                    RefusalKind::Placeholder,
                    Some(name),
                    format!(
                        "a global write names {{{name}}}, but it reads no tenant's rows: it \
                         writes only tables every tenant shares"
                    ),
                    "write the tenant's rows through the repository on the same TenantTx, and \
                     bind the values the global table needs",
                )
                .into());
            }
            Tok::Param(p) if *p == 0 || *p as usize > bound => {
                return Err(RawSqlRefusal::new(
                    RefusalKind::Parameter,
                    Some(&format!("${p}")),
                    format!("the SQL uses ${p} but {bound} value(s) are bound"),
                    "bind a value for each $n, in order, with .bind(..)",
                )
                .into());
            }
            Tok::Semi if n + 1 < tokens.len() => {
                return Err(lexical("a second statement after ';'".into()));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Refuses a target that runs something the statement does not show (see the module docs).
/// Run after the catalog check, which refused a name that does not resolve to a declared
/// global table.
async fn target_runs_nothing_else(
    unit: &mut crate::unit::TenantUnit<'_>,
    target: &Named,
    changes: Option<&[String]>,
) -> Result<()> {
    let mut name = String::new();
    if let Some(s) = &target.schema {
        tenancy_core::ident::push_quoted(&mut name, s);
        name.push('.');
    }
    tenancy_core::ident::push_quoted(&mut name, &target.name);
    let persistent = unit.runtime().persistent;
    // What the table runs calls what raw SQL may call: the allowed functions, and casts to the
    // allowed types (a cast's function is named for its type).
    let callable: Vec<&str> = allow::FUNCTIONS
        .iter()
        .chain(allow::TYPES)
        .copied()
        .collect();
    let found: Vec<(String, String, String)> = unit
        .with_conn(async |conn: &mut PgConnection| {
            Ok(sqlx::query_as(WRITE_TARGET)
                .bind(&name)
                .bind(&callable)
                .bind(changes)
                .persistent(persistent)
                .fetch_all(conn)
                .await?)
        })
        .await?;
    let mut reads = Uses::default();
    for (kind, a, b) in found {
        if kind != "reads" {
            return Err(runs(&a, &b, target));
        }
        reads.relations.push(Named {
            schema: Some(a),
            name: b,
        });
    }
    // The tables it reads (its foreign keys' references, a policy's subquery, the tables whose
    // keys reference it when it changes rows) are held to what the statement may read:
    // declared global tables without tenant data.
    if !reads.relations.is_empty() {
        let tenant_columns = [tenancy_core::DEFAULT_TENANT_COLUMN.to_owned()];
        check::catalog(unit, None, &reads, &[], &tenant_columns, &[]).await?;
    }
    Ok(())
}

/// The refusal of a target that runs `what` when `table` (of its tree) is written.
fn runs(table: &str, what: &str, target: &Named) -> Error {
    RawSqlRefusal::new(
        RefusalKind::WriteTarget,
        Some(&target.name),
        format!(
            "writing {table} also runs {what}, which could write tables the statement does \
                 not name, tenant tables among them"
        ),
        "write the global table from a migration or an administrative connection, or drop \
             what runs on it (a trigger, rule or cascading foreign key, or a function defined \
             in the database)",
    )
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(sql: &str, bound: usize) -> RefusalKind {
        let r = lexed(sql, bound).and_then(|()| Ok(parse::read_write(sql)?));
        match r {
            Err(Error::UnscopedSql(r)) => r.kind(),
            other => panic!("{sql:?} was not refused: {other:?}"),
        }
    }

    #[test]
    fn says_which_keys_a_write_may_change() {
        let cols = |c: &[&str]| Some(c.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>());
        for (sql, changes) in [
            ("INSERT INTO outbox (topic) VALUES ($1)", cols(&[])),
            (
                "INSERT INTO outbox (topic) VALUES ($1) ON CONFLICT DO NOTHING",
                cols(&[]),
            ),
            (
                "INSERT INTO outbox (topic) VALUES ($1) ON CONFLICT (topic) DO UPDATE SET sent = true",
                cols(&["sent"]),
            ),
            (
                "UPDATE outbox SET sent = true, \"Topic\" = 'x'",
                cols(&["sent", "Topic"]),
            ),
            ("DELETE FROM outbox", None),
        ] {
            assert_eq!(parse::read_write(sql).unwrap().2, changes, "{sql}");
        }
    }

    #[test]
    fn reads_the_table_a_write_changes() {
        for (sql, schema, name) in [
            ("INSERT INTO outbox (topic) VALUES ($1)", None, "outbox"),
            (
                "UPDATE public.outbox o SET sent = true",
                Some("public"),
                "outbox",
            ),
            ("DELETE FROM \"Outbox\" WHERE sent", None, "Outbox"),
            (
                "INSERT INTO outbox (id) VALUES (1) ON CONFLICT (id) DO UPDATE SET n = excluded.n",
                None,
                "outbox",
            ),
        ] {
            let (target, uses, _) = parse::read_write(sql).unwrap();
            assert_eq!(target.schema.as_deref(), schema, "{sql}");
            assert_eq!(target.name, name, "{sql}");
            assert!(uses.relations.contains(&target), "{sql}");
        }
    }

    #[test]
    fn refuses_what_is_not_one_plain_write() {
        for (sql, bound, want) in [
            ("SELECT 1", 0, RefusalKind::Statement),
            ("SET search_path = t_acme", 0, RefusalKind::Statement),
            ("COPY outbox FROM STDIN", 0, RefusalKind::Statement),
            (
                "DO $$ BEGIN DELETE FROM spins; END $$",
                0,
                RefusalKind::Statement,
            ),
            ("TRUNCATE outbox", 0, RefusalKind::Statement),
            (
                "MERGE INTO outbox o USING plans p ON true WHEN MATCHED THEN DELETE",
                0,
                RefusalKind::Statement,
            ),
            (
                "INSERT INTO outbox VALUES (1); DELETE FROM spins",
                0,
                RefusalKind::Lexical,
            ),
            (
                "INSERT INTO outbox VALUES (1) RETURNING *",
                0,
                RefusalKind::Construct,
            ),
            (
                "WITH d AS (DELETE FROM spins RETURNING id) INSERT INTO outbox SELECT id FROM d",
                0,
                RefusalKind::Statement,
            ),
            (
                "INSERT INTO outbox SELECT * FROM {spins}",
                0,
                RefusalKind::Placeholder,
            ),
            ("INSERT INTO outbox VALUES ($2)", 1, RefusalKind::Parameter),
            (
                "INSERT INTO tenancy.audit_log VALUES (1)",
                0,
                RefusalKind::TenantSchema,
            ),
            (
                "DELETE FROM pg_catalog.pg_class",
                0,
                RefusalKind::SystemView,
            ),
            (
                "INSERT INTO outbox VALUES (nextval('s'))",
                0,
                RefusalKind::Function,
            ),
            (
                "INSERT INTO outbox VALUES (public.evil())",
                0,
                RefusalKind::Function,
            ),
            (
                "INSERT INTO outbox VALUES (E'\\x' U&'d')",
                0,
                RefusalKind::Lexical,
            ),
            (
                "INSERT INTO db.public.outbox VALUES (1)",
                0,
                RefusalKind::Construct,
            ),
        ] {
            assert_eq!(kind(sql, bound), want, "{sql}");
        }
    }

    #[test]
    fn a_cte_does_not_hide_the_table_written() {
        // PostgreSQL writes the table `spins`, whatever a CTE of that name holds.
        let (target, uses, _) =
            parse::read_write("WITH spins AS (SELECT 1) INSERT INTO spins VALUES (1)").unwrap();
        assert_eq!(target.name, "spins");
        assert_eq!(uses.relations, [target]);
        // What it reads through the CTE is the CTE; other tables are named for the catalog.
        let (_, uses, _) = parse::read_write(
            "WITH p AS (SELECT * FROM plans) UPDATE outbox SET n = p.n FROM p, rates r",
        )
        .unwrap();
        let names: Vec<&str> = uses.relations.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["plans", "outbox", "rates"]);
    }
}
