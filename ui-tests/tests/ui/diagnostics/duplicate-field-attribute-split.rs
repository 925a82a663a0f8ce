// Mistake: A field attribute given twice across two #[tenancy(...)].
use tenancy::tenant_scoped;
use uuid::Uuid;

#[tenant_scoped]
pub struct Spin {
    pub id: Uuid,
    #[tenancy(rename = "dur")]
    #[tenancy(rename = "duration_ms")]
    pub duration: i32,
}

fn main() {}
