// Mistake: `skip` combined with another attribute.
use tenancy::tenant_scoped;
use uuid::Uuid;

#[tenant_scoped]
pub struct Spin {
    pub id: Uuid,
    #[tenancy(skip, rename = "cache")]
    pub cached: i32,
}

fn main() {}
