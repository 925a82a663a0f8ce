// Knowing a tenant's id does not make a `TenantCtx` for it: there is no `From<TenantId>`.
use tenancy::{TenantCtx, TenantId};

fn main() {
    let tenant = TenantId::new_v4();
    let _ctx = TenantCtx::from(tenant);
}
