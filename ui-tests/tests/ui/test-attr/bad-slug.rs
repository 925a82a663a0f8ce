// A slug the registry would refuse is refused when the test compiles.
use tenancy::testing::TestTenancy;

#[tenancy::test(tenants(Acme = "shared"))]
async fn t(t: TestTenancy) {
    let _ = t;
}

fn main() {}
