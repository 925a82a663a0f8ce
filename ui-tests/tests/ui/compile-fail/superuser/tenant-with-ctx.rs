// One tenant's context cannot read another tenant's registry record: `Tenancy::tenant` needs a `Superuser`.
use tenancy::{Tenancy, TenantCtx, TenantId};

async fn snoop(tenancy: &Tenancy, ctx: &TenantCtx, other: TenantId) {
    let _record = tenancy.tenant(ctx, other).await;
}

fn main() {}
