// One tenant's context cannot export another tenant's data: `export_tenant` needs a `Superuser`.
use tenancy::{Tenancy, TenantCtx, TenantId};

async fn exfiltrate(tenancy: &Tenancy, ctx: &TenantCtx, other: TenantId) {
    let _archive = tenancy.export_tenant(ctx, other).await;
}

fn main() {}
