//! Tenants with a database of their own (the own-database placement of issue 12), on one or
//! more PostgreSQL servers.
//!
//! - [`name`]: the names tenancy gives the databases it creates, derived from the tenant id (never
//!   from a caller's text), and the template's.
//! - [`budget`]: one set of connections per tenant database under a connection budget per
//!   server: the connections open to a server never exceed its budget.
//! - [`provision`]: creating a tenant's database from a template kept at the latest tenant
//!   migration (or empty, then migrated), spare databases, and the cleanup of databases that a
//!   crash left without a registry row.
//!
//! The handle does not use these yet: they are wired in when the placement lands on the runtime
//! layout of issue 11. Until then they are exercised by their own tests against a real server.
#![cfg_attr(
    not(test),
    allow(
        dead_code,
        reason = "wired into the handle with the own-database placement"
    )
)]

pub(crate) mod budget;
pub(crate) mod name;
pub(crate) mod provision;

#[cfg(test)]
mod testing;
