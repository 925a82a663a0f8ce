// One tenant's context cannot become another tenant's: `Tenancy::impersonate` needs a `&Superuser`.
use tenancy::{Tenancy, TenantCtx, TenantId};

async fn hop(tenancy: &Tenancy, ctx: &TenantCtx, other: TenantId) {
    let _theirs: tenancy::Result<TenantCtx> = tenancy.impersonate(ctx, other).await;
}

fn main() {}
