// Raw SQL cannot be streamed without a tenant: `Raw::fetch` demands a tenant scope.
use tenancy::prelude::*;
use uuid::Uuid;

#[tenant_scoped(table = "spins")]
#[derive(Debug, Clone)]
pub struct Spin {
    #[tenancy(id)]
    pub id: Uuid,
    pub duration: i32,
}

fn leak() {
    let _stream = Spin::repo().raw("SELECT * FROM {spins}").fetch();
}

fn main() {}
