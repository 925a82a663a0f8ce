//! Two tenants, one table, and the proof that neither sees the other's rows.
//!
//! Run it with `scripts/pg cargo run --example quickstart` (which finds or starts a PostgreSQL
//! and sets `DATABASE_URL`). It works in a database of its own, `tenancy_quickstart`, made
//! afresh on every run.

use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};
use tenancy::prelude::*;
use time::OffsetDateTime;
use uuid::Uuid;

/// A fidget spinner, owned by one tenant. The tenant column is not a field: tenancy binds it.
#[tenant_scoped(table = "spinners", new_derive(Debug, Clone))]
#[derive(Debug, Clone)]
pub struct Spinner {
    /// The key (with the tenant: PRIMARY KEY (tenant_id, id)).
    #[tenancy(id)]
    pub id: Uuid,
    /// Its name, unique per tenant.
    pub name: String,
    /// Seconds of its longest spin.
    pub best_spin: i32,
    /// Filled by the database.
    #[tenancy(read_only)]
    pub created_at: OffsetDateTime,
}

/// The application's own migration: every key leads with the tenant.
const SCHEMA: &str = "
CREATE TABLE spinners (
    tenant_id  uuid NOT NULL REFERENCES tenancy.tenants (id),
    id         uuid NOT NULL,
    name       text NOT NULL,
    best_spin  integer NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, name)
);";

/// Errors print as the sentences they are (`{e}`), not as a `Debug` dump.
#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("quickstart: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let url = fresh_database().await?;
    let tenancy = Tenancy::connect(&url).await?; // creates the registry (schema `tenancy`)
    sqlx::raw_sql(SCHEMA)
        .execute(&mut PgConnection::connect(&url).await?)
        .await?;
    tenancy.verify::<Spinner>().await?; // refuses a table whose keys do not lead with tenant_id

    tenancy
        .create_tenant(NewTenant::new("acme", "Acme Corp").host("acme.spinners.example"))
        .await?;
    tenancy
        .create_tenant(NewTenant::new("globex", "Globex").host("globex.spinners.example"))
        .await?;

    // A request for acme.spinners.example: the host resolves to Acme's context.
    let acme = tenancy.resolve_host("acme.spinners.example").await?;
    let globex = tenancy.resolve_host("Globex.Spinners.Example:443").await?;

    let repo = Spinner::repo();
    let turbo = repo
        .insert(
            &acme,
            &NewSpinner {
                id: Uuid::new_v4(),
                name: "Turbo".into(),
                best_spin: 151,
            },
        )
        .await?;
    repo.insert_many(
        &acme,
        &[
            NewSpinner {
                id: Uuid::new_v4(),
                name: "Classic".into(),
                best_spin: 95,
            },
            NewSpinner {
                id: Uuid::new_v4(),
                name: "Tri-blade".into(),
                best_spin: 124,
            },
        ],
    )
    .await?;
    repo.insert(
        &globex,
        &NewSpinner {
            id: Uuid::new_v4(),
            name: "Orbit".into(),
            best_spin: 200,
        },
    )
    .await?;

    let fast = repo
        .query()
        .filter(Spinner::BEST_SPIN.gt(100))
        .order_by(Spinner::BEST_SPIN.desc())
        .fetch_all(&acme)
        .await?;
    println!("{} spinners; over 100 s:", acme.name());
    for s in &fast {
        println!("  {:<10} {:>4} s", s.name, s.best_spin);
    }

    // Globex asks for Acme's spinner by its id: it does not exist for Globex.
    let stolen = repo.get(&globex, turbo.id).await?;
    println!("Globex reading Acme's spinner by id: {stolen:?}");
    let deleted = repo.delete(&globex, turbo.id).await?;
    println!("Globex deleting Acme's spinner by id: deleted = {deleted}");
    println!(
        "{} sees {} spinner(s), {} sees {}",
        acme.name(),
        repo.count(&acme).await?,
        globex.name(),
        repo.count(&globex).await?
    );

    // One transaction, one tenant; dropped without commit, it rolls back.
    let mut tx = acme.begin().await?;
    repo.update_columns(&mut tx, turbo.id, [Spinner::BEST_SPIN.set(152)])
        .await?;
    tx.commit().await?;

    // Cross-tenant work needs a Superuser, and acquiring one is audited.
    let su = tenancy
        .superuser("ops@spinners.example", "quickstart tour")
        .await?;
    tenancy.suspend(&su, globex.id()).await?;
    match tenancy.resolve_slug("globex").await {
        Err(e) => println!("after suspension: {e}"),
        Ok(_) => unreachable!("a suspended tenant does not resolve"),
    }
    Ok(())
}

/// Drops and recreates `tenancy_quickstart` on the server of `DATABASE_URL`, so the example can
/// be run again and again.
async fn fresh_database() -> Result<String, Box<dyn std::error::Error>> {
    let admin = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let options: PgConnectOptions = admin.parse()?;
    let mut conn = PgConnection::connect_with(&options).await.map_err(|e| {
        format!(
            "cannot connect to PostgreSQL at {}:{}: {e}",
            options.get_host(),
            options.get_port()
        )
    })?;
    sqlx::raw_sql("DROP DATABASE IF EXISTS tenancy_quickstart WITH (FORCE)")
        .execute(&mut conn)
        .await?;
    sqlx::raw_sql("CREATE DATABASE tenancy_quickstart")
        .execute(&mut conn)
        .await?;
    let base = admin.split('?').next().unwrap_or(&admin);
    let server = base.rsplit_once('/').map_or(base, |(server, _)| server);
    Ok(format!("{server}/tenancy_quickstart"))
}
