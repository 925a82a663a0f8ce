// Mistake: A container option given twice.
use tenancy::tenant_scoped;
use uuid::Uuid;

#[tenant_scoped(table = "spins", table = "turns")]
pub struct Spin {
    pub id: Uuid,
    pub duration: i32,
}

fn main() {}
