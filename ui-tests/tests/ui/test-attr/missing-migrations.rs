// A migrations folder that is not there fails the build, not every test.
use tenancy::testing::TestTenancy;

#[tenancy::test(migrations = "tests/no-such-migrations")]
async fn t(t: TestTenancy) {
    let _ = t;
}

fn main() {}
