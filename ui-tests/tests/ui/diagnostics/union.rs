// Mistake: A union is not a table row.
use tenancy::tenant_scoped;

#[tenant_scoped]
pub union Spin {
    id: u128,
    duration: i32,
}

fn main() {}
