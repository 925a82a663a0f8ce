// Mistake: `table` takes a string literal.
use tenancy::tenant_scoped;
use uuid::Uuid;

#[tenant_scoped(table = spins)]
pub struct Spin {
    pub id: Uuid,
    pub duration: i32,
}

fn main() {}
