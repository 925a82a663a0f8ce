//! The raw-SQL escape hatch, still scoped to the tenant.
//!
//! The user's SQL names each model's relation with a placeholder, `{table}`. Each placeholder
//! becomes a common table expression holding only the tenant's rows (on the tenant's schema,
//! for an own-schema tenant):
//!
//! ```text
//! SELECT s.* FROM {spins} s WHERE s.duration > $1
//!   => WITH "tenancy_scoped_spins" AS (SELECT * FROM "spins" WHERE "tenant_id" = $2)
//!      SELECT s.* FROM "tenancy_scoped_spins" s WHERE s.duration > $1
//! ```
//!
//! # The rule
//!
//! The SQL reaches tenant data through placeholders only. It is lexed (strings, comments,
//! dollar quotes and quoted identifiers as PostgreSQL reads them) and **every identifier is
//! checked, wherever it stands** (a table, a qualifier, a function, a column, an alias), so a
//! name cannot slip through by its position. It is refused with [`Error::UnscopedSql`] (a
//! [`RawSqlRefusal`]: which name, why, what to do instead), and the statement is not sent,
//! when:
//!
//! - it names a declared model's table (`spins`, `SPINS`, `public.spins`, `"spins"`);
//! - it names any other tenant table: one with a tenant column (`tenant_id`, or a declared
//!   model's), one referencing `tenancy.tenants`, any table in a tenant schema (the registry's
//!   own-schema tenants, spare schemas, any schema named `t_*`); or a view, materialized view
//!   or sequence over one (transitively), or a table whose inheritance children are one;
//! - it names a tenant schema (`t_acme.spins`), or qualifies a name with the registry schema
//!   (`tenancy.tenants`);
//! - it names a function that runs SQL given as text or reads tables by name
//!   (`query_to_xml`, `cursor_to_xml`, `table_to_xml`, `schema_to_xml`, `database_to_xml` and
//!   their `*schema` forms, `ts_stat`, `ts_rewrite`, `dblink*`), reads raw storage
//!   (`pg_read_file`, `pg_logical_slot_*_changes` ...), a sequence function (`nextval`,
//!   `currval`, `setval`, `lastval`), `set_config`, or other sessions' statements
//!   (`pg_stat_get_activity`);
//! - it names a function defined in the database (not built in, not an extension's): tenancy
//!   cannot see what its body reads, and such a name could also pick an overload of a
//!   built-in; or a function of an extension that runs SQL text or reads tables by name, raw
//!   storage or other databases (`dblink`, `postgres_fdw`, `tablefunc`, `xml2`,
//!   `pageinspect`, `pgstattuple` ...). Other extensions' functions are allowed;
//! - it names a system view that shows every tenant's values or counts (`pg_stats`,
//!   `pg_stats_ext`, `pg_stat_activity`, `pg_stat_statements`, `pg_stat_user_tables`,
//!   `pg_sequences`, `pg_prepared_statements`, `pg_toast`);
//! - it leaves something on the pooled connection past the statement: `SELECT ... INTO` (a
//!   table of the tenant's rows) or a session-level advisory lock (`pg_advisory_lock` ...;
//!   `pg_advisory_xact_lock` is fine);
//! - it is not lexed with certainty: an unterminated string, comment or quoted identifier,
//!   `U&` escapes, a backslash in a `'...'` string (`standard_conforming_strings` decides where
//!   it ends; use `E'...'`), a stray brace, or a second statement after `;`;
//! - it uses a `$n` that was not bound, a placeholder of a model not declared with
//!   [`Raw::with`], or no placeholder at all.
//!
//! The checks on tenant tables, tenant schemas and user functions ask the catalog about the
//! SQL's identifiers, in one round trip on the scope's connection before the statement runs;
//! nothing is cached, so a table created a moment ago (or in the same transaction) is known.
//! Everything else is lexical and sends nothing. The statement itself always starts with the
//! placeholders' `WITH`, so it can only be a query (or a data-modifying statement on tables it
//! may name): `DO`, `EXECUTE`, `COPY`, `CALL`, `SET` and DDL cannot follow, and `SELECT ... INTO`
//! is refused above.
//!
//! # Limits
//!
//! The check reads names, not meaning. A column or alias that shares a refused name is refused
//! too (rename it). What runs without being named is not seen: user-defined operators, casts
//! and type input functions, triggers and rules on tables the SQL writes, and a tenant table
//! whose tenant column is neither `tenant_id` nor a declared model's and that does not
//! reference `tenancy.tenants`. Row-level security on the tenant tables (planned) is the
//! runtime backstop for what a lexical check cannot see.

mod check;
mod lex;

use std::fmt;
use std::marker::PhantomData;

use futures_util::stream::{BoxStream, StreamExt};
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::{Arguments, Encode, Postgres, SqlStr, Type};

use crate::model::{Built, Model, ModelMeta};
use crate::sql;
use crate::{Error, Result, Scope};
use lex::{Tok, lex};

type Decode<O> = fn(&PgRow) -> std::result::Result<O, sqlx::Error>;

/// Why raw SQL was refused, in [`Error::UnscopedSql`]. Nothing of the statement was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RefusalKind {
    /// The SQL names a declared model's table instead of its `{table}` placeholder.
    DeclaredTable,
    /// The SQL names a tenant table of a model it did not declare, or a view, materialized view
    /// or sequence over a tenant table.
    TenantTable,
    /// The SQL names a tenant schema, or the registry schema `tenancy`.
    TenantSchema,
    /// The SQL names a function that runs SQL text, reads tables by name, reads sequences or
    /// settings shared with other tenants, or is defined in the database (its body is not
    /// seen).
    Function,
    /// The SQL names a system view that shows every tenant's values or statements.
    SystemView,
    /// A `{placeholder}` of a model not declared, or none at all.
    Placeholder,
    /// A `$n` with no bound value.
    Parameter,
    /// The SQL cannot be lexed with certainty (unterminated, `U&` escapes, a backslash in a
    /// `'...'` string, a second statement).
    Lexical,
    /// `SELECT ... INTO`: it creates a table (a temporary one outlives the statement on the
    /// pooled connection) holding the tenant's rows, outside any tenant's scope.
    SelectInto,
}

/// Raw SQL refused by the escape hatch: which name, why, and what to write instead.
///
/// Its `Display` says all three; match on [`RawSqlRefusal::kind`] to handle a kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawSqlRefusal {
    kind: RefusalKind,
    name: Option<String>,
    reason: String,
    hint: String,
}

impl RawSqlRefusal {
    fn new(kind: RefusalKind, name: Option<&str>, reason: String, hint: &str) -> Self {
        Self {
            kind,
            name: name.map(str::to_owned),
            reason,
            hint: hint.to_owned(),
        }
    }

    /// The kind of refusal.
    pub fn kind(&self) -> RefusalKind {
        self.kind
    }

    /// The identifier, placeholder or parameter at fault, as the server would read it
    /// (unquoted names folded to lowercase), if one is.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Why the SQL could reach rows outside the tenant.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// What to write instead.
    pub fn hint(&self) -> &str {
        &self.hint
    }
}

impl fmt::Display for RawSqlRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}; {}", self.reason, self.hint)
    }
}

impl From<RawSqlRefusal> for Error {
    fn from(r: RawSqlRefusal) -> Self {
        Error::UnscopedSql(r)
    }
}

struct Relation {
    meta: &'static ModelMeta,
    model: std::any::TypeId,
}

/// Raw SQL on the tenant's rows of `M` (and of any model added with [`Raw::with`]), decoded as
/// `O`. Made by [`Repo::raw`](crate::Repo::raw) and [`Repo::raw_as`](crate::Repo::raw_as).
///
/// ```ignore
/// let long: Vec<Spin> = Spin::repo()
///     .raw("SELECT s.* FROM {spins} s JOIN {spinners} p ON p.id = s.spinner_id \
///           WHERE p.name = $1 AND s.duration > $2")
///     .with::<Spinner>()
///     .bind("Fidget X")
///     .bind(120)
///     .fetch_all(&ctx)
///     .await?;
/// ```
///
/// The SQL must be a single query; rows are read-only here (use the repository to write).
pub struct Raw<M, O> {
    sql: SqlStr,
    args: PgArguments,
    bind_error: Option<BoxDynError>,
    relations: Vec<Relation>,
    decode: Decode<O>,
    _model: PhantomData<fn() -> M>,
}

impl<M: Model> Raw<M, M> {
    pub(crate) fn for_model(sql: SqlStr) -> Self {
        Self::with_decoder(sql, M::decode_named)
    }
}

impl<M: Model, O> Raw<M, O>
where
    O: for<'r> sqlx::FromRow<'r, PgRow> + Send + Unpin + 'static,
{
    pub(crate) fn from_row(sql: SqlStr) -> Self {
        Self::with_decoder(sql, |row| O::from_row(row))
    }
}

impl<M: Model, O: Send + Unpin + 'static> Raw<M, O> {
    fn with_decoder(sql: SqlStr, decode: Decode<O>) -> Self {
        Self {
            sql,
            args: PgArguments::default(),
            bind_error: None,
            relations: vec![Relation {
                meta: &M::META,
                model: std::any::TypeId::of::<M>(),
            }],
            decode,
            _model: PhantomData,
        }
    }

    /// Binds the next `$n` parameter.
    #[must_use]
    pub fn bind<T>(mut self, value: T) -> Self
    where
        T: for<'q> Encode<'q, Postgres> + Type<Postgres>,
    {
        if self.bind_error.is_none()
            && let Err(e) = self.args.add(crate::bind::Fenced(&value))
        {
            self.bind_error = Some(e);
        }
        self
    }

    /// Declares another tenant-scoped model the SQL reads, as `{its_table}`.
    #[must_use]
    pub fn with<N: Model>(mut self) -> Self {
        if !self.relations.iter().any(|r| r.meta.table == N::META.table) {
            self.relations.push(Relation {
                meta: &N::META,
                model: std::any::TypeId::of::<N>(),
            });
        }
        self
    }

    async fn prepare<'s>(
        self,
        mut exec: crate::ctx::Exec<'s>,
    ) -> Result<(
        crate::ctx::Exec<'s>,
        SqlStr,
        crate::bind::TenantArgs,
        Decode<O>,
    )> {
        exec.check_placement()?;
        if let Some(e) = self.bind_error {
            return Err(Error::Encode(e));
        }
        let mut built = Vec::with_capacity(self.relations.len());
        for r in &self.relations {
            built.push((exec.statements_of(r.model, r.meta).await?, r.meta));
        }
        let args = self.args;
        let rewritten = rewrite(self.sql.as_str(), &built, exec.schema(), args.len())?;
        let mut tenant_columns = vec![DEFAULT_TENANT_COLUMN.to_owned()];
        for r in &self.relations {
            if !tenant_columns.iter().any(|c| c == r.meta.tenant_column) {
                tenant_columns.push(r.meta.tenant_column.to_owned());
            }
        }
        check::catalog(&mut exec, &rewritten.names, &tenant_columns).await?;
        let tenant_at = args.len() + 1;
        let args = crate::bind::finish(args, exec.tenant(), tenant_at)?;
        Ok((exec, sql::text(rewritten.sql), args, self.decode))
    }

    /// Runs the SQL; all rows.
    ///
    /// # Errors
    /// [`Error::UnscopedSql`] if the SQL could reach rows outside the tenant; [`Error::Database`].
    pub async fn fetch_all<'s>(self, scope: impl Scope<'s>) -> Result<Vec<O>> {
        let (exec, sql, args, decode) = self.prepare(scope.into_exec()).await?;
        let rows = exec.fetch_all(sql, args).await?;
        rows.iter()
            .map(|r| decode(r).map_err(Error::from))
            .collect()
    }

    /// Runs the SQL; the first row or `None`.
    ///
    /// # Errors
    /// As [`Raw::fetch_all`].
    pub async fn fetch_optional<'s>(self, scope: impl Scope<'s>) -> Result<Option<O>> {
        let (exec, sql, args, decode) = self.prepare(scope.into_exec()).await?;
        let row = exec.fetch_optional(sql, args).await?;
        row.map(|r| decode(&r).map_err(Error::from)).transpose()
    }

    /// Runs the SQL; the first row.
    ///
    /// # Errors
    /// [`Error::RowNotFound`]; otherwise as [`Raw::fetch_all`].
    pub async fn fetch_one<'s>(self, scope: impl Scope<'s>) -> Result<O> {
        self.fetch_optional(scope).await?.ok_or(Error::RowNotFound)
    }

    /// Runs the SQL and streams the rows.
    pub fn fetch<'s>(self, scope: impl Scope<'s>) -> BoxStream<'s, Result<O>> {
        futures_util::stream::once(self.prepare(scope.into_exec()))
            .flat_map(|prepared| match prepared {
                Ok((exec, sql, args, decode)) => exec
                    .fetch(sql, args)
                    .map(move |r| r.and_then(|row| decode(&row).map_err(Error::from)))
                    .boxed(),
                Err(e) => futures_util::stream::once(async move { Err(e) }).boxed(),
            })
            .boxed()
    }
}

fn cte_name(table: &str) -> String {
    format!("tenancy_scoped_{table}")
}

/// The tenant column of a model that does not rename it; tables with it are tenant tables.
const DEFAULT_TENANT_COLUMN: &str = "tenant_id";

fn lexical(msg: String) -> Error {
    RawSqlRefusal::new(
        RefusalKind::Lexical,
        None,
        format!("the SQL cannot be read with certainty: {msg}"),
        "write it so that it has one reading (one statement, no U& escapes, backslashes only in \
         E'...' strings), or bind the value",
    )
    .into()
}

/// The user's SQL with its placeholders rewritten, and the identifiers it names (distinct, in
/// order of first use) for the catalog check.
struct Rewritten {
    sql: String,
    names: Vec<String>,
}

/// Rewrites placeholders into tenant-scoped CTEs; `bound` values are `$1..$bound`, and the
/// tenant becomes `$bound+1`. Applies every check that needs no catalog.
fn rewrite(
    user: &str,
    relations: &[(&Built, &ModelMeta)],
    schema: Option<&str>,
    bound: usize,
) -> Result<Rewritten> {
    let tokens = lex(user).map_err(lexical)?;
    let declared = || {
        relations
            .iter()
            .map(|(_, m)| format!("{{{}}}", m.table))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut out = String::with_capacity(user.len() + 128);
    let mut names: Vec<String> = Vec::new();
    let mut copied = 0;
    let mut used = vec![false; relations.len()];
    let mut with_at = None;
    for (n, t) in tokens.iter().enumerate() {
        match &t.tok {
            Tok::Placeholder(name) => {
                let Some(i) = relations.iter().position(|(_, m)| m.table == name) else {
                    return Err(RawSqlRefusal::new(
                        RefusalKind::Placeholder,
                        Some(name),
                        format!(
                            "unknown placeholder {{{name}}}; this query declares {}",
                            declared()
                        ),
                        "declare the model of each other table with .with::<Model>()",
                    )
                    .into());
                };
                used[i] = true;
                out.push_str(&user[copied..t.span.start]);
                tenancy_core::ident::push_quoted(&mut out, &cte_name(name));
                copied = t.span.end;
            }
            Tok::Ident { name, quoted } => {
                let names_table = |table: &str| {
                    if *quoted {
                        name == table
                    } else {
                        name.eq_ignore_ascii_case(table)
                    }
                };
                if let Some((_, m)) = relations.iter().find(|(_, m)| names_table(m.table)) {
                    return Err(RawSqlRefusal::new(
                        RefusalKind::DeclaredTable,
                        Some(name),
                        format!("the SQL names the table {:?} directly", m.table),
                        &format!(
                            "write {{{}}} so that only the tenant's rows are read",
                            m.table
                        ),
                    )
                    .into());
                }
                let next_is_dot = matches!(tokens.get(n + 1), Some(t) if t.tok == Tok::Dot);
                if name == "tenancy" && next_is_dot {
                    return Err(RawSqlRefusal::new(
                        RefusalKind::TenantSchema,
                        Some(name),
                        "the SQL names the tenant registry (schema tenancy)".into(),
                        "the registry is not readable from tenant SQL; use Tenancy's methods",
                    )
                    .into());
                }
                if let Some(refusal) = check::fixed(name) {
                    return Err(refusal.into());
                }
                // `INTO` after anything but `INSERT` (or `MERGE`) is `SELECT ... INTO`, which
                // creates a table of the tenant's rows that later SQL of any tenant can read.
                if !quoted && name == "into" {
                    let after_write = n.checked_sub(1).and_then(|p| tokens.get(p)).is_some_and(
                        |t| matches!(&t.tok, Tok::Ident { name, quoted: false } if name == "insert" || name == "merge"),
                    );
                    if !after_write {
                        return Err(RawSqlRefusal::new(
                            RefusalKind::SelectInto,
                            Some(name),
                            "the SQL uses SELECT ... INTO, which creates a table holding the \
                             tenant's rows outside its scope (a temporary one stays on the \
                             pooled connection for the next tenant)"
                                .into(),
                            "return the rows, or INSERT them into a tenant table through its \
                             model",
                        )
                        .into());
                    }
                }
                if n == 0 && !quoted && name == "with" {
                    let recursive = matches!(tokens.get(1),
                        Some(Token { tok: Tok::Ident { name, quoted: false }, .. }) if name == "recursive");
                    with_at = Some(if recursive {
                        tokens[1].span.end
                    } else {
                        t.span.end
                    });
                }
                if !names.contains(name) {
                    names.push(name.clone());
                }
            }
            Tok::Param(p) => {
                if *p == 0 || *p as usize > bound {
                    return Err(RawSqlRefusal::new(
                        RefusalKind::Parameter,
                        Some(&format!("${p}")),
                        format!("the SQL uses ${p} but {bound} value(s) are bound"),
                        "bind a value for each $n, in order, with .bind(..)",
                    )
                    .into());
                }
            }
            Tok::Semi if n + 1 < tokens.len() => {
                return Err(lexical("a second statement after ';'".into()));
            }
            Tok::Dot | Tok::Semi | Tok::Other => {}
        }
    }
    if !used.iter().any(|&u| u) {
        return Err(RawSqlRefusal::new(
            RefusalKind::Placeholder,
            None,
            "the SQL reads no tenant relation".into(),
            &format!("name it with a placeholder: {}", declared()),
        )
        .into());
    }
    out.push_str(&user[copied..]);

    let tenant_param = bound + 1;
    let mut ctes = String::new();
    for ((st, meta), _) in relations.iter().zip(&used).filter(|(_, u)| **u) {
        if !ctes.is_empty() {
            ctes.push_str(", ");
        }
        tenancy_core::ident::push_quoted(&mut ctes, &cte_name(meta.table));
        ctes.push_str(&format!(
            " AS (SELECT * FROM {} WHERE {} = ${tenant_param})",
            st.table_ref(schema),
            st.tenant
        ));
    }
    let sql = match with_at {
        // Splice ours in front of the user's own CTEs; the text before `with_at` has no
        // placeholders, so its offsets in `out` are those in `user`.
        Some(at) => format!("{} {ctes},{}", &out[..at], &out[at..]),
        None => format!("WITH {ctes} {out}"),
    };
    Ok(Rewritten { sql, names })
}

use lex::Token;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ColumnMeta;

    const COLS: &[ColumnMeta] = &[ColumnMeta {
        name: "id",
        field: "id",
        insert: true,
        update: false,
    }];
    static SPINS: ModelMeta = ModelMeta {
        name: "Spin",
        table: "spins",
        tenant_column: "tenant_id",
        columns: COLS,
        key: 0,
    };

    fn rewritten(sql: &str, bound: usize) -> Result<Rewritten> {
        let st = crate::model::Statements::build(&SPINS);
        let built = st.get(&SPINS).unwrap();
        rewrite(sql, &[(built, &SPINS)], None, bound)
    }

    fn run(sql: &str, bound: usize) -> Result<String> {
        rewritten(sql, bound).map(|r| r.sql)
    }

    fn refusal(sql: &str) -> RawSqlRefusal {
        match run(sql, 0) {
            Err(Error::UnscopedSql(r)) => r,
            other => panic!("{sql:?} was not refused: {other:?}"),
        }
    }

    #[test]
    fn scopes_placeholders() {
        assert_eq!(
            run("SELECT s.* FROM {spins} s WHERE s.id = $1", 1).unwrap(),
            r#"WITH "tenancy_scoped_spins" AS (SELECT * FROM "spins" WHERE "tenant_id" = $2) SELECT s.* FROM "tenancy_scoped_spins" s WHERE s.id = $1"#
        );
    }

    #[test]
    fn splices_into_the_users_with() {
        let out = run("WITH x AS (SELECT id FROM {spins}) SELECT * FROM x", 0).unwrap();
        assert!(out.starts_with(r#"WITH "tenancy_scoped_spins" AS (SELECT * FROM "spins" WHERE "tenant_id" = $1), x AS"#), "{out}");
        let out = run(
            "with recursive x AS (SELECT id FROM {spins}) SELECT * FROM x",
            0,
        )
        .unwrap();
        assert!(
            out.starts_with(r#"with recursive "tenancy_scoped_spins" AS"#),
            "{out}"
        );
    }

    #[test]
    fn refuses_unscoped_sql() {
        for (sql, bound) in [
            ("SELECT * FROM spins", 0),
            ("SELECT * FROM public.spins", 0),
            ("SELECT * FROM \"spins\"", 0),
            ("SELECT * FROM SPINS", 0),
            ("SELECT * FROM {spins} s, spins t", 0),
            ("SELECT * FROM {spinners}", 0),
            ("SELECT 1", 0),
            ("SELECT * FROM {spins} WHERE id = $1", 0),
            ("SELECT * FROM {spins} WHERE id = $2", 1),
            ("SELECT * FROM {spins}, tenancy.tenants", 0),
            ("SELECT * FROM {spins} WHERE 'x' = 'y", 0),
        ] {
            assert!(
                matches!(run(sql, bound), Err(Error::UnscopedSql(_))),
                "{sql:?} was accepted"
            );
        }
    }

    #[test]
    fn refuses_functions_that_run_sql_or_read_by_name() {
        for (sql, name) in [
            (
                "SELECT query_to_xml('SELECT * FROM spins', true, false, '') FROM {spins}",
                "query_to_xml",
            ),
            (
                "SELECT pg_catalog.QUERY_TO_XML('x', true, false, '') FROM {spins}",
                "query_to_xml",
            ),
            (
                "SELECT \"query_to_xmlschema\"('x', true, false, '') FROM {spins}",
                "query_to_xmlschema",
            ),
            (
                "SELECT query_to_xml_and_xmlschema('x', true, false, '') FROM {spins}",
                "query_to_xml_and_xmlschema",
            ),
            (
                "SELECT cursor_to_xml('c', 1, true, false, '') FROM {spins}",
                "cursor_to_xml",
            ),
            (
                "SELECT table_to_xml('spins'::regclass, true, false, '') FROM {spins}",
                "table_to_xml",
            ),
            (
                "SELECT schema_to_xml('public', true, false, '') FROM {spins}",
                "schema_to_xml",
            ),
            (
                "SELECT database_to_xml(true, false, '') FROM {spins}",
                "database_to_xml",
            ),
            (
                "SELECT * FROM {spins}, dblink('', 'SELECT 1') AS t(x int)",
                "dblink",
            ),
            (
                "SELECT dblink_exec('', 'DELETE FROM spins') FROM {spins}",
                "dblink_exec",
            ),
            ("SELECT currval('spins_id_seq') FROM {spins}", "currval"),
            ("SELECT nextval('s') FROM {spins}", "nextval"),
            (
                "SELECT set_config('search_path', 't_acme', false) FROM {spins}",
                "set_config",
            ),
            // functional notation: s.query_to_xml is a call too
            ("SELECT s.query_to_xml FROM {spins} s", "query_to_xml"),
        ] {
            let r = refusal(sql);
            assert_eq!(r.kind(), RefusalKind::Function, "{sql:?}: {r}");
            assert_eq!(r.name(), Some(name), "{sql:?}");
        }
        for sql in [
            "SELECT * FROM {spins}, pg_stats",
            "SELECT * FROM {spins}, pg_catalog.pg_stats",
            "SELECT * FROM {spins}, pg_stat_activity",
            "SELECT * FROM {spins}, pg_stats_ext",
        ] {
            assert_eq!(refusal(sql).kind(), RefusalKind::SystemView, "{sql:?}");
        }
    }

    #[test]
    fn refuses_what_is_not_one_statement_or_not_certain() {
        for sql in [
            "SELECT * FROM {spins}; SELECT 1",
            "SELECT * FROM {spins}; DELETE FROM x",
            "SELECT * FROM {spins} WHERE note = '\\' -- '",
            "SELECT * FROM {spins} WHERE note ~ '\\d'",
        ] {
            let r = refusal(sql);
            assert!(
                matches!(r.kind(), RefusalKind::Lexical | RefusalKind::DeclaredTable),
                "{sql:?}: {r}"
            );
        }
        // `\r` ends a line comment, as in PostgreSQL: the table after it is seen.
        assert_eq!(
            refusal("SELECT * FROM {spins} -- note\r, spins").kind(),
            RefusalKind::DeclaredTable
        );
        // A trailing `;` is one statement.
        assert!(run("SELECT * FROM {spins};", 0).is_ok());
        assert!(run("SELECT * FROM {spins} ; -- done", 0).is_ok());
        // E'' strings may hold backslashes.
        assert!(run("SELECT * FROM {spins} WHERE note ~ E'\\\\d'", 0).is_ok());
    }

    #[test]
    fn refusals_say_what_and_why() {
        let r = refusal("SELECT * FROM SPINS");
        assert_eq!(r.kind(), RefusalKind::DeclaredTable);
        assert_eq!(r.name(), Some("spins"));
        assert!(r.to_string().contains("{spins}"), "{r}");
        let r = refusal("SELECT * FROM {spins} WHERE id = $3");
        assert_eq!((r.kind(), r.name()), (RefusalKind::Parameter, Some("$3")));
        let r = refusal("SELECT * FROM {spins}, tenancy.tenants");
        assert_eq!(r.kind(), RefusalKind::TenantSchema);
        let r = refusal("SELECT * FROM {gadgets}");
        assert_eq!(
            (r.kind(), r.name()),
            (RefusalKind::Placeholder, Some("gadgets"))
        );
    }

    #[test]
    fn collects_identifiers_for_the_catalog_check() {
        let r = rewritten(
            "SELECT s.id, P.\"Name\" FROM {spins} s, Spinners P WHERE s.id = p.id AND 'x' = 'gadgets'",
            0,
        )
        .unwrap();
        assert_eq!(
            r.names,
            [
                "select", "s", "id", "p", "Name", "from", "spinners", "where", "and"
            ]
        );
        // Truncated as PostgreSQL truncates: 63 bytes.
        let long = format!("SELECT * FROM {{spins}}, {}xyz", "a".repeat(63));
        let r = rewritten(&long, 0).unwrap();
        assert!(r.names.contains(&"a".repeat(63)), "{:?}", r.names);
    }

    #[test]
    fn leaves_strings_alone() {
        let out = run("SELECT 'FROM spins {spins}' AS s FROM {spins}", 0).unwrap();
        assert!(out.contains("'FROM spins {spins}'"), "{out}");
    }
}
