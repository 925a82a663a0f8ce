//! The shared-table placement on a Citus cluster: the registry's tables as reference tables, the
//! shared tables distributed by `tenant_id` and colocated, and everything tenancy does on them
//! (repositories, raw SQL, transactions, reports, the lifecycle, hosts and members, migrations
//! that create indexes, export and import); a tenant's lookup routed to one shard; what
//! `verify_deployment` says of the cluster; and schema-based sharding, which must leave the
//! registry alone and may hold own-schema tenants.
//!
//! Runs when `TENANCY_CITUS_URL` names a Citus coordinator's database, with its workers added and
//! `pg_stat_statements` preloaded (`scripts/citus cargo test --test citus` starts such a cluster).
//! Each test makes a database of its own on every node. Without `TENANCY_CITUS_URL`, each test
//! says it was skipped and returns: CI cannot install Citus, and a skipped run proves nothing.

mod common;

use std::collections::BTreeMap;
use std::io::Write;

use common::models::*;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};
use tenancy::{
    Agg, Distribution, Error, MigrateOptions, Migration, Migrations, NewTenant, Outcome, Placement,
    Purged, Superuser, Tenancy, TenantCtx, TenantStatus,
};
use uuid::Uuid;

/// The spinner app as a Citus deployment writes it: each table distributed by its tenant right
/// after it is created (parents first, children colocated with them, so that their foreign keys
/// hold), then the index, which Citus creates on every shard.
const CITUS_SPINNERS: &str = "\
CREATE TABLE spinners (
    tenant_id  uuid NOT NULL REFERENCES tenancy.tenants (id),
    id         uuid NOT NULL,
    name       text NOT NULL,
    color      text,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, name)
);
SELECT create_distributed_table('spinners', 'tenant_id');
CREATE TABLE spins (
    tenant_id  uuid NOT NULL,
    id         uuid NOT NULL DEFAULT gen_random_uuid(),
    spinner_id uuid NOT NULL,
    duration   integer NOT NULL,
    note       text,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, spinner_id) REFERENCES spinners (tenant_id, id) ON DELETE CASCADE
);
SELECT create_distributed_table('spins', 'tenant_id', colocate_with => 'spinners');
CREATE INDEX spins_recent ON spins (tenant_id, created_at DESC);
";

/// The registry's tables that reference `tenancy.tenants` follow it: parent first.
const REGISTRY_AS_REFERENCE_TABLES: &str = "\
SELECT create_reference_table('tenancy.tenants');
SELECT create_reference_table('tenancy.domains');
SELECT create_reference_table('tenancy.memberships');";

fn citus_url(test: &str) -> Option<String> {
    match std::env::var("TENANCY_CITUS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            // Straight to stderr, past the test harness's capture: a skip must be seen.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {test}: TENANCY_CITUS_URL is not set, so nothing was checked. Run the \
                 Citus suite with `scripts/citus cargo test --test citus` (see scripts/citus)."
            );
            None
        }
    }
}

/// A database of one test's own on every node of the cluster, with the extension and the
/// workers added; dropped everywhere with the value.
struct Cluster {
    name: String,
    /// The test database on the coordinator.
    url: String,
    /// `postgres://` URLs of each node's maintenance database, the coordinator's first.
    nodes: Vec<String>,
}

fn node_url(base: &PgConnectOptions, host: &str, port: u16, db: &str) -> String {
    format!("postgres://{}@{host}:{port}/{db}", base.get_username())
}

async fn run(url: &str, sql: &str) {
    let mut conn = PgConnection::connect(url)
        .await
        .unwrap_or_else(|e| panic!("connect to {url}: {e}"));
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{e}\nwhile running on {url}:\n{sql}"));
}

/// Adding nodes to several new databases at once trips over Citus's own cluster-wide catalog
/// writes ("tuple concurrently updated"): one setup at a time.
static SETUP: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

impl Cluster {
    async fn new(test: &str) -> Option<Self> {
        let admin = citus_url(test)?;
        let _one_at_a_time = SETUP.lock().await;
        let base: PgConnectOptions = admin
            .parse()
            .expect("TENANCY_CITUS_URL is a postgres:// URL");
        let (host, port) = (base.get_host().to_owned(), base.get_port());
        let mut conn = PgConnection::connect(&admin)
            .await
            .unwrap_or_else(|e| panic!("cannot reach the Citus coordinator at {admin}: {e}"));
        let workers: Vec<(String, i32)> = sqlx::query_as(
            "SELECT nodename::text, nodeport FROM pg_dist_node \
             WHERE groupid <> 0 AND noderole = 'primary' AND isactive ORDER BY nodeport",
        )
        .fetch_all(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{admin} is not a Citus coordinator: {e}"));
        assert!(
            !workers.is_empty(),
            "the coordinator at {admin} has no active worker (citus_add_node)"
        );
        let name = format!("tenancy_citus_{test}");
        let mut nodes = vec![node_url(&base, &host, port, "postgres")];
        nodes.extend(
            workers
                .iter()
                .map(|(h, p)| node_url(&base, h, u16::try_from(*p).unwrap(), "postgres")),
        );
        let cluster = Self {
            url: node_url(&base, &host, port, &name),
            name,
            nodes,
        };
        // Workers first: the coordinator adds them with the extension in place.
        for node in cluster.nodes.iter().rev() {
            // One statement each: neither may run in a transaction block.
            run(
                node,
                &format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", cluster.name),
            )
            .await;
            run(node, &format!("CREATE DATABASE \"{}\"", cluster.name)).await;
            let db = format!("{}/{}", node.rsplit_once('/').unwrap().0, cluster.name);
            run(&db, "CREATE EXTENSION citus").await;
        }
        let mut setup = format!(
            "CREATE EXTENSION pg_stat_statements; \
             SELECT citus_set_coordinator_host('{host}', {port});"
        );
        for (h, p) in &workers {
            setup.push_str(&format!("SELECT citus_add_node('{h}', {p});"));
        }
        run(&cluster.url, &setup).await;
        Some(cluster)
    }

    async fn conn(&self) -> PgConnection {
        PgConnection::connect(&self.url).await.unwrap()
    }

    async fn exec(&self, sql: &str) {
        run(&self.url, sql).await;
    }

    /// A handle with `migrations` as its tenant migrations.
    async fn tenancy(&self, migrations: Migrations) -> Tenancy {
        Tenancy::builder()
            .max_connections(5)
            .tenant_migrations(migrations)
            .connect(&self.url)
            .await
            .unwrap()
    }

    /// Sums `sql` (one `bigint`) over the workers' copies of the test database.
    async fn on_workers(&self, sql: &str) -> i64 {
        let mut total = 0;
        for node in &self.nodes[1..] {
            let db = format!("{}/{}", node.rsplit_once('/').unwrap().0, self.name);
            let mut conn = PgConnection::connect(&db).await.unwrap();
            // Citus hides the shards in a worker's catalog from other clients.
            sqlx::query("SET citus.override_table_visibility TO off")
                .execute(&mut conn)
                .await
                .unwrap();
            let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
                .fetch_one(&mut conn)
                .await
                .unwrap();
            total += n;
        }
        total
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let (name, nodes) = (self.name.clone(), self.nodes.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                for node in nodes {
                    if let Ok(mut c) = PgConnection::connect(&node).await {
                        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                            "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                        )))
                        .execute(&mut c)
                        .await;
                    }
                }
            });
        })
        .join();
    }
}

fn citus_migrations(extra: &[(i64, &str, &str)]) -> Migrations {
    let mut list = vec![(1, "spinner app, distributed", CITUS_SPINNERS)];
    list.extend_from_slice(extra);
    Migrations::from_static(&list).unwrap()
}

/// A cluster database with the registry as reference tables, the spinner app distributed, and
/// two shared-table tenants, `acme` (host `acme.test`) and `globex`.
struct World {
    tenancy: Tenancy,
    su: Superuser,
    a: TenantCtx,
    b: TenantCtx,
    // Last: the handle's pools close before the databases go.
    cluster: Cluster,
}

async fn world(test: &str) -> Option<World> {
    let cluster = Cluster::new(test).await?;
    let tenancy = cluster.tenancy(citus_migrations(&[])).await;
    cluster.exec(REGISTRY_AS_REFERENCE_TABLES).await;
    common::migrate_all(&tenancy).await;
    tenancy
        .create_tenant(NewTenant::new("acme", "Acme").host("acme.test"))
        .await
        .unwrap();
    tenancy
        .create_tenant(NewTenant::new("globex", "Globex"))
        .await
        .unwrap();
    let a = tenancy.resolve_host("acme.test").await.unwrap();
    let b = tenancy.resolve_slug("globex").await.unwrap();
    let su = tenancy.superuser("citus-suite", test).await.unwrap();
    Some(World {
        tenancy,
        su,
        a,
        b,
        cluster,
    })
}

fn new_spinner(id: Uuid, name: &str) -> NewSpinner {
    NewSpinner {
        id,
        name: name.into(),
        color: None,
    }
}

fn new_spin(spinner_id: Uuid, duration: i32) -> NewSpin {
    NewSpin {
        id: Uuid::new_v4(),
        spinner_id,
        duration,
        note: None,
    }
}

/// Each tenant's `(spinners, spins)` rows, counted around the library.
async fn rows_of(w: &World, tenant: Uuid) -> (i64, i64) {
    sqlx::query_as(
        "SELECT (SELECT count(*) FROM spinners WHERE tenant_id = $1), \
                (SELECT count(*) FROM spins WHERE tenant_id = $1)",
    )
    .bind(tenant)
    .fetch_one(&mut w.cluster.conn().await)
    .await
    .unwrap()
}

#[tokio::test]
async fn verify_reports_the_registry_as_reference_tables_and_the_shared_tables_by_tenant() {
    let Some(w) = world("verify").await else {
        return;
    };
    w.tenancy.verify::<Spinner>().await.unwrap();
    w.tenancy.verify::<Spin>().await.unwrap();
    let report = w.tenancy.verify_deployment().await.unwrap();
    let citus = report.citus.expect("the Citus facts of a Citus database");
    assert_eq!(citus.workers as usize, w.cluster.nodes.len() - 1);
    assert!(citus.problems.is_empty(), "{:?}", citus.problems);
    let of = |table: &str| {
        citus
            .tables
            .iter()
            .find(|t| t.table == table)
            .unwrap_or_else(|| panic!("{table} is not in {:?}", citus.tables))
    };
    for table in ["tenancy.tenants", "tenancy.domains", "tenancy.memberships"] {
        assert_eq!(of(table).distribution, Distribution::Reference, "{table}");
        assert_eq!(of(table).tenant_column, None);
    }
    assert_eq!(of("tenancy.audit_log").distribution, Distribution::Local);
    let colocation = |table: &str| match &of(table).distribution {
        Distribution::Distributed {
            column,
            colocation,
            shards,
        } => {
            assert_eq!(column, "tenant_id", "{table}");
            assert!(*shards > 1, "{table}: {shards} shards");
            *colocation
        }
        other => panic!("{table}: {other}"),
    };
    assert_eq!(colocation("public.spinners"), colocation("public.spins"));
    assert_eq!(
        of("public.spins").tenant_column.as_deref(),
        Some("tenant_id")
    );

    // What would hurt is named: a table distributed by another column, one by tenant outside
    // the group, one left on the coordinator.
    w.cluster
        .exec(
            "CREATE TABLE by_id (tenant_id uuid NOT NULL, id uuid NOT NULL, PRIMARY KEY (id, tenant_id)); \
             SELECT create_distributed_table('by_id', 'id'); \
             CREATE TABLE apart (tenant_id uuid NOT NULL, id uuid NOT NULL, PRIMARY KEY (tenant_id, id)); \
             SELECT create_distributed_table('apart', 'tenant_id', colocate_with => 'none'); \
             CREATE TABLE stay (tenant_id uuid NOT NULL, id uuid NOT NULL, PRIMARY KEY (tenant_id, id));",
        )
        .await;
    let citus = w.tenancy.verify_deployment().await.unwrap().citus.unwrap();
    let problems = citus.problems.join("\n");
    assert_eq!(citus.problems.len(), 3, "{problems}");
    assert!(
        problems.contains("public.by_id: distributed by id, not by its tenant column tenant_id"),
        "{problems}"
    );
    assert!(problems.contains("2 colocation groups"), "{problems}");
    assert!(
        problems.contains("public.stay: not a Citus table beside tables distributed by tenant"),
        "{problems}"
    );
}

#[tokio::test]
async fn repositories_raw_sql_and_transactions_keep_tenants_apart() {
    let Some(w) = world("repos").await else {
        return;
    };
    let repo = Spinner::repo();
    // One id in both tenants: the key is (tenant_id, id), and each sees its own row only.
    let id = Uuid::new_v4();
    let sa = repo.insert(&w.a, &new_spinner(id, "red")).await.unwrap();
    let sb = repo.insert(&w.b, &new_spinner(id, "blue")).await.unwrap();
    assert_eq!(repo.get(&w.a, id).await.unwrap(), Some(sa.clone()));
    assert_eq!(repo.get(&w.b, id).await.unwrap(), Some(sb.clone()));
    let only = repo
        .query()
        .filter(Spinner::NAME.eq("blue"))
        .fetch_all(&w.a)
        .await
        .unwrap();
    assert!(only.is_empty(), "acme sees globex's spinner: {only:?}");
    let spins = Spin::repo()
        .insert_many(
            &w.a,
            &[new_spin(id, 10), new_spin(id, 20), new_spin(id, 30)],
        )
        .await
        .unwrap();
    Spin::repo().insert(&w.b, &new_spin(id, 99)).await.unwrap();
    assert_eq!(Spin::repo().count(&w.a).await.unwrap(), 3);
    assert_eq!(Spin::repo().count(&w.b).await.unwrap(), 1);
    assert_eq!(
        Spin::repo()
            .update_where(
                &w.a,
                Spin::DURATION.lt(25),
                [Spin::NOTE.set(Some("short".into()))]
            )
            .await
            .unwrap(),
        2
    );
    assert!(!Spin::repo().delete(&w.b, spins[0].id).await.unwrap());
    assert!(Spin::repo().delete(&w.a, spins[0].id).await.unwrap());

    // Raw SQL: the tenant is bound by the library, whatever the text filters on.
    let raw = Spin::repo()
        .raw("SELECT * FROM {spins} WHERE duration > $1 ORDER BY duration")
        .bind(0)
        .fetch_all(&w.b)
        .await
        .unwrap();
    assert_eq!(raw.iter().map(|s| s.duration).collect::<Vec<_>>(), vec![99]);
    let joined: Vec<(String, i64)> = Spin::repo()
        .raw_as("SELECT s.name, count(*) FROM {spinners} s JOIN {spins} p ON p.spinner_id = s.id GROUP BY s.name")
        .with::<Spinner>()
        .fetch_all(&w.a)
        .await
        .unwrap();
    assert_eq!(joined, vec![("red".to_owned(), 2)]);

    // Transactions: a rollback leaves nothing, a commit everything, and only for its tenant.
    let mut tx = w.a.begin().await.unwrap();
    Spin::repo()
        .insert(&mut tx, &new_spin(id, 1))
        .await
        .unwrap();
    assert_eq!(Spin::repo().count(&mut tx).await.unwrap(), 3);
    tx.rollback().await.unwrap();
    assert_eq!(Spin::repo().count(&w.a).await.unwrap(), 2);
    let mut tx = w.a.begin().await.unwrap();
    Spin::repo()
        .insert(&mut tx, &new_spin(id, 2))
        .await
        .unwrap();
    Spinner::repo()
        .insert(&mut tx, &new_spinner(Uuid::new_v4(), "green"))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(rows_of(&w, w.a.id().as_uuid()).await, (2, 3));
    assert_eq!(rows_of(&w, w.b.id().as_uuid()).await, (1, 1));
    // A transaction dropped uncommitted is rolled back, on the shard it wrote to.
    let mut tx = w.b.begin().await.unwrap();
    Spin::repo()
        .insert(&mut tx, &new_spin(id, 3))
        .await
        .unwrap();
    drop(tx);
    assert_eq!(rows_of(&w, w.b.id().as_uuid()).await, (1, 1));
}

/// The repository's own statements, read back from `pg_stat_statements` and explained with the
/// tenant's values: one task, on one shard. A statement without the tenant is explained too, so
/// the check can tell.
#[tokio::test]
async fn a_tenants_lookup_and_count_route_to_one_shard() {
    let Some(w) = world("routing").await else {
        return;
    };
    let id = Uuid::new_v4();
    Spinner::repo()
        .insert(&w.a, &new_spinner(id, "red"))
        .await
        .unwrap();
    let mut conn = w.cluster.conn().await;
    sqlx::query("SELECT pg_stat_statements_reset()")
        .execute(&mut conn)
        .await
        .unwrap();
    assert!(Spinner::repo().get(&w.a, id).await.unwrap().is_some());
    assert_eq!(Spinner::repo().count(&w.a).await.unwrap(), 1);
    let statements: Vec<String> = sqlx::query_scalar(
        "SELECT query FROM pg_stat_statements \
         WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) \
           AND query LIKE 'SELECT%' AND query LIKE '%\"spinners\"%' ORDER BY query",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(statements.len(), 2, "{statements:#?}");
    let tenant = w.a.id().as_uuid().to_string();
    for (i, sql) in statements.iter().enumerate() {
        // Which parameter the library bound the tenant to: `"tenant_id" = $n`.
        let at = sql
            .find("\"tenant_id\" = $")
            .unwrap_or_else(|| panic!("no tenant predicate in {sql}"));
        let n: usize = sql[at + 15..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .unwrap();
        let params = sql.matches('$').count();
        let args: Vec<String> = (1..=params)
            .map(|k| {
                if k == n {
                    format!("'{tenant}'")
                } else {
                    format!("'{id}'")
                }
            })
            .collect();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("PREPARE lookup_{i} AS {sql}")))
            .execute(&mut conn)
            .await
            .unwrap();
        let plan: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "EXPLAIN EXECUTE lookup_{i}({})",
            args.join(", ")
        )))
        .fetch_all(&mut conn)
        .await
        .unwrap();
        let plan = plan.join("\n");
        assert!(plan.contains("Task Count: 1\n"), "{sql}\n{plan}");
    }
    let fan_out: Vec<String> = sqlx::query_scalar("EXPLAIN SELECT count(*) FROM spinners")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    let fan_out = fan_out.join("\n");
    assert!(
        !fan_out.contains("Task Count: 1\n") && fan_out.contains("Task Count: "),
        "{fan_out}"
    );
}

#[tokio::test]
async fn reports_cover_every_shard_and_stay_per_tenant() {
    let Some(w) = world("reports").await else {
        return;
    };
    let mut expected: BTreeMap<Uuid, Vec<i32>> = BTreeMap::new();
    for (ctx, durations) in [(&w.a, vec![5, 7, 9]), (&w.b, vec![100, 200])] {
        let s = Spinner::repo()
            .insert(ctx, &new_spinner(Uuid::new_v4(), "s"))
            .await
            .unwrap();
        for d in &durations {
            Spin::repo().insert(ctx, &new_spin(s.id, *d)).await.unwrap();
        }
        expected.insert(ctx.id().as_uuid(), durations);
    }
    let rows = Spin::repo().report().fetch_all(&w.su).await.unwrap();
    let mut got: BTreeMap<Uuid, Vec<i32>> = BTreeMap::new();
    for (t, s) in rows {
        got.entry(t.as_uuid()).or_default().push(s.duration);
    }
    got.values_mut().for_each(|v| v.sort_unstable());
    assert_eq!(got, expected);
    let count = Spin::repo()
        .report()
        .aggregate(Agg::count())
        .fetch(&w.su)
        .await
        .unwrap();
    assert_eq!(count.overall, 5);
    let per: BTreeMap<Uuid, i64> = count
        .per_tenant
        .iter()
        .map(|(t, n)| (t.as_uuid(), *n))
        .collect();
    assert_eq!(
        per,
        expected
            .iter()
            .map(|(t, d)| (*t, d.len() as i64))
            .collect::<BTreeMap<_, _>>()
    );
    let sum = Spin::repo()
        .report()
        .filter(Spin::DURATION.gt(6))
        .aggregate(Agg::sum(Spin::DURATION))
        .fetch(&w.su)
        .await
        .unwrap();
    assert_eq!(sum.overall, 7 + 9 + 100 + 200);
}

/// Every registry write on reference tables: what Citus refused before (`now()` in a `CASE`,
/// a subquery in `INSERT ... VALUES`, `now()` in `ON CONFLICT ... DO UPDATE`) and the rest, with
/// the typed errors a shard's constraint names must still map to.
#[tokio::test]
async fn the_lifecycle_hosts_and_members_work_on_reference_tables() {
    let Some(w) = world("lifecycle").await else {
        return;
    };
    let (t, su) = (&w.tenancy, &w.su);
    let acme = w.a.id();
    Spinner::repo()
        .insert(&w.a, &new_spinner(Uuid::new_v4(), "red"))
        .await
        .unwrap();

    let s = t.suspend(su, acme).await.unwrap();
    assert_eq!((s.status, s.deleted_at), (TenantStatus::Suspended, None));
    assert!(matches!(
        t.resolve_slug("acme").await,
        Err(Error::TenantSuspended { .. })
    ));
    assert_eq!(
        t.resume(su, acme).await.unwrap().status,
        TenantStatus::Active
    );
    let d = t.soft_delete(su, acme).await.unwrap();
    assert_eq!(d.status, TenantStatus::Deleted);
    assert!(d.deleted_at.is_some());
    assert!(matches!(
        t.resolve_host("acme.test").await,
        Err(Error::TenantDeleted { .. })
    ));
    let r = t.restore(su, acme).await.unwrap();
    assert_eq!((r.status, r.deleted_at), (TenantStatus::Active, None));

    // Hosts: the first stays primary, a primary one takes over, removing it elects the next.
    let h = t.add_host(su, acme, "www.acme.test", false).await.unwrap();
    assert_eq!(h.hosts, vec!["acme.test", "www.acme.test"]);
    let h = t.add_host(su, acme, "shop.acme.test", true).await.unwrap();
    assert_eq!(h.hosts[0], "shop.acme.test");
    let h = t.remove_host(su, acme, "shop.acme.test").await.unwrap();
    assert_eq!(h.hosts[0], "acme.test");
    let globex = w.b.id();
    let g = t.add_host(su, globex, "globex.test", false).await.unwrap();
    assert_eq!(g.hosts, vec!["globex.test"], "a first host is primary");
    assert_eq!(t.resolve_host("globex.test").await.unwrap().id(), globex);
    // A shard reports `domains_pkey_<shard>`: still the typed error.
    assert!(matches!(
        t.add_host(su, globex, "acme.test", false).await,
        Err(Error::HostTaken(h)) if h == "acme.test"
    ));
    assert!(matches!(
        t.create_tenant(NewTenant::new("acme", "Again")).await,
        Err(Error::SlugTaken(s)) if s == "acme"
    ));
    assert!(matches!(
        t.rename_slug(su, globex, "acme").await,
        Err(Error::SlugTaken(_))
    ));
    assert_eq!(
        t.rename_slug(su, globex, "globex-two").await.unwrap().slug,
        "globex-two"
    );

    // Members, added twice: the second takes the new role.
    t.add_member(su, acme, "ann", "viewer").await.unwrap();
    let again = t.add_member(su, acme, "ann", "owner").await.unwrap();
    assert_eq!(again.role, "owner");
    // Suspension revoked the contexts held before it: a fresh one.
    let a = t.resolve_slug("acme").await.unwrap();
    assert_eq!(t.member(a, "ann").await.unwrap().role(), "owner");
    assert_eq!(t.members(su, acme).await.unwrap().len(), 1);
    assert!(t.remove_member(su, acme, "ann").await.unwrap());
    assert!(t.members(su, acme).await.unwrap().is_empty());
    let listed = t.list_tenants(su).await.unwrap();
    assert_eq!(
        listed.iter().map(|t| t.slug.as_str()).collect::<Vec<_>>(),
        vec!["acme", "globex-two"]
    );
    // Every move above left its record, naming the tenant.
    let audited = t
        .audit_log(
            su,
            tenancy::AuditQuery {
                tenant: Some(acme),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    for action in [
        "tenant.suspend",
        "tenant.resume",
        "tenant.soft_delete",
        "tenant.restore",
        "tenant.add_host",
        "membership.add",
    ] {
        assert!(audited.iter().any(|r| r.action == action), "{action}");
    }

    // Purge: the tenant's rows go from every shard, its registry rows from every copy.
    t.soft_delete(su, acme).await.unwrap();
    let purged = t.purge(su, acme).await.unwrap();
    let Purged::Rows(rows) = purged else {
        panic!("{purged:?}")
    };
    assert!(
        rows.contains(&("public.spinners".to_owned(), 1)),
        "{rows:?}"
    );
    assert_eq!(rows_of(&w, acme.as_uuid()).await, (0, 0));
    let left = w
        .cluster
        .on_workers(&format!(
            "SELECT (SELECT count(*) FROM tenancy.tenants WHERE id = '{acme}') \
                  + (SELECT count(*) FROM tenancy.domains WHERE tenant_id = '{acme}')"
        ))
        .await;
    assert_eq!(
        left, 0,
        "a worker's copy of the registry keeps the purged tenant"
    );
    assert!(matches!(
        t.create_tenant_with_id(su, NewTenant::new("acme", "Acme"), acme)
            .await,
        Err(Error::TenantIdPurged(_))
    ));
}

/// A migration's statements run one at a time: Citus creates and drops an index on every shard
/// only when the statement arrives alone. A failing migration leaves no index anywhere.
#[tokio::test]
async fn migrations_create_and_drop_indexes_on_distributed_tables() {
    let Some(w) = world("migrations").await else {
        return;
    };
    let shards =
        |index: &str| format!("SELECT count(*) FROM pg_indexes WHERE indexname LIKE '{index}\\_%'");
    // Migration 1 created spins_recent after distributing spins.
    assert!(w.cluster.on_workers(&shards("spins_recent")).await > 1);

    let v2 = "CREATE INDEX spinners_color ON spinners (tenant_id, color);\n\
              DROP INDEX spins_recent;\n\
              ALTER TABLE spins ADD COLUMN rating integer;\n\
              CREATE UNIQUE INDEX spins_rating ON spins (tenant_id, id, rating);";
    let v3 = "CREATE INDEX spins_duration ON spins (tenant_id, duration);\nSELECT 1 / 0;";
    let t2 = w
        .cluster
        .tenancy(citus_migrations(&[(2, "indexes", v2), (3, "fails", v3)]))
        .await;
    let su2 = t2.superuser("citus-suite", "migrations").await.unwrap();
    let report = t2
        .migrate_tenants(&su2, MigrateOptions::default())
        .await
        .unwrap();
    assert_eq!(report.outcomes.len(), 1, "{report:?}");
    match &report.outcomes[0].1 {
        Outcome::Failed(why) => assert!(why.message.contains("migration 3"), "{why}"),
        other => panic!("migration 3 must fail: {other:?}"),
    }
    // A target's pending migrations share one transaction: 3 failing takes 2 with it, on
    // every shard.
    assert_eq!(w.cluster.on_workers(&shards("spinners_color")).await, 0);
    assert_eq!(w.cluster.on_workers(&shards("spins_duration")).await, 0);
    assert!(w.cluster.on_workers(&shards("spins_recent")).await > 1);

    let t2 = w
        .cluster
        .tenancy(citus_migrations(&[(2, "indexes", v2)]))
        .await;
    let su2 = t2.superuser("citus-suite", "migrations").await.unwrap();
    let report = t2
        .migrate_tenants(&su2, MigrateOptions::default())
        .await
        .unwrap();
    assert!(report.is_success(), "{report:?}");
    assert_eq!(report.outcomes[0].1, Outcome::Applied(vec![2]));
    let n_shards = w
        .cluster
        .on_workers("SELECT count(*) FROM pg_indexes WHERE indexname LIKE 'spins\\_pkey\\_%'")
        .await;
    assert_eq!(
        w.cluster.on_workers(&shards("spinners_color")).await,
        n_shards
    );
    assert_eq!(
        w.cluster.on_workers(&shards("spins_rating")).await,
        n_shards
    );
    assert_eq!(w.cluster.on_workers(&shards("spins_recent")).await, 0);
    let history: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM tenancy.shared_table_migrations ORDER BY 1")
            .fetch_all(&mut w.cluster.conn().await)
            .await
            .unwrap();
    assert_eq!(history, vec![1, 2]);
    assert!(t2.pending_migrations(&su2).await.unwrap().is_empty());
    t2.verify::<Spin>().await.unwrap();
    Spin::repo()
        .insert(
            &w.a,
            &new_spin(
                Spinner::repo()
                    .insert(&w.a, &new_spinner(Uuid::new_v4(), "x"))
                    .await
                    .unwrap()
                    .id,
                4,
            ),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn export_and_import_carry_a_tenant_between_ids() {
    let Some(w) = world("export").await else {
        return;
    };
    let s = Spinner::repo()
        .insert(&w.a, &new_spinner(Uuid::new_v4(), "red"))
        .await
        .unwrap();
    for d in [1, 2, 3] {
        Spin::repo().insert(&w.a, &new_spin(s.id, d)).await.unwrap();
    }
    Spinner::repo()
        .insert(&w.b, &new_spinner(Uuid::new_v4(), "globex only"))
        .await
        .unwrap();
    let archive = w.tenancy.export_tenant(&w.su, w.a.id()).await.unwrap();
    let copy = w
        .tenancy
        .create_tenant(NewTenant::new("acme-copy", "Acme copy"))
        .await
        .unwrap();
    let n = w
        .tenancy
        .import_tenant(&w.su, &archive, copy.id)
        .await
        .unwrap();
    assert_eq!(n, 4);
    let c = w.tenancy.resolve_slug("acme-copy").await.unwrap();
    let mut durations: Vec<i32> = Spin::repo()
        .query()
        .fetch_all(&c)
        .await
        .unwrap()
        .iter()
        .map(|s| s.duration)
        .collect();
    durations.sort_unstable();
    assert_eq!(durations, vec![1, 2, 3]);
    assert_eq!(
        Spinner::repo().get(&c, s.id).await.unwrap().map(|s| s.name),
        Some("red".to_owned())
    );
    assert_eq!(rows_of(&w, w.a.id().as_uuid()).await, (1, 3));
    assert_eq!(rows_of(&w, w.b.id().as_uuid()).await, (1, 0));
    // Into a tenant that has rows: refused, and nothing imported.
    assert!(matches!(
        w.tenancy.import_tenant(&w.su, &archive, w.b.id()).await,
        Err(Error::Archive(_))
    ));
    assert_eq!(rows_of(&w, w.b.id().as_uuid()).await, (1, 0));
}

/// A repository write's move fence runs on the coordinator, where a move takes the tenant's
/// fence key: Citus evaluates the insert's fence call there before it routes the row, and the
/// update's and delete's fence subquery there as an intermediate result. Held by another
/// session (as a move holds it), the key makes the tenant's writes wait `tenancy.move_wait`
/// and fail with `TenantMoving`, applying nothing; another tenant's writes go on.
#[tokio::test]
async fn writes_meet_the_move_fence_on_the_coordinator() {
    let Some(w) = world("fence").await else {
        return;
    };
    let spinner = Uuid::new_v4();
    Spinner::repo()
        .insert(&w.a, &new_spinner(spinner, "red"))
        .await
        .unwrap();
    let spin = Spin::repo()
        .insert(&w.a, &new_spin(spinner, 5))
        .await
        .unwrap();
    let short = Tenancy::builder()
        .max_connections(2)
        .connect(&format!(
            "{}?options=-c%20tenancy.move_wait%3D200ms",
            w.cluster.url
        ))
        .await
        .unwrap();
    let a = short.resolve_id(w.a.id()).await.unwrap();
    let b = short.resolve_id(w.b.id()).await.unwrap();

    // The key a move takes exclusive: the class is hashtext('tenancy.write_fence').
    let mut mover = w.cluster.conn().await;
    sqlx::query("BEGIN").execute(&mut mover).await.unwrap();
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('tenancy.write_fence'), uuid_hash($1))")
        .bind(w.a.id().as_uuid())
        .execute(&mut mover)
        .await
        .unwrap();
    let e = Spinner::repo()
        .insert(&a, &new_spinner(Uuid::new_v4(), "blue"))
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::TenantMoving(id) if id == w.a.id()),
        "{e}"
    );
    assert!(matches!(
        Spin::repo()
            .update_columns(&a, spin.id, [Spin::DURATION.set(7)])
            .await,
        Err(Error::TenantMoving(_))
    ));
    assert!(matches!(
        Spin::repo().delete(&a, spin.id).await,
        Err(Error::TenantMoving(_))
    ));
    Spinner::repo()
        .insert(&b, &new_spinner(Uuid::new_v4(), "green"))
        .await
        .unwrap();
    sqlx::query("ROLLBACK").execute(&mut mover).await.unwrap();

    // Nothing was applied; with the key free the same writes go through.
    assert_eq!(
        Spinner::repo().query().fetch_all(&a).await.unwrap().len(),
        1
    );
    assert_eq!(
        Spin::repo()
            .get(&a, spin.id)
            .await
            .unwrap()
            .map(|s| s.duration),
        Some(5)
    );
    Spinner::repo()
        .insert(&a, &new_spinner(Uuid::new_v4(), "blue"))
        .await
        .unwrap();
    assert!(Spin::repo().delete(&a, spin.id).await.unwrap());
    short.close().await;
}

/// How to take back each registry migration this test knows, newest last: what it created,
/// then its history row. The test takes back the newest one the runtime has. One statement at a
/// time, as the registry's migrations run: Citus hands an `ALTER TABLE` of a table it manages
/// (here `old_copies`, a Citus local table once `tenants` is a reference table) to its workers in
/// the text it arrived in, and a worker refuses several statements in one prepared statement.
const REGISTRY_TAKE_BACK: &[(i32, &[&str])] = &[
    (
        8,
        &[
            "DROP FUNCTION tenancy.write_fence(uuid, text, text)",
            "DROP FUNCTION tenancy.write_fence_serial(uuid)",
            "DROP FUNCTION tenancy.write_fence_wait(uuid)",
            "DROP TABLE tenancy.old_copies",
            "DELETE FROM tenancy.registry_migrations WHERE version = 8",
        ],
    ),
    (
        9,
        &[
            "ALTER TABLE tenancy.old_copies DROP CONSTRAINT old_copies_database, \
             DROP COLUMN database_name, DROP COLUMN server",
            "DELETE FROM tenancy.registry_migrations WHERE version = 9",
        ],
    ),
    // Its functions are replaced again when it is applied again.
    (
        10,
        &["DELETE FROM tenancy.registry_migrations WHERE version = 10"],
    ),
];

/// A registry upgrade on a cluster whose registry is already reference tables: the newest
/// registry migration (8: a table referencing the reference table of tenants, and the write
/// fence's functions, which reads it; 9: that table's columns for an old database) is taken
/// back and applied again by the next start, and a fenced write, a move's bookkeeping and a
/// member then work.
#[tokio::test]
async fn the_registry_upgrades_with_its_tables_distributed() {
    let Some(cluster) = Cluster::new("registry_upgrade").await else {
        return;
    };
    let tenancy = cluster.tenancy(citus_migrations(&[])).await;
    tenancy.close().await;
    cluster.exec(REGISTRY_AS_REFERENCE_TABLES).await;
    let latest: i32 = sqlx::query_scalar("SELECT max(version) FROM tenancy.registry_migrations")
        .fetch_one(&mut cluster.conn().await)
        .await
        .unwrap();
    let (_, take_back) = REGISTRY_TAKE_BACK
        .iter()
        .find(|(v, _)| *v == latest)
        .unwrap_or_else(|| {
            panic!("registry migration {latest} is the newest: add how to take it back")
        });
    for statement in *take_back {
        cluster.exec(statement).await;
    }
    let behind: i32 = sqlx::query_scalar("SELECT max(version) FROM tenancy.registry_migrations")
        .fetch_one(&mut cluster.conn().await)
        .await
        .unwrap();
    assert!(behind < latest);
    let tenancy = cluster.tenancy(citus_migrations(&[])).await;
    let again: i32 = sqlx::query_scalar("SELECT max(version) FROM tenancy.registry_migrations")
        .fetch_one(&mut cluster.conn().await)
        .await
        .unwrap();
    assert_eq!(again, latest);
    common::migrate_all(&tenancy).await;
    let acme = tenancy
        .create_tenant(NewTenant::new("acme", "Acme"))
        .await
        .unwrap();
    let su = tenancy.superuser("citus-suite", "upgrade").await.unwrap();
    tenancy
        .add_member(&su, acme.id, "ann", "owner")
        .await
        .unwrap();
    assert_eq!(tenancy.members(&su, acme.id).await.unwrap().len(), 1);
    // A repository write goes through the re-created fence, to the tenant's shard.
    let a = tenancy.resolve_slug("acme").await.unwrap();
    let id = Uuid::new_v4();
    Spinner::repo()
        .insert(&a, &new_spinner(id, "red"))
        .await
        .unwrap();
    let got = Spinner::repo().get(&a, id).await.unwrap();
    assert_eq!(got.map(|s| s.name), Some("red".to_owned()));
}

/// The same migrations for both placements on Citus: the shared tables are distributed by
/// tenant, and a tenant's schema (a distributed schema, see below) skips the calls.
fn mixed_spinners() -> String {
    CITUS_SPINNERS
        .replace(
            "'tenant_id');",
            "'tenant_id') WHERE current_schema() = 'public';",
        )
        .replace(
            "colocate_with => 'spinners');",
            "colocate_with => 'spinners') WHERE current_schema() = 'public';",
        )
}

/// With schema-based sharding on, the registry's schema stays a plain schema on the coordinator,
/// own-schema tenants get distributed schemas, provisioned (with an index) and migrated, and
/// shared-table tenants beside them live in tables distributed by tenant.
#[tokio::test]
async fn schema_based_sharding_leaves_the_registry_and_shards_own_schema_tenants() {
    let Some(cluster) = Cluster::new("schemas").await else {
        return;
    };
    cluster
        .exec(&format!(
            "ALTER DATABASE \"{}\" SET citus.enable_schema_based_sharding = on",
            cluster.name
        ))
        .await;
    let plain = |extra: &[(i64, &str, &str)]| {
        let mut list = vec![Migration::new(
            1,
            "spinner app, both placements",
            mixed_spinners(),
        )];
        list.extend(extra.iter().map(|&(v, d, sql)| Migration::new(v, d, sql)));
        Migrations::from_list(list).unwrap()
    };
    let tenancy = cluster.tenancy(plain(&[])).await;
    let mut conn = cluster.conn().await;
    let distributed: Vec<String> =
        sqlx::query_scalar("SELECT schema_name::text FROM citus_schemas ORDER BY 1")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert!(distributed.is_empty(), "{distributed:?}");
    // Tables of a distributed schema may reference reference tables, not local ones.
    cluster.exec(REGISTRY_AS_REFERENCE_TABLES).await;
    common::migrate_all(&tenancy).await;
    let su = tenancy.superuser("citus-suite", "schemas").await.unwrap();
    assert_eq!(tenancy.warm_schemas(&su, 1).await.unwrap(), 1);
    let ctxs = common::create_tenants(
        &tenancy,
        &[
            ("acme", Placement::OwnSchema),
            ("globex", Placement::OwnSchema),
            ("initech", Placement::OwnSchema),
            ("umbrella", Placement::SharedTable),
        ],
    )
    .await;
    let distributed: Vec<String> =
        sqlx::query_scalar("SELECT schema_name::text FROM citus_schemas ORDER BY 1")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert_eq!(distributed, vec!["t_acme", "t_globex", "t_initech"]);
    let report = tenancy.verify_deployment().await.unwrap();
    assert!(report.registry.is_empty(), "{:?}", report.registry);
    let citus = report.citus.unwrap();
    assert!(citus.problems.is_empty(), "{:?}", citus.problems);
    for table in ["public.spinners", "public.spins"] {
        let t = citus.tables.iter().find(|t| t.table == table).unwrap();
        assert!(
            matches!(&t.distribution, Distribution::Distributed { column, .. } if column == "tenant_id"),
            "{t}"
        );
    }

    let id = Uuid::new_v4();
    for (ctx, name) in ctxs.iter().zip(["a", "b", "c", "d"]) {
        Spinner::repo()
            .insert(ctx, &new_spinner(id, name))
            .await
            .unwrap();
    }
    for (ctx, name) in ctxs.iter().zip(["a", "b", "c", "d"]) {
        let all = Spinner::repo().query().fetch_all(ctx).await.unwrap();
        assert_eq!(
            all.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            vec![name]
        );
    }

    let v2 =
        "CREATE INDEX spinners_color ON spinners (tenant_id, color);\nDROP INDEX spins_recent;";
    let t2 = cluster.tenancy(plain(&[(2, "indexes", v2)])).await;
    let su2 = t2.superuser("citus-suite", "schemas").await.unwrap();
    let report = t2
        .migrate_tenants(&su2, MigrateOptions::default())
        .await
        .unwrap();
    assert!(report.is_success(), "{report:?}");
    assert_eq!(
        report.outcomes.len(),
        4,
        "shared tables and three schemas: {report:?}"
    );

    tenancy.soft_delete(&su, ctxs[0].id()).await.unwrap();
    tenancy.purge(&su, ctxs[0].id()).await.unwrap();
    let distributed: Vec<String> =
        sqlx::query_scalar("SELECT schema_name::text FROM citus_schemas ORDER BY 1")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert_eq!(distributed, vec!["t_globex", "t_initech"]);
    drop((t2, tenancy));
}
