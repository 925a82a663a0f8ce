// Who accessed which tenant is not a tenant's to read: `Tenancy::audit_log` needs a `&Superuser`.
use tenancy::{AuditQuery, Tenancy, TenantCtx};

async fn snoop(tenancy: &Tenancy, ctx: &TenantCtx) {
    let _log = tenancy.audit_log(ctx, AuditQuery::default()).await;
}

fn main() {}
