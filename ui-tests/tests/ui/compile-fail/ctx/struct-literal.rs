// A `TenantCtx` cannot be assembled by hand around a tenant id of the caller's choosing: it has no public fields.
use tenancy::{TenantCtx, TenantId};

fn forge(tenant: TenantId) -> TenantCtx {
    TenantCtx { id: tenant }
}

fn main() {}
