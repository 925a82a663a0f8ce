// Mistake: an enum is not a table row; the error should be the macro's alone.
use tenancy::tenant_scoped;
use uuid::Uuid;

#[tenant_scoped]
pub enum Spin {
    Short {
        #[tenancy(id)]
        id: Uuid,
    },
}

fn main() {}
