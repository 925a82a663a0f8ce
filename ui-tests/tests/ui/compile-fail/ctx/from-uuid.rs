// A bare uuid (say, from a URL) does not convert into a `TenantCtx`: there is no `From<Uuid>`.
use tenancy::TenantCtx;
use uuid::Uuid;

fn main() {
    let tenant = Uuid::new_v4();
    let _ctx: TenantCtx = tenant.into();
}
