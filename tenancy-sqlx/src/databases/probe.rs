//! Whether a database reached through one server key is a tenant's database reached through
//! another. A tenant's database is named after the tenant, whatever its server, and two keys
//! may reach one PostgreSQL server: the name alone cannot tell a copy on another server (a
//! cut-off move's leftover, which may go) from the database itself (which must stay). The
//! database itself is asked: the tenant's identity row, locked in a transaction through the
//! first key, cannot be locked through the second if the two are one. Names, system
//! identifiers and oids can all repeat across servers (a promoted replica keeps them); a lock
//! held right now cannot.

use sqlx::{Connection, PgConnection};
use tenancy_core::TenantId;

use super::Databases;
use super::name::DatabaseName;
use crate::{Error, Result};

/// What the database probed is, next to the tenant's database.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum There {
    /// No database of that name there.
    Missing,
    /// The tenant's database itself, reached through the other key.
    Same,
    /// Another database that is the tenant's or no one's yet (not stamped, half made): what a
    /// cut-off move left.
    Leftover,
    /// A database that says it is another tenant's (these): never dropped as a leftover.
    Another(Vec<uuid::Uuid>),
}

impl Databases {
    /// What database `name` on server `there` is to tenant `id`'s database `source` on server
    /// `here` (see the module docs), with what `lock` returned: `lock` locks the tenant's
    /// identity row in a transaction on `source` (the caller bounds its wait, and may read the
    /// row); its error is returned, as is any failure to connect other than a missing
    /// database (`None` then: the source was not asked).
    pub(crate) async fn probe<T>(
        &self,
        id: TenantId,
        (here, source): (&str, &DatabaseName),
        (there, name): (&str, &DatabaseName),
        lock: impl AsyncFnOnce(&mut PgConnection) -> Result<T>,
    ) -> Result<(There, Option<T>)> {
        let mut probed = match self.connect(there, name).await {
            Err(e) if e.sqlstate() == Some("3D000") => return Ok((There::Missing, None)),
            other => other?,
        };
        let mut held = match self.connect(here, source).await {
            Ok(conn) => conn,
            Err(e) => {
                let _ = probed.close().await;
                return Err(e);
            }
        };
        let out = async {
            let mut tx = held.begin().await?;
            let locked = Some(lock(&mut tx).await?);
            let mut probe = probed.begin().await?;
            // Whose the database says it is, and then, for the tenant's own identity row,
            // whether the transaction on the source holds it.
            let owners = crate::sql::admin_scalar::<Vec<uuid::Uuid>>(
                "SELECT coalesce(array_agg(id), '{}') FROM tenancy.tenants",
            )
            .fetch_one(&mut *probe)
            .await
            .map_err(Error::from);
            let owners = match owners {
                // Half made: no identity table yet.
                Err(e) if e.sqlstate() == Some("42P01") => return Ok((There::Leftover, locked)),
                other => other?,
            };
            if owners.iter().any(|o| *o != id.as_uuid()) {
                return Ok((There::Another(owners), locked));
            }
            let there = match crate::sql::admin_scalar::<uuid::Uuid>(
                "SELECT id FROM tenancy.tenants WHERE id = $1 FOR NO KEY UPDATE NOWAIT",
            )
            .bind(id.as_uuid())
            .fetch_optional(&mut *probe)
            .await
            .map_err(Error::from)
            {
                // Locked by the transaction on the source: it is the source.
                Err(e) if e.sqlstate() == Some("55P03") => There::Same,
                Ok(_) => There::Leftover,
                Err(e) => return Err(e),
            };
            Ok((there, locked))
        }
        .await;
        let _ = probed.close().await;
        let _ = held.close().await;
        out
    }
}

/// Locks tenant `id`'s identity row in the transaction `conn` on database `database` of
/// server `server`, waiting at most `wait` (the tenant's `REPEATABLE READ` writers share-lock
/// it), for [`Databases::probe`]. Returns whether a move out of the database sealed it;
/// [`Error::WrongDatabase`] when the row is not there.
pub(crate) async fn lock_identity(
    conn: &mut PgConnection,
    id: TenantId,
    (server, database): (&str, &DatabaseName),
    wait: std::time::Duration,
) -> Result<bool> {
    let ms = wait.as_millis().clamp(1, i32::MAX as u128);
    sqlx::raw_sql(crate::sql::text(format!("SET LOCAL lock_timeout = {ms}")))
        .execute(&mut *conn)
        .await?;
    // The column comes with the write fence: a database without it was never sealed.
    let sealed: Option<bool> = crate::sql::admin_scalar(
        "SELECT coalesce(to_jsonb(t) ->> 'moved_at', '') <> '' \
         FROM tenancy.tenants t WHERE id = $1 FOR NO KEY UPDATE OF t",
    )
    .bind(id.as_uuid())
    .fetch_optional(&mut *conn)
    .await?;
    sealed.ok_or_else(|| Error::WrongDatabase {
        tenant: id,
        database: database.as_str().to_owned(),
        found: format!("no identity row of the tenant there (server {server})"),
    })
}
