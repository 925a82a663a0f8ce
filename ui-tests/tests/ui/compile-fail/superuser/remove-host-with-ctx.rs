// One tenant's context cannot take a host away from another tenant: `Tenancy::remove_host` needs a `&Superuser`.
use tenancy::{Tenancy, TenantCtx, TenantId};

async fn unplug(tenancy: &Tenancy, ctx: &TenantCtx, other: TenantId) {
    let _ = tenancy.remove_host(ctx, other, "acme.example.com").await;
}

fn main() {}
