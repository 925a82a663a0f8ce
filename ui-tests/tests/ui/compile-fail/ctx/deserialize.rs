// A `TenantCtx` cannot be smuggled in through a request body or a job payload: it is not `Deserialize`.
use tenancy::TenantCtx;

fn main() {
    let _ctx =
        serde_json::from_str::<TenantCtx>(r#"{"id":"8f3e0d5c-3c53-4d3c-9d0e-6f1f2b0f4a11"}"#);
}
