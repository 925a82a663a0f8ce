// One tenant's context cannot change another tenant's lifecycle: `Tenancy::purge` needs a `&Superuser`.
use tenancy::{Tenancy, TenantCtx, TenantId};

async fn sabotage(tenancy: &Tenancy, ctx: &TenantCtx, other: TenantId) {
    let _ = tenancy.purge(ctx, other).await;
}

fn main() {}
