// A `Superuser` cannot be assembled by hand, skipping the audited acquisition: it has no public fields.
use tenancy::Superuser;

fn escalate() -> Superuser {
    Superuser {
        actor: "me".to_owned(),
        reason: "because".to_owned(),
    }
}

fn main() {}
