// Mistake: The field named `id` is skipped, so the model has no key.
use tenancy::tenant_scoped;
use uuid::Uuid;

#[tenant_scoped]
pub struct Spin {
    #[tenancy(skip)]
    pub id: Uuid,
    pub duration: i32,
}

fn main() {}
