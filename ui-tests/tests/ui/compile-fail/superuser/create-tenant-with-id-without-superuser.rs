// A chosen id decides which rows a new tenant reaches: it cannot ride on `NewTenant`, and
// `create_tenant_with_id` needs a `Superuser`.
use tenancy::{NewTenant, Tenancy, TenantId};

async fn take_over(tenancy: &Tenancy, victim: TenantId) {
    let _ = tenancy.create_tenant(NewTenant::new("evil", "Evil").id(victim)).await;
    let _ = tenancy
        .create_tenant_with_id(NewTenant::new("evil", "Evil"), victim)
        .await;
}

fn main() {}
