// Mistake: A field named like the custom tenant column would let the caller write it.
use tenancy::tenant_scoped;
use uuid::Uuid;

#[tenant_scoped(tenant_column = "org_id")]
pub struct Spin {
    pub id: Uuid,
    pub org_id: Uuid,
}

fn main() {}
