//! How a report's tenants are split into statements ([`Batch`]), and running one.
//!
//! Shared-table tenants are read by one statement (`tenant = ANY($n)` over exactly the chosen
//! tenants); own-schema tenants by `UNION ALL` statements of at most `batch` schemas each, every
//! branch tagged with its tenant, with the ordering and the limit pushed into each branch. Each
//! statement runs on its own (its own implicit transaction), so the locks one holds are released
//! before the next: 10,000 schemas never sit in the lock table at once.
//!
//! A batch of schemas holds tenants of one report lane only (see `Runtime::report_lanes`), and
//! runs on that lane's connection; [`run_all`] runs a lane's batches one after another.

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
/// of at most `batch`. Without report lanes, smaller batches when that spreads them over
/// `concurrency` statements (200 schemas at 4 at once: 4 batches of 50, not 2 of 100 and 2
/// idle connections); with them, each lane's schemas (`targets.schemas` is grouped by lane)
/// in batches of at most `batch`, since a lane runs one at a time.
pub(crate) fn batches<'a>(
    rt: &Runtime,
    targets: &'a Targets,
    batch: usize,
    concurrency: usize,
) -> Vec<Batch<'a>> {
    batches_over(rt, targets, &targets.schemas, (batch, concurrency))
}

/// [`batches`], with `schemas` (all of `targets.schemas` or what a probe left) for the schemas.
fn batches_over<'a>(
    rt: &Runtime,
    targets: &'a Targets,
    schemas: &'a [(TenantId, String)],
    (batch, concurrency): (usize, usize),
) -> Vec<Batch<'a>> {
    let mut batches = Vec::new();
    if !targets.shared.is_empty() {
        batches.push(Batch::Shared(&targets.shared));
    }
    batches.extend(schema_batches(rt, schemas, batch, concurrency));
    batches.extend(database_batches(targets, batch));
    batches
}

impl Batch<'_> {
    /// The report lane a batch of schemas runs on, if the handle has report lanes.
    fn report_lane(&self, rt: &Runtime) -> Option<usize> {
        match self {
            Batch::Schemas(s) => s.first().and_then(|(t, _)| rt.report_lane(*t)),
            _ => None,
        }
    }
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
    rt: &Runtime,
    schemas: &'a [(TenantId, String)],
    batch: usize,
    concurrency: usize,
) -> impl Iterator<Item = Batch<'a>> {
    let spread = if rt.report_lanes.is_empty() {
        concurrency.max(1)
    } else {
        1
    };
    schemas
        .chunk_by(|(a, _), (b, _)| rt.report_lane(*a) == rt.report_lane(*b))
        .flat_map(move |lane| {
            let per = batch.min(lane.len().div_ceil(spread)).max(1);
            lane.chunks(per).map(Batch::Schemas)
        })
}

/// Orders `schemas` as [`batches`] needs them: grouped by report lane (then by tenant).
pub(crate) fn group_by_lane(rt: &Runtime, schemas: &mut [(TenantId, String)]) {
    schemas.sort_by_key(|(t, _)| (rt.report_lane(*t), *t));
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
/// The probe's schemas are the first lane's, so that it runs on that lane.
pub(crate) fn batches_with_probe<'a>(
    rt: &Runtime,
    targets: &'a Targets,
    batch: usize,
    concurrency: usize,
) -> (Option<Batch<'a>>, Vec<Batch<'a>>) {
    let probe = PROBE_SCHEMAS.min(batch).max(1);
    if targets.schemas.len() <= probe {
        return (None, batches(rt, targets, batch, concurrency));
    }
    let lane = targets.schemas.first().map(|(t, _)| rt.report_lane(*t));
    let first_lane = targets
        .schemas
        .iter()
        .take_while(|(t, _)| Some(rt.report_lane(*t)) == lane)
        .count();
    let (first, rest) = targets.schemas.split_at(probe.min(first_lane));
    let rest = batches_over(rt, targets, rest, (batch, concurrency));
    (Some(Batch::Schemas(first)), rest)
}

/// Runs the futures of `batches` (each made by `run` from its batch, before anything runs), at
/// most `concurrency` at once, and concatenates their rows. The batches of one report lane run
/// one after another: its pool has one connection, so a second one in flight would only wait
/// for its turn ([`run`]) while holding a permit another lane could use.
pub(crate) async fn run_all<'a, T, F>(
    rt: &Runtime,
    batches: Vec<Batch<'a>>,
    concurrency: usize,
    run: impl Fn(Batch<'a>) -> F,
) -> Result<Vec<T>>
where
    F: Future<Output = Result<Vec<T>>>,
{
    let permits =
        tokio::sync::Semaphore::new(concurrency.clamp(1, tokio::sync::Semaphore::MAX_PERMITS));
    let mut lanes: Vec<Vec<F>> = Vec::new();
    lanes.resize_with(rt.report_lanes.len(), Vec::new);
    let mut free = Vec::new();
    for part in batches {
        match part.report_lane(rt) {
            Some(i) => lanes[i].push(run(part)),
            None => free.push(run(part)),
        }
    }
    let permits = &permits;
    let lanes = lanes.into_iter().map(|chain| async move {
        let mut rows = Vec::new();
        for part in chain {
            let _permit = permits.acquire().await.map_err(closed)?;
            rows.extend(part.await?);
        }
        Ok::<_, crate::Error>(rows)
    });
    let free = free.into_iter().map(|part| async move {
        let _permit = permits.acquire().await.map_err(closed)?;
        part.await
    });
    let (a, b) = futures_util::future::try_join(
        futures_util::future::try_join_all(lanes),
        futures_util::future::try_join_all(free),
    )
    .await?;
    Ok(a.into_iter().chain(b).flatten().collect())
}

fn closed(_: tokio::sync::AcquireError) -> crate::Error {
    crate::Error::Report("a report's statements were stopped".into())
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
            rt.with_all_tenants_of(Lane::Across(database), tenant, async |c| {
                Ok(q.fetch_all(c).await?)
            })
            .instrument(span)
            .await
        }
        Batch::Schemas(_) => {
            let Some(lane) = part.report_lane(rt).map(|i| &rt.report_lanes[i]) else {
                return rt
                    .read_all_tenants(generic, async |c| Ok(q.fetch_all(c).await?))
                    .instrument(span)
                    .await;
            };
            let _turn = lane.turn.lock().await;
            rt.read_all_tenants_on(&lane.pool, generic, async |c| Ok(q.fetch_all(c).await?))
                .instrument(span)
                .await
        }
        Batch::Shared(_) => {
            rt.read_all_tenants(generic, async |c| Ok(q.fetch_all(c).await?))
                .instrument(span)
                .await
        }
    }
}
