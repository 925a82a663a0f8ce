// Raw SQL cannot run on a bare pool: `&PgPool` is not a tenant scope for `Raw::fetch_one`.
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

async fn leak(pool: &PgPool) {
    let _count = Spin::repo()
        .raw_as::<(i64,)>("SELECT count(*) FROM {spins}")
        .fetch_one(pool)
        .await;
}

fn main() {}
