// A `TenantRef` must be resolved first: `&TenantRef` is not a tenant scope for `Repo::exists` (no probing for other tenants' keys).
use tenancy::prelude::*;
use uuid::Uuid;

#[tenant_scoped(table = "spins")]
#[derive(Debug, Clone)]
pub struct Spin {
    #[tenancy(id)]
    pub id: Uuid,
    pub duration: i32,
}

async fn probe(tenant: TenantRef, id: Uuid) {
    let _found = Spin::repo().exists(&tenant, id).await;
}

fn main() {}
