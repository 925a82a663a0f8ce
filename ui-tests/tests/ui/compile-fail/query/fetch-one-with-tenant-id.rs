// Naming a tenant by id does not open its rows: `&TenantId` is not a tenant scope for `Select::fetch_one`.
use tenancy::prelude::*;
use uuid::Uuid;

#[tenant_scoped(table = "spins")]
#[derive(Debug, Clone)]
pub struct Spin {
    #[tenancy(id)]
    pub id: Uuid,
    pub duration: i32,
}

async fn leak(tenant: TenantId) {
    let _spin = Spin::repo().query().limit(1).fetch_one(&tenant).await;
}

fn main() {}
