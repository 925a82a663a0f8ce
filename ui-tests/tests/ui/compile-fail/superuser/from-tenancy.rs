// The `Tenancy` handle does not convert into cross-tenant power: a `Superuser` comes only from the audited `Tenancy::superuser`.
use tenancy::{Superuser, Tenancy};

fn escalate(tenancy: Tenancy) -> Superuser {
    Superuser::from(tenancy)
}

fn main() {}
