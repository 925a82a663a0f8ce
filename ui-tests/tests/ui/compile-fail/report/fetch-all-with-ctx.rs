// One tenant's context does not widen to every tenant: a report runs with a `&Superuser`, not a `&TenantCtx`.
use tenancy::prelude::*;
use uuid::Uuid;

#[tenant_scoped(table = "spins")]
#[derive(Debug, Clone)]
pub struct Spin {
    #[tenancy(id)]
    pub id: Uuid,
    pub duration: i32,
}

async fn harvest(ctx: &TenantCtx) {
    let _everyone = Spin::repo()
        .report()
        .filter(Spin::DURATION.gt(120))
        .fetch_all(ctx)
        .await;
}

fn main() {}
