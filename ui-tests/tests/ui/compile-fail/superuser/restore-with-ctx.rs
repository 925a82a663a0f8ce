// One tenant's context cannot change another tenant's lifecycle: `Tenancy::restore` needs a `&Superuser`.
use tenancy::{Tenancy, TenantCtx, TenantId};

async fn sabotage(tenancy: &Tenancy, ctx: &TenantCtx, other: TenantId) {
    let _ = tenancy.restore(ctx, other).await;
}

fn main() {}
