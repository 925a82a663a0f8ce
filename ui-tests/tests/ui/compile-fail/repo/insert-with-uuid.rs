// A row cannot be planted in a tenant named by a bare uuid: `&Uuid` is not a tenant scope for `Repo::insert`.
use tenancy::prelude::*;
use uuid::Uuid;

#[tenant_scoped(table = "spins")]
#[derive(Debug, Clone)]
pub struct Spin {
    #[tenancy(id)]
    pub id: Uuid,
    pub duration: i32,
}

async fn plant(tenant: Uuid) {
    let new = NewSpin {
        id: Uuid::new_v4(),
        duration: 1,
    };
    let _spin = Spin::repo().insert(&tenant, &new).await;
}

fn main() {}
