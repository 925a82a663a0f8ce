// Naming a tenant by id does not open its rows: `&TenantId` is not a tenant scope for `Repo::get_many`.
use tenancy::prelude::*;
use uuid::Uuid;

#[tenant_scoped(table = "spins")]
#[derive(Debug, Clone)]
pub struct Spin {
    #[tenancy(id)]
    pub id: Uuid,
    pub duration: i32,
}

async fn leak(tenant: TenantId, ids: &[Uuid]) {
    let _spins = Spin::repo().get_many(&tenant, ids).await;
}

fn main() {}
