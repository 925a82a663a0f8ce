// Every tenant's rows cannot be read without the audited capability: `Report::fetch_all` needs a `&Superuser`.
use tenancy::prelude::*;
use uuid::Uuid;

#[tenant_scoped(table = "spins")]
#[derive(Debug, Clone)]
pub struct Spin {
    #[tenancy(id)]
    pub id: Uuid,
    pub duration: i32,
}

async fn harvest() {
    let _everyone = Spin::repo()
        .report()
        .order_by(Spin::DURATION.desc())
        .limit(100)
        .fetch_all()
        .await;
}

fn main() {}
