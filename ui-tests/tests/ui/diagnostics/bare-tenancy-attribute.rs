// Mistake: `#[tenancy]` without options.
use tenancy::tenant_scoped;
use uuid::Uuid;

#[tenant_scoped]
pub struct Spin {
    pub id: Uuid,
    #[tenancy]
    pub created_at: i64,
}

fn main() {}
