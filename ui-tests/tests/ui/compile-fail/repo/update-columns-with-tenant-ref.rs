// A `TenantRef` from a job payload must be resolved first: `&TenantRef` is not a tenant scope for `Repo::update_columns`.
use tenancy::prelude::*;
use uuid::Uuid;

#[tenant_scoped(table = "spins")]
#[derive(Debug, Clone)]
pub struct Spin {
    #[tenancy(id)]
    pub id: Uuid,
    pub duration: i32,
}

async fn overwrite(tenant: TenantRef, id: Uuid) {
    let _spin = Spin::repo()
        .update_columns(&tenant, id, [Spin::DURATION.set(0)])
        .await;
}

fn main() {}
