// Mistake: A field attribute given twice in one #[tenancy(...)].
use tenancy::tenant_scoped;
use uuid::Uuid;

#[tenant_scoped]
pub struct Spin {
    pub id: Uuid,
    #[tenancy(read_only, read_only)]
    pub created_at: i64,
}

fn main() {}
