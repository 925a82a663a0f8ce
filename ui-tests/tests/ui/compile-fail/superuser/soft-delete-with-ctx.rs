// One tenant's context cannot change another tenant's lifecycle: `Tenancy::soft_delete` needs a `&Superuser`.
use tenancy::{Tenancy, TenantCtx, TenantId};

async fn sabotage(tenancy: &Tenancy, ctx: &TenantCtx, other: TenantId) {
    let _ = tenancy.soft_delete(ctx, other).await;
}

fn main() {}
