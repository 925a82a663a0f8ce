// A transaction begun for one tenant cannot be re-pointed at another: `TenantTx::ctx` is read-only.
use tenancy::{TenantCtx, TenantTx};

fn repoint(tx: &mut TenantTx, other: &TenantCtx) {
    *tx.ctx() = other.clone();
}

fn main() {}
