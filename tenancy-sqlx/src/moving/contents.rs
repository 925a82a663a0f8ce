//! What a tenant's home holds, table by table: the rows and checksum a move verifies its copy
//! with. A rerun of a move between servers compares a copy an earlier run left on the target
//! with the sealed source before it replaces it (see `between`): the two differ only if the
//! copy took writes, which it can only have as the tenant's home, after a switch the registry
//! has since lost.
//!
//! Both sides are read acting for the tenant (row-level security would hide every row
//! otherwise, and two empty sides compare equal) and printing values alike (`across::same_text`).
//! A column only the source has is left out: a migration that added one to the sealed source
//! after the cut (its targets come from the registry) changes no row the copy could lack. A
//! column only the copy has is a difference (in a table where the copy holds rows): the copy
//! was migrated as the tenant's home, and the column may hold what the source lacks.

use std::collections::{BTreeMap, BTreeSet};

use sqlx::PgConnection;
use tenancy_core::TenantId;

use super::{checksum, count};
use crate::Result;
use crate::archive::data_columns;
use crate::catalog;
use crate::lifecycle::{TenantTable, tenant_tables_children_first};

/// A table holding the tenant's rows, with the columns its contents are read by.
pub(super) struct Shape {
    table: TenantTable,
    /// Its data columns (the tenant's column aside), in name order.
    columns: Vec<String>,
    /// Its primary key's data columns: the checksum's row order.
    key: Vec<String>,
}

/// The tables of tenant `id`'s home in schema `schema` of the database `conn` is on, by name.
/// Refuses a home with a table no reading of which reads each row once (see
/// `lifecycle::split_inheritance`): compared by it, a copy could pass for empty or equal and be
/// dropped with rows the source lacks.
pub(super) async fn shapes(
    conn: &mut PgConnection,
    id: TenantId,
    schema: &str,
) -> Result<BTreeMap<String, Shape>> {
    let tables = tenant_tables_children_first(conn, Some(schema)).await?;
    super::refuse_split(id, &tables)?;
    let mut out = BTreeMap::new();
    for table in tables {
        let mut columns = data_columns(conn, &table).await?;
        columns.sort();
        let key = crate::sql::admin_scalar::<String>(catalog::PRIMARY_KEY_COLUMNS)
            .bind(table.oid)
            .fetch_all(&mut *conn)
            .await?
            .into_iter()
            .filter(|c| *c != table.column_name)
            .collect();
        out.insert(
            table.relname.clone(),
            Shape {
                table,
                columns,
                key,
            },
        );
    }
    Ok(out)
}

/// Tenant `id`'s rows in all of `shapes`.
pub(super) async fn rows(
    conn: &mut PgConnection,
    id: TenantId,
    shapes: &BTreeMap<String, Shape>,
) -> Result<i64> {
    let mut total = 0;
    for shape in shapes.values() {
        total += count(conn, id, &shape.table).await?;
    }
    Ok(total)
}

/// Where two homes of tenant `id` first differ: a table, with its rows on each side.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Difference {
    pub(super) table: String,
    pub(super) source_rows: u64,
    pub(super) copy_rows: u64,
}

/// The first table whose tenant rows differ between `source` and `copy` (each a transaction
/// acting for the tenant, with its tables' shapes), over the columns both have; `None` when
/// they hold the same.
pub(super) async fn first_difference(
    id: TenantId,
    (source, of_source): (&mut PgConnection, &BTreeMap<String, Shape>),
    (copy, of_copy): (&mut PgConnection, &BTreeMap<String, Shape>),
) -> Result<Option<Difference>> {
    let names: BTreeSet<&String> = of_source.keys().chain(of_copy.keys()).collect();
    for name in names {
        let (source_rows, copy_rows, same) = match (of_source.get(name), of_copy.get(name)) {
            (Some(a), Some(b)) => {
                let columns = common(&a.columns, &b.columns);
                let key = common(&a.key, &columns);
                let (n, x) = checksum(source, id, &a.table, &columns, &key).await?;
                let (m, y) = checksum(copy, id, &b.table, &columns, &key).await?;
                // A column only the copy has (a migration run on it as the tenant's home) may
                // hold what the source lacks: its rows are not the source's.
                let only_copy = b.columns.len() > columns.len() && m > 0;
                (n, m, n == m && x == y && !only_copy)
            }
            (Some(a), None) => {
                let n = count(source, id, &a.table).await?;
                (u64::try_from(n).unwrap_or(0), 0, n == 0)
            }
            (None, Some(b)) => {
                let m = count(copy, id, &b.table).await?;
                (0, u64::try_from(m).unwrap_or(0), m == 0)
            }
            (None, None) => continue,
        };
        if !same {
            return Ok(Some(Difference {
                table: name.clone(),
                source_rows,
                copy_rows,
            }));
        }
    }
    Ok(None)
}

/// The names of `a` that `b` has too, in `a`'s order.
fn common(a: &[String], b: &[String]) -> Vec<String> {
    a.iter().filter(|c| b.contains(c)).cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_columns_both_sides_have_are_compared() {
        let names = |n: &[&str]| n.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let source = names(&["duration", "id", "note", "weight"]);
        let copy = names(&["duration", "id", "note"]);
        assert_eq!(common(&source, &copy), names(&["duration", "id", "note"]));
        assert_eq!(common(&copy, &source), names(&["duration", "id", "note"]));
        assert_eq!(common(&names(&["id"]), &names(&[])), names(&[]));
    }
}
