//! Spare schemas: own-schema tenants provisioned ahead, so that creating a tenant renames a
//! schema already at the latest migration instead of running every migration while the
//! customer waits.

use sqlx::PgConnection;

use crate::migrate::{Migrations, Target, apply, fresh_schema_script};
use crate::{Error, Result, Tenancy};

/// Takes the oldest spare, if any, and renames it to `schema`, bringing it to the latest
/// migration if it fell behind. `Ok(false)` when there is none. Runs in the caller's
/// transaction: if that rolls back, the spare is back in the pool.
pub(crate) async fn take(
    conn: &mut PgConnection,
    schema: &str,
    migrations: &Migrations,
) -> Result<bool> {
    let spare: Option<String> = crate::sql::admin_scalar(
        "DELETE FROM tenancy.spare_schemas WHERE name = ( \
             SELECT name FROM tenancy.spare_schemas ORDER BY created_at, name \
             LIMIT 1 FOR UPDATE SKIP LOCKED) \
         RETURNING name",
    )
    .fetch_optional(&mut *conn)
    .await?;
    let Some(spare) = spare else {
        return Ok(false);
    };
    tenancy_core::ident::validate_schema(&spare)?;
    sqlx::raw_sql(crate::sql::text(format!(
        "ALTER SCHEMA {} RENAME TO {}",
        tenancy_core::ident::quote(&spare),
        tenancy_core::ident::quote(schema)
    )))
    .execute(&mut *conn)
    .await?;
    let behind = apply(conn, &Target::Schema(schema.to_owned()), migrations).await?;
    if !behind.is_empty() {
        tracing::info!(
            schema,
            ?behind,
            "spare schema was behind; migrated it on take"
        );
    }
    Ok(true)
}

impl Tenancy {
    /// Makes sure `count` spare schemas are ready at the latest tenant migration, building the
    /// missing ones (each in its own transaction). Returns how many were built. Run it at
    /// startup or from a periodic job; creating an own-schema tenant then costs a rename.
    ///
    /// # Errors
    /// [`Error::Migration`] if a tenant migration fails (that spare is not kept).
    pub async fn warm_schemas(&self, count: usize) -> Result<usize> {
        let rt = self.runtime();
        let have: i64 = rt
            .with_conn(async |c| {
                Ok(
                    crate::sql::admin_scalar("SELECT count(*) FROM tenancy.spare_schemas")
                        .fetch_one(c)
                        .await?,
                )
            })
            .await?;
        let missing = count.saturating_sub(usize::try_from(have).unwrap_or(0));
        for _ in 0..missing {
            let name = format!("tenancy_spare_{}", uuid::Uuid::new_v4().simple());
            let mut tx = rt.pool.begin().await?;
            sqlx::raw_sql(crate::sql::text(fresh_schema_script(
                &name,
                &rt.tenant_migrations,
            )))
            .execute(&mut *tx)
            .await
            .map_err(|e| Error::Migration(format!("building spare schema {name}: {e}")))?;
            crate::sql::admin_query("INSERT INTO tenancy.spare_schemas (name) VALUES ($1)")
                .bind(&name)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        }
        Ok(missing)
    }
}
