//! Spare schemas: own-schema tenants provisioned ahead, so that creating a tenant renames a
//! schema already at the latest migration instead of running every migration while the
//! customer waits.

use sqlx::{PgConnection, Row};

use crate::migrate::{Migrations, Target, apply};
use crate::registry::store;
use crate::runtime::ALL_TENANTS_SETTING;
use crate::{Error, MigrationError, Result};

/// Takes the oldest spare, if any, and renames it to `schema`, bringing it to the latest
/// migration if it fell behind. `Ok(false)` when there is none. Runs in the caller's
/// transaction: if that rolls back, the spare is back in the pool.
///
/// A spare that cannot be used (dropped by hand, a pending migration failing on it, a history
/// that disagrees with the migrations) must not stop every later creation, which would take it
/// first again: the attempt runs under a savepoint, and on failure the spare is set aside (its
/// row removed, its schema left for an operator, logged) and `Ok(false)` lets the caller build
/// a fresh schema.
pub(crate) async fn take(
    conn: &mut PgConnection,
    schema: &str,
    migrations: &Migrations,
) -> Result<bool> {
    // The savepoint rides with the take in one round trip; it need not be released (the
    // transaction's commit does that).
    let spare = sqlx::raw_sql(store::SPARE_TAKE_OLDEST)
        .fetch_optional(&mut *conn)
        .await?;
    let Some(spare) = spare else {
        return Ok(false);
    };
    let spare: String = spare.try_get(0)?;
    match adopt(conn, &spare, schema, migrations).await {
        Ok(()) => Ok(true),
        Err(e) => {
            sqlx::raw_sql("ROLLBACK TO SAVEPOINT tenancy_take_spare")
                .execute(&mut *conn)
                .await?;
            // A schema already in the way of the rename is not the spare's fault: say so, and
            // set no spare aside.
            if matches!(&e, Error::Database(_)) && e.sqlstate() == Some(DUPLICATE_SCHEMA) {
                return Err(MigrationError::SchemaExists {
                    schema: schema.to_owned(),
                }
                .into());
            }
            crate::sql::admin_query(store::SPARE_DELETE)
                .bind(&spare)
                .execute(&mut *conn)
                .await?;
            tracing::error!(
                spare,
                error = %e,
                "spare schema unusable: set aside (its schema is kept for inspection); \
                 building a fresh schema instead"
            );
            Ok(false)
        }
    }
}

/// PostgreSQL's SQLSTATE for `CREATE`/`ALTER SCHEMA` onto a name in use.
const DUPLICATE_SCHEMA: &str = "42P06";

/// Renames `spare` to `schema` and brings it to the latest migration.
async fn adopt(
    conn: &mut PgConnection,
    spare: &str,
    schema: &str,
    migrations: &Migrations,
) -> Result<()> {
    tenancy_core::ident::validate_schema(spare)?;
    sqlx::raw_sql(crate::sql::text(format!(
        "ALTER SCHEMA {} RENAME TO {}",
        tenancy_core::ident::quote(spare),
        tenancy_core::ident::quote(schema)
    )))
    .execute(&mut *conn)
    .await?;
    let behind = apply(conn, &Target::Schema(schema.to_owned()), migrations).await?;
    // `apply` set the migration's bypass of row-level security and the schema's search path
    // for the rest of the transaction; the rest of `create_tenant` needs neither (as the fresh
    // script does at its end).
    sqlx::raw_sql(crate::sql::text(format!(
        "SELECT pg_catalog.set_config('{ALL_TENANTS_SETTING}', '', true); \
         SET LOCAL search_path TO DEFAULT;"
    )))
    .execute(&mut *conn)
    .await?;
    if !behind.is_empty() {
        tracing::info!(
            schema,
            ?behind,
            "spare schema was behind; migrated it on take"
        );
    }
    Ok(())
}
