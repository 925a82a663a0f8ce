// Mistake: A where clause is refused like generic parameters.
use tenancy::tenant_scoped;
use uuid::Uuid;

#[tenant_scoped]
pub struct Spin
where
    Uuid: Copy,
{
    pub id: Uuid,
    pub duration: i32,
}

fn main() {}
