// Mistake: A generic struct cannot map one table with fixed column types.
use tenancy::tenant_scoped;
use uuid::Uuid;

#[tenant_scoped]
pub struct Spin<T> {
    pub id: Uuid,
    pub payload: T,
}

fn main() {}
