// `Scope::into_exec` cannot be called on a tenant id to reach the repository's internals: `&TenantId` is not a tenant scope.
use tenancy::{Scope, TenantId};

fn exec(tenant: TenantId) {
    let _exec = Scope::into_exec(&tenant);
}

fn main() {}
