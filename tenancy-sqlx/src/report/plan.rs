//! How a report's tenants are split into statements ([`Batch`]), and running one.
//!
//! Shared-table tenants are read by one statement (`tenant = ANY($n)` over exactly the chosen
//! tenants); own-schema tenants by `UNION ALL` statements of at most `batch` schemas each, every
//! branch tagged with its tenant, with the ordering and the limit pushed into each branch. Each
//! statement runs on its own (its own implicit transaction), so the locks one holds are released
//! before the next: 10,000 schemas never sit in the lock table at once.

use sqlx::postgres::{PgArguments, PgRow};
use tenancy_core::TenantId;

use tenancy_core::home::DatabaseRef;

use crate::Result;
use crate::runtime::{Lane, Runtime};

pub(crate) use super::tenants::HOME_SCHEMA;
use super::tenants::Targets;

/// One statement of a report: the shared tables for some tenants, a batch of schemas, or one
/// own-database tenant (its schema in its database, run on a connection to it).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Batch<'a> {
    Shared(&'a [TenantId]),
    Schemas(&'a [(TenantId, String)]),
    Database {
        /// The tenants, with the quoted schemas their tables are in: an own database's one, or
        /// some of a server home's own-schema tenants.
        schemas: &'a [(TenantId, String)],
        database: &'a DatabaseRef,
    },
    /// Shared-table tenants of another server, in its home database (run on a connection to
    /// it, leased for the first of them).
    Home {
        tenants: &'a [TenantId],
        database: &'a DatabaseRef,
    },
}

/// The statements that cover `targets`: one for the shared tables, and the schemas in batches
/// of at most `batch`, smaller when that spreads them over `concurrency` statements (200
/// schemas at 4 at once: 4 batches of 50, not 2 of 100 and 2 idle connections).
pub(crate) fn batches(targets: &Targets, batch: usize, concurrency: usize) -> Vec<Batch<'_>> {
    let mut batches = schema_batches(&targets.shared, &targets.schemas, batch, concurrency);
    batches.extend(database_batches(targets, batch));
    batches
}

/// One statement per own-database tenant, one per server home's shared tables, and one per
/// `batch` own schemas of a server home: a connection serves one database.
fn database_batches(targets: &Targets, batch: usize) -> impl Iterator<Item = Batch<'_>> {
    let own = targets.databases.iter().flat_map(move |d| {
        d.tenants
            .chunks(batch.max(1))
            .map(|schemas| Batch::Database {
                schemas,
                database: &d.database,
            })
    });
    let homes = targets.homes.iter().map(|h| Batch::Home {
        tenants: &h.tenants,
        database: &h.database,
    });
    own.chain(homes)
}

fn schema_batches<'a>(
    shared: &'a [TenantId],
    schemas: &'a [(TenantId, String)],
    batch: usize,
    concurrency: usize,
) -> Vec<Batch<'a>> {
    let spread = schemas.len().div_ceil(concurrency.max(1));
    let per = batch.min(spread).max(1);
    let mut batches = Vec::with_capacity(1 + schemas.len().div_ceil(per));
    if !shared.is_empty() {
        batches.push(Batch::Shared(shared));
    }
    batches.extend(schemas.chunks(per).map(Batch::Schemas));
    batches
}

/// Own-schema tenants a report with an ordering and a limit reads first, alone, to bound what
/// the statements after it sort (see [`Report`](crate::Report)); fewer if
/// [`Report::batch_size`](crate::Report::batch_size) is smaller.
///
/// ```
/// assert_eq!(tenancy_sqlx::PROBE_SCHEMAS, 8);
/// ```
pub const PROBE_SCHEMAS: usize = 8;

/// As [`batches`], with a first statement over a few schemas to run before the others (when
/// there are more schemas than that): its rows bound what the others need to sort.
pub(crate) fn batches_with_probe(
    targets: &Targets,
    batch: usize,
    concurrency: usize,
) -> (Option<Batch<'_>>, Vec<Batch<'_>>) {
    let probe = PROBE_SCHEMAS.min(batch).max(1);
    if targets.schemas.len() <= probe {
        return (None, batches(targets, batch, concurrency));
    }
    let (first, rest) = targets.schemas.split_at(probe);
    let mut rest = schema_batches(&targets.shared, rest, batch, concurrency);
    rest.extend(database_batches(targets, batch));
    (Some(Batch::Schemas(first)), rest)
}

/// Runs one statement of a report on a pooled connection. The shared-table statement is
/// prepared and cached as repository statements are (its text does not depend on the
/// tenants); statements over schemas only when `cache_schemas` says so: their text names the
/// schemas, and each cached one holds a plan of its whole batch on the connection.
///
/// A cached statement over schemas runs with its generic plan. PostgreSQL would otherwise plan
/// it anew for its first five runs on each connection (a custom plan for the bound values),
/// and planning a `UNION ALL` of 100 branches costs more than running it: 4-15 ms against
/// 0.2 ms for the generic plan (96 schemas, newest first, on the 2-core benchmark machine),
/// while the pool spreads a report's runs over all its connections. A branch reads one tenant's
/// table through `tenant = $n` and a bound, which a generic plan serves as well as a custom one.
pub(crate) async fn run(
    rt: &Runtime,
    part: Batch<'_>,
    cache_schemas: bool,
    (sql, args): (String, PgArguments),
) -> Result<Vec<PgRow>> {
    use tracing::Instrument;
    let (persistent, generic, span) = match part {
        Batch::Shared(t) => (
            rt.persistent,
            false,
            tracing::debug_span!("tenancy.report", shared_tenants = t.len()),
        ),
        Batch::Schemas(s) => {
            let cached = rt.persistent && cache_schemas;
            (
                cached,
                cached,
                tracing::debug_span!("tenancy.report", schemas = s.len()),
            )
        }
        // The same text for every tenant database (the tenant is bound), and for every home
        // (the tenants are bound).
        Batch::Database { database, .. } | Batch::Home { database, .. } => (
            rt.persistent,
            false,
            tracing::debug_span!("tenancy.report", database = database.as_str()),
        ),
    };
    let q = sqlx::query_with(crate::sql::text(sql), args).persistent(persistent);
    // Across tenants by design: past row-level security with `tenancy.all_tenants` (see rls.rs).
    match part {
        Batch::Database { .. } | Batch::Home { .. } => {
            let (tenant, database) = match part {
                Batch::Database { schemas, database } => {
                    (schemas.first().map(|(t, _)| *t), database)
                }
                Batch::Home { tenants, database } => (tenants.first().copied(), database),
                _ => unreachable!("matched above"),
            };
            let tenant = tenant.ok_or_else(|| {
                crate::Error::Report("a tenant database's part names no tenant".into())
            })?;
            rt.with_all_tenants_of(Lane::Database(database), tenant, async |c| {
                Ok(q.fetch_all(c).await?)
            })
            .instrument(span)
            .await
        }
        _ => {
            rt.read_all_tenants(generic, async |c| Ok(q.fetch_all(c).await?))
                .instrument(span)
                .await
        }
    }
}
