// A `TenantCtx` cannot be produced through a generic `Default` bound either (`mem::take`, `unwrap_or_default`, ...).
use tenancy::TenantCtx;

fn main() {
    let _ctx: TenantCtx = Option::<TenantCtx>::None.unwrap_or_default();
}
