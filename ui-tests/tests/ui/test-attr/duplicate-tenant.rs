// The same tenant twice would fail at run time (a slug is unique): refused at compile time.
use tenancy::testing::TestTenancy;

#[tenancy::test(tenants(acme = "shared", acme = "schema"))]
async fn t(t: TestTenancy) {
    let _ = t;
}

fn main() {}
