// A registry record of some tenant grants nothing: `&Tenant` is not a tenant scope for `Repo::get`.
use tenancy::Tenant;
use tenancy::prelude::*;
use uuid::Uuid;

#[tenant_scoped(table = "spins")]
#[derive(Debug, Clone)]
pub struct Spin {
    #[tenancy(id)]
    pub id: Uuid,
    pub duration: i32,
}

async fn leak(record: &Tenant, id: Uuid) {
    let _spin = Spin::repo().get(record, id).await;
}

fn main() {}
