// A row's key cannot be rewritten (e.g. to another tenant's row's key), also when the key is the field named `id`.
use tenancy::prelude::*;
use uuid::Uuid;

#[tenant_scoped(table = "spins")]
#[derive(Debug, Clone)]
pub struct Spin {
    pub id: Uuid,
    pub duration: i32,
}

async fn rekey(ctx: &TenantCtx, id: Uuid, other_tenants_key: Uuid) {
    let _spin = Spin::repo()
        .update_columns(ctx, id, [Spin::ID.set(other_tenants_key)])
        .await;
}

fn main() {}
