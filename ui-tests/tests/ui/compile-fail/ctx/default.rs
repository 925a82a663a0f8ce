// A `TenantCtx` cannot be conjured from nothing: it has no `Default`.
use tenancy::TenantCtx;

fn main() {
    let _ctx = TenantCtx::default();
}
