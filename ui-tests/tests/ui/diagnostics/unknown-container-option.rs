// Mistake: A misspelt container option.
use tenancy::tenant_scoped;
use uuid::Uuid;

#[tenant_scoped(tabel = "spins")]
pub struct Spin {
    pub id: Uuid,
    pub duration: i32,
}

fn main() {}
