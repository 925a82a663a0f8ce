// The attribute runs an async body on a runtime of its own: a plain fn is refused.
use tenancy::testing::TestTenancy;

#[tenancy::test(tenants(acme = "shared"))]
fn t(t: TestTenancy) {
    let _ = t;
}

fn main() {}
