// A row cannot be read by its key alone: `Repo::get` demands a tenant scope first.
use tenancy::prelude::*;
use uuid::Uuid;

#[tenant_scoped(table = "spins")]
#[derive(Debug, Clone)]
pub struct Spin {
    #[tenancy(id)]
    pub id: Uuid,
    pub duration: i32,
}

async fn leak(id: Uuid) {
    let _spin = Spin::repo().get(id).await;
}

fn main() {}
