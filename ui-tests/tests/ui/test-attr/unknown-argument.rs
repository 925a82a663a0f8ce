// A misspelt argument is named, with the ones the attribute takes.
use tenancy::testing::TestTenancy;

#[tenancy::test(tenant(acme = "shared"))]
async fn t(t: TestTenancy) {
    let _ = t;
}

fn main() {}
