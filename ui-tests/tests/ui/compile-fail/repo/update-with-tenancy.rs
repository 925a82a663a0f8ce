// The registry handle is not a tenant: `&Tenancy` is not a tenant scope for `Repo::update`.
use tenancy::prelude::*;
use uuid::Uuid;

#[tenant_scoped(table = "spins")]
#[derive(Debug, Clone)]
pub struct Spin {
    #[tenancy(id)]
    pub id: Uuid,
    pub duration: i32,
}

async fn overwrite(tenancy: &Tenancy, spin: &Spin) {
    let _spin = Spin::repo().update(tenancy, spin).await;
}

fn main() {}
