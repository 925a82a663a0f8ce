// One tenant's context cannot move a tenant's rows elsewhere: `Tenancy::move_tenant` needs a `&Superuser`.
use tenancy::{Placement, Tenancy, TenantCtx, TenantId};

async fn relocate(tenancy: &Tenancy, ctx: &TenantCtx, other: TenantId) {
    let _ = tenancy.move_tenant(ctx, other, Placement::OwnSchema).await;
}

fn main() {}
