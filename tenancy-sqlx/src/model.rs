//! What `#[tenant_scoped]` generates an implementation of: a description of the model, and the
//! statements the runtime builds from it.
//!
//! Nothing here runs SQL, and nothing a model implements supplies SQL. A `Model` describes a
//! table ([`ModelMeta`]: names, which columns are inserted and updated, which is the key), hands
//! out its fields as [`ColumnType`] values and decodes rows. The runtime builds every statement
//! from the description (names validated and quoted), binds exactly the fields the statement was
//! built for, and binds the tenant itself, last (see `bind.rs`).
//!
//! # Who can implement `Model`
//!
//! Everything the attribute writes, a user can write: `#[doc(hidden)]` is not a boundary, and
//! neither is any trait the expansion implements. So the boundary is not who implements the
//! trait but what an implementation can do:
//!
//! - its description is a claim, checked against the database before the model's first
//!   statement through each `Tenancy` handle (`verify.rs`): the declared tenant column must be
//!   the table's tenant column, and no model column may be one;
//! - the statements are the runtime's, built from the checked description; the trait has no
//!   method that returns SQL or binds arguments, and a value that hands out more or fewer fields
//!   than the statement binds is refused.
//!
//! A hand-written implementation, even a copy of an expansion, therefore reaches only the
//! tenant's own rows of a table shaped for isolation, as a generated one does. The supertrait
//! [`TenantScoped`] adds no power: it turns a plain hand-written `impl Model` into a compile
//! error that says to use the attribute (`ui-tests/.../sealed/model-by-hand.rs`), which is all a
//! trait the attribute must be able to implement can do. A `const`-evaluated check of the
//! description was weighed and left out: it could check the description only against itself,
//! which `Statements::build` already does, at a compile cost in every model.

use std::any::TypeId;
use std::collections::{BTreeMap, HashSet};
use std::fmt::Write;
use std::sync::{PoisonError, RwLock};

use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::{Decode, Encode, Postgres, Row, Type};
use tenancy_core::ident;
use uuid::Uuid;

use crate::sql::TENANT;
use crate::value::{BindValue, Value};
use crate::{Error, Result};

/// A tenant-scoped model's table, as `#[tenant_scoped]` describes it.
#[derive(Debug)]
pub struct ModelMeta {
    /// The Rust type's name, for messages.
    pub name: &'static str,
    /// The table.
    pub table: &'static str,
    /// The column that holds the tenant id in shared tables (`tenant_id` unless renamed).
    pub tenant_column: &'static str,
    /// The persisted fields, in declaration order.
    pub columns: &'static [ColumnMeta],
    /// Index in `columns` of the uuid key.
    pub key: usize,
}

/// One persisted field of a model.
#[derive(Debug)]
pub struct ColumnMeta {
    /// The column's name in the table.
    pub name: &'static str,
    /// The Rust field's name.
    pub field: &'static str,
    /// Written by inserts (false for columns the database fills).
    pub insert: bool,
    /// Written by whole-row updates (false for the key and read-only columns).
    pub update: bool,
}

/// A tenant-scoped model. Implemented by `#[tenant_scoped]`; see the crate docs and the module
/// docs of `model.rs` for why a hand-written implementation is refused and harmless anyway.
///
/// The implementation is small on purpose (each model's is type-checked in the user's crate):
/// it decodes a row in one body and hands out its fields as [`ColumnType`] objects; binding,
/// cursor values and the choice of decoding by position or by name are provided here, once.
pub trait Model: TenantScoped + Sized + Send + Sync + Unpin + 'static {
    /// The insertable part of the model (`New<Model>`), without the columns the database fills.
    type New: NewModel<Model = Self>;

    /// The description of the table: a claim, checked against the database before the model's
    /// first statement (see [`Tenancy::verify`](crate::Tenancy::verify)).
    const META: ModelMeta;

    /// This row's key.
    fn key(&self) -> Uuid;

    /// Decodes a row: by position (`META.columns` order) when `names` is `None`, else by the
    /// names of `names` (the model's columns).
    #[doc(hidden)]
    fn decode(
        row: &PgRow,
        names: Option<&'static [ColumnMeta]>,
    ) -> std::result::Result<Self, sqlx::Error>;

    /// The field of column `index`, if there is one.
    #[doc(hidden)]
    fn column(&self, index: usize) -> Option<&dyn ColumnType>;

    /// Decodes a row whose columns are `META.columns`, in that order.
    #[doc(hidden)]
    fn decode_row(row: &PgRow) -> std::result::Result<Self, sqlx::Error> {
        Self::decode(row, None)
    }

    /// Decodes a row by column names (for raw SQL, whose column order is the user's).
    #[doc(hidden)]
    fn decode_named(row: &PgRow) -> std::result::Result<Self, sqlx::Error> {
        Self::decode(row, Some(Self::META.columns))
    }
}

/// Marks a type `#[tenant_scoped]` declared a model. It carries nothing: it turns a
/// hand-written `impl Model` into an error that says what to write instead. See the module docs
/// for why a hand-written implementation could do no harm anyway.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a `#[tenant_scoped]` model",
    label = "`Model` is implemented by `#[tenant_scoped]`, not by hand",
    note = "declare the struct with `#[tenant_scoped(table = \"...\")]`; tenancy checks the description it generates against the database and builds every statement itself"
)]
pub trait TenantScoped {}

/// The insertable part of a model, generated as `New<Model>` by `#[tenant_scoped]`.
pub trait NewModel: Send + Sync {
    /// The model it inserts.
    type Model: Model;

    /// The `n`th insertable column's field (in `META.columns` order), if there is one.
    #[doc(hidden)]
    fn column(&self, n: usize) -> Option<&dyn ColumnType>;
}

// Binding is done here, not in provided trait methods: a hand-written `Model` could override
// those, and they receive the arguments that already hold the tenant as `$1`. The fields they
// bind are `ColumnType`s, a sealed trait whose only implementation binds one value.

/// Binds the field of column `index` of `row`.
pub(crate) fn bind_column<M: Model>(
    row: &M,
    index: usize,
    args: &mut PgArguments,
) -> std::result::Result<(), BoxDynError> {
    match row.column(index) {
        Some(field) => field.bind_to(args),
        None => Err("column index out of range".into()),
    }
}

/// A copy of the field of column `index` of `row` (for keyset cursors).
pub(crate) fn column_value<M: Model>(row: &M, index: usize) -> Option<Value> {
    row.column(index).map(ColumnType::to_value)
}

/// Binds the `width` insertable columns of `new`, in `META.columns` order: exactly that many,
/// the number the statement was built for.
pub(crate) fn bind_insert<N: NewModel>(
    new: &N,
    width: usize,
    args: &mut PgArguments,
) -> Result<()> {
    for n in 0..width {
        let field = new.column(n).ok_or_else(|| Error::InvalidModel {
            model: N::Model::META.name,
            reason: format!(
                "its insertable value has {n} fields; the model inserts {width} columns"
            ),
        })?;
        field.bind_to(args).map_err(Error::Encode)?;
    }
    if new.column(width).is_some() {
        return Err(Error::InvalidModel {
            model: N::Model::META.name,
            reason: format!(
                "its insertable value has more fields than the {width} columns the model inserts"
            ),
        });
    }
    Ok(())
}

/// A type a model's field can have: sqlx decodes it from and binds it to PostgreSQL, and it can
/// be copied into a keyset cursor. Implemented for every such type; mark a field that is not a
/// column `#[tenancy(skip)]`.
///
/// All the generic sqlx work on fields happens in this implementation, compiled once per field
/// type, rather than in each model's generated code.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be the type of a column",
    label = "sqlx cannot decode, bind or copy `{Self}` for PostgreSQL",
    note = "a column's type implements sqlx's `Type<Postgres>`, `Decode` and `Encode` (as `#[derive(sqlx::Type)]` does) and `Clone`; mark a field that is not a column #[tenancy(skip)]"
)]
pub trait ColumnType: crate::value::sealed::Encodable + Send + Sync + 'static {
    /// Decodes column `index` of `row` (by position, or by `names[index].name`).
    #[doc(hidden)]
    fn decode(
        row: &PgRow,
        names: Option<&'static [ColumnMeta]>,
        index: usize,
    ) -> std::result::Result<Self, sqlx::Error>
    where
        Self: Sized;

    /// Adds this value to `args`.
    #[doc(hidden)]
    fn bind_to(&self, args: &mut PgArguments) -> std::result::Result<(), BoxDynError>;

    /// A shared copy of this value.
    #[doc(hidden)]
    fn to_value(&self) -> Value;
}

impl<T> ColumnType for T
where
    T: for<'r> Decode<'r, Postgres>
        + for<'q> Encode<'q, Postgres>
        + Type<Postgres>
        + Clone
        + Send
        + Sync
        + 'static,
{
    fn decode(
        row: &PgRow,
        names: Option<&'static [ColumnMeta]>,
        index: usize,
    ) -> std::result::Result<Self, sqlx::Error> {
        match names {
            None => row.try_get(index),
            Some(names) => match names.get(index) {
                Some(column) => row.try_get(column.name),
                None => Err(sqlx::Error::ColumnIndexOutOfBounds {
                    index,
                    len: names.len(),
                }),
            },
        }
    }

    fn bind_to(&self, args: &mut PgArguments) -> std::result::Result<(), BoxDynError> {
        BindValue::bind(self, args)
    }

    fn to_value(&self) -> Value {
        Value::new(self.clone())
    }
}

/// Every model's statements, built on first use and kept for the life of the process (one entry
/// per model type, so the leak is bounded). A registry here rather than a `static` in each
/// generated implementation: generic code cannot own a static per type, and one fewer function,
/// static and closure per model is less for rustc to check in the user's crate.
static STATEMENTS: RwLock<BTreeMap<TypeId, &'static Statements>> = RwLock::new(BTreeMap::new());

/// The statements of `M`, unchecked: for code that needs its names (row-level security's
/// policies). A tenant's statement takes its text from `TenantUnit::statements`, which checks the
/// table first.
pub(crate) fn statements<M: Model>() -> Result<&'static Built> {
    statements_of(TypeId::of::<M>(), &M::META).get(&M::META)
}

/// The statements of the model with type id `id` and description `meta`.
pub(crate) fn statements_of(id: TypeId, meta: &ModelMeta) -> &'static Statements {
    let found = STATEMENTS
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&id)
        .copied();
    found.unwrap_or_else(|| {
        // Built outside the lock; if two threads race, the first insertion wins and the other
        // build is dropped.
        let built = Statements::build(meta);
        let mut map = STATEMENTS.write().unwrap_or_else(PoisonError::into_inner);
        *map.entry(id).or_insert_with(|| Box::leak(Box::new(built)))
    })
}

/// SQL built once per model from its [`ModelMeta`], by the runtime alone.
pub(crate) struct Statements(std::result::Result<Built, String>);

pub(crate) struct Built {
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
    pub(crate) select: Tpl,
    pub(crate) get: Tpl,
    pub(crate) get_many: Tpl,
    pub(crate) insert_head: Tpl,
    pub(crate) insert_one: Tpl,
    pub(crate) update_row: Tpl,
    pub(crate) delete_one: Tpl,
    pub(crate) exists_one: Tpl,
    pub(crate) count_all: Tpl,
}

/// Marks where the table reference goes while a statement is built.
const AT_TABLE: char = '\u{1}';

/// A statement whose table reference depends on the tenant's placement: as built, for shared
/// tables; with the tenant's schema in front, for a tenant in its own schema. Every statement
/// keeps the tenant predicate in both placements (tenant tables carry the tenant column too, so
/// one set of migrations serves both), a second guard against a row in the wrong schema.
pub(crate) struct Tpl {
    shared: String,
    at: usize,
    /// The placeholder the statement reads the tenant from, as it is: 0 for the heads that
    /// callers complete (they place the tenant themselves).
    pub(crate) tenant: usize,
}

impl Tpl {
    fn new(marked: String, tenant: usize) -> Self {
        let at = marked.find(AT_TABLE).unwrap_or(0);
        Self {
            shared: marked.replacen(AT_TABLE, "", 1),
            at,
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

    /// As an owned string, to extend.
    pub(crate) fn text(&self, schema: Option<&str>) -> String {
        match schema {
            None => self.shared.clone(),
            Some(schema) => {
                let mut out = String::with_capacity(self.shared.len() + schema.len() + 1);
                out.push_str(&self.shared[..self.at]);
                out.push_str(schema);
                out.push('.');
                out.push_str(&self.shared[self.at..]);
                out
            }
        }
    }
}

impl Built {
    /// The table reference for a placement (see [`Tpl::sql`]).
    pub(crate) fn table_ref(&self, schema: Option<&str>) -> std::borrow::Cow<'_, str> {
        match schema {
            None => std::borrow::Cow::Borrowed(&self.table),
            Some(schema) => std::borrow::Cow::Owned(format!("{schema}.{}", self.table)),
        }
    }
}

impl Statements {
    /// Validates `meta` and builds its statements. Errors are kept and reported on every use.
    pub(crate) fn build(meta: &ModelMeta) -> Self {
        Self(Built::new(meta))
    }

    pub(crate) fn get(&self, meta: &ModelMeta) -> Result<&Built> {
        self.0.as_ref().map_err(|reason| Error::InvalidModel {
            model: meta.name,
            reason: reason.clone(),
        })
    }
}

impl Built {
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
        push_values_row(&mut insert_one, 1, width, width + 1);
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
        let _ = write!(
            update_row,
            " WHERE {tenant} = ${} AND {key} = $1 RETURNING {select_list}",
            update_cols.len() + 2
        );

        Ok(Self {
            delete_one: Tpl::new(by_key(&format!("DELETE FROM {t}{table}")), 2),
            exists_one: Tpl::new(
                format!(
                    "SELECT EXISTS (SELECT 1 FROM {t}{table} WHERE {tenant} = $2 AND {key} = $1)"
                ),
                2,
            ),
            count_all: Tpl::new(
                format!("SELECT count(*) FROM {t}{table} WHERE {tenant} = $1"),
                1,
            ),
            get: Tpl::new(by_key(&format!("SELECT {select_list} FROM {t}{table}")), 2),
            get_many: Tpl::new(
                format!(
                    "SELECT {select_list} FROM {t}{table} WHERE {tenant} = $2 AND {key} = ANY($1)"
                ),
                2,
            ),
            select: Tpl::new(select, 0),
            insert_head: Tpl::new(insert_head, 0),
            insert_one: Tpl::new(insert_one, width + 1),
            update_row: Tpl::new(update_row, update_cols.len() + 2),
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

/// Appends `($tenant, $first, $first+1, ...)`: the tenant, then `width` values.
pub(crate) fn push_values_row(sql: &mut String, first: usize, width: usize, tenant: usize) {
    let _ = write!(sql, "(${tenant}");
    for p in first..first + width {
        let _ = write!(sql, ", ${p}");
    }
    sql.push(')');
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let s = Statements::build(&meta("spins", COLS));
        let b = s.get(&meta("spins", COLS)).unwrap();
        assert_eq!(
            b.get.text(None),
            r#"SELECT "id", "duration", "created_at" FROM "spins" WHERE "tenant_id" = $2 AND "id" = $1"#
        );
        assert_eq!(
            b.insert_one.text(None),
            r#"INSERT INTO "spins" ("tenant_id", "id", "duration") VALUES ($3, $1, $2) RETURNING "id", "duration", "created_at""#
        );
        assert_eq!(
            b.update_row.text(None),
            r#"UPDATE "spins" SET "duration" = $2 WHERE "tenant_id" = $3 AND "id" = $1 RETURNING "id", "duration", "created_at""#
        );
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
        assert!(Statements::build(&meta("spins", BAD)).0.is_err());
        assert!(
            Statements::build(&meta("spins; drop table x", COLS))
                .0
                .is_err()
        );
        const TENANT: &[ColumnMeta] = &[ColumnMeta {
            name: "tenant_id",
            field: "t",
            insert: true,
            update: true,
        }];
        assert!(Statements::build(&meta("spins", TENANT)).0.is_err());
    }
}
