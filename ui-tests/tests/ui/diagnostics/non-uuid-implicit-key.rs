// Mistake: The field named `id`, the key by default, is not a uuid.
use tenancy::tenant_scoped;

#[tenant_scoped]
pub struct Spin {
    pub id: String,
    pub duration: i32,
}

fn main() {}
