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
//! The text is lexed first (strings, comments, dollar quotes and quoted identifiers as
//! PostgreSQL reads them) to find the placeholders and `$n` parameters, and refused where the
//! server could read it two ways (`U&` escapes, a backslash in a `'...'` string, anything
//! unterminated). The rewritten statement is then parsed with PostgreSQL 15's own grammar
//! (`pg_query`) and its whole tree walked (`parse.rs`): only the node kinds the walk knows are
//! allowed; relations only through placeholders, CTEs and the builder's global tables;
//! functions, operators and cast types only from the allow-lists of `allow.rs`; one `SELECT`,
//! without `INTO`, `FOR UPDATE` or data-modifying CTEs. Anything else is refused with
//! [`Error::UnscopedSql`] (a [`RawSqlRefusal`]: which name, why, what to do instead), and
//! nothing is sent.
//!
//! One catalog round trip on the scope's connection (`check.rs`; its verdict is kept for the
//! resolution cache's time to live) then checks the server's version against the grammar's, that the global tables named are declared and hold no
//! tenant data, that no function, operator or type on the search path could shadow a built-in
//! the SQL uses, and whether each function and operator is leakproof (an operator between a
//! column and `$n` is judged by both types: with no built-in operator taking exactly the
//! column's type and the type the value was bound with, the server casts, and picks an
//! operator the SQL does not show, so it counts as not leakproof). If one is
//! not (or a row's value is cast), the placeholders' CTEs are `MATERIALIZED`: PostgreSQL could otherwise run the
//! caller's expression on other tenants' rows before the tenant filter, and its error would
//! show them.
//!
//! # Limits
//!
//! Implicit casts the server adds are not judged on their own, and need not be: one that can
//! fail (`numeric` to `float8` overflows, and its error shows the value) only ever sits under
//! an operator judged by the exact types it takes, which then does not exist and fences; the
//! leakproof functions raw SQL may call take `text` or `bytea`, to which no implicit cast can
//! fail. A column reached through an alias that renames columns (`AS s(a, b)`) is judged as
//! no known column. What runs without being named in the SQL (type output functions, triggers)
//! is not seen; row-level security on the tenant tables is the runtime backstop.
//!
//! Session values are admitted: `CURRENT_USER`, `SESSION_USER`, `CURRENT_CATALOG`, and what
//! reads the session's `TimeZone`, `DateStyle` or locale (`to_char`, `timezone`, casts of dates
//! to text). They are the pool's, the same for every tenant: raw SQL cannot change a setting
//! (no `SET`, `set_config` or `pg_settings`) and tenancy sets none per tenant, so they show
//! nothing of another tenant. `CURRENT_SCHEMA` is refused: it would name the path the
//! placeholders already resolve, and invite SQL that depends on it.

mod allow;
mod check;
pub(crate) mod config;
pub(crate) mod lex;
mod parse;
pub(crate) mod refusal;
pub(crate) mod split;
mod write;

use std::marker::PhantomData;

use futures_util::stream::{BoxStream, StreamExt};
use sqlx::error::BoxDynError;
use sqlx::postgres::types::Oid;
use sqlx::postgres::{PgArguments, PgRow, PgTypeInfo};
use sqlx::{Arguments, Encode, Postgres, SqlStr, Type};

use crate::model::{Model, ModelMeta};
use crate::sql;
use crate::sql::ModelSql;
use crate::unit::TenantUnit;
use crate::{Error, Result, Scope};
use lex::{Tok, lex};
pub use refusal::{RawSqlRefusal, RefusalKind};
pub use write::GlobalWrite;

type Decode<O> = fn(&PgRow) -> std::result::Result<O, sqlx::Error>;

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
    /// The type each argument was sent as (`None`: known to sqlx by name only), in order: the
    /// catalog check judges an operator on a column and `$n` by both operands' types.
    param_types: Vec<Option<Oid>>,
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
            param_types: Vec::new(),
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
        // The type is asked once and pinned: an encoder whose `produces` answers differently
        // on each call cannot have one type judged and another sent.
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

    /// Turns the SQL into the statement of the unit's tenant.
    async fn prepare<'s>(
        self,
        mut unit: TenantUnit<'s>,
    ) -> Result<(TenantUnit<'s>, SqlStr, crate::bind::TenantArgs, Decode<O>)> {
        if let Some(e) = self.bind_error {
            return Err(Error::Encode(e));
        }
        let mut built = Vec::with_capacity(self.relations.len());
        for r in &self.relations {
            built.push((unit.statements_of(r.model, r.meta).await?, r.meta));
        }
        let args = self.args;
        let rewritten = rewrite(self.sql.as_str(), &built, unit.schema(), args.len())?;
        let models: Vec<&str> = self.relations.iter().map(|r| r.meta.table).collect();
        let mut tenant_columns = vec![tenancy_core::DEFAULT_TENANT_COLUMN.to_owned()];
        for r in &self.relations {
            if !tenant_columns.iter().any(|c| c == r.meta.tenant_column) {
                tenant_columns.push(r.meta.tenant_column.to_owned());
            }
        }
        // The statement (its tables and schema included), the declared models and the
        // database it runs in decide the verdict: one accepted a moment ago is accepted again
        // without parsing or asking. (Every own database and server home names its tables
        // `"public"`: a verdict on one database's catalog says nothing of another's.)
        let param_types = self.param_types;
        let key = format!(
            "{}\n{models:?}\n{tenant_columns:?}\n{param_types:?}\n{:?}",
            rewritten.sql,
            unit.database()
        );
        let verdict = match unit.runtime().raw.verdicts.get(&key) {
            Some(fence) => check::Verdict { fence },
            None => {
                let uses = parse::read(&rewritten.sql, &rewritten.ctes, &models)?;
                check::catalog(
                    &mut unit,
                    Some(key),
                    &uses,
                    &rewritten.tables,
                    &tenant_columns,
                    &param_types,
                )
                .await?
            }
        };
        let tenant_at = args.len() + 1;
        let args = crate::bind::finish(args, unit.tenant(), tenant_at)?;
        let sql = if verdict.fence {
            rewritten.fenced
        } else {
            rewritten.sql
        };
        Ok((unit, sql::text(sql), args, self.decode))
    }

    /// Runs the SQL; all rows.
    ///
    /// # Errors
    /// [`Error::UnscopedSql`] if the SQL could reach rows outside the tenant; [`Error::Database`].
    pub async fn fetch_all<'s>(self, scope: impl Scope<'s>) -> Result<Vec<O>> {
        let (mut unit, sql, args, decode) = self.prepare(scope.open()?).await?;
        let rows = unit.read_all(sql, args).await?;
        rows.iter()
            .map(|r| decode(r).map_err(Error::from))
            .collect()
    }

    /// Runs the SQL; the first row or `None`.
    ///
    /// # Errors
    /// As [`Raw::fetch_all`].
    pub async fn fetch_optional<'s>(self, scope: impl Scope<'s>) -> Result<Option<O>> {
        let (mut unit, sql, args, decode) = self.prepare(scope.open()?).await?;
        let row = unit.read_optional(sql, args).await?;
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
        let unit = scope.open();
        futures_util::stream::once(async move { self.prepare(unit?).await })
            .flat_map(|prepared| match prepared {
                Ok((unit, sql, args, decode)) => unit
                    .fetch(sql, args)
                    .map(move |r| r.and_then(|row| decode(&row).map_err(Error::from)))
                    .boxed(),
                Err(e) => futures_util::stream::once(async move { Err(e) }).boxed(),
            })
            .boxed()
    }
}

/// A bound value sent as the one type [`Raw::bind`] recorded for it.
struct Pinned<'a, T: ?Sized> {
    value: crate::bind::Fenced<'a, T>,
    ty: PgTypeInfo,
}

impl<T: Type<Postgres> + ?Sized> Type<Postgres> for Pinned<'_, T> {
    fn type_info() -> PgTypeInfo {
        T::type_info()
    }
}

impl<'q, T> Encode<'q, Postgres> for Pinned<'_, T>
where
    T: Encode<'q, Postgres> + Type<Postgres> + ?Sized,
{
    fn encode_by_ref(
        &self,
        buf: &mut sqlx::postgres::PgArgumentBuffer,
    ) -> std::result::Result<sqlx::encode::IsNull, BoxDynError> {
        self.value.encode_by_ref(buf)
    }

    fn produces(&self) -> Option<PgTypeInfo> {
        Some(self.ty.clone())
    }

    fn size_hint(&self) -> usize {
        self.value.size_hint()
    }
}

fn cte_name(table: &str) -> String {
    format!("tenancy_scoped_{table}")
}

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

/// The user's SQL with its placeholders rewritten into CTEs, plain and fenced.
struct Rewritten {
    sql: String,
    /// The same with the placeholders' CTEs `MATERIALIZED`: the user's expressions see only
    /// the rows the tenant filter returned.
    fenced: String,
    /// The placeholders' CTE names and tables (quoted), in the order of the `WITH`.
    ctes: Vec<String>,
    tables: Vec<String>,
}

/// Rewrites placeholders into tenant-scoped CTEs; `bound` values are `$1..$bound`, and the
/// tenant becomes `$bound+1`. Applies every check that needs no catalog.
fn rewrite(
    user: &str,
    relations: &[(&ModelSql, &ModelMeta)],
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
                if n == 0 && !quoted && name == "with" {
                    let recursive = matches!(tokens.get(1),
                        Some(Token { tok: Tok::Ident { name, quoted: false }, .. }) if name == "recursive");
                    with_at = Some(if recursive {
                        tokens[1].span.end
                    } else {
                        t.span.end
                    });
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
        // Say so precisely when it names a model's table instead (there are no placeholders
        // to rewrite, so the user's text is what the server would read).
        let models: Vec<&str> = relations.iter().map(|(_, m)| m.table).collect();
        if let Err(r) = parse::read(user, &[], &models)
            && r.kind() != RefusalKind::Lexical
        {
            return Err(r.into());
        }
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
    let mut tables = Vec::new();
    let mut ctes = Vec::new();
    let cte = |fenced: bool| {
        let mut ctes = String::new();
        for ((model_sql, meta), _) in relations.iter().zip(&used).filter(|(_, u)| **u) {
            if !ctes.is_empty() {
                ctes.push_str(", ");
            }
            tenancy_core::ident::push_quoted(&mut ctes, &cte_name(meta.table));
            ctes.push_str(if fenced { " AS MATERIALIZED" } else { " AS" });
            ctes.push_str(&format!(
                " (SELECT * FROM {} WHERE {} = ${tenant_param})",
                model_sql.table_ref(schema),
                model_sql.tenant
            ));
        }
        ctes
    };
    let (plain, fenced) = (cte(false), cte(true));
    for ((model_sql, meta), _) in relations.iter().zip(&used).filter(|(_, u)| **u) {
        tables.push(model_sql.table_ref(schema).to_string());
        ctes.push(cte_name(meta.table));
    }
    let splice = |ctes: &str| match with_at {
        // Splice ours in front of the user's own CTEs; the text before `with_at` has no
        // placeholders, so its offsets in `out` are those in `user`.
        Some(at) => format!("{} {ctes},{}", &out[..at], &out[at..]),
        None => format!("WITH {ctes} {out}"),
    };
    Ok(Rewritten {
        sql: splice(&plain),
        fenced: splice(&fenced),
        ctes,
        tables,
    })
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
        let model_sql = crate::sql::statements::ModelSqlBuild::build(&SPINS);
        let built = model_sql.get(&SPINS).unwrap();
        rewrite(sql, &[(built, &SPINS)], None, bound)
    }

    /// The lexical and grammatical checks (all but the catalog's).
    fn run(sql: &str, bound: usize) -> Result<String> {
        let r = rewritten(sql, bound)?;
        parse::read(&r.sql, &r.ctes, &["spins"])?;
        Ok(r.sql)
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
    fn refuses_what_is_not_an_allowed_builtin() {
        for (sql, kind, name) in [
            (
                "SELECT query_to_xml('SELECT * FROM spins', true, false, '') FROM {spins}",
                RefusalKind::Function,
                "query_to_xml",
            ),
            (
                "SELECT pg_catalog.QUERY_TO_XML('x', true, false, '') FROM {spins}",
                RefusalKind::Function,
                "query_to_xml",
            ),
            (
                "SELECT nextval('s') FROM {spins}",
                RefusalKind::Function,
                "nextval",
            ),
            (
                "SELECT to_regclass('spins') FROM {spins}",
                RefusalKind::Function,
                "to_regclass",
            ),
            (
                "SELECT current_setting('search_path') FROM {spins}",
                RefusalKind::Function,
                "current_setting",
            ),
            (
                "SELECT 'spins'::regclass FROM {spins}",
                RefusalKind::Cast,
                "regclass",
            ),
            (
                "SELECT * FROM {spins}, pg_backend_memory_contexts",
                RefusalKind::SystemView,
                "pg_backend_memory_contexts",
            ),
        ] {
            let r = match run(sql, 0) {
                Err(Error::UnscopedSql(r)) => r,
                other => panic!("{sql:?} was not refused: {other:?}"),
            };
            assert_eq!((r.kind(), r.name()), (kind, Some(name)), "{sql:?}: {r}");
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
    fn a_recursive_with_item_never_stands_in_for_a_placeholders_table() {
        let r =
            refusal("WITH RECURSIVE spins AS (SELECT 'fake'::text AS note) SELECT * FROM {spins}");
        assert_eq!(
            (r.kind(), r.name()),
            (RefusalKind::DeclaredTable, Some("spins"))
        );
        // Named otherwise, or not recursive (an item then sees only the ones before it, the
        // placeholders' first), it is the caller's own.
        assert!(run("WITH RECURSIVE r AS (SELECT 1) SELECT * FROM {spins}, r", 0).is_ok());
        assert!(run("WITH spins AS (SELECT 1) SELECT * FROM {spins}", 0).is_ok());
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
    fn fences_on_request() {
        let r = rewritten("SELECT s.* FROM {spins} s WHERE s.id = $1", 1).unwrap();
        assert!(
            r.fenced
                .starts_with(r#"WITH "tenancy_scoped_spins" AS MATERIALIZED (SELECT"#),
            "{}",
            r.fenced
        );
        assert_eq!(r.sql.replace(" AS (", " AS MATERIALIZED ("), r.fenced);
        assert_eq!(r.ctes, ["tenancy_scoped_spins"]);
    }

    #[test]
    fn leaves_strings_alone() {
        let out = run("SELECT 'FROM spins {spins}' AS s FROM {spins}", 0).unwrap();
        assert!(out.contains("'FROM spins {spins}'"), "{out}");
    }
}
