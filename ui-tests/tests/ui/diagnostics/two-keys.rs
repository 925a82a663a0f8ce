// Mistake: Two fields are marked #[tenancy(id)].
use tenancy::tenant_scoped;
use uuid::Uuid;

#[tenant_scoped]
pub struct Spin {
    #[tenancy(id)]
    pub id: Uuid,
    #[tenancy(id)]
    pub spinner_id: Uuid,
}

fn main() {}
