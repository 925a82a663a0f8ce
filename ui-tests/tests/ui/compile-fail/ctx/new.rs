// There is no public constructor to hand a tenant id to: `TenantCtx::new` does not exist.
use tenancy::{TenantCtx, TenantId};

fn main() {
    let _ctx = TenantCtx::new(TenantId::new_v4());
}
