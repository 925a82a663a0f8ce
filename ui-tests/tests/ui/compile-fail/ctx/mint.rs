// Only the registry mints a `TenantCtx`, after checking the tenant is active: `TenantCtx::mint` is private.
use tenancy::TenantCtx;

fn main() {
    let _mint = TenantCtx::mint;
}
