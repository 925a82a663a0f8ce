// A placement the attribute does not know: named, with the ones it does.
use tenancy::testing::TestTenancy;

#[tenancy::test(tenants(acme = "shard"))]
async fn t(t: TestTenancy) {
    let _ = t;
}

fn main() {}
