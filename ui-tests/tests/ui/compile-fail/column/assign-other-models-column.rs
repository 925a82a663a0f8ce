// An assignment to another model's column cannot be applied to this model's rows: `Assignment<Spinner>` is not an `Assignment<Spin>`.
use tenancy::prelude::*;
use uuid::Uuid;

#[tenant_scoped(table = "spins")]
#[derive(Debug, Clone)]
pub struct Spin {
    #[tenancy(id)]
    pub id: Uuid,
    pub duration: i32,
}

#[tenant_scoped(table = "spinners")]
#[derive(Debug, Clone)]
pub struct Spinner {
    #[tenancy(id)]
    pub id: Uuid,
    pub name: String,
}

async fn scribble(ctx: &TenantCtx, id: Uuid) {
    let _spin = Spin::repo()
        .update_columns(ctx, id, [Spinner::NAME.set("Fidget X")])
        .await;
}

fn main() {}
