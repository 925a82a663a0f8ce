// Mistake: A field named `tenant_id` would let the caller write the tenant column.
use tenancy::tenant_scoped;
use uuid::Uuid;

#[tenant_scoped]
pub struct Spin {
    pub id: Uuid,
    pub tenant_id: Uuid,
}

fn main() {}
