// Raw SQL cannot run for a tenant named by id: `&TenantId` is not a tenant scope for `Raw::fetch_all`.
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
    let _spins = Spin::repo()
        .raw("SELECT * FROM {spins} WHERE duration > $1")
        .bind(120)
        .fetch_all(&tenant)
        .await;
}

fn main() {}
