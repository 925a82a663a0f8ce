// Mistake: A table name that is not a plain identifier (an injection attempt).
use tenancy::tenant_scoped;
use uuid::Uuid;

#[tenant_scoped(table = "spins; DROP TABLE spins")]
pub struct Spin {
    pub id: Uuid,
    pub duration: i32,
}

fn main() {}
