// Figures over every tenant need the audited capability too: `ReportAggregate::fetch` takes a `&Superuser`, not a `&TenantCtx`.
use tenancy::prelude::*;
use tenancy::Agg;
use uuid::Uuid;

#[tenant_scoped(table = "spins")]
#[derive(Debug, Clone)]
pub struct Spin {
    #[tenancy(id)]
    pub id: Uuid,
    pub duration: i32,
}

async fn benchmark_competitors(ctx: &TenantCtx) {
    let _averages = Spin::repo()
        .report()
        .aggregate(Agg::avg(Spin::DURATION))
        .fetch(ctx)
        .await;
}

fn main() {}
