// An ordering on another model's column cannot be slipped into a query: `Order<Spinner>` is not an `Order<Spin>`.
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

async fn leak(ctx: &TenantCtx) {
    let _spins = Spin::repo()
        .query()
        .order_by(Spinner::NAME.asc())
        .fetch_all(ctx)
        .await;
}

fn main() {}
