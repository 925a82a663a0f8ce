//! What a Citus cluster says of the tables tenancy relies on, for
//! [`Tenancy::verify_deployment`](crate::Tenancy::verify_deployment): which are distributed, by
//! which column, in which colocation group, and what of that would hurt a tenant's rows or the
//! registry. Nothing here runs unless the `citus` extension is installed in the database.

use std::collections::BTreeSet;
use std::fmt;

use sqlx::{PgConnection, Row};

use crate::Result;
use crate::catalog;
use crate::lifecycle::TenantTable;

/// How Citus holds one table.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Distribution {
    /// Hash-distributed over the workers' shards by `column`; tables in one `colocation` group
    /// keep the rows of one value on one node, so they join and reference each other.
    Distributed {
        /// The distribution column.
        column: String,
        /// The colocation group.
        colocation: u32,
        /// How many shards.
        shards: u32,
    },
    /// A reference table: one shard, a copy on every node.
    Reference,
    /// One shard on one node, without a distribution column: a table of a distributed schema
    /// (schema-based sharding), or one made so by hand.
    SingleShard {
        /// The colocation group (one per distributed schema).
        colocation: u32,
    },
    /// A Citus local table: in Citus's metadata, its rows on the coordinator only (Citus makes
    /// one of a table that has a foreign key to a reference table).
    CitusLocal,
    /// Not a Citus table: a plain table on the coordinator.
    Local,
}

impl fmt::Display for Distribution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Distributed {
                column,
                colocation,
                shards,
            } => write!(
                f,
                "distributed by {column}, colocation group {colocation}, {shards} shards"
            ),
            Self::Reference => f.write_str("reference table"),
            Self::SingleShard { colocation } => {
                write!(f, "single shard, colocation group {colocation}")
            }
            Self::CitusLocal => f.write_str("Citus local table (coordinator only)"),
            Self::Local => f.write_str("not a Citus table"),
        }
    }
}

/// One table as Citus holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CitusTable {
    /// The table, schema-qualified.
    pub table: String,
    /// The column that says whose a row is, for a table that holds tenant rows; `None` for the
    /// registry's tables.
    pub tenant_column: Option<String>,
    /// How Citus holds it.
    pub distribution: Distribution,
}

impl fmt::Display for CitusTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.table, self.distribution)
    }
}

/// What [`Tenancy::verify_deployment`](crate::Tenancy::verify_deployment) found on a Citus
/// cluster (see the README's Citus section).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CitusReport {
    /// The extension's version.
    pub version: String,
    /// Active primary workers.
    pub workers: u32,
    /// The registry's tables (schema `tenancy`), then every shared table that holds tenant
    /// rows, each with how Citus holds it.
    pub tables: Vec<CitusTable>,
    /// What would hurt: the registry in a distributed schema or distributed, a shared table
    /// distributed by another column than its tenant column, shared tables distributed by the
    /// tenant but in different colocation groups, or left on the coordinator beside ones that
    /// are distributed. Empty when none.
    pub problems: Vec<String>,
}

/// The Citus facts of this database, or `None` without the extension. `tenant_tables` are the
/// shared tables that hold tenant rows.
pub(crate) async fn check(
    conn: &mut PgConnection,
    tenant_tables: &[TenantTable],
) -> Result<Option<CitusReport>> {
    let version: Option<String> = crate::sql::admin_scalar(catalog::CITUS_VERSION)
        .fetch_optional(&mut *conn)
        .await?;
    let Some(version) = version else {
        return Ok(None);
    };
    let workers: i64 = crate::sql::admin_scalar(catalog::CITUS_ACTIVE_WORKERS)
        .fetch_one(&mut *conn)
        .await?;
    let held: Vec<(i64, Distribution)> = crate::sql::admin_query(catalog::CITUS_TABLES)
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| {
            let method: String = r.try_get("method")?;
            let replication: String = r.try_get("replication")?;
            let colocation = u32::try_from(r.try_get::<i64, _>("colocation")?).unwrap_or(0);
            let distribution = match (method.as_str(), replication.as_str()) {
                ("h", _) => Distribution::Distributed {
                    column: r
                        .try_get::<Option<String>, _>("column")?
                        .unwrap_or_default(),
                    colocation,
                    shards: u32::try_from(r.try_get::<i64, _>("shards")?).unwrap_or(0),
                },
                (_, "t") => Distribution::Reference,
                _ if colocation != 0 => Distribution::SingleShard { colocation },
                _ => Distribution::CitusLocal,
            };
            Ok((r.try_get("oid")?, distribution))
        })
        .collect::<Result<_>>()?;
    let of = |oid: i64| {
        held.iter()
            .find(|(o, _)| *o == oid)
            .map_or(Distribution::Local, |(_, d)| d.clone())
    };
    // Older Citus has no schema-based sharding, and no table to ask.
    let schemas: Vec<String> = if crate::sql::admin_scalar::<bool>(catalog::CITUS_HAS_SCHEMAS)
        .fetch_one(&mut *conn)
        .await?
    {
        crate::sql::admin_scalar(catalog::CITUS_DISTRIBUTED_SCHEMAS)
            .fetch_all(&mut *conn)
            .await?
    } else {
        Vec::new()
    };
    let mut report = CitusReport {
        version,
        workers: u32::try_from(workers).unwrap_or(0),
        tables: Vec::new(),
        problems: Vec::new(),
    };
    if schemas.iter().any(|s| s == "tenancy") {
        report.problems.push(
            "schema tenancy is a distributed schema (schema-based sharding): the registry \
             belongs on the coordinator; undistribute it with \
             citus_schema_undistribute('tenancy')"
                .into(),
        );
    }
    for r in crate::sql::admin_query(catalog::REGISTRY_TABLES)
        .fetch_all(&mut *conn)
        .await?
    {
        let table = CitusTable {
            table: r.try_get("name")?,
            tenant_column: None,
            distribution: of(r.try_get("oid")?),
        };
        if matches!(
            table.distribution,
            Distribution::Distributed { .. } | Distribution::SingleShard { .. }
        ) {
            report.problems.push(format!(
                "{}: {}; the registry's tables stay on the coordinator or are reference tables",
                table.table, table.distribution
            ));
        }
        report.tables.push(table);
    }
    let first_shared = report.tables.len();
    for t in tenant_tables {
        report.tables.push(CitusTable {
            table: t.name.clone(),
            tenant_column: Some(t.column_name.clone()),
            distribution: of(t.oid),
        });
    }
    shared_problems(&report.tables[first_shared..], &mut report.problems);
    Ok(Some(report))
}

/// The problems of the shared tables that hold tenant rows.
fn shared_problems(shared: &[CitusTable], problems: &mut Vec<String>) {
    let mut groups = BTreeSet::new();
    for t in shared {
        if let Distribution::Distributed {
            column, colocation, ..
        } = &t.distribution
        {
            if Some(column) == t.tenant_column.as_ref() {
                groups.insert(*colocation);
            } else {
                problems.push(format!(
                    "{}: distributed by {column}, not by its tenant column {}: a tenant's \
                     rows spread over every shard and each lookup asks them all",
                    t.table,
                    t.tenant_column.as_deref().unwrap_or_default()
                ));
            }
        }
    }
    if groups.len() > 1 {
        let list = groups
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        problems.push(format!(
            "the shared tables distributed by tenant are in {} colocation groups ({list}): \
             joins and foreign keys between them need one (colocate_with)",
            groups.len()
        ));
    }
    if !groups.is_empty() {
        for t in shared {
            if matches!(
                t.distribution,
                Distribution::Local | Distribution::CitusLocal
            ) {
                problems.push(format!(
                    "{}: {} beside tables distributed by tenant: every tenant's rows on the \
                     coordinator, and no join or foreign key with them",
                    t.table, t.distribution
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(name: &str, distribution: Distribution) -> CitusTable {
        CitusTable {
            table: name.into(),
            tenant_column: Some("tenant_id".into()),
            distribution,
        }
    }

    fn by(column: &str, colocation: u32) -> Distribution {
        Distribution::Distributed {
            column: column.into(),
            colocation,
            shards: 32,
        }
    }

    #[test]
    fn one_group_by_tenant_is_clean_and_each_departure_is_named() {
        let mut p = Vec::new();
        shared_problems(
            &[
                table("a", by("tenant_id", 2)),
                table("b", by("tenant_id", 2)),
            ],
            &mut p,
        );
        assert!(p.is_empty(), "{p:?}");
        shared_problems(
            &[
                table("a", by("tenant_id", 2)),
                table("b", by("tenant_id", 3)),
                table("c", by("id", 2)),
                table("d", Distribution::Local),
                table("e", Distribution::Reference),
            ],
            &mut p,
        );
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(p[0].starts_with("c: distributed by id, not by its tenant column tenant_id"));
        assert!(p[1].contains("2 colocation groups (2, 3)"), "{}", p[1]);
        assert!(p[2].starts_with("d: not a Citus table beside"));
    }

    #[test]
    fn plain_tables_alone_are_no_problem() {
        let mut p = Vec::new();
        shared_problems(
            &[
                table("a", Distribution::Local),
                table("b", Distribution::CitusLocal),
            ],
            &mut p,
        );
        assert!(p.is_empty(), "{p:?}");
    }
}
