//! Row-level security: PostgreSQL checks tenant isolation a second time.
//!
//! tenancy proves isolation with the type system: every statement it sends binds the tenant of
//! a [`TenantCtx`](crate::TenantCtx). Row-level security is the runtime backstop for what the
//! type system cannot see: SQL written around the library (a hand-written `sqlx::query` on the
//! same pool, a report script, a bug in a raw query), which PostgreSQL then confines to the
//! tenant tenancy has set, or to nothing.
//!
//! # Turning it on
//!
//! ```no_run
//! # mod tenancy { pub use tenancy_sqlx::*; pub mod __private { pub use tenancy_sqlx::__private::*; pub use tenancy_sqlx::{sqlx, uuid}; } }
//! # #[tenancy_macros::tenant_scoped(table = "spins", crate = "tenancy")]
//! # pub struct Spin { #[tenancy(id)] pub id: uuid::Uuid, pub duration: i32 }
//! # async fn demo(url: &str) -> tenancy::Result<()> {
//! use tenancy::{Tenancy, rls};
//!
//! // 1. The policy on every tenant table: in a migration (preferred: new own-schema tenants
//! //    and spare schemas get it too) ...
//! let sql = rls::policy_sql("spins", "tenant_id")?;   // paste it into a tenant migration
//!
//! // 2. ... and the runtime setting, connected as a role that is neither a PostgreSQL superuser
//! //    nor BYPASSRLS (those skip every policy; `connect` refuses them).
//! let tenancy = Tenancy::builder().row_level_security(true).connect(url).await?;
//!
//! // ... or install it from the application, audited, on the shared table:
//! let su = tenancy.superuser("deploy", "enable RLS").await?;
//! tenancy.install_row_level_security::<Spin>(&su).await?;
//!
//! // 3. At startup, `verify` now also fails for a table without the policy.
//! tenancy.verify::<Spin>().await?;
//!
//! // Then a statement that forgot the tenant still sees only the tenant tenancy set:
//! let ctx = tenancy.resolve_slug("acme").await?;
//! let mut tx = ctx.begin().await?;          // the tenant is set here, for this transaction
//! // sqlx::query("SELECT * FROM spins").fetch_all(&mut *tx) returns acme's rows only,
//! // and on a connection where tenancy set no tenant, no rows at all.
//! tx.commit().await?;
//! # Ok(()) }
//! # fn main() {}
//! ```
//!
//! # The policy
//!
//! [`policy_sql`] enables and forces row-level security on the table and on each of its
//! partitions and inheritance children (forced, so that the table's owner, usually the
//! application's own role, is held to it too; each child, because PostgreSQL applies a parent's
//! policy only to statements that name the parent) and creates one policy, [`POLICY`], for every
//! command:
//!
//! ```sql
//! USING / WITH CHECK (
//!     tenant_id = NULLIF(current_setting('tenancy.tenant_id', true), '')::uuid
//!     OR current_setting('tenancy.all_tenants', true) = 'on')
//! ```
//!
//! It fails closed: where no tenant is set, no row is visible and no row can be written. Running
//! it again replaces the policy (it is idempotent).
//!
//! # What tenancy sets, and where
//!
//! Only transaction-local settings (`set_config(.., true)`), so no tenant survives the
//! transaction that set it: not a commit, a rollback, a dropped or cancelled transaction, a
//! panic or a killed backend, and it works through PgBouncer in transaction mode.
//!
//! - [`TenantCtx::begin`](crate::TenantCtx::begin): the tenant is set with the `BEGIN`, in the
//!   same round trip. Every statement of the [`TenantTx`](crate::TenantTx) runs under it.
//! - One statement on a `&TenantCtx`: it needs a transaction, so it becomes `BEGIN` + set (one
//!   round trip), the statement, and its end. A read (a lookup, a query, a count, raw SQL) runs
//!   in a `READ ONLY` transaction ended by a `ROLLBACK` that is queued, not awaited: it is sent
//!   with the pool's check of the connection when it comes back, before anyone can borrow it,
//!   so a read costs one round trip more than without row-level security. A write waits for its
//!   `COMMIT`: two more. sqlx 0.9 offers no way to send the setting in the statement's own flight
//!   (see `crate::conn::read`), and folding the setting into the statement itself (a CTE or a
//!   sub-select calling `set_config`) would save the `BEGIN`, but PostgreSQL does not promise to
//!   evaluate it before the policy reads the setting (an unreferenced CTE is not run at all, and
//!   a stable `current_setting` may be evaluated when the plan starts), so tenancy does not.
//! - Streams (`.fetch(&ctx)`) hold their transaction until the last row (or until dropped).
//! - `insert_many` past one statement, and raw SQL, run in the same way; raw SQL cannot change
//!   either setting (it refuses `set_config` and `pg_settings`, and is always a single
//!   statement starting with `WITH`).
//!
//! # Cross-tenant work
//!
//! Work done under a [`Superuser`](crate::Superuser) passes the policy in one of two ways, both
//! transaction-local and both set only by library code:
//!
//! - acting for the one tenant it touches: [`export_tenant`](crate::Tenancy::export_tenant),
//!   [`import_tenant`](crate::Tenancy::import_tenant) and [`purge`](crate::Tenancy::purge) set
//!   that tenant, so the policy still confines them to it;
//! - `tenancy.all_tenants = 'on'`, for work that spans tenants by design: reports and
//!   migrations.
//!
//! A separate `BYPASSRLS` role for this work was the alternative. It is not stronger against the
//! code this backstop is for: SQL that can run `SET ROLE` or `set_config` on the application's
//! connections can equally set `tenancy.tenant_id` to any tenant, so both settings draw the
//! same line (against mistakes, not against hostile code running as the application's role).
//! And it would cost every user a second role, its credentials and a second pool (PgBouncer
//! pools per role), for no gain in what is caught.
//!
//! # What it does not guard
//!
//! - Roles that bypass row-level security: PostgreSQL superusers and roles with `BYPASSRLS`
//!   ([`TenancyBuilder::connect`](crate::TenancyBuilder::connect) refuses them with RLS on).
//! - Tables without the policy ([`Tenancy::verify`](crate::Tenancy::verify) reports them, and
//!   each partition or child table without it, by name; a partition created after the policy
//!   SQL ran needs it run again: see [`policy_sql`]), and
//!   other permissive policies on the same table, which PostgreSQL ORs with this one (`verify`
//!   reports them too).
//! - Code that sets `tenancy.tenant_id` or `tenancy.all_tenants` itself.
//! - The registry (`tenancy.*`) and global tables, which carry no tenant column.

use sqlx::{PgConnection, PgPool};
use tenancy_core::{TenantId, ValidationError};

use crate::catalog;
use crate::{Error, Result};

pub use crate::runtime::{ALL_TENANTS_SETTING, TENANT_SETTING};

/// The name of the policy [`policy_sql`] creates.
pub const POLICY: &str = "tenancy_isolation";

/// The policy's condition for `tenant_column` (validated, quoted).
fn condition(tenant_column: &str) -> String {
    format!(
        "{} = NULLIF(pg_catalog.current_setting('{TENANT_SETTING}', true), '')::uuid \
         OR pg_catalog.current_setting('{ALL_TENANTS_SETTING}', true) = 'on'",
        tenancy_core::ident::quote(tenant_column)
    )
}

/// `table` or `schema.table`, each part validated, quoted.
fn quote_table(table: &str) -> Result<String, ValidationError> {
    let mut out = String::new();
    for (i, part) in table.splitn(2, '.').enumerate() {
        if i > 0 {
            out.push('.');
        }
        tenancy_core::ident::push_quoted(&mut out, tenancy_core::ident::validate(part)?);
    }
    Ok(out)
}

/// The SQL that puts tenancy's policy on one table and on every partition and inheritance
/// child it has: put it in the migration that creates the table (a tenant migration, so every
/// own-schema tenant's copy gets it too; the name then resolves in each tenant's schema), or run
/// it with [`Tenancy::install_row_level_security`](crate::Tenancy::install_row_level_security).
///
/// PostgreSQL applies a parent's policy only to statements on the parent: a statement naming a
/// partition directly sees that partition's rows unless the partition has a policy of its own.
/// So the policy goes on every existing descendant too. For a partition created later, run this
/// SQL for the parent again in the migration that creates the partition (it is idempotent, and
/// covers the new child), or `policy_sql` of the partition itself; [`Tenancy::verify`](crate::Tenancy::verify) names
/// any partition left without it.
///
/// `table` is a table name or `schema.table`; `tenant_column` its tenant column (`tenant_id`
/// unless the model says otherwise). Idempotent: enabling and forcing twice is harmless, and the
/// policy is dropped and created again.
///
/// ```
/// let sql = tenancy_sqlx::rls::policy_sql("spins", "tenant_id").unwrap();
/// assert!(sql.contains("FORCE ROW LEVEL SECURITY"));
/// assert!(sql.contains("current_setting('tenancy.tenant_id', true)"));
/// assert!(sql.contains("pg_inherits"), "partitions and inheritance children too");
/// ```
///
/// # Errors
/// [`ValidationError::Identifier`] for a name that is not a plain identifier.
pub fn policy_sql(table: &str, tenant_column: &str) -> Result<String, ValidationError> {
    let table = quote_table(table)?;
    let cond = condition(tenancy_core::ident::validate(tenant_column)?);
    let children = catalog::descendants(&format!("'{table}'::regclass"));
    Ok(format!(
        "ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;\n\
         ALTER TABLE {table} FORCE ROW LEVEL SECURITY;\n\
         DROP POLICY IF EXISTS {POLICY} ON {table};\n\
         CREATE POLICY {POLICY} ON {table} FOR ALL\n    USING ({cond})\n    WITH CHECK ({cond});\n\
         DO $tenancy_rls$\n\
         DECLARE\n    child regclass;\n\
         BEGIN\n    \
             FOR child IN {children}\n    \
             LOOP\n        \
                 EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', child);\n        \
                 EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', child);\n        \
                 EXECUTE format('DROP POLICY IF EXISTS {POLICY} ON %s', child);\n        \
                 EXECUTE format('CREATE POLICY {POLICY} ON %1$s FOR ALL USING (%2$s) WITH CHECK (%2$s)',\n            \
                     child, $tenancy_cond${cond}$tenancy_cond$);\n    \
             END LOOP;\n\
         END $tenancy_rls$;\n"
    ))
}

/// Inside an admin transaction that touches one tenant's rows (export, import, purge, move):
/// acts for that tenant, one round trip. Whether or not this handle asked for row-level
/// security: the tables may carry the policy all the same (another handle or an operator
/// installed it), and a transaction that set no tenant then sees none of the tenant's rows, so
/// an export would be empty and a move would copy nothing and verify 0 against 0.
pub(crate) async fn act_for(conn: &mut PgConnection, tenant: TenantId) -> Result<()> {
    crate::sql::admin_query(crate::sql::text(format!(
        "SELECT pg_catalog.set_config('{TENANT_SETTING}', $1, true)"
    )))
    .bind(tenant.as_uuid().to_string())
    .execute(conn)
    .await?;
    Ok(())
}

/// Refuses a role that row-level security does not apply to: the backstop would be silently
/// off. An error rather than a warning, because the caller asked for the backstop explicitly
/// and a log line is easily missed; run without `row_level_security(true)` where a superuser
/// connection is intended (local development, maintenance).
pub(crate) async fn check_role(pool: &PgPool) -> Result<()> {
    // A simple query: one round trip that PgBouncer in transaction mode cannot split.
    let row = sqlx::raw_sql(catalog::ROLE_BYPASSES_RLS)
        .fetch_one(pool)
        .await?;
    role_verdict(&row)
}

/// [`check_role`] on one connection: another server's, where tenants share a home database
/// (see `databases::home`).
pub(crate) async fn check_role_on(conn: &mut PgConnection) -> Result<()> {
    let row = sqlx::raw_sql(catalog::ROLE_BYPASSES_RLS)
        .fetch_one(conn)
        .await?;
    role_verdict(&row)
}

fn role_verdict(row: &sqlx::postgres::PgRow) -> Result<()> {
    let (role, superuser, bypass): (String, bool, bool) = {
        use sqlx::Row;
        (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?)
    };
    let why = match (superuser, bypass) {
        (true, _) => "is a PostgreSQL superuser",
        (_, true) => "has BYPASSRLS",
        _ => return Ok(()),
    };
    tracing::error!(
        role,
        why,
        "row-level security requested, but the role bypasses it"
    );
    Err(Error::RowLevelSecurity(format!(
        "row-level security is on, but the role {role:?} {why}, so PostgreSQL would skip every \
         policy; connect as a role without SUPERUSER and BYPASSRLS, or turn \
         row_level_security off"
    )))
}

/// What is wrong with `table`'s policy, for [`Tenancy::verify`](crate::Tenancy::verify): nothing if the policy is
/// there, row-level security is enabled and forced, and no other permissive policy widens it.
pub(crate) async fn policy_problems(
    conn: &mut PgConnection,
    oid: sqlx::postgres::types::Oid,
    tenant_column: &str,
) -> Result<Vec<String>> {
    use sqlx::Row;
    let table = crate::sql::admin_query(catalog::TABLE_RLS_FLAGS)
        .bind(oid)
        .fetch_one(&mut *conn)
        .await?;
    let policies = crate::sql::admin_query(catalog::TABLE_POLICIES)
        .bind(oid)
        .fetch_all(&mut *conn)
        .await?;
    let fix =
        "(run the SQL of tenancy_sqlx::rls::policy_sql, or Tenancy::install_row_level_security)";
    let mut problems = Vec::new();
    if !table.try_get::<bool, _>("relrowsecurity")? {
        problems.push(format!("row-level security is not enabled {fix}"));
    }
    if !table.try_get::<bool, _>("relforcerowsecurity")? {
        problems.push(format!(
            "row-level security is not forced, so the table's owner skips it {fix}"
        ));
    }
    let ours = policies
        .iter()
        .find(|p| p.get::<String, _>("name") == POLICY);
    match ours {
        None => problems.push(format!("no policy {POLICY:?} {fix}")),
        Some(p) => {
            let reads = |col: &str| {
                p.get::<Option<String>, _>(col)
                    .is_some_and(|e| e.contains(TENANT_SETTING) && e.contains(tenant_column))
            };
            if p.get::<String, _>("cmd") != "*" || !reads("qual") || !reads("check") {
                problems.push(format!(
                    "policy {POLICY:?} is not tenancy's (for all commands, USING and WITH CHECK \
                     on {tenant_column} = {TENANT_SETTING}) {fix}"
                ));
            }
        }
    }
    for p in &policies {
        let name: String = p.get("name");
        if name != POLICY && p.get::<bool, _>("polpermissive") {
            problems.push(format!(
                "permissive policy {name:?} is ORed with {POLICY:?} and can let other tenants' \
                 rows through; make it AS RESTRICTIVE or drop it"
            ));
        }
    }
    Ok(problems)
}

/// What is wrong with the policy of each partition and inheritance child of `oid`, each line
/// naming the child: a child without the policy shows every tenant's rows to a statement that
/// names it directly.
pub(crate) async fn descendant_problems(
    conn: &mut PgConnection,
    oid: sqlx::postgres::types::Oid,
    tenant_column: &str,
) -> Result<Vec<String>> {
    let children: Vec<(sqlx::postgres::types::Oid, String)> =
        crate::sql::admin_query(crate::sql::text(format!(
            "SELECT child::oid, child::text FROM ({}) d(child) ORDER BY 2",
            catalog::descendants("$1::oid::regclass")
        )))
        .bind(oid)
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| {
            use sqlx::Row;
            Ok((r.try_get(0)?, r.try_get(1)?))
        })
        .collect::<Result<_>>()?;
    let mut problems = Vec::new();
    for (child, name) in children {
        for p in policy_problems(conn, child, tenant_column).await? {
            problems.push(format!("partition or child table {name:?}: {p}"));
        }
    }
    Ok(problems)
}
