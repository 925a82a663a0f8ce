// A tenant's context does not escalate to cross-tenant power: there is no `From<TenantCtx>` for `Superuser`.
use tenancy::{Superuser, TenantCtx};

fn escalate(ctx: TenantCtx) -> Superuser {
    Superuser::from(ctx)
}

fn main() {}
