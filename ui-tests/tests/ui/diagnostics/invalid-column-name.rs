// Mistake: A column name that is not a plain identifier (an injection attempt).
use tenancy::tenant_scoped;
use uuid::Uuid;

#[tenant_scoped]
pub struct Spin {
    pub id: Uuid,
    #[tenancy(rename = "duration\" FROM spins --")]
    pub duration: i32,
}

fn main() {}
