// A deserialised `TenantRef` (a job payload) must go back through the registry: there is no `From<TenantRef>`.
use tenancy::{TenantCtx, TenantRef};

fn main() {
    let payload: TenantRef =
        serde_json::from_str(r#"{"tenant_id":"8f3e0d5c-3c53-4d3c-9d0e-6f1f2b0f4a11"}"#).unwrap();
    let _ctx = TenantCtx::from(payload);
}
