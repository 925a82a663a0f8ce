// A bare uuid names no tenant the registry vouched for: `&Uuid` is not a tenant scope for `Repo::exists_where`.
use tenancy::prelude::*;
use uuid::Uuid;

#[tenant_scoped(table = "spins")]
#[derive(Debug, Clone)]
pub struct Spin {
    #[tenancy(id)]
    pub id: Uuid,
    pub duration: i32,
}

async fn probe(tenant: Uuid) {
    let _found = Spin::repo()
        .exists_where(&tenant, Spin::DURATION.gt(120))
        .await;
}

fn main() {}
