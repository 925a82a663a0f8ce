//! What must hold after the run, read around the library as the database superuser (which
//! row-level security does not restrict): every row is where its tenant's placement puts it
//! and was written by that tenant; the ledger's acknowledged rows are there with an
//! acknowledged value and its failed ones are not; and no connection of the pool carries a
//! tenant, a cross-tenant setting, an open transaction or a changed search path.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use sqlx::{PgConnection, Row};
use uuid::Uuid;

use crate::ledger::{Ledger, Presence};
use crate::world::World;

/// The session a connection of the pool hands its next borrower: no tenant setting, no
/// cross-tenant setting, the default search path, no open transaction; with row-level
/// security on, no tenant's rows visible. One simple-protocol statement, so that its
/// transaction starts with it: `transaction_timestamp() = statement_timestamp()` unless a
/// transaction was already open.
pub async fn check_session(w: &World, conn: &mut PgConnection, label: &str) -> Result<(), String> {
    let row = sqlx::raw_sql(
        "SELECT coalesce(current_setting('tenancy.tenant_id', true), ''), \
                coalesce(current_setting('tenancy.all_tenants', true), ''), \
                current_setting('search_path'), \
                transaction_timestamp() = statement_timestamp(), \
                (SELECT count(*) FROM entries), \
                pg_backend_pid()",
    )
    .fetch_one(&mut *conn)
    .await;
    let row = match row.map_err(tenancy::Error::from) {
        Ok(row) => row,
        // A backend terminated under the pool: the pool replaces it; nothing to inspect.
        Err(e) if crate::faults::in_doubt(&e) => return Ok(()),
        Err(e) => return Err(format!("{label}: the session check failed: {e}")),
    };
    let tenant: String = row.get(0);
    let all: String = row.get(1);
    let path: String = row.get(2);
    let fresh: bool = row.get(3);
    let visible: i64 = row.get(4);
    let pid: i32 = row.get(5);
    let mut wrong = Vec::new();
    if !tenant.is_empty() {
        wrong.push(format!("tenancy.tenant_id = {tenant}"));
    }
    if all == "on" {
        wrong.push("tenancy.all_tenants = on".to_owned());
    }
    if path != w.default_path {
        wrong.push(format!("search_path = {path}"));
    }
    if !fresh {
        wrong.push("a transaction left open".to_owned());
    }
    if w.config.rls && visible != 0 {
        wrong.push(format!("{visible} tenant rows visible with no tenant set"));
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{label}: a pooled connection (backend {pid}) carries {}",
            wrong.join(", ")
        ))
    }
}

/// Holds every connection of the pool at once and inspects each; then asks the server
/// whether any backend of the database sits idle in a transaction.
pub async fn connections(w: &World, ledger: &Ledger) {
    let mut held = Vec::new();
    for i in 0..w.config.pool {
        match tokio::time::timeout(Duration::from_secs(30), w.pool.acquire()).await {
            Ok(Ok(conn)) => held.push(conn),
            Ok(Err(e)) => ledger.violation(format!("connection {i} of the pool: {e}")),
            Err(_) => ledger.violation(format!(
                "connection {i} of the pool was never returned (30 s)"
            )),
        }
    }
    for conn in &mut held {
        if let Err(e) = check_session(w, conn, "after the run").await {
            ledger.violation(e);
        }
    }
    drop(held);
    let mut admin = w.db.connect().await;
    let mut stuck = Vec::new();
    for _ in 0..50 {
        stuck = sqlx::query_as::<_, (i32, String, String)>(
            "SELECT pid, state, query FROM pg_stat_activity \
             WHERE datname = $1 AND pid <> pg_backend_pid() AND state LIKE 'idle in transaction%'",
        )
        .bind(&w.db.name)
        .fetch_all(&mut admin)
        .await
        .unwrap();
        if stuck.is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (pid, state, query) in stuck {
        ledger.violation(format!(
            "backend {pid} is {state} after the run (last: {query})"
        ));
    }
}

/// Reads every copy of the table and checks each row against its place and the ledger, then
/// that every acknowledged row was found. Returns how many rows it checked.
pub async fn rows(w: &World, ledger: &Ledger) -> usize {
    let mut conn = w.db.connect().await;
    let registry: Vec<(Uuid, String, Option<String>)> =
        sqlx::query_as("SELECT id, placement, schema_name FROM tenancy.tenants")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    let mut owner = BTreeMap::new();
    let mut shared = HashSet::new();
    for (id, placement, schema) in registry {
        match schema {
            Some(schema) => {
                owner.insert(schema, id);
            }
            None => {
                assert_eq!(placement, "shared_table", "tenant {id}");
                shared.insert(id);
            }
        }
    }
    let copies: Vec<String> = sqlx::query_scalar(
        "SELECT table_schema::text FROM information_schema.tables WHERE table_name = 'entries' \
         ORDER BY 1",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let expected = ledger.all();
    let mut seen = HashSet::new();
    for schema in copies {
        let home = match owner.get(&schema) {
            Some(t) => Some(*t),
            None if schema == "public" => None,
            None => {
                ledger.violation(format!("{schema}.entries belongs to no tenant"));
                continue;
            }
        };
        let rows: Vec<(Uuid, Uuid, Uuid, i32)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT tenant_id, id, writer, n FROM \"{schema}\".entries"
        )))
        .fetch_all(&mut conn)
        .await
        .unwrap();
        for (tenant, id, writer, n) in rows {
            seen.insert(id);
            let place_ok = match home {
                Some(owner) => tenant == owner,
                None => shared.contains(&tenant),
            };
            if !place_ok {
                ledger.violation(format!(
                    "row {id} of tenant {tenant} is in {schema}.entries, not its tenant's place"
                ));
            }
            if writer != tenant {
                ledger.violation(format!(
                    "row {id} in {schema}.entries belongs to tenant {tenant} but was written by \
                     tenant {writer}"
                ));
            }
            match expected.get(&id) {
                None => ledger.violation(format!("row {id} of tenant {tenant} was never written")),
                Some(e) if e.tenant != tenant => ledger.violation(format!(
                    "row {id} was written for tenant {} and is stored as tenant {tenant}'s",
                    e.tenant
                )),
                Some(e) if e.presence == Presence::Absent => ledger.violation(format!(
                    "row {id} of tenant {tenant} is present, but its write failed, was rolled \
                     back or was deleted"
                )),
                Some(e) if !e.ns.contains(&n) => ledger.violation(format!(
                    "row {id} of tenant {tenant} holds n = {n}, acknowledged {:?}",
                    e.ns
                )),
                Some(_) => {}
            }
        }
    }
    for (id, e) in &expected {
        if e.presence == Presence::Present && !seen.contains(id) {
            ledger.violation(format!(
                "row {id} of tenant {} was acknowledged and is missing",
                e.tenant
            ));
        }
    }
    seen.len()
}
