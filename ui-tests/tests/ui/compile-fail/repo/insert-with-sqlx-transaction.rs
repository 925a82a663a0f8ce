// A plain sqlx transaction belongs to no tenant: `&mut Transaction` is not a tenant scope for `Repo::insert`.
use tenancy::prelude::*;
use tenancy::sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

#[tenant_scoped(table = "spins")]
#[derive(Debug, Clone)]
pub struct Spin {
    #[tenancy(id)]
    pub id: Uuid,
    pub duration: i32,
}

async fn plant(pool: &PgPool) {
    let mut tx: Transaction<'static, Postgres> = pool.begin().await.unwrap();
    let new = NewSpin {
        id: Uuid::new_v4(),
        duration: 1,
    };
    let _spin = Spin::repo().insert(&mut tx, &new).await;
}

fn main() {}
