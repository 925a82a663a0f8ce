// Cross-tenant power does not reach tenant rows through the repository: `&Superuser` is not a tenant scope for `Repo::update_where`.
use tenancy::prelude::*;
use uuid::Uuid;

#[tenant_scoped(table = "spins")]
#[derive(Debug, Clone)]
pub struct Spin {
    #[tenancy(id)]
    pub id: Uuid,
    pub duration: i32,
}

async fn overwrite_everyone(su: &Superuser) {
    let _n = Spin::repo()
        .update_where(su, Spin::DURATION.gt(0), [Spin::DURATION.set(0)])
        .await;
}

fn main() {}
