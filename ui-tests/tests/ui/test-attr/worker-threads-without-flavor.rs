// Worker threads belong to the multi-thread runtime, as with #[tokio::test].
use tenancy::testing::TestTenancy;

#[tenancy::test(worker_threads = 2)]
async fn t(t: TestTenancy) {
    let _ = t;
}

fn main() {}
