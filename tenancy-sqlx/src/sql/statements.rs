//! The statements of a model, built once from its [`ModelMeta`] by the runtime alone: names
//! validated and quoted, the tenant's predicate in every one, the table reference placed for the
//! tenant's placement when a statement runs.

use std::any::TypeId;
use std::collections::{BTreeMap, HashSet};
use std::fmt::Write;
use std::sync::{PoisonError, RwLock};

use tenancy_core::ident;

use crate::model::{Model, ModelMeta};
use crate::sql::TENANT;
use crate::sql::fence::{self, FENCE_CLOSE, FENCE_OPEN};
use crate::{Error, Result};

/// Every model's statements, built on first use and kept for the life of the process (one entry
/// per model type, so the leak is bounded). A registry here rather than a `static` in each
/// generated implementation: generic code cannot own a static per type, and one fewer function,
/// static and closure per model is less for rustc to check in the user's crate.
static STATEMENTS: RwLock<BTreeMap<TypeId, &'static ModelSqlBuild>> = RwLock::new(BTreeMap::new());

/// The statements of `M`, unchecked: for code that needs its names (row-level security's
/// policies). A tenant's statement takes its text from `TenantUnit::statements`, which checks the
/// table first.
pub(crate) fn statements<M: Model>() -> Result<&'static ModelSql> {
    statements_of(TypeId::of::<M>(), &M::META).get(&M::META)
}

/// The statements of the model with type id `id` and description `meta`.
pub(crate) fn statements_of(id: TypeId, meta: &ModelMeta) -> &'static ModelSqlBuild {
    let found = STATEMENTS
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&id)
        .copied();
    found.unwrap_or_else(|| {
        // Built outside the lock; if two threads race, the first insertion wins and the other
        // build is dropped.
        let built = ModelSqlBuild::build(meta);
        let mut map = STATEMENTS.write().unwrap_or_else(PoisonError::into_inner);
        *map.entry(id).or_insert_with(|| Box::leak(Box::new(built)))
    })
}

/// SQL built once per model from its [`ModelMeta`], by the runtime alone.
pub(crate) struct ModelSqlBuild(std::result::Result<ModelSql, String>);

/// A model's SQL: its quoted names and the statements built from them, for every tenant
/// (see [`PlacedSql`] for how a statement finds the tenant's table).
pub(crate) struct ModelSql {
    /// The model's Rust name, for errors.
    pub(crate) model: &'static str,
    /// The quoted table name, unqualified: shared tables are found through the search path.
    pub(crate) table: String,
    pub(crate) tenant: String,
    pub(crate) cols: Vec<String>,
    pub(crate) select_list: String,
    pub(crate) key: usize,
    pub(crate) insert_cols: Vec<usize>,
    pub(crate) update_cols: Vec<usize>,
    /// `SELECT <cols> FROM <table> WHERE <tenant> = ` and the tenant's placeholder mark
    /// (`crate::sql::TENANT`), numbered when the statement is finished.
    pub(crate) select: PlacedSql,
    pub(crate) get: PlacedSql,
    pub(crate) get_many: PlacedSql,
    pub(crate) insert_head: PlacedSql,
    pub(crate) insert_one: PlacedSql,
    pub(crate) update_row: PlacedSql,
    pub(crate) delete_one: PlacedSql,
    pub(crate) exists_one: PlacedSql,
    pub(crate) count_all: PlacedSql,
}

/// Marks where the table reference goes while a statement is built.
const AT_TABLE: char = '\u{1}';

/// A statement whose table reference depends on the tenant's placement: as built, for shared
/// tables; with the tenant's schema in front, for a tenant in its own schema. Every statement
/// keeps the tenant predicate in both placements (tenant tables carry the tenant column too, so
/// one set of migrations serves both), a second guard against a row in the wrong schema. A
/// write's fence names the same home (see `crate::sql::fence`).
pub(crate) struct PlacedSql {
    shared: String,
    /// The text with its marks: where the schema goes, where the fence's home goes.
    marked: String,
    /// The placeholder the statement reads the tenant from, as it is: 0 for the heads that
    /// callers complete (they place the tenant themselves).
    pub(crate) tenant: usize,
}

impl PlacedSql {
    fn new(marked: String, tenant: usize) -> Self {
        Self {
            shared: place(&marked, None),
            marked,
            tenant,
        }
    }

    /// The text for a placement: `schema` is the tenant's quoted schema, `None` for shared tables.
    pub(crate) fn sql(&'static self, schema: Option<&str>) -> sqlx::SqlStr {
        match schema {
            None => sqlx::SqlStr::from_static(&self.shared),
            Some(schema) => crate::sql::text(self.text(Some(schema))),
        }
    }

    /// As an owned string, to extend (with [`ROOM`] to spare, so that extending it rarely moves
    /// it).
    pub(crate) fn text(&self, schema: Option<&str>) -> String {
        match schema {
            None => {
                let mut text = String::with_capacity(self.shared.len() + ROOM);
                text.push_str(&self.shared);
                text
            }
            Some(schema) => place(&self.marked, Some(schema)),
        }
    }
}

/// Room a statement's text is made with beyond its template: a schema name, or a filter, an
/// order and a limit added per call.
const ROOM: usize = 96;

/// Fills in a marked statement's table references and write fences for `schema`.
fn place(marked: &str, schema: Option<&str>) -> String {
    let mut out = String::with_capacity(marked.len() + ROOM);
    let mut rest = marked;
    while let Some(i) = rest.find([AT_TABLE, FENCE_OPEN]) {
        out.push_str(&rest[..i]);
        // Both marks are one byte long.
        let after = &rest[i + 1..];
        if rest[i..].starts_with(AT_TABLE) {
            if let Some(schema) = schema {
                out.push_str(schema);
                out.push('.');
            }
            rest = after;
        } else {
            let end = after.find(FENCE_CLOSE).unwrap_or(after.len());
            out.push_str(&fence::value(&after[..end], schema));
            rest = after.get(end + 1..).unwrap_or("");
        }
    }
    out.push_str(rest);
    out
}

impl ModelSql {
    /// The quoted name of column `index` (a column handle's index).
    ///
    /// # Errors
    /// [`Error::InvalidModel`] if the model has no such column: a handle of another description
    /// of the same type.
    pub(crate) fn col(&self, index: usize) -> Result<&str> {
        self.cols
            .get(index)
            .map(String::as_str)
            .ok_or_else(|| Error::InvalidModel {
                model: self.model,
                reason: format!("column handle {index} is out of range"),
            })
    }

    /// The table reference for a placement (see [`PlacedSql::sql`]).
    pub(crate) fn table_ref(&self, schema: Option<&str>) -> std::borrow::Cow<'_, str> {
        match schema {
            None => std::borrow::Cow::Borrowed(&self.table),
            Some(schema) => std::borrow::Cow::Owned(format!("{schema}.{}", self.table)),
        }
    }
}

impl ModelSqlBuild {
    /// Validates `meta` and builds its statements. Errors are kept and reported on every use.
    pub(crate) fn build(meta: &ModelMeta) -> Self {
        Self(ModelSql::new(meta))
    }

    pub(crate) fn get(&self, meta: &ModelMeta) -> Result<&ModelSql> {
        self.0.as_ref().map_err(|reason| Error::InvalidModel {
            model: meta.name,
            reason: reason.clone(),
        })
    }
}

impl ModelSql {
    fn new(meta: &ModelMeta) -> std::result::Result<Self, String> {
        ident::validate(meta.table).map_err(|e| e.to_string())?;
        ident::validate(meta.tenant_column).map_err(|e| e.to_string())?;
        if meta.columns.is_empty() {
            return Err("has no columns".into());
        }
        if meta.key >= meta.columns.len() {
            return Err("its key index is out of range".into());
        }
        let mut seen = HashSet::new();
        for c in meta.columns {
            ident::validate(c.name).map_err(|e| e.to_string())?;
            if c.name == meta.tenant_column {
                return Err(format!(
                    "column {:?} is the tenant column; the tenant is not a field",
                    c.name
                ));
            }
            if !seen.insert(c.name) {
                return Err(format!("column {:?} appears twice", c.name));
            }
        }
        let table = ident::quote(meta.table);
        let tenant = ident::quote(meta.tenant_column);
        let cols: Vec<String> = meta.columns.iter().map(|c| ident::quote(c.name)).collect();
        let select_list = cols.join(", ");
        let key = &cols[meta.key];
        let insert_cols: Vec<usize> = (0..cols.len())
            .filter(|&i| meta.columns[i].insert)
            .collect();
        let update_cols: Vec<usize> = (0..cols.len())
            .filter(|&i| meta.columns[i].update && i != meta.key)
            .collect();

        let t = AT_TABLE;
        // The tenant is bound last (see `crate::bind`): its placeholder is the highest.
        let select = format!("SELECT {select_list} FROM {t}{table} WHERE {tenant} = {TENANT}");
        let by_key = |head: &str| format!("{head} WHERE {tenant} = $2 AND {key} = $1");

        let mut insert_head = format!("INSERT INTO {t}{table} ({tenant}");
        for &i in &insert_cols {
            let _ = write!(insert_head, ", {}", cols[i]);
        }
        insert_head.push_str(") VALUES ");
        let width = insert_cols.len();
        let mut insert_one = insert_head.clone();
        push_values_row(
            &mut insert_one,
            1,
            width,
            &fence::marked(&format!("${}", width + 1)),
        );
        let _ = write!(insert_one, " RETURNING {select_list}");

        let mut update_row = format!("UPDATE {t}{table} SET ");
        if update_cols.is_empty() {
            // Nothing is writable: a no-op assignment keeps RETURNING and the row count.
            let _ = write!(update_row, "{key} = {key}");
        }
        for (n, &i) in update_cols.iter().enumerate() {
            if n > 0 {
                update_row.push_str(", ");
            }
            let _ = write!(update_row, "{} = ${}", cols[i], n + 2);
        }
        let at = format!("${}", update_cols.len() + 2);
        let _ = write!(
            update_row,
            " WHERE {tenant} = {at} AND (SELECT {}) IS NOT NULL AND {key} = $1 RETURNING {select_list}",
            fence::marked(&at)
        );
        let delete_one = format!(
            "DELETE FROM {t}{table} WHERE {tenant} = $2 AND (SELECT {}) IS NOT NULL AND {key} = $1",
            fence::marked("$2")
        );

        Ok(Self {
            delete_one: PlacedSql::new(delete_one, 2),
            exists_one: PlacedSql::new(
                format!(
                    "SELECT EXISTS (SELECT 1 FROM {t}{table} WHERE {tenant} = $2 AND {key} = $1)"
                ),
                2,
            ),
            count_all: PlacedSql::new(
                format!("SELECT count(*) FROM {t}{table} WHERE {tenant} = $1"),
                1,
            ),
            get: PlacedSql::new(by_key(&format!("SELECT {select_list} FROM {t}{table}")), 2),
            get_many: PlacedSql::new(
                format!(
                    "SELECT {select_list} FROM {t}{table} WHERE {tenant} = $2 AND {key} = ANY($1)"
                ),
                2,
            ),
            select: PlacedSql::new(select, 0),
            insert_head: PlacedSql::new(insert_head, 0),
            insert_one: PlacedSql::new(insert_one, width + 1),
            update_row: PlacedSql::new(update_row, update_cols.len() + 2),
            model: meta.name,
            table,
            tenant,
            key: meta.key,
            insert_cols,
            update_cols,
            select_list,
            cols,
        })
    }
}

/// Appends `(<tenant>, $first, $first+1, ...)`: the tenant (its placeholder, or an expression
/// of it: the write fence for an insert's first row, see `crate::sql::fence`), then `width`
/// values.
pub(crate) fn push_values_row(sql: &mut String, first: usize, width: usize, tenant: &str) {
    let _ = write!(sql, "({tenant}");
    for p in first..first + width {
        let _ = write!(sql, ", ${p}");
    }
    sql.push(')');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ColumnMeta;

    const COLS: &[ColumnMeta] = &[
        ColumnMeta {
            name: "id",
            field: "id",
            insert: true,
            update: false,
        },
        ColumnMeta {
            name: "duration",
            field: "duration",
            insert: true,
            update: true,
        },
        ColumnMeta {
            name: "created_at",
            field: "created_at",
            insert: false,
            update: false,
        },
    ];

    fn meta(table: &'static str, columns: &'static [ColumnMeta]) -> ModelMeta {
        ModelMeta {
            name: "Spin",
            table,
            tenant_column: "tenant_id",
            columns,
            key: 0,
        }
    }

    #[test]
    fn builds_tenant_filtered_statements() {
        let s = ModelSqlBuild::build(&meta("spins", COLS));
        let b = s.get(&meta("spins", COLS)).unwrap();
        assert_eq!(
            b.get.text(None),
            r#"SELECT "id", "duration", "created_at" FROM "spins" WHERE "tenant_id" = $2 AND "id" = $1"#
        );
        assert_eq!(
            b.insert_one.text(None),
            r#"INSERT INTO "spins" ("tenant_id", "id", "duration") VALUES (tenancy.write_fence($3, 'shared_table', NULL::text), $1, $2) RETURNING "id", "duration", "created_at""#
        );
        assert_eq!(
            b.update_row.text(None),
            r#"UPDATE "spins" SET "duration" = $2 WHERE "tenant_id" = $3 AND (SELECT tenancy.write_fence($3, 'shared_table', NULL::text)) IS NOT NULL AND "id" = $1 RETURNING "id", "duration", "created_at""#
        );
        // Every write checks the home it is going to; an own schema's is its schema.
        for tpl in [&b.insert_one, &b.update_row, &b.delete_one] {
            let own = tpl.text(Some(r#""t_acme""#));
            assert!(
                own.contains("tenancy.write_fence(") && own.contains("'own_schema', 't_acme'"),
                "{own}"
            );
            assert!(
                !own.contains(FENCE_OPEN) && !own.contains(FENCE_CLOSE) && !own.contains(AT_TABLE),
                "{own}"
            );
        }
        for tpl in [
            &b.get,
            &b.get_many,
            &b.update_row,
            &b.delete_one,
            &b.exists_one,
            &b.count_all,
        ] {
            // The tenant's placeholder is the last one: it is bound after every user value.
            let last = format!(r#""tenant_id" = ${}"#, tpl.tenant);
            let sql = tpl.text(None);
            assert!(sql.contains(&last), "{sql}");
            assert!(!sql.contains(&format!("${}", tpl.tenant + 1)), "{sql}");
            let own = tpl.text(Some(r#""t_acme""#));
            assert!(own.contains(r#""t_acme"."spins""#), "{own}");
            assert!(own.contains(&last), "{own}");
        }
    }

    #[test]
    fn refuses_injection_through_names() {
        const BAD: &[ColumnMeta] = &[ColumnMeta {
            name: "id\" FROM spins --",
            field: "id",
            insert: true,
            update: false,
        }];
        assert!(ModelSqlBuild::build(&meta("spins", BAD)).0.is_err());
        assert!(
            ModelSqlBuild::build(&meta("spins; drop table x", COLS))
                .0
                .is_err()
        );
        const TENANT: &[ColumnMeta] = &[ColumnMeta {
            name: "tenant_id",
            field: "t",
            insert: true,
            update: true,
        }];
        assert!(ModelSqlBuild::build(&meta("spins", TENANT)).0.is_err());
    }
}
