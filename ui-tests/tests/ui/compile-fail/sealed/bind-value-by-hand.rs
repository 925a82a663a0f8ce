// A column type cannot bind itself by hand: the binding traits are handed the statement's
// arguments, which end with the tenant, so a hand-written `bind` could replace it and read or
// write another tenant's rows. Only sqlx-encodable types bind, through tenancy's own impls.
use tenancy::sqlx::error::BoxDynError;
use tenancy::sqlx::postgres::PgArguments;
use tenancy::{BindValue, ColumnValue};

/// Would clear the arguments (the tenant with them) and bind a tenant of its choosing.
pub struct Hijack(pub tenancy::uuid::Uuid);

impl BindValue for Hijack {
    fn bind(&self, args: &mut PgArguments) -> Result<(), BoxDynError> {
        *args = PgArguments::default();
        Ok(())
    }
}

impl ColumnValue for Hijack {}

fn main() {}
