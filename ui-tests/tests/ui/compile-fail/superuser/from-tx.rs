// A tenant's transaction does not escalate to cross-tenant power either: `TenantTx` does not convert into a `Superuser`.
use tenancy::{Superuser, TenantTx};

fn escalate(tx: TenantTx) -> Superuser {
    tx.into()
}

fn main() {}
