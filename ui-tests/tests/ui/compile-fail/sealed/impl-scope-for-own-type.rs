// No type of the user's can be declared a tenant scope: `Scope` is sealed.
use tenancy::__private::TenantUnit;
use tenancy::Scope;

/// Claims to act for whichever tenant the caller likes.
pub struct AnyTenant;

impl<'s> Scope<'s> for &'s AnyTenant {
    fn open(self) -> tenancy::Result<TenantUnit<'s>> {
        unimplemented!()
    }
}

fn main() {}
