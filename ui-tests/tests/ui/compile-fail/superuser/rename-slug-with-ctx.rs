// One tenant's context cannot rename another tenant: `Tenancy::rename_slug` needs a `&Superuser`.
use tenancy::{Tenancy, TenantCtx, TenantId};

async fn squat(tenancy: &Tenancy, ctx: &TenantCtx, other: TenantId) {
    let _ = tenancy.rename_slug(ctx, other, "taken-over").await;
}

fn main() {}
