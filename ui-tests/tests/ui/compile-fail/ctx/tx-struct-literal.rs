// A `TenantTx` cannot wrap an arbitrary sqlx transaction under a tenant's name: its fields are private.
use tenancy::sqlx::{PgPool, Postgres, Transaction};
use tenancy::{TenantCtx, TenantTx};

async fn forge(pool: &PgPool, ctx: TenantCtx) -> TenantTx {
    let tx: Transaction<'static, Postgres> = pool.begin().await.unwrap();
    TenantTx { ctx, tx }
}

fn main() {}
