// An old audit record of an acquisition is not the capability it records: no `AuditRecord` converts into a `Superuser`.
use tenancy::{AuditRecord, Superuser};

fn replay(record: AuditRecord) -> Superuser {
    record.into()
}

fn main() {}
