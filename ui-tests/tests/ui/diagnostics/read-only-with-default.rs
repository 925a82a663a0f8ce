// Mistake: `read_only` combined with `default`.
use tenancy::tenant_scoped;
use uuid::Uuid;

#[tenant_scoped]
pub struct Spin {
    pub id: Uuid,
    #[tenancy(read_only, default)]
    pub created_at: i64,
}

fn main() {}
