//! The template database each test's database is copied from: the registry installed and the
//! migrations applied once, so a test pays for a file copy instead of the DDL.
//!
//! One template per test binary and migration set. Its name holds a digest of both, so a
//! rebuilt binary or an edited migration gets a new one (the registry's own schema comes with
//! the binary), and the old templates of that binary are dropped when the new one is built.
//! Parallel test processes build it once: the build holds an advisory lock, and it is built
//! under a temporary name and renamed, so a template that exists is a complete one.

use std::collections::HashSet;
use std::sync::Mutex;

use sha2::{Digest, Sha256};
use sqlx::PgConnection;

use tenancy_core::ident::quote;

use super::SetupError;
use super::database::{TestDatabase, drop_database};
use super::server::connect_admin;
use crate::{MigrateOptions, Migrations, Tenancy};

/// Templates this process knows exist: later tests skip the lock.
static BUILT: Mutex<Option<HashSet<String>>> = Mutex::new(None);

/// What a template is built from.
pub(super) struct Recipe<'a> {
    pub shared: &'a Migrations,
    pub tenant: &'a Migrations,
}

/// The template's name, building it first if no process has.
pub(super) async fn ensure(recipe: &Recipe<'_>) -> Result<String, SetupError> {
    let (family, build, name) = names(recipe);
    if known(&name) {
        return Ok(name);
    }
    let mut admin = connect_admin().await?;
    let lock = i64::from_be_bytes(
        Sha256::digest(family.as_bytes())[..8]
            .try_into()
            .unwrap_or([0; 8]),
    );
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(lock)
        .execute(&mut admin)
        .await
        .map_err(|e| SetupError::database("lock the template".into(), e))?;
    let built = build_unless_present(&mut admin, &build, &name, recipe).await;
    // Unlocked also after a failed build (closing the connection would do it too).
    let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(lock)
        .execute(&mut admin)
        .await;
    built?;
    BUILT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get_or_insert_with(HashSet::new)
        .insert(name.clone());
    Ok(name)
}

fn known(name: &str) -> bool {
    BUILT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .as_ref()
        .is_some_and(|set| set.contains(name))
}

async fn build_unless_present(
    admin: &mut PgConnection,
    build: &str,
    name: &str,
    recipe: &Recipe<'_>,
) -> Result<(), SetupError> {
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(name)
            .fetch_one(&mut *admin)
            .await
            .map_err(|e| SetupError::database("look for the template".into(), e))?;
    if exists {
        return Ok(());
    }
    drop_stale(admin, build).await;
    let building = TestDatabase::create(&format!("{name}_building")).await?;
    fill(building.url(), recipe).await?;
    let temp = building.keep();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "ALTER DATABASE {temp} RENAME TO {name}; ALTER DATABASE {name} WITH IS_TEMPLATE true",
        temp = quote(&temp),
        name = quote(name),
    )))
    .execute(&mut *admin)
    .await
    .map_err(|e| SetupError::database(format!("make {name} a template"), e))?;
    Ok(())
}

/// Installs the registry and applies the migrations: shared ones, then tenant ones on the
/// shared tables (own-schema tenants get theirs when a test creates them).
async fn fill(url: &str, recipe: &Recipe<'_>) -> Result<(), SetupError> {
    let tenancy = Tenancy::builder()
        .max_connections(2)
        .listen_for_changes(false)
        .tenant_migrations(recipe.tenant.clone())
        .connect(url)
        .await
        .map_err(|e| SetupError::tenancy("install the registry", e))?;
    let migrated = async {
        let su = tenancy
            .superuser("tenancy::test", "build the test template")
            .await?;
        if !recipe.shared.is_empty() {
            tenancy.migrate_shared(&su, recipe.shared).await?;
        }
        tenancy
            .migrate_tenants(&su, MigrateOptions::default())
            .await
    }
    .await;
    tenancy.close().await;
    let report = migrated.map_err(|e| SetupError::tenancy("apply the migrations", e))?;
    if let Some((target, why)) = report.failed().next() {
        return Err(SetupError::Migrations(format!("{target}: {why}")));
    }
    Ok(())
}

/// Earlier builds' templates of this binary: nothing uses them any more. Best effort: one that
/// cannot be dropped now is dropped by the next build. Called under the family's lock.
async fn drop_stale(admin: &mut PgConnection, build: &str) {
    let family = build.rsplit_once('_').map_or(build, |(f, _)| f);
    let stale: Vec<String> = sqlx::query_scalar(
        "SELECT datname FROM pg_database \
         WHERE starts_with(datname, $1) AND NOT starts_with(datname, $2)",
    )
    .bind(format!("{family}_"))
    .bind(format!("{build}_"))
    .fetch_all(&mut *admin)
    .await
    .unwrap_or_default();
    for db in stale {
        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "ALTER DATABASE {} WITH IS_TEMPLATE false",
            quote(&db)
        )))
        .execute(&mut *admin)
        .await;
        let _ = drop_database(&db).await;
    }
}

/// `(family, build, name)`: the family names this test binary, the build this build of it, the
/// name adds the recipe. All hex digests, so they need no quoting beyond the identifier's.
fn names(recipe: &Recipe<'_>) -> (String, String, String) {
    let exe = std::env::current_exe().unwrap_or_default();
    let family = format!(
        "tenancy_tpl_{}",
        &hex(&Sha256::digest(exe.to_string_lossy().as_bytes()))[..8]
    );
    // A rebuilt binary may carry another registry schema.
    let mut b = Sha256::new();
    if let Ok(meta) = std::fs::metadata(&exe) {
        b.update(meta.len().to_le_bytes());
        if let Ok(t) = meta.modified()
            && let Ok(d) = t.duration_since(std::time::UNIX_EPOCH)
        {
            b.update(d.as_nanos().to_le_bytes());
        }
    }
    let build = format!("{family}_{}", &hex(&b.finalize())[..8]);
    let mut h = Sha256::new();
    for (scope, list) in [("shared", recipe.shared), ("tenant", recipe.tenant)] {
        h.update(scope.as_bytes());
        for m in list.iter() {
            h.update(m.version.to_le_bytes());
            h.update(m.sql.as_bytes());
            h.update([0]);
        }
    }
    let name = format!("{build}_{}", &hex(&h.finalize())[..8]);
    (family, build, name)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
