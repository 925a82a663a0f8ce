// One tenant's context cannot suspend another tenant: `suspend` needs a `Superuser`.
use tenancy::{Tenancy, TenantCtx, TenantId};

async fn sabotage(tenancy: &Tenancy, ctx: TenantCtx, other: TenantId) {
    let _ = tenancy.suspend(&ctx, other).await;
}

fn main() {}
