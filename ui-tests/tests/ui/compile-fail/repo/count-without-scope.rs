// The rows of every tenant cannot be counted: `Repo::count` demands a tenant scope.
use tenancy::prelude::*;
use uuid::Uuid;

#[tenant_scoped(table = "spins")]
#[derive(Debug, Clone)]
pub struct Spin {
    #[tenancy(id)]
    pub id: Uuid,
    pub duration: i32,
}

async fn census() {
    let _n = Spin::repo().count().await;
}

fn main() {}
