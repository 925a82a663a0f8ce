// One tenant's context cannot point a host at another tenant: `Tenancy::add_host` needs a `&Superuser`.
use tenancy::{Tenancy, TenantCtx, TenantId};

async fn hijack(tenancy: &Tenancy, ctx: &TenantCtx, other: TenantId) {
    let _ = tenancy.add_host(ctx, other, "login.example.com", true).await;
}

fn main() {}
