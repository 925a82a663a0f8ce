// Mistake: A field renamed to the tenant column would let the caller write it.
use tenancy::tenant_scoped;
use uuid::Uuid;

#[tenant_scoped]
pub struct Spin {
    pub id: Uuid,
    #[tenancy(rename = "tenant_id")]
    pub owner: Uuid,
}

fn main() {}
