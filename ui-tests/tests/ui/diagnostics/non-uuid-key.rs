// Mistake: The marked key is not a uuid.
use tenancy::tenant_scoped;

#[tenant_scoped]
pub struct Spin {
    #[tenancy(id)]
    pub id: i64,
    pub duration: i32,
}

fn main() {}
