// The shapes #[tenancy::test] takes: with or without the argument, returning () or a Result,
// on either runtime.
use tenancy::testing::TestTenancy;

#[tenancy::test(tenants(acme = "shared", globex = "schema"))]
async fn two_tenants(t: TestTenancy) {
    let acme: &tenancy::TenantCtx = t.tenant("acme");
    let _ = (acme, t.tenancy(), t.url(), t.database());
}

#[tenancy::test]
async fn nothing() {}

#[tenancy::test(flavor = "multi_thread", worker_threads = 2)]
async fn result(_t: TestTenancy) -> Result<(), tenancy::Error> {
    Ok(())
}

fn main() {}
