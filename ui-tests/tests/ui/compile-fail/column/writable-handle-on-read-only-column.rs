// A column the database fills cannot be written through a hand-built handle: a handle has the
// writability its model declares, so asking for a `Writable` one on a read-only column fails.
use tenancy::prelude::*;
use tenancy::{Column, Writable};
use time::OffsetDateTime;
use uuid::Uuid;

#[tenant_scoped(table = "spins")]
pub struct Spin {
    #[tenancy(id)]
    pub id: Uuid,
    pub duration: i32,
    #[tenancy(read_only)]
    pub created_at: OffsetDateTime,
}

const CREATED_AT: Column<Spin, OffsetDateTime, Writable> = Column::declared::<2>();

async fn backdate(ctx: &TenantCtx, id: Uuid, at: OffsetDateTime) {
    let _n = Spin::repo()
        .update_columns(ctx, id, [CREATED_AT.set(at)])
        .await;
}

fn main() {}
