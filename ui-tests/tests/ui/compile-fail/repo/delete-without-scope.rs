// A row cannot be deleted by its key alone: `Repo::delete` demands a tenant scope first.
use tenancy::prelude::*;
use uuid::Uuid;

#[tenant_scoped(table = "spins")]
#[derive(Debug, Clone)]
pub struct Spin {
    #[tenancy(id)]
    pub id: Uuid,
    pub duration: i32,
}

async fn destroy(id: Uuid) {
    let _gone = Spin::repo().delete(id).await;
}

fn main() {}
