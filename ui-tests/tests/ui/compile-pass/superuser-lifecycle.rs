// Cross-tenant work with an audited `Superuser`: listing, reading and the lifecycle of tenants.
use tenancy::prelude::*;
use tenancy::{Tenant, TenantStatus};

async fn admin(tenancy: &Tenancy, id: TenantId) -> tenancy::Result<()> {
    let su: Superuser = tenancy.superuser("alice@support", "ticket #1234").await?;
    let _who: (&str, &str, i64) = (su.actor(), su.reason(), su.grant_id());
    let _when: time::OffsetDateTime = su.acquired_at();

    let all: Vec<Tenant> = tenancy.list_tenants(&su).await?;
    let one: Tenant = tenancy.tenant(&su, id).await?;
    let _: bool = one.status == TenantStatus::Active && all.contains(&one);

    let _: Tenant = tenancy.suspend(&su, id).await?;
    let _: Tenant = tenancy.resume(&su, id).await?;
    let _: Tenant = tenancy.soft_delete(&su, id).await?;
    let _: Tenant = tenancy.restore(&su, id).await?;

    // Back to one tenant: through the registry, which only resolves an active tenant.
    let _ctx: TenantCtx = tenancy.resolve(&one.to_ref()).await?;
    Ok(())
}

/// The futures are `Send`, so they can run in a spawned task or a web handler.
fn assert_send<T: Send>(_: T) {}

fn check(tenancy: &Tenancy) {
    assert_send(admin(tenancy, TenantId::new_v4()));
}

fn main() {
    let _ = check;
}
