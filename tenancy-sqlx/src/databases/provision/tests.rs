//! Provisioning against a real server, with failures injected at each step.

use sqlx::{Connection, PgConnection};
use tenancy_core::TenantId;
use uuid::Uuid;

use super::*;
use crate::databases::testing::{Dropped, admin, exec, server_options, unique};

const SPINNERS: &str = "CREATE TABLE spinners (id uuid PRIMARY KEY, name text NOT NULL UNIQUE)";
const SPINS: &str = "CREATE TABLE spins (id uuid PRIMARY KEY, \
     spinner_id uuid NOT NULL REFERENCES spinners (id), duration int NOT NULL); \
     CREATE INDEX spins_by_spinner ON spins (spinner_id)";

fn migrations() -> Migrations {
    Migrations::from_static(&[(1, "spinners", SPINNERS), (2, "spins", SPINS)]).unwrap()
}

/// A registry stand-in (the registry's own columns for own-database tenants come with its
/// next version): one table of registered tenants, in a database of its own.
struct World {
    naming: Naming,
    template: DatabaseName,
    registry: PgConnection,
    server: PgConnection,
    // Dropped last: the databases the test made.
    _made: Dropped,
    _registry_db: Dropped,
}

async fn world(test: &str) -> World {
    let tag = Uuid::new_v4().simple().to_string()[..10].to_owned();
    let naming = Naming::new(&tag).unwrap();
    let made = Dropped {
        prefix: naming.prefix().to_owned(),
    };
    let registry_name = unique(test);
    let registry_db = Dropped {
        prefix: registry_name.clone(),
    };
    let mut server = admin().await;
    exec(&mut server, format!("CREATE DATABASE \"{registry_name}\"")).await;
    let mut registry = PgConnection::connect_with(&server_options().database(&registry_name))
        .await
        .unwrap();
    exec(
        &mut registry,
        "CREATE TABLE registered (tenant uuid PRIMARY KEY)".to_owned(),
    )
    .await;
    // The template is named like a spare of no version, under the test's prefix, so that it is
    // dropped with the rest.
    let template = DatabaseName::parse(&format!("{}template", naming.prefix())).unwrap();
    World {
        naming,
        template,
        registry,
        server,
        _made: made,
        _registry_db: registry_db,
    }
}

impl World {
    async fn provision(
        &mut self,
        tenant: TenantId,
        source: Source<'_>,
    ) -> Result<(DatabaseName, Made), ProvisionError> {
        provision(
            &mut self.registry,
            &mut self.server,
            &server_options(),
            &self.naming,
            (tenant, "acme"),
            source,
            async |conn: &mut PgConnection| {
                sqlx::query("INSERT INTO registered VALUES ($1)")
                    .bind(Uuid::from(tenant))
                    .execute(conn)
                    .await?;
                Ok(())
            },
        )
        .await
    }

    async fn exists(&mut self, db: &DatabaseName) -> bool {
        sqlx::query_scalar("SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)")
            .bind(db.as_str())
            .fetch_one(&mut self.server)
            .await
            .unwrap()
    }

    async fn registered(&mut self, tenant: TenantId) -> bool {
        sqlx::query_scalar("SELECT EXISTS (SELECT FROM registered WHERE tenant = $1)")
            .bind(Uuid::from(tenant))
            .fetch_one(&mut self.registry)
            .await
            .unwrap()
    }

    async fn cleanup(&mut self) -> Vec<DatabaseName> {
        cleanup_orphans(&mut self.registry, &mut self.server, &self.naming, &InTable)
            .await
            .unwrap()
    }
}

/// The versions recorded in a tenant database, after checking that its tables are there.
async fn versions(db: &DatabaseName) -> Vec<i64> {
    let mut conn = PgConnection::connect_with(&server_options().database(db.as_str()))
        .await
        .unwrap();
    sqlx::query("INSERT INTO spinners VALUES (gen_random_uuid(), 'turbo')")
        .execute(&mut conn)
        .await
        .unwrap();
    let v = sqlx::query_scalar("SELECT version FROM tenancy_migrations ORDER BY version")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    v
}

#[tokio::test]
async fn each_source_gives_a_registered_database_at_the_latest_migration() {
    let mut w = world("prov_sources").await;
    let m = migrations();
    let template = w.template.clone();
    ensure_template(&mut w.server, &server_options(), &template, &m)
        .await
        .unwrap();
    // Again: nothing to do, and no error.
    ensure_template(&mut w.server, &server_options(), &template, &m)
        .await
        .unwrap();
    let spares = warm_spares(&mut w.server, &w.naming.clone(), &template, 2, 1)
        .await
        .unwrap();
    assert_eq!(spares.len(), 1);
    let spare = Source::Spare {
        template: &template,
        version: 2,
    };
    let cases = [
        (Source::Template(&template), Made::Template),
        (Source::Empty(&m), Made::Migrated),
        (spare, Made::Spare),
        // No spare left: the template.
        (spare, Made::Template),
    ];
    for (source, expected) in cases {
        let tenant = TenantId::new_v4();
        let (db, made) = w.provision(tenant, source).await.unwrap();
        assert_eq!(made, expected);
        assert_eq!(db, w.naming.tenant(tenant));
        assert!(w.registered(tenant).await);
        assert_eq!(versions(&db).await, [1, 2]);
    }
    assert!(!w.exists(&spares[0]).await, "the spare was renamed");
}

#[tokio::test]
async fn a_failing_migration_leaves_no_database_and_no_row() {
    let mut w = world("prov_failmig").await;
    let broken = Migrations::from_static(&[
        (1, "spinners", SPINNERS),
        (
            2,
            "broken",
            "CREATE TABLE spins (id uuid REFERENCES nowhere (id))",
        ),
    ])
    .unwrap();
    let tenant = TenantId::new_v4();
    match w.provision(tenant, Source::Empty(&broken)).await {
        Err(ProvisionError::Migration { database, .. }) => {
            assert_eq!(database, w.naming.tenant(tenant))
        }
        other => panic!("expected a migration error, got {other:?}"),
    }
    assert!(!w.exists(&w.naming.tenant(tenant)).await);
    assert!(!w.registered(tenant).await);
    // The template too refuses to move to a broken set, and keeps what it had.
    let template = w.template.clone();
    ensure_template(&mut w.server, &server_options(), &template, &migrations())
        .await
        .unwrap();
    let worse = Migrations::from_static(&[
        (1, "spinners", SPINNERS),
        (2, "spins", SPINS),
        (3, "broken", "ALTER TABLE nowhere ADD COLUMN x int"),
    ])
    .unwrap();
    assert!(matches!(
        ensure_template(&mut w.server, &server_options(), &template, &worse).await,
        Err(ProvisionError::Migration { .. })
    ));
    assert_eq!(versions(&template).await, [1, 2]);
}

#[tokio::test]
async fn a_taken_name_is_refused_and_the_database_there_is_kept() {
    let mut w = world("prov_taken").await;
    let template = w.template.clone();
    ensure_template(&mut w.server, &server_options(), &template, &migrations())
        .await
        .unwrap();
    let tenant = TenantId::new_v4();
    let name = w.naming.tenant(tenant);
    // Someone else's database under the tenant's name, holding something of theirs.
    exec(&mut w.server, format!("CREATE DATABASE {}", name.quoted())).await;
    let mut theirs = PgConnection::connect_with(&server_options().database(name.as_str()))
        .await
        .unwrap();
    exec(&mut theirs, "CREATE TABLE theirs (x int)".to_owned()).await;
    theirs.close().await.unwrap();
    let spares = warm_spares(&mut w.server, &w.naming.clone(), &template, 2, 1)
        .await
        .unwrap();
    let m = migrations();
    for source in [
        Source::Template(&template),
        Source::Empty(&m),
        Source::Spare {
            template: &template,
            version: 2,
        },
    ] {
        match w.provision(tenant, source).await {
            Err(ProvisionError::DatabaseExists(db)) => assert_eq!(db, name),
            other => panic!("expected DatabaseExists, got {other:?}"),
        }
        assert!(!w.registered(tenant).await);
        let mut theirs = PgConnection::connect_with(&server_options().database(name.as_str()))
            .await
            .expect("their database is still there");
        sqlx::query("SELECT x FROM theirs")
            .fetch_all(&mut theirs)
            .await
            .expect("with their table");
        theirs.close().await.unwrap();
    }
    assert!(w.exists(&spares[0]).await, "the spare was not used up");
}

#[tokio::test]
async fn a_failing_registration_drops_the_database() {
    let mut w = world("prov_failreg").await;
    let template = w.template.clone();
    ensure_template(&mut w.server, &server_options(), &template, &migrations())
        .await
        .unwrap();
    let tenant = TenantId::new_v4();
    let result = provision(
        &mut w.registry,
        &mut w.server,
        &server_options(),
        &w.naming,
        (tenant, "acme"),
        Source::Template(&template),
        async |conn: &mut PgConnection| {
            sqlx::query("INSERT INTO registered VALUES ($1)")
                .bind(Uuid::from(tenant))
                .execute(&mut *conn)
                .await?;
            // The registry refuses after the row was written: the row must not stay either.
            sqlx::query("SELECT 1/0").execute(&mut *conn).await?;
            Ok(())
        },
    )
    .await;
    assert!(
        matches!(result, Err(ProvisionError::Register { .. })),
        "{result:?}"
    );
    assert!(!w.exists(&w.naming.tenant(tenant)).await);
    assert!(!w.registered(tenant).await);
}

#[tokio::test]
async fn cleanup_drops_what_a_crash_left_and_nothing_else() {
    let mut w = world("prov_cleanup").await;
    let template = w.template.clone();
    ensure_template(&mut w.server, &server_options(), &template, &migrations())
        .await
        .unwrap();
    let source = Source::Template(&template);
    let naming = w.naming.clone();
    // Registered: kept.
    let kept = TenantId::new_v4();
    let (kept_db, _) = w.provision(kept, source).await.unwrap();
    // A crash between creation and registration: the registry step never ran.
    let crashed = naming.tenant(TenantId::new_v4());
    create(&mut w.server, &server_options(), &naming, &crashed, source)
        .await
        .unwrap();
    // A provisioning in flight: created, its registry transaction (and lock) still open.
    let in_flight = naming.tenant(TenantId::new_v4());
    let mut other =
        PgConnection::connect_with(&server_options().database(w.registry_name().await.as_str()))
            .await
            .unwrap();
    let mut lock = other.begin().await.unwrap();
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('tenancy.database'), hashtext($1))")
        .bind(in_flight.as_str())
        .execute(&mut *lock)
        .await
        .unwrap();
    create(
        &mut w.server,
        &server_options(),
        &naming,
        &in_flight,
        source,
    )
    .await
    .unwrap();
    // A spare, and a database of another registry sharing the server: not leftovers.
    let spares = warm_spares(&mut w.server, &naming, &template, 2, 1)
        .await
        .unwrap();
    let stranger_naming = Naming::new(&Uuid::new_v4().simple().to_string()[..10]).unwrap();
    let _strangers = Dropped {
        prefix: stranger_naming.prefix().to_owned(),
    };
    let stranger = stranger_naming.tenant(TenantId::new_v4());
    create(
        &mut w.server,
        &server_options(),
        &stranger_naming,
        &stranger,
        source,
    )
    .await
    .unwrap();

    assert_eq!(w.cleanup().await, std::slice::from_ref(&crashed));
    assert!(!w.exists(&crashed).await);
    for db in [&kept_db, &in_flight, &spares[0], &stranger] {
        assert!(w.exists(db).await, "{db} was dropped");
    }
    // The provisioning in flight died before registering: its lock goes with its transaction,
    // and the next cleanup takes its database.
    lock.rollback().await.unwrap();
    assert_eq!(w.cleanup().await, std::slice::from_ref(&in_flight));
    assert!(w.exists(&kept_db).await);
    assert_eq!(w.cleanup().await, Vec::<DatabaseName>::new());
}

impl World {
    async fn registry_name(&mut self) -> String {
        sqlx::query_scalar("SELECT current_database()")
            .fetch_one(&mut self.registry)
            .await
            .unwrap()
    }
}

/// The move's check of a tenant database's fence knows every function the fence is made of,
/// each with the body it is made with.
#[test]
fn the_fence_check_knows_each_function_by_its_body() {
    let bodies: Vec<_> = fence_bodies(FENCE_DDL).collect();
    assert_eq!(bodies.len(), FENCE_FUNCTIONS.len());
    for (signature, body) in bodies {
        let name = signature.split('(').next().unwrap();
        let made = FENCE_DDL.find(&format!("FUNCTION {name}(")).unwrap();
        // Each body follows its own CREATE and comes before the next one.
        let at = FENCE_DDL.find(body).unwrap();
        assert!(
            at > made && !FENCE_DDL[made..at].contains("END\n$fn$"),
            "{signature}"
        );
        assert!(
            body.contains("BEGIN") && body.trim_end().ends_with("END"),
            "{signature}"
        );
    }
}

/// The test's registry: a table of the tenants it keeps.
struct InTable;

impl super::Registered for InTable {
    fn keeps<'c>(
        &'c self,
        conn: &'c mut PgConnection,
        tenant: TenantId,
        _: &'c DatabaseName,
    ) -> futures_util::future::BoxFuture<'c, crate::Result<bool>> {
        Box::pin(async move {
            Ok(
                sqlx::query_scalar("SELECT EXISTS (SELECT FROM registered WHERE tenant = $1)")
                    .bind(Uuid::from(tenant))
                    .fetch_one(conn)
                    .await?,
            )
        })
    }
}
