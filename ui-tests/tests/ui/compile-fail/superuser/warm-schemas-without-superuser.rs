// Building spare schemas runs the tenant migrations outside any tenant: `warm_schemas` needs a
// `Superuser`.
use tenancy::Tenancy;

async fn provision(tenancy: &Tenancy) {
    let _ = tenancy.warm_schemas(10).await;
}

fn main() {}
