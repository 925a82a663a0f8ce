//! What a migration ran on, as errors and reports name it. A leaf: the typed errors name it
//! too.

use tenancy_core::TenantId;

/// What a migration ran on.
///
/// With the `serde` feature it serialises tagged by `target`:
/// `{"target": "tenant", "id": ..., "slug": "acme", "schema": "t_acme"}`,
/// `{"target": "shared_tables"}`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(tag = "target", rename_all = "snake_case")
)]
pub enum MigrationTarget {
    /// The app's global tables ([`Tenancy::migrate_shared`](crate::Tenancy::migrate_shared)).
    Global,
    /// The shared tables, for every shared-table tenant at once.
    SharedTables,
    /// One own-schema tenant.
    Tenant {
        /// The tenant.
        id: TenantId,
        /// Its slug.
        slug: String,
        /// Its schema.
        schema: String,
    },
    /// A spare schema, provisioned ahead for a future tenant ([`Tenancy::warm_schemas`](crate::Tenancy::warm_schemas)).
    Spare {
        /// Its schema.
        schema: String,
    },
    /// One own-database tenant: its database, with its own migration history.
    Database {
        /// The tenant.
        id: TenantId,
        /// Its slug.
        slug: String,
        /// Its database.
        database: String,
        /// The key of the server the database is on.
        server: String,
    },
    /// The shared tables of a server other than the registry's, in its home database (for
    /// every shared-table tenant there at once), with their own migration history.
    ServerHome {
        /// The key of the server.
        server: String,
    },
    /// One own-schema tenant on a server other than the registry's: its schema in that
    /// server's home database, with its own migration history.
    ServerSchema {
        /// The tenant.
        id: TenantId,
        /// Its slug.
        slug: String,
        /// Its schema.
        schema: String,
        /// The key of the server.
        server: String,
    },
    /// A schema named by its name alone, where the step that failed does not know its tenant
    /// (a spare being renamed for a new tenant, an own database's schema).
    Schema {
        /// Its schema.
        schema: String,
    },
}

impl MigrationTarget {
    /// The tenant this target is, if it is one tenant's.
    pub fn tenant(&self) -> Option<TenantId> {
        match self {
            Self::Tenant { id, .. } | Self::Database { id, .. } | Self::ServerSchema { id, .. } => {
                Some(*id)
            }
            Self::Global
            | Self::SharedTables
            | Self::Spare { .. }
            | Self::Schema { .. }
            | Self::ServerHome { .. } => None,
        }
    }
}

impl std::fmt::Display for MigrationTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Global => f.write_str("global tables"),
            Self::SharedTables => f.write_str("shared tables"),
            Self::ServerHome { server } => write!(f, "shared tables on server {server}"),
            Self::Tenant { slug, schema, .. } => write!(f, "tenant {slug} (schema {schema})"),
            Self::ServerSchema {
                slug,
                schema,
                server,
                ..
            } => write!(f, "tenant {slug} (schema {schema} on server {server})"),
            Self::Spare { schema } => write!(f, "spare schema {schema}"),
            Self::Schema { schema } => write!(f, "schema {schema}"),
            Self::Database {
                slug,
                database,
                server,
                ..
            } => write!(f, "tenant {slug} (database {database} on server {server})"),
        }
    }
}
