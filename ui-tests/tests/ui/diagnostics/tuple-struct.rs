// Mistake: A tuple struct has no field names to map to columns.
use tenancy::tenant_scoped;
use uuid::Uuid;

#[tenant_scoped]
pub struct Spin(Uuid, i32);

fn main() {}
