// A `TenantTx` cannot wrap a connection of the caller's under a tenant's name: its fields are private.
#![allow(unreachable_code)]
use tenancy::sqlx::{PgPool, Postgres, Transaction};
use tenancy::{TenantCtx, TenantTx};

async fn forge(pool: &PgPool, ctx: TenantCtx) -> TenantTx {
    let _tx: Transaction<'static, Postgres> = pool.begin().await.unwrap();
    // Whatever the connection (its type is not even nameable outside the crate):
    TenantTx { ctx, tx: todo!() }
}

fn main() {}
