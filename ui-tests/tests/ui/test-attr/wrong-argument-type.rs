// The argument is a TestTenancy: a TenantCtx cannot be asked for directly (none is minted
// outside the registry).
use tenancy::TenantCtx;

#[tenancy::test(tenants(acme = "shared"))]
async fn t(acme: TenantCtx) {
    let _ = acme;
}

fn main() {}
