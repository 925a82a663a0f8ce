// Getting a `TenantCtx`: every resolution through the registry, and a `TenantRef` round trip for job payloads.
use tenancy::prelude::*;

async fn resolve(tenancy: &Tenancy, id: TenantId) -> tenancy::Result<()> {
    let by_id: TenantCtx = tenancy.resolve_id(id).await?;
    let _by_slug: TenantCtx = tenancy.resolve_slug("acme").await?;
    let _by_host: TenantCtx = tenancy.resolve_host("acme.example.com:443").await?;

    // A job carries a `TenantRef`, never a context; the worker resolves it again.
    let payload = serde_json::to_string(&by_id.to_ref()).unwrap();
    let tenant: TenantRef = serde_json::from_str(&payload).unwrap();
    let again: TenantCtx = tenancy.resolve(&tenant).await?;

    let same: TenantCtx = again.clone();
    let _: (TenantId, &str, &str) = (same.id(), same.slug(), same.name());
    let _: tenancy::Placement = same.placement();
    let _: String = same.cache_key("dashboard");
    Ok(())
}

/// The futures are `Send`, so they can run in a spawned task or a web handler.
fn assert_send<T: Send>(_: T) {}

/// A context can be shared across tasks.
fn assert_send_sync_clone<T: Send + Sync + Clone>() {}

fn check(tenancy: &Tenancy) {
    assert_send(resolve(tenancy, TenantId::new_v4()));
    assert_send_sync_clone::<TenantCtx>();
}

fn main() {
    let _ = check;
}
