//! The model check: does each model's table have the shape tenant isolation needs, and is the
//! model's description of it true?
//!
//! A description (`#[tenant_scoped]`'s attribute, or anything else that implements `Model`) is a
//! claim. The runtime checks it against the database before the model's first statement through
//! a `Tenancy` handle (`TenantUnit::statements`), once per model and table (the shared one, or one
//! tenant schema's), and remembers the result: no round trip after the first use, until a
//! migration run through the same handle changes tables. A model that fails is refused with
//! [`Error::TableShape`] every time, until its table is fixed.
//! [`Tenancy::verify`] runs the same check at startup.
//!
//! The tenant column must be the table's tenant column: named `tenant_id`, or the one column
//! with a foreign key to `tenancy.tenants`; the table may have only one such column, and no
//! model column may be one (else the model would write a tenant id of its choosing).
//!
//! In a shared table every key must lead with the tenant: `PRIMARY KEY (tenant_id, id)`,
//! `UNIQUE (tenant_id, ...)`, `FOREIGN KEY (tenant_id, x_id) REFERENCES x (tenant_id, id)`
//! (the tenant column alone may reference `tenancy.tenants (id)`),
//! indexes on `(tenant_id, ...)`. A key without the tenant lets one tenant's row collide with or
//! point at another's; an index without it serves no tenant's query. This is also the shape
//! Citus needs to distribute the table by tenant.

use std::any::TypeId;
use std::collections::BTreeSet;

use sqlx::{PgConnection, Row};

use crate::catalog;
use crate::model::{Model, ModelMeta};
use crate::sql::ModelSql;
use crate::{Error, Result};

/// How a model check's problem says the table is missing (see `crate::moving::moved_away`).
pub(crate) const TABLE_MISSING: &str = "the table does not exist";

/// The statements of a model after its check against the table in `schema` (`None`: shared),
/// run on `conn` (the caller's transaction) or a pooled connection, unless this runtime already
/// passed it. `shared`: the table holds many tenants' rows (see [`check_now`]).
pub(crate) async fn checked(
    rt: &crate::runtime::Runtime,
    conn: Option<&mut PgConnection>,
    model: TypeId,
    meta: &'static ModelMeta,
    (schema, shared): (Option<&str>, bool),
    key: Option<&str>,
) -> Result<&'static ModelSql> {
    if rt.models.has(model, key) {
        return crate::sql::statements_of(model, meta).get(meta);
    }
    check_now(rt, conn, model, meta, (schema, shared), key).await
}

/// As [`checked`], whatever this runtime saw before ([`Tenancy::verify`] asks the database
/// again). `key` is what the pass is remembered under: the quoted schema, and for a tenant
/// database, the database with it (the same schema name in two databases is two tables).
/// `shared`: the table holds many tenants' rows (the registry's shared tables, a server
/// home's), so with row-level security on its policy is checked too.
pub(crate) async fn check_now(
    rt: &crate::runtime::Runtime,
    conn: Option<&mut PgConnection>,
    model: TypeId,
    meta: &'static ModelMeta,
    (schema, shared): (Option<&str>, bool),
    key: Option<&str>,
) -> Result<&'static ModelSql> {
    let statements = crate::sql::statements_of(model, meta).get(meta)?;
    // Row-level security's policy is required where tenants share a table (own schemas and
    // own databases get it from their migrations, and are told apart by name or database).
    let rls = rt.rls && shared;
    let problems = match conn {
        Some(conn) => problems(conn, meta, schema, rls).await?,
        None => {
            rt.with_conn(async |conn| problems(conn, meta, schema, rls).await)
                .await?
        }
    };
    if !problems.is_empty() {
        return Err(Error::TableShape(crate::ShapeReport {
            table: match schema {
                None => meta.table.to_owned(),
                Some(s) => format!("{}.{}", s.trim_matches('"'), meta.table),
            },
            problems,
        }));
    }
    rt.models.mark(model, key);
    Ok(statements)
}

/// Checks `M`'s shared table without its row-level security policy: for installing the policy,
/// which is built from the description and must not be put on a column that is not the tenant's.
pub(crate) async fn check_before_policy<M: Model>(rt: &crate::runtime::Runtime) -> Result<()> {
    crate::sql::statements::<M>()?;
    let problems = rt
        .with_conn(async |conn| problems(conn, &M::META, None, false).await)
        .await?;
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::TableShape(crate::ShapeReport {
            table: M::META.table.to_owned(),
            problems,
        }))
    }
}

/// Checks `M`'s tables a cross-tenant report reads: the shared one if it reads shared-table
/// tenants, the schema of each `(tenant, quoted schema)` in `schemas`, and the table of each
/// `(tenant, database, quoted schema, server home?)` in `databases`, on a connection to that
/// database.
pub(crate) async fn check_report<M: Model>(
    rt: &crate::runtime::Runtime,
    shared: bool,
    schemas: &[(tenancy_core::TenantId, String)],
    databases: &[(
        tenancy_core::TenantId,
        &tenancy_core::home::DatabaseRef,
        &str,
        bool,
    )],
) -> Result<()> {
    let model = TypeId::of::<M>();
    if shared {
        checked(rt, None, model, &M::META, (None, true), None).await?;
    }
    for (_, schema) in schemas {
        checked(
            rt,
            None,
            model,
            &M::META,
            (Some(schema), false),
            Some(schema),
        )
        .await?;
    }
    for &(tenant, database, schema, home) in databases {
        let key = crate::checked::database_key(database, schema);
        if rt.models.has(model, Some(&key)) {
            continue;
        }
        let lane = crate::runtime::Lane::Across(database);
        rt.with_conn_of(lane, tenant, async |conn| {
            check_now(
                rt,
                Some(conn),
                model,
                &M::META,
                (Some(schema), home),
                Some(&key),
            )
            .await
        })
        .await?;
    }
    Ok(())
}

/// Everything wrong with `meta`'s table in `schema`.
async fn problems(
    conn: &mut PgConnection,
    meta: &ModelMeta,
    schema: Option<&str>,
    rls: bool,
) -> Result<Vec<String>> {
    let mut problems = shape_problems(conn, meta, schema).await?;
    if rls && let Some(oid) = table_oid(conn, meta, schema).await? {
        problems.extend(crate::rls::policy_problems(conn, oid, meta.tenant_column).await?);
        problems.extend(crate::rls::descendant_problems(conn, oid, meta.tenant_column).await?);
    }
    Ok(problems)
}

/// The table's oid: `schema.table` for a quoted `schema`, else `table` in the search path.
async fn table_oid(
    conn: &mut PgConnection,
    meta: &ModelMeta,
    schema: Option<&str>,
) -> Result<Option<sqlx::postgres::types::Oid>> {
    let table = tenancy_core::ident::quote(meta.table);
    let name = match schema {
        None => table,
        Some(schema) => format!("{schema}.{table}"),
    };
    Ok(crate::sql::admin_scalar(catalog::TABLE_OID)
        .bind(name)
        .fetch_one(&mut *conn)
        .await?)
}

/// What is wrong with `meta`'s table in `schema` (quoted; `None`: the shared one) on `conn`,
/// row-level security aside (also for installing the policy, which must go on the tenant's
/// column).
pub(crate) async fn shape_problems(
    conn: &mut PgConnection,
    meta: &ModelMeta,
    schema: Option<&str>,
) -> Result<Vec<String>> {
    let tenant = meta.tenant_column;
    let key = meta.columns[meta.key].name;
    let Some(oid) = table_oid(conn, meta, schema).await? else {
        return Ok(vec![match schema {
            None => format!("{TABLE_MISSING} (in the search_path)"),
            Some(s) => format!("{TABLE_MISSING} in schema {s}"),
        }]);
    };

    if schema.is_none() {
        // The shared table is found through the search_path: never in a tenant's schema.
        let found: String = crate::sql::admin_scalar(catalog::TABLE_SCHEMA)
            .bind(oid)
            .fetch_one(&mut *conn)
            .await?;
        if crate::search_path::is_tenant_schema(&found) {
            return Ok(vec![format!(
                "the search_path finds the table in the tenant schema {found:?}, not the shared \
                 one; remove that schema from the connection's search_path"
            )]);
        }
    }
    let mut problems = Vec::new();
    let columns: Vec<sqlx::postgres::PgRow> = crate::sql::admin_query(catalog::TABLE_COLUMNS)
        .bind(oid)
        .fetch_all(&mut *conn)
        .await?;
    let column = |name: &str| columns.iter().find(|r| r.get::<String, _>("name") == name);
    match column(tenant) {
        None => problems.push(format!("no tenant column {tenant:?}")),
        Some(r) => {
            let ty: String = r.get("ty");
            if ty != "uuid" {
                problems.push(format!("tenant column {tenant:?} is {ty}; expected uuid"));
            }
            if !r.get::<bool, _>("attnotnull") {
                problems.push(format!("tenant column {tenant:?} must be NOT NULL"));
            }
        }
    }
    for c in meta.columns {
        if column(c.name).is_none() {
            problems.push(format!(
                "no column {:?} for field `{}` of {}",
                c.name, c.field, meta.name
            ));
        }
    }

    // Constraints: p(rimary), u(nique), f(oreign), x (exclusion), with column names in order.
    let constraints: Vec<sqlx::postgres::PgRow> =
        crate::sql::admin_query(catalog::TABLE_CONSTRAINTS)
            .bind(oid)
            .fetch_all(&mut *conn)
            .await?;
    let mut has_pk = false;
    for c in &constraints {
        let name: String = c.get("name");
        let kind: String = c.get("kind");
        let cols: Vec<String> = c.get("cols");
        let list = cols.join(", ");
        match kind.as_str() {
            "p" => {
                has_pk = true;
                if cols != [tenant, key] {
                    problems.push(format!(
                        "primary key {name:?} is ({list}); expected ({tenant}, {key})"
                    ));
                }
            }
            "f" => {
                let fcols: Vec<String> = c.get("fcols");
                // tenant_id -> tenancy.tenants (id) is the tenant column's own reference.
                let to_registry = c.get::<bool, _>("to_registry") && cols == [tenant];
                let leads = cols.first().map(String::as_str) == Some(tenant)
                    && fcols.first().map(String::as_str) == Some(tenant);
                if !to_registry && !leads {
                    problems.push(format!(
                        "foreign key {name:?} on ({list}) references ({}); both sides must lead with {tenant}, \
                         or a row could point at another tenant's row",
                        fcols.join(", ")
                    ));
                }
            }
            _ => {
                if cols.first().map(String::as_str) != Some(tenant) {
                    let what = if kind == "u" {
                        "unique constraint"
                    } else {
                        "exclusion constraint"
                    };
                    problems.push(format!(
                        "{what} {name:?} is on ({list}); it must lead with {tenant}, or tenants would collide"
                    ));
                }
            }
        }
    }
    if !has_pk {
        problems.push(format!("no primary key; expected ({tenant}, {key})"));
    }
    problems.extend(tenant_column_problems(meta, &columns, &constraints));

    // Indexes not behind one of this table's constraints (those were reported above). A foreign
    // key of another table also records the index it relies on in `conindid`, so match on
    // `conrelid` too, or a tenant-less unique index referenced from elsewhere would pass.
    let indexes = crate::sql::admin_query(catalog::TABLE_INDEXES_WITHOUT_CONSTRAINT)
        .bind(oid)
        .fetch_all(&mut *conn)
        .await?;
    for ix in &indexes {
        let name: String = ix.get("name");
        let first: Option<String> = ix.get("first");
        if first.as_deref() != Some(tenant) {
            problems.push(format!(
                "index {name:?} starts with {}; it must lead with {tenant} to serve a tenant's queries",
                first.map_or_else(|| "an expression".to_owned(), |f| format!("{f:?}"))
            ));
        }
    }
    Ok(problems)
}

/// The table's tenant columns (named `tenant_id`, or alone in a foreign key to
/// `tenancy.tenants`) against the model's: the declared one must be the table's only one, and no
/// model column may be one.
fn tenant_column_problems(
    meta: &ModelMeta,
    columns: &[sqlx::postgres::PgRow],
    constraints: &[sqlx::postgres::PgRow],
) -> Vec<String> {
    let mut tenant_like = BTreeSet::new();
    for c in columns {
        let name: String = c.get("name");
        if name == tenancy_core::DEFAULT_TENANT_COLUMN {
            tenant_like.insert(name);
        }
    }
    for c in constraints {
        let cols: Vec<String> = c.get("cols");
        if c.get::<String, _>("kind") == "f" && c.get::<bool, _>("to_registry") && cols.len() == 1 {
            tenant_like.extend(cols);
        }
    }
    let mut problems = Vec::new();
    let tenant = meta.tenant_column;
    let listed = || {
        tenant_like
            .iter()
            .map(|c| format!("{c:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let declared_exists = columns.iter().any(|c| c.get::<String, _>("name") == tenant);
    if declared_exists && !tenant_like.contains(tenant) {
        problems.push(format!(
            "the model's tenant column {tenant:?} is not the table's tenant column (one named tenant_id, or with a \
             foreign key to tenancy.tenants (id)); the table has {}",
            if tenant_like.is_empty() { "none".to_owned() } else { listed() }
        ));
    } else if tenant_like.len() > 1 {
        problems.push(format!(
            "the table has more than one tenant column ({}); keep one, named tenant_id or with the only foreign key to \
             tenancy.tenants (id)",
            listed()
        ));
    }
    for c in meta.columns {
        if c.name != tenant && tenant_like.contains(c.name) {
            problems.push(format!(
                "column {:?} of field `{}` is a tenant column; the tenant is not a field of {}",
                c.name, c.field, meta.name
            ));
        }
    }
    problems
}
