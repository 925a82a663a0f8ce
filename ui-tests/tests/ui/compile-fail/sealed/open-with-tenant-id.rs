// `Scope::open` cannot be called on a tenant id to reach the repository's internals: `&TenantId` is not a tenant scope.
use tenancy::{Scope, TenantId};

fn open(tenant: TenantId) {
    let _unit = Scope::open(&tenant);
}

fn main() {}
