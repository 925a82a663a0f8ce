//! The servers tenants live on: the registry lists their keys (`tenancy.servers`), the
//! application maps each key to connect options ([`TenancyBuilder::server`]), and only a
//! [`Superuser`] adds one, audited. No URL or credential is ever written to the registry.
//!
//! [`TenancyBuilder::server`]: crate::TenancyBuilder::server

use time::OffsetDateTime;

use crate::superuser::Audit;
use crate::{Result, Superuser, Tenancy};

/// One server the registry lists ([`Tenancy::list_servers`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerEntry {
    /// Its key (`"primary"`: the registry's own server).
    pub key: String,
    /// When it was added.
    pub created_at: OffsetDateTime,
    /// Whether this handle maps the key to connect options (can serve its tenants).
    pub mapped: bool,
    /// How many tenants the registry places on it.
    pub tenants: i64,
}

impl Tenancy {
    /// Lists server `key` in the registry, so that tenants can be created on it
    /// ([`NewTenant::server`](crate::NewTenant::server)). Only the key is stored: each handle
    /// maps it to connect options with [`TenancyBuilder::server`](crate::TenancyBuilder::server).
    /// Adding a key that is already listed changes nothing. Audited (`server.add`, with the key)
    /// in the same transaction. Returns whether the key was new.
    ///
    /// # Errors
    /// [`Error::Invalid`](crate::Error::Invalid) for a malformed key (see
    /// [`validate_server_key`](tenancy_core::home::validate_server_key)), before anything is
    /// written; [`Error::Forbidden`](crate::Error::Forbidden) for an expired `su` or one of
    /// another `Tenancy`.
    pub async fn add_server(&self, su: &Superuser, key: &str) -> Result<bool> {
        tenancy_core::home::validate_server_key(key)?;
        su.audited(&self.rt, "server.add", async |tx| {
            let added = sqlx::query(
                "INSERT INTO tenancy.servers (key) VALUES ($1) ON CONFLICT (key) DO NOTHING",
            )
            .persistent(false)
            .bind(key)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            let detail = if added {
                key.to_owned()
            } else {
                format!("{key} (already listed)")
            };
            Ok((added, Audit::default().detail(detail)))
        })
        .await
    }

    /// The servers the registry lists, by key, with how many tenants each holds and whether
    /// this handle can reach it. Audited (`server.list`).
    ///
    /// # Errors
    /// [`Error::Forbidden`](crate::Error::Forbidden) for an expired `su` or one of another
    /// `Tenancy`; [`Error::Database`](crate::Error::Database).
    pub async fn list_servers(&self, su: &Superuser) -> Result<Vec<ServerEntry>> {
        let databases = self.rt.databases()?;
        su.audited(&self.rt, "server.list", async |tx| {
            let rows: Vec<(String, OffsetDateTime, i64)> = sqlx::query_as(
                "SELECT s.key, s.created_at, \
                   (SELECT count(*) FROM tenancy.tenants t WHERE t.server = s.key) \
                 FROM tenancy.servers s ORDER BY s.key",
            )
            .persistent(false)
            .fetch_all(&mut *tx)
            .await?;
            let servers: Vec<ServerEntry> = rows
                .into_iter()
                .map(|(key, created_at, tenants)| ServerEntry {
                    mapped: databases.knows(&key),
                    key,
                    created_at,
                    tenants,
                })
                .collect();
            let detail = format!("{} servers", servers.len());
            Ok((servers, Audit::default().detail(detail)))
        })
        .await
    }

    /// Whether the registry lists server `key`.
    pub(crate) async fn server_listed(&self, key: &str) -> Result<bool> {
        self.rt
            .with_conn(async |c| {
                Ok(
                    sqlx::query_scalar(
                        "SELECT EXISTS (SELECT FROM tenancy.servers WHERE key = $1)",
                    )
                    .persistent(false)
                    .bind(key)
                    .fetch_one(c)
                    .await?,
                )
            })
            .await
    }
}
