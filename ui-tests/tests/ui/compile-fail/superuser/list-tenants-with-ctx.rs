// One tenant's context cannot list every tenant: `list_tenants` needs a `Superuser`.
use tenancy::{Tenancy, TenantCtx};

async fn snoop(tenancy: &Tenancy, ctx: &TenantCtx) {
    let _all = tenancy.list_tenants(ctx).await;
}

fn main() {}
