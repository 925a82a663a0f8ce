// Mistake: A unit struct has no columns.
use tenancy::tenant_scoped;

#[tenant_scoped]
pub struct Spin;

fn main() {}
