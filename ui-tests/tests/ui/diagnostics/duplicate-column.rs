// Mistake: Two fields map to the same column through `rename`.
use tenancy::tenant_scoped;
use uuid::Uuid;

#[tenant_scoped]
pub struct Spin {
    pub id: Uuid,
    pub duration: i32,
    #[tenancy(rename = "duration")]
    pub duration_ms: i32,
}

fn main() {}
