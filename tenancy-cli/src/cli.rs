//! The command line's shape: every command, argument and environment variable.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Operate a tenancy deployment: the registry, migrations, tenants, archives and the audit log.
#[derive(Debug, Parser)]
#[command(name = "tenancy", version, about, propagate_version = true)]
pub struct Cli {
    /// The database, as `postgres://user@host:port/db` (as sqlx-cli).
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    pub database_url: Option<String>,

    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The tenant registry (schema `tenancy`).
    #[command(subcommand)]
    Registry(RegistryCmd),
    /// Shared and tenant migrations.
    #[command(subcommand)]
    Migrate(MigrateCmd),
    /// Create, inspect, move through the lifecycle, export and import tenants.
    #[command(subcommand)]
    Tenants(TenantsCmd),
    /// Spare schemas, built ahead for fast own-schema sign-ups.
    #[command(subcommand)]
    Spares(SparesCmd),
    /// The servers own-database tenants live on (keys; `TENANCY_SERVERS` maps them to URLs).
    #[command(subcommand)]
    Servers(ServersCmd),
    /// Check what can be checked without the application's models: the registry, every
    /// tenant's schema, row-level security on tenant tables, and (with --migrations) that no
    /// tenant is behind.
    Verify(VerifyArgs),
    /// Read the audit log, newest first.
    Audit(AuditArgs),
}

/// Who acts and why: written to the audit log with every action.
#[derive(Debug, Clone, Args)]
pub struct Actor {
    /// Who is acting (default: the login name in USER).
    #[arg(long, env = "TENANCY_ACTOR")]
    pub actor: Option<String>,
    /// Why (required): a ticket, a release, an incident.
    #[arg(long, env = "TENANCY_REASON")]
    pub reason: String,
}

/// As [`Actor`], for commands that need it only with some options.
#[derive(Debug, Clone, Args)]
pub struct MaybeActor {
    /// Who is acting (default: the login name in USER).
    #[arg(long, env = "TENANCY_ACTOR")]
    pub actor: Option<String>,
    /// Why: a ticket, a release, an incident.
    #[arg(long, env = "TENANCY_REASON")]
    pub reason: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum RegistryCmd {
    /// Create or upgrade the registry schema `tenancy`. Idempotent.
    Install,
}

#[derive(Debug, Subcommand)]
pub enum MigrateCmd {
    /// Run the application's global (shared) migrations from DIR, once.
    Shared {
        /// A directory of `<version>_<description>.sql` files.
        dir: PathBuf,
        #[command(flatten)]
        actor: Actor,
    },
    /// Run the tenant migrations from DIR on the shared tables and every own-schema tenant.
    Tenants {
        /// A directory of `<version>_<description>.sql` files.
        dir: PathBuf,
        /// How many targets migrate at once.
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=256))]
        parallel: u32,
        #[command(flatten)]
        actor: Actor,
    },
    /// List the targets not at the latest tenant migration of DIR.
    Pending {
        /// A directory of `<version>_<description>.sql` files.
        dir: PathBuf,
        /// Exit with status 1 when any target is behind.
        #[arg(long)]
        check: bool,
        #[command(flatten)]
        actor: Actor,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum PlacementArg {
    /// Rows in the shared tables, with a tenant column.
    Shared,
    /// A schema of its own.
    OwnSchema,
    /// A database of its own (on --server, else the registry's server).
    OwnDatabase,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum StatusArg {
    Active,
    Suspended,
    Deleted,
}

#[derive(Debug, Subcommand)]
pub enum TenantsCmd {
    /// Create a tenant.
    Create {
        /// 2-48 lowercase letters, digits and single hyphens, starting with a letter.
        slug: String,
        /// Display name (default: the slug).
        #[arg(long)]
        name: Option<String>,
        /// A host name that resolves to it (repeatable).
        #[arg(long = "host")]
        hosts: Vec<String>,
        #[arg(long, value_enum, default_value = "shared")]
        placement: PlacementArg,
        /// The server the tenant lives on (any placement): a key the registry lists
        /// (`servers add`) and `TENANCY_SERVERS` maps to a URL.
        #[arg(long)]
        server: Option<String>,
        /// The tenant migrations to run in an own-schema or own-database tenant's new home.
        #[arg(long)]
        migrations: Option<PathBuf>,
        /// A fixed id (a restore under the old id); needs --reason.
        #[arg(long, requires = "reason")]
        id: Option<String>,
        #[command(flatten)]
        actor: MaybeActor,
    },
    /// List tenants.
    List {
        /// Only tenants in this status.
        #[arg(long, value_enum)]
        status: Option<StatusArg>,
        #[command(flatten)]
        actor: Actor,
    },
    /// Show one tenant.
    Show(One),
    /// Suspend an active tenant: it stops resolving; data untouched.
    Suspend(One),
    /// Resume a suspended tenant.
    Resume(One),
    /// Soft-delete a tenant: it stops resolving; data kept until purged.
    Delete(One),
    /// Restore a soft-deleted tenant.
    Restore(One),
    /// Delete a soft-deleted tenant's data and registry row for good.
    Purge {
        #[command(flatten)]
        one: One,
        /// Do not ask (required when not on a terminal).
        #[arg(long)]
        yes: bool,
    },
    /// Move a tenant to another placement or server while it serves: copied, verified per
    /// table, switched in one step; the old copy is kept until `purge-old-copy`.
    Move {
        #[command(flatten)]
        one: One,
        /// Where to.
        #[arg(long, value_enum)]
        to: PlacementArg,
        /// With --to own-database: the server of the new database; with --to shared: the
        /// server whose home takes the tenant (a listed, mapped key).
        #[arg(long)]
        server: Option<String>,
        /// The tenant migrations the new home is built with (a move into an own schema or
        /// database); the move is refused unless the tenant's home ran the same.
        #[arg(long)]
        migrations: Option<PathBuf>,
        /// How long to wait for the tenant's writes in flight before giving up (default 10 s).
        #[arg(long, value_name = "MS")]
        lock_wait_ms: Option<u64>,
        /// The application migrates the shared tables itself: an empty tenancy history of them
        /// is not compared with the other home's.
        #[arg(long)]
        unmanaged_shared_tables: bool,
    },
    /// Remove what the tenant's last move kept where it lived before (an old schema, old rows
    /// in the shared tables, an old database).
    PurgeOldCopy {
        #[command(flatten)]
        one: One,
        /// Do not ask (required when not on a terminal).
        #[arg(long)]
        yes: bool,
    },
    /// Forget the old databases a move kept on a server that is gone (one `TENANCY_SERVERS`
    /// does not map); purge-old-copy drops them where it can reach them. Should the server
    /// come back, a handle that maps it drops them as leftovers when it connects.
    ForgetOldCopy {
        #[command(flatten)]
        one: One,
        /// The server's key.
        #[arg(long)]
        server: String,
        /// Do not ask (required when not on a terminal).
        #[arg(long)]
        yes: bool,
    },
    /// Change a tenant's slug.
    Rename {
        #[command(flatten)]
        one: One,
        /// The new slug.
        new_slug: String,
    },
    /// Add a host name to a tenant.
    AddHost {
        #[command(flatten)]
        one: One,
        host: String,
        /// Make it the tenant's primary host.
        #[arg(long)]
        primary: bool,
    },
    /// Remove a host name from a tenant.
    RemoveHost {
        #[command(flatten)]
        one: One,
        host: String,
    },
    /// Write a tenant's rows to an archive, streamed (any size).
    Export {
        #[command(flatten)]
        one: One,
        /// The archive to write (`-` for standard output). Written under a temporary name and
        /// renamed when complete.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Read an archive into an existing tenant, streamed.
    Import {
        /// The archive (`-` for standard input).
        file: PathBuf,
        /// The tenant to import into (slug or id); it must have no rows unless --replace.
        #[arg(long)]
        into: String,
        /// Delete the tenant's rows first (in the import's transaction).
        #[arg(long)]
        replace: bool,
        /// Do not ask before --replace (required when not on a terminal).
        #[arg(long)]
        yes: bool,
        #[command(flatten)]
        actor: Actor,
    },
}

/// One tenant, by slug or id, and who acts on it.
#[derive(Debug, Clone, Args)]
pub struct One {
    /// The tenant's slug or id.
    pub tenant: String,
    #[command(flatten)]
    pub actor: Actor,
}

#[derive(Debug, Subcommand)]
pub enum SparesCmd {
    /// Build spare schemas until N are ready.
    Warm {
        n: u32,
        /// The tenant migrations to build them with.
        #[arg(long)]
        migrations: PathBuf,
        #[command(flatten)]
        actor: Actor,
    },
}

#[derive(Debug, Subcommand)]
pub enum ServersCmd {
    /// List a server key in the registry, so that tenants can be placed on it.
    Add {
        /// 1-32 lowercase letters, digits and `-`, starting with a letter.
        key: String,
        #[command(flatten)]
        actor: Actor,
    },
    /// The servers the registry lists, with their tenants and whether `TENANCY_SERVERS` maps
    /// them here.
    List {
        #[command(flatten)]
        actor: Actor,
    },
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Also check that no tenant is behind these tenant migrations (needs --reason).
    #[arg(long, requires = "reason")]
    pub migrations: Option<PathBuf>,
    /// Fail when a tenant table has no row-level security policy (otherwise a note).
    #[arg(long)]
    pub require_rls: bool,
    #[command(flatten)]
    pub actor: MaybeActor,
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Only records naming this tenant (slug or id).
    #[arg(long)]
    pub tenant: Option<String>,
    /// Only records since: an RFC 3339 time (2026-12-01T09:00:00Z) or an age (90s, 15m, 2h, 7d).
    #[arg(long)]
    pub since: Option<String>,
    /// Only records of this actor.
    #[arg(long)]
    pub by: Option<String>,
    /// Only records of this action (tenant.purge, superuser.acquire, ...).
    #[arg(long)]
    pub action: Option<String>,
    /// At most this many records.
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
    #[command(flatten)]
    pub actor: Actor,
}
