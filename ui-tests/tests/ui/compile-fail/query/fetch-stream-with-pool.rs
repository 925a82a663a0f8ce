// A streamed query cannot run on a bare pool: `&PgPool` is not a tenant scope for `Select::fetch`.
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

fn leak(pool: &PgPool) {
    let _stream = Spin::repo().query().fetch(pool);
}

fn main() {}
