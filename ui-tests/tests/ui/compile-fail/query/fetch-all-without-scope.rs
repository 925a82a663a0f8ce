// A query cannot run over every tenant's rows: `Select::fetch_all` demands a tenant scope.
use tenancy::prelude::*;
use uuid::Uuid;

#[tenant_scoped(table = "spins")]
#[derive(Debug, Clone)]
pub struct Spin {
    #[tenancy(id)]
    pub id: Uuid,
    pub duration: i32,
}

async fn leak() {
    let _spins = Spin::repo()
        .query()
        .filter(Spin::DURATION.gt(120))
        .fetch_all()
        .await;
}

fn main() {}
