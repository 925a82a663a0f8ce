// Mistake: `crate` must name a path.
use tenancy::tenant_scoped;
use uuid::Uuid;

#[tenant_scoped(crate = "not a path")]
pub struct Spin {
    pub id: Uuid,
    pub duration: i32,
}

fn main() {}
