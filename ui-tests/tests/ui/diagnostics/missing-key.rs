// Mistake: No field is the uuid key: neither marked #[tenancy(id)] nor named `id`.
use tenancy::tenant_scoped;
use uuid::Uuid;

#[tenant_scoped]
pub struct Spin {
    pub spin_id: Uuid,
    pub duration: i32,
}

fn main() {}
