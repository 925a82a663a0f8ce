// A `Superuser` cannot be conjured from nothing: it has no `Default`.
use tenancy::Superuser;

fn main() {
    let _su = Superuser::default();
}
