// Mistake: An enum is not a table row.
use tenancy::tenant_scoped;
use uuid::Uuid;

#[tenant_scoped]
pub enum Spin {
    Short { id: Uuid },
    Long { id: Uuid },
}

fn main() {}
