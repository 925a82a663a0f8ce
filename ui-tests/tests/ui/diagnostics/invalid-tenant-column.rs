// Mistake: A tenant column that is not a valid identifier.
use tenancy::tenant_scoped;
use uuid::Uuid;

#[tenant_scoped(tenant_column = "1org")]
pub struct Spin {
    pub id: Uuid,
    pub duration: i32,
}

fn main() {}
