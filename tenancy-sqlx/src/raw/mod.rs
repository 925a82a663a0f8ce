//! The raw-SQL escape hatch, still scoped to the tenant.
//!
//! The user's SQL names each model's relation with a placeholder, `{table}`. Each placeholder
//! becomes a common table expression holding only the tenant's rows:
//!
//! ```text
//! SELECT s.* FROM {spins} s WHERE s.duration > $1
//!   => WITH "tenancy_scoped_spins" AS (SELECT * FROM "spins" WHERE "tenant_id" = $2)
//!      SELECT s.* FROM "tenancy_scoped_spins" s WHERE s.duration > $1
//! ```
//!
//! Naming a declared model's table directly (`FROM spins`, `public.spins`) or the registry
//! (`tenancy.tenants`) is refused with [`Error::UnscopedSql`], and so is a parameter the caller
//! did not bind. Tables of models not declared with [`Raw::with`] are not scoped by the library:
//! declare every tenant-scoped model the SQL reads.

mod lex;

use std::marker::PhantomData;

use futures_util::stream::{BoxStream, StreamExt};
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::{Arguments, Encode, Postgres, SqlStr, Type};

use crate::model::{Built, Model, ModelMeta, Statements};
use crate::sql;
use crate::{Error, Result, Scope};
use lex::{Tok, lex};

type Decode<O> = fn(&PgRow) -> std::result::Result<O, sqlx::Error>;

struct Relation {
    meta: &'static ModelMeta,
    statements: fn() -> &'static Statements,
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
                statements: M::statements,
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
            && let Err(e) = self.args.add(value)
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
                statements: N::statements,
            });
        }
        self
    }

    fn prepare<'s>(
        self,
        scope: impl Scope<'s>,
    ) -> Result<(crate::ctx::Exec<'s>, SqlStr, PgArguments, Decode<O>)> {
        let exec = scope.into_exec();
        exec.check_placement()?;
        if let Some(e) = self.bind_error {
            return Err(Error::Encode(e));
        }
        let mut built = Vec::with_capacity(self.relations.len());
        for r in &self.relations {
            built.push(((r.statements)().get(r.meta)?, r.meta));
        }
        let mut args = self.args;
        let text = rewrite(self.sql.as_str(), &built, exec.schema(), args.len())?;
        args.add(exec.tenant()).map_err(Error::Encode)?;
        Ok((exec, sql::text(text), args, self.decode))
    }

    /// Runs the SQL; all rows.
    ///
    /// # Errors
    /// [`Error::UnscopedSql`] if the SQL could reach rows outside the tenant; [`Error::Database`].
    pub async fn fetch_all<'s>(self, scope: impl Scope<'s>) -> Result<Vec<O>> {
        let (exec, sql, args, decode) = self.prepare(scope)?;
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
        let (exec, sql, args, decode) = self.prepare(scope)?;
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
        match self.prepare(scope) {
            Ok((exec, sql, args, decode)) => exec
                .fetch(sql, args)
                .map(move |r| r.and_then(|row| decode(&row).map_err(Error::from)))
                .boxed(),
            Err(e) => futures_util::stream::once(async move { Err(e) }).boxed(),
        }
    }
}

fn cte_name(table: &str) -> String {
    format!("tenancy_scoped_{table}")
}

fn unscoped(msg: String) -> Error {
    Error::UnscopedSql(msg)
}

/// Rewrites placeholders into tenant-scoped CTEs; `bound` values are `$1..$bound`, and the
/// tenant becomes `$bound+1`.
fn rewrite(
    user: &str,
    relations: &[(&Built, &ModelMeta)],
    schema: Option<&str>,
    bound: usize,
) -> Result<String> {
    let tokens = lex(user).map_err(unscoped)?;
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
                    return Err(unscoped(format!(
                        "unknown placeholder {{{name}}}; this query declares {}",
                        declared()
                    )));
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
                    return Err(unscoped(format!(
                        "the SQL names the table {:?} directly; write {{{}}} so that only the \
                         tenant's rows are read",
                        m.table, m.table
                    )));
                }
                let next_is_dot = matches!(tokens.get(n + 1), Some(t) if t.tok == Tok::Dot);
                if names_table("tenancy") && next_is_dot {
                    return Err(unscoped(
                        "the tenant registry (schema tenancy) is not readable from tenant SQL"
                            .into(),
                    ));
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
            }
            Tok::Param(p) => {
                if *p == 0 || *p as usize > bound {
                    return Err(unscoped(format!(
                        "the SQL uses ${p} but {bound} value(s) are bound"
                    )));
                }
            }
            Tok::Dot | Tok::Other => {}
        }
    }
    if !used.iter().any(|&u| u) {
        return Err(unscoped(format!(
            "the SQL reads no tenant relation; name it with a placeholder: {}",
            declared()
        )));
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
    Ok(match with_at {
        // Splice ours in front of the user's own CTEs; the text before `with_at` has no
        // placeholders, so its offsets in `out` are those in `user`.
        Some(at) => format!("{} {ctes},{}", &out[..at], &out[at..]),
        None => format!("WITH {ctes} {out}"),
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

    fn run(sql: &str, bound: usize) -> Result<String> {
        let st = Statements::build(&SPINS);
        let built = st.get(&SPINS).unwrap();
        rewrite(sql, &[(built, &SPINS)], None, bound)
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
    fn leaves_strings_alone() {
        let out = run("SELECT 'FROM spins {spins}' AS s FROM {spins}", 0).unwrap();
        assert!(out.contains("'FROM spins {spins}'"), "{out}");
    }
}
