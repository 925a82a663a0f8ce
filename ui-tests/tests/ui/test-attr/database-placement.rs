// The database-per-tenant placement is refused by the runtime: the attribute says so at once.
use tenancy::testing::TestTenancy;

#[tenancy::test(tenants(acme = "database"))]
async fn t(t: TestTenancy) {
    let _ = t;
}

fn main() {}
