// A pool reaches every tenant's rows, so it is no scope: `&PgPool` is not a tenant scope for `Repo::insert_many`.
use tenancy::prelude::*;
use tenancy::sqlx::PgPool;
use uuid::Uuid;

#[tenant_scoped(table = "spins")]
#[derive(Debug, Clone)]
pub struct Spin {
    #[tenancy(id)]
    pub id: Uuid,
    pub duration: i32,
}

async fn plant(pool: &PgPool, rows: &[NewSpin]) {
    let _spins = Spin::repo().insert_many(pool, rows).await;
}

fn main() {}
