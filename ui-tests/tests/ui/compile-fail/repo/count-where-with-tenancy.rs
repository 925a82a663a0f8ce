// The registry handle is not a tenant: `&Tenancy` is not a tenant scope for `Repo::count_where`.
use tenancy::prelude::*;
use uuid::Uuid;

#[tenant_scoped(table = "spins")]
#[derive(Debug, Clone)]
pub struct Spin {
    #[tenancy(id)]
    pub id: Uuid,
    pub duration: i32,
}

async fn census(tenancy: &Tenancy) {
    let _n = Spin::repo()
        .count_where(tenancy, Spin::DURATION.gt(120))
        .await;
}

fn main() {}
