//! The world every test runs in (three tenants with overlapping data, placed as a [`Mix`] says),
//! and the ground truth: the tables read with plain sqlx, in the place each tenant's placement
//! puts its rows.

use std::collections::{BTreeMap, BTreeSet};

use sqlx::{Connection, PgConnection};
use tenancy::{Error, NewTenant, Placement, Tenancy, TenantCtx};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::common::TestDb;
use crate::common::models::*;

// ---------------------------------------------------------------------------------------------
// Placement mixes

/// How the three tenants A, B and C are placed. Every test runs once per mix (see `per_mix!`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mix {
    /// All three on the shared tables.
    AllShared,
    /// All three in schemas of their own.
    AllOwnSchema,
    /// A and C in their own schemas, B (the tenant that mostly acts on A's keys) on the shared
    /// tables.
    MixedAOwn,
    /// The other way round: A and C on the shared tables, B in its own schema.
    MixedBOwn,
    /// All three in databases of their own.
    AllOwnDatabase,
    /// One of each: A in its own database, B on the shared tables, C in its own schema.
    MixedDatabase,
}

impl Mix {
    /// The placements of A, B and C.
    pub fn placements(self) -> [Placement; 3] {
        use Placement::{OwnDatabase as Db, OwnSchema as Own, SharedTable as Shared};
        match self {
            Self::AllShared => [Shared, Shared, Shared],
            Self::AllOwnSchema => [Own, Own, Own],
            Self::MixedAOwn => [Own, Shared, Own],
            Self::MixedBOwn => [Shared, Own, Shared],
            Self::AllOwnDatabase => [Db, Db, Db],
            Self::MixedDatabase => [Db, Shared, Own],
        }
    }
}

// ---------------------------------------------------------------------------------------------
// World: three tenants with overlapping data

pub const DURATIONS: [i32; 12] = [10, 20, 20, 30, 40, 40, 50, 60, 70, 80, 90, 100];
const NAMES: [&str; 3] = ["alpha", "beta", "gamma"];
const SLUGS: [&str; 3] = ["tenant-a", "tenant-b", "tenant-c"];

/// Keys that A and B both use (the primary keys lead with the tenant, so that is allowed).
pub struct Shared {
    pub spinner: Uuid,
    pub spins: [Uuid; 2],
}

/// What was inserted for one tenant, as returned by the repository.
#[derive(Clone)]
pub struct Seed {
    pub spinners: Vec<Spinner>,
    pub spins: Vec<Spin>,
}

impl Seed {
    pub fn spin_ids(&self) -> Vec<Uuid> {
        self.spins.iter().map(|s| s.id).collect()
    }
}

pub struct World {
    pub db: TestDb,
    pub tenancy: Tenancy,
    pub a: TenantCtx,
    pub b: TenantCtx,
    pub c: TenantCtx,
    pub sa: Seed,
    pub sb: Seed,
    pub sc: Seed,
    pub shared: Shared,
}

impl World {
    /// A's spins whose key B does not also use.
    pub fn a_only_spins(&self) -> Vec<Spin> {
        self.sa
            .spins
            .iter()
            .filter(|s| !self.shared.spins.contains(&s.id))
            .cloned()
            .collect()
    }

    /// A's spinners whose key B does not also use.
    pub fn a_only_spinners(&self) -> Vec<Spinner> {
        self.sa
            .spinners
            .iter()
            .filter(|s| s.id != self.shared.spinner)
            .cloned()
            .collect()
    }
}

async fn seed(ctx: &TenantCtx, tag: &str, shared: Option<&Shared>) -> Seed {
    let spinner_ids = [
        shared.map_or_else(Uuid::new_v4, |s| s.spinner),
        Uuid::new_v4(),
        Uuid::new_v4(),
    ];
    let news: Vec<NewSpinner> = NAMES
        .iter()
        .enumerate()
        .map(|(i, name)| NewSpinner {
            id: spinner_ids[i],
            name: (*name).to_owned(),
            color: (i < 2).then(|| format!("{tag}-{name}")),
        })
        .collect();
    let spinners = Spinner::repo().insert_many(ctx, &news).await.unwrap();
    let news: Vec<NewSpin> = DURATIONS
        .iter()
        .enumerate()
        .map(|(i, &duration)| NewSpin {
            id: match shared {
                Some(s) if i < 2 => s.spins[i],
                _ => Uuid::new_v4(),
            },
            spinner_id: spinner_ids[i % 3],
            duration,
            note: match i % 3 {
                0 => None,
                1 => Some(format!("note {tag} {i}")),
                _ => Some(format!("NOTE {tag} {i}")),
            },
        })
        .collect();
    let spins = Spin::repo().insert_many(ctx, &news).await.unwrap();
    assert_eq!(spins.len(), DURATIONS.len());
    Seed { spinners, spins }
}

/// A database of its own with the spinner app's shared tables, and tenants A, B and C placed as
/// `mix` says (own-schema tenants get `t_tenant_a` and so on, made by the tenant migrations).
pub async fn world(name: &str, mix: Mix) -> World {
    let db = TestDb::new(&format!("{name}_{mix:?}")).await;
    let tenancy = crate::common::spinner_tenancy(&db, Tenancy::builder().max_connections(5)).await;
    tenancy.verify::<Spinner>().await.unwrap();
    tenancy.verify::<Spin>().await.unwrap();
    let mut ctxs = Vec::new();
    for (slug, placement) in SLUGS.into_iter().zip(mix.placements()) {
        tenancy
            .create_tenant(NewTenant::new(slug, slug).placement(placement))
            .await
            .unwrap();
        let ctx = tenancy.resolve_slug(slug).await.unwrap();
        assert_eq!(ctx.placement(), placement, "{slug}");
        ctxs.push(ctx);
    }
    let [a, b, c]: [TenantCtx; 3] = ctxs.try_into().unwrap();
    let shared = Shared {
        spinner: Uuid::new_v4(),
        spins: [Uuid::new_v4(), Uuid::new_v4()],
    };
    let sa = seed(&a, "a", Some(&shared)).await;
    let sb = seed(&b, "b", Some(&shared)).await;
    let sc = seed(&c, "c", None).await;
    let w = World {
        db,
        tenancy,
        a,
        b,
        c,
        sa,
        sb,
        sc,
        shared,
    };
    // The ground truth finds each seed where its placement says: were it reading the wrong
    // place, "unchanged" would hold of empty row sets.
    for (ctx, seed) in [(&w.a, &w.sa), (&w.b, &w.sb), (&w.c, &w.sc)] {
        let rows = stored(&w.db, ctx).await;
        let mut ids = seed.spin_ids();
        ids.sort();
        assert_eq!(
            rows.spins.iter().map(|s| s.0).collect::<Vec<_>>(),
            ids,
            "{} ({:?}) as stored",
            ctx.slug(),
            ctx.placement()
        );
        assert_eq!(rows.spinners.len(), NAMES.len());
    }
    w
}

// ---------------------------------------------------------------------------------------------
// Ground truth, read with plain sqlx around the library

const TABLES: [&str; 2] = ["spinners", "spins"];

type SpinnerRow = (Uuid, String, Option<String>, OffsetDateTime);
type SpinRow = (Uuid, Uuid, i32, Option<String>, OffsetDateTime);

/// A tenant's rows exactly as stored.
#[derive(Debug, PartialEq)]
pub struct Stored {
    pub spinners: Vec<SpinnerRow>,
    pub spins: Vec<SpinRow>,
}

/// Where the registry puts each tenant's rows: its schema (own schema) or `public` (shared) in
/// the test's database, or `public` in its own database.
struct Places {
    schema_of: BTreeMap<Uuid, String>,
    database_of: BTreeMap<Uuid, String>,
}

impl Places {
    fn table(&self, tenant: Uuid, table: &str) -> String {
        let schema = self.schema_of.get(&tenant).expect("a registered tenant");
        format!("\"{schema}\".\"{table}\"")
    }

    /// A connection to where `tenant`'s rows are: `main` itself, or its own database.
    async fn conn_for(&self, tenant: Uuid, main: PgConnection) -> PgConnection {
        match self.database_of.get(&tenant) {
            Some(name) => connect_to(name).await,
            None => main,
        }
    }
}

async fn connect_to(database: &str) -> PgConnection {
    PgConnection::connect(&tenancy::testing::database_url(database))
        .await
        .unwrap_or_else(|e| panic!("connect to {database}: {e}"))
}

/// Checks that an own-database tenant's database holds the tenant tables in `public` only, and
/// only that tenant's rows.
async fn check_own_database(tenant: Uuid, database: &str) {
    let mut conn = connect_to(database).await;
    let copies: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_schema::text, table_name::text FROM information_schema.tables \
         WHERE table_name = ANY($1) ORDER BY 1, 2",
    )
    .bind(TABLES)
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let want: Vec<(String, String)> = TABLES.map(|t| ("public".to_owned(), t.to_owned())).to_vec();
    assert_eq!(
        copies, want,
        "{database}: the tenant tables, in public only"
    );
    for table in TABLES {
        let tenants: Vec<Uuid> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT DISTINCT tenant_id FROM public.\"{table}\""
        )))
        .fetch_all(&mut conn)
        .await
        .unwrap();
        for other in tenants {
            assert_eq!(
                other, tenant,
                "rows of tenant {other} in {database}.{table}"
            );
        }
    }
    conn.close().await.unwrap();
}

/// Reads the registry, then checks that every row of every copy of the tenant tables is where
/// its tenant's placement says: the shared tables hold only shared-table tenants' rows, a
/// tenant's schema only that tenant's rows, and no other schema holds these tables.
async fn places(conn: &mut PgConnection) -> Places {
    let registry: Vec<(Uuid, String, Option<String>, Option<String>)> =
        sqlx::query_as("SELECT id, placement, schema_name, database_name FROM tenancy.tenants")
            .fetch_all(&mut *conn)
            .await
            .unwrap();
    let mut schema_of = BTreeMap::new();
    let mut owner_of = BTreeMap::new();
    let mut database_of = BTreeMap::new();
    for (id, placement, schema, database) in registry {
        let schema = match (placement.as_str(), schema, database) {
            ("shared_table", None, None) => "public".to_owned(),
            ("own_schema", Some(schema), None) => {
                owner_of.insert(schema.clone(), id);
                schema
            }
            ("own_database", None, Some(database)) => {
                check_own_database(id, &database).await;
                database_of.insert(id, database);
                "public".to_owned()
            }
            other => panic!("tenant {id}: unexpected registry placement {other:?}"),
        };
        schema_of.insert(id, schema);
    }
    let copies: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_schema::text, table_name::text FROM information_schema.tables \
         WHERE table_name = ANY($1) ORDER BY 1, 2",
    )
    .bind(TABLES)
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    let want: BTreeSet<(String, String)> = std::iter::once("public")
        .chain(owner_of.keys().map(String::as_str))
        .flat_map(|s| TABLES.map(|t| (s.to_owned(), t.to_owned())))
        .collect();
    assert_eq!(
        copies.iter().cloned().collect::<BTreeSet<_>>(),
        want,
        "the tenant tables are in public and in every own-schema tenant's schema, nowhere else"
    );
    for (schema, table) in &copies {
        let tenants: Vec<Uuid> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT DISTINCT tenant_id FROM \"{schema}\".\"{table}\""
        )))
        .fetch_all(&mut *conn)
        .await
        .unwrap();
        for tenant in tenants {
            let home = schema_of
                .get(&tenant)
                .filter(|_| !database_of.contains_key(&tenant))
                .map_or("no tenant's", String::as_str);
            assert_eq!(
                home, schema,
                "rows of tenant {tenant} (whose place is {home}) in {schema}.{table}"
            );
        }
    }
    Places {
        schema_of,
        database_of,
    }
}

/// A tenant's rows exactly as stored, read from its place: its schema's tables, or the shared
/// tables' rows with its tenant id. Also checks that no row anywhere is out of place.
pub async fn stored(db: &TestDb, tenant: &TenantCtx) -> Stored {
    let mut conn = db.connect().await;
    let places = places(&mut conn).await;
    let tenant = tenant.id().as_uuid();
    let mut conn = places.conn_for(tenant, conn).await;
    let spinners = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT id, name, color, created_at FROM {} WHERE tenant_id = $1 ORDER BY id",
        places.table(tenant, "spinners")
    )))
    .bind(tenant)
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let spins = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT id, spinner_id, duration, note, created_at FROM {} WHERE tenant_id = $1 \
         ORDER BY id",
        places.table(tenant, "spins")
    )))
    .bind(tenant)
    .fetch_all(&mut conn)
    .await
    .unwrap();
    Stored { spinners, spins }
}

/// `(tenant_id, count)` for every tenant with rows in `table`, over the shared table and every
/// tenant schema's copy. Also checks that no row anywhere is out of place.
pub async fn per_tenant(db: &TestDb, table: &str) -> Vec<(Uuid, i64)> {
    let mut conn = db.connect().await;
    let places = places(&mut conn).await;
    let copies: BTreeSet<&str> = std::iter::once("public")
        .chain(
            places
                .schema_of
                .iter()
                .filter(|(t, _)| !places.database_of.contains_key(t))
                .map(|(_, s)| s.as_str()),
        )
        .collect();
    let mut groups = Vec::new();
    for database in places.database_of.values() {
        let mut conn = connect_to(database).await;
        let rows: Vec<(Uuid, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT tenant_id, count(*) FROM public.\"{table}\" GROUP BY tenant_id"
        )))
        .fetch_all(&mut conn)
        .await
        .unwrap();
        groups.extend(rows);
    }
    for schema in copies {
        let rows: Vec<(Uuid, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT tenant_id, count(*) FROM \"{schema}\".\"{table}\" GROUP BY tenant_id"
        )))
        .fetch_all(&mut conn)
        .await
        .unwrap();
        groups.extend(rows);
    }
    groups.sort();
    groups
}

pub fn count_of(groups: &[(Uuid, i64)], ctx: &TenantCtx) -> i64 {
    groups
        .iter()
        .find(|(t, _)| *t == ctx.id().as_uuid())
        .map_or(0, |(_, n)| *n)
}

fn by_id<T, F: Fn(&T) -> Uuid>(mut v: Vec<T>, key: F) -> Vec<T> {
    v.sort_by_key(|x| key(x));
    v
}

pub fn spins_by_id(v: Vec<Spin>) -> Vec<Spin> {
    by_id(v, |s| s.id)
}

pub fn spinners_by_id(v: Vec<Spinner>) -> Vec<Spinner> {
    by_id(v, |s| s.id)
}

pub fn is_fk_violation(e: &Error) -> bool {
    matches!(e, Error::Database(d) if d.as_database_error().is_some_and(|d| d.is_foreign_key_violation()))
}
