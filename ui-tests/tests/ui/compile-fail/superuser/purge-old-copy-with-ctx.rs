// One tenant's context cannot delete a moved tenant's old copy: `Tenancy::purge_old_copy` needs a `&Superuser`.
use tenancy::{Tenancy, TenantCtx, TenantId};

async fn sabotage(tenancy: &Tenancy, ctx: &TenantCtx, other: TenantId) {
    let _ = tenancy.purge_old_copy(ctx, other).await;
}

fn main() {}
