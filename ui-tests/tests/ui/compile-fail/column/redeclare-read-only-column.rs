// A model's column cannot be declared a second time, writable: the declaration
// `#[tenant_scoped]` generates is the only one.
use tenancy::prelude::*;
use tenancy::{Column, DeclaresColumn, Writable};
use uuid::Uuid;

#[tenant_scoped(table = "spins")]
pub struct Spin {
    pub id: Uuid,
    pub duration: i32,
}

impl DeclaresColumn<0> for Spin {
    type Type = Uuid;
    type Access = Writable;
}

const ID: Column<Spin, Uuid, Writable> = Column::declared::<0>();

async fn rekey(ctx: &TenantCtx, id: Uuid, other_tenants_key: Uuid) {
    let _spin = Spin::repo()
        .update_columns(ctx, id, [ID.set(other_tenants_key)])
        .await;
}

fn main() {}
