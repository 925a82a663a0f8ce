// Cross-tenant power does not read tenant rows through a query: `&Superuser` is not a tenant scope for `Select::fetch_optional`.
use tenancy::prelude::*;
use uuid::Uuid;

#[tenant_scoped(table = "spins")]
#[derive(Debug, Clone)]
pub struct Spin {
    #[tenancy(id)]
    pub id: Uuid,
    pub duration: i32,
}

async fn leak(su: Superuser) {
    let _spin = Spin::repo().query().fetch_optional(&su).await;
}

fn main() {}
