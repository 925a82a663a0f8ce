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
    /// `here` (see the module docs). `lock` locks the tenant's identity row in a transaction on
    /// `source` (the caller bounds its wait); its error is returned, as is any failure to
    /// connect other than a missing database.
    pub(crate) async fn probe(
        &self,
        id: TenantId,
        (here, source): (&str, &DatabaseName),
        (there, name): (&str, &DatabaseName),
        lock: impl AsyncFnOnce(&mut PgConnection) -> Result<()>,
    ) -> Result<There> {
        let mut probed = match self.connect(there, name).await {
            Err(e) if e.sqlstate() == Some("3D000") => return Ok(There::Missing),
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
            lock(&mut tx).await?;
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
                Err(e) if e.sqlstate() == Some("42P01") => return Ok(There::Leftover),
                other => other?,
            };
            if owners.iter().any(|o| *o != id.as_uuid()) {
                return Ok(There::Another(owners));
            }
            let locked = crate::sql::admin_scalar::<uuid::Uuid>(
                "SELECT id FROM tenancy.tenants WHERE id = $1 FOR NO KEY UPDATE NOWAIT",
            )
            .bind(id.as_uuid())
            .fetch_optional(&mut *probe)
            .await
            .map_err(Error::from);
            match locked {
                // Locked by the transaction on the source: it is the source.
                Err(e) if e.sqlstate() == Some("55P03") => Ok(There::Same),
                Ok(_) => Ok(There::Leftover),
                Err(e) => Err(e),
            }
        }
        .await;
        let _ = probed.close().await;
        let _ = held.close().await;
        out
    }
}
