// A `Superuser` is not duplicated past its audited acquisition (e.g. into a long-lived cache): it is not `Clone`.
use tenancy::Superuser;

fn keep(su: &Superuser) -> Superuser {
    su.clone()
}

fn main() {}
