// Mistake: A misspelt field attribute.
use tenancy::tenant_scoped;
use uuid::Uuid;

#[tenant_scoped]
pub struct Spin {
    pub id: Uuid,
    #[tenancy(readonly)]
    pub created_at: i64,
}

fn main() {}
