//! The startup check: does each model's table have the shape tenant isolation needs?
//!
//! In a shared table every key must lead with the tenant: `PRIMARY KEY (tenant_id, id)`,
//! `UNIQUE (tenant_id, ...)`, `FOREIGN KEY (tenant_id, x_id) REFERENCES x (tenant_id, id)`
//! (the tenant column alone may reference `tenancy.tenants (id)`),
//! indexes on `(tenant_id, ...)`. A key without the tenant lets one tenant's row collide with or
//! point at another's; an index without it serves no tenant's query. This is also the shape
//! Citus needs to distribute the table by tenant.

use std::fmt;

use sqlx::{PgConnection, Row};

use crate::model::{Model, ModelMeta};
use crate::{Error, Result, Tenancy};

/// What [`Tenancy::verify`] found wrong with one table.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShapeReport {
    /// The table.
    pub table: String,
    /// One line per problem.
    pub problems: Vec<String>,
}

impl fmt::Display for ShapeReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "table {:?} is not shaped for tenant isolation:",
            self.table
        )?;
        for p in &self.problems {
            write!(f, "\n  - {p}")?;
        }
        Ok(())
    }
}

impl Tenancy {
    /// Checks that `M`'s shared table exists with every model column, a `uuid NOT NULL` tenant
    /// column, and keys, foreign keys and indexes that all lead with the tenant. Call it at
    /// startup for every model.
    ///
    /// With [row-level security](crate::rls) on, also that the table has tenancy's policy,
    /// enabled and forced, and no other permissive policy that would widen it.
    ///
    /// # Errors
    /// [`Error::TableShape`] naming the table and listing every problem;
    /// [`Error::InvalidModel`]; [`Error::Database`].
    pub async fn verify<M: Model>(&self) -> Result<()> {
        M::statements().get(&M::META)?;
        let rls = self.runtime().rls;
        let problems = self
            .runtime()
            .with_conn(async |conn| {
                let mut problems = shape_problems(conn, &M::META).await?;
                if rls && let Some(oid) = table_oid(conn, &M::META).await? {
                    problems.extend(
                        crate::rls::policy_problems(conn, oid, M::META.tenant_column).await?,
                    );
                }
                Ok(problems)
            })
            .await?;
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::TableShape(ShapeReport {
                table: M::META.table.to_owned(),
                problems,
            }))
        }
    }
}

async fn table_oid(
    conn: &mut PgConnection,
    meta: &ModelMeta,
) -> Result<Option<sqlx::postgres::types::Oid>> {
    Ok(crate::sql::admin_scalar("SELECT to_regclass($1)::oid")
        .bind(tenancy_core::ident::quote(meta.table))
        .fetch_one(&mut *conn)
        .await?)
}

async fn shape_problems(conn: &mut PgConnection, meta: &ModelMeta) -> Result<Vec<String>> {
    let tenant = meta.tenant_column;
    let key = meta.columns[meta.key].name;
    let Some(oid) = table_oid(conn, meta).await? else {
        return Ok(vec!["the table does not exist (in the search_path)".into()]);
    };

    let mut problems = Vec::new();
    let columns = crate::sql::admin_query(
        "SELECT attname::text AS name, format_type(atttypid, atttypmod) AS ty, attnotnull \
         FROM pg_attribute WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped",
    )
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
    let constraints = crate::sql::admin_query(
        "SELECT c.conname::text AS name, c.contype::text AS kind, \
                ARRAY(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY k(n, i) \
                      JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.i) AS cols, \
                ARRAY(SELECT a.attname::text FROM unnest(c.confkey) WITH ORDINALITY k(n, i) \
                      JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n ORDER BY k.i) AS fcols, \
                COALESCE(c.confrelid = to_regclass('tenancy.tenants'), false) AS to_registry \
         FROM pg_constraint c WHERE c.conrelid = $1 AND c.contype IN ('p', 'u', 'f', 'x') ORDER BY c.conname",
    )
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

    // Indexes not behind one of this table's constraints (those were reported above). A foreign
    // key of another table also records the index it relies on in `conindid`, so match on
    // `conrelid` too, or a tenant-less unique index referenced from elsewhere would pass.
    let indexes = crate::sql::admin_query(
        "SELECT ci.relname::text AS name, \
                (SELECT a.attname::text FROM pg_attribute a WHERE a.attrelid = i.indrelid AND a.attnum = i.indkey[0]) AS first \
         FROM pg_index i JOIN pg_class ci ON ci.oid = i.indexrelid \
         WHERE i.indrelid = $1 AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid AND c.conrelid = i.indrelid) \
         ORDER BY ci.relname",
    )
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
