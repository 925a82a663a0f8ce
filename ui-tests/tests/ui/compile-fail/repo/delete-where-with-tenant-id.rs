// Naming a tenant by id does not open its rows: `&TenantId` is not a tenant scope for `Repo::delete_where`.
use tenancy::prelude::*;
use uuid::Uuid;

#[tenant_scoped(table = "spins")]
#[derive(Debug, Clone)]
pub struct Spin {
    #[tenancy(id)]
    pub id: Uuid,
    pub duration: i32,
}

async fn destroy(tenant: TenantId) {
    let _n = Spin::repo().delete_where(&tenant, Filter::all()).await;
}

fn main() {}
