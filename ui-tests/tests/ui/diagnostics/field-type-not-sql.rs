// Mistake: a field's type is not a PostgreSQL type sqlx can decode and bind.
use tenancy::tenant_scoped;
use uuid::Uuid;

pub struct Colour(u8);

#[tenant_scoped]
pub struct Spin {
    pub id: Uuid,
    pub colour: Colour,
    pub duration: i32,
}

fn main() {}
