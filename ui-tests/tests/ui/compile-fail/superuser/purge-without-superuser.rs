// Another tenant's data cannot be destroyed by id alone: `purge` needs a `Superuser` first.
use tenancy::{Tenancy, TenantId};

async fn destroy(tenancy: &Tenancy, other: TenantId) {
    let _ = tenancy.purge(other).await;
}

fn main() {}
