// The tenants come inside the one argument, not as arguments of their own.
use tenancy::TenantCtx;
use tenancy::testing::TestTenancy;

#[tenancy::test(tenants(acme = "shared"))]
async fn t(t: TestTenancy, acme: TenantCtx) {
    let _ = (t, acme);
}

fn main() {}
