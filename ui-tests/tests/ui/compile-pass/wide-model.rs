// Models past the sizes the expansion special-cases: more columns than `DecodeColumns` decodes
// at once (32), and a model whose `New` struct has no field (the database fills every column).
use tenancy::{Column, Model, ReadOnly, Writable, tenant_scoped};
use time::OffsetDateTime;
use uuid::Uuid;

#[tenant_scoped]
pub struct Wide {
    pub id: Uuid,
    pub c1: i32,
    pub c2: i32,
    pub c3: i32,
    pub c4: i32,
    pub c5: i32,
    pub c6: i32,
    pub c7: i32,
    pub c8: i32,
    pub c9: i32,
    pub c10: i32,
    pub c11: i32,
    pub c12: i32,
    pub c13: i32,
    pub c14: i32,
    pub c15: i32,
    pub c16: i32,
    pub c17: i32,
    pub c18: i32,
    pub c19: i32,
    pub c20: i32,
    pub c21: i32,
    pub c22: i32,
    pub c23: i32,
    pub c24: i32,
    pub c25: i32,
    pub c26: i32,
    pub c27: i32,
    pub c28: i32,
    pub c29: i32,
    pub c30: i32,
    pub c31: i32,
    pub c32: i32,
    pub c33: i32,
    #[tenancy(skip)]
    pub cached: Option<String>,
}

#[tenant_scoped(table = "events")]
pub struct Event {
    #[tenancy(id, default)]
    pub id: Uuid,
    #[tenancy(read_only)]
    pub at: OffsetDateTime,
}

fn main() {
    let _: Column<Wide, Uuid, ReadOnly> = Wide::ID;
    let _: Column<Wide, i32, Writable> = Wide::C33;
    assert_eq!(Wide::META.columns.len(), 34);
    assert_eq!(Wide::C33.name(), "c33");
    let _ = NewEvent {};
    let _: Column<Event, OffsetDateTime, ReadOnly> = Event::AT;
}
