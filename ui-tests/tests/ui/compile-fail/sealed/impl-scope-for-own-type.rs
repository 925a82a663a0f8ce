// No type of the user's can be declared a tenant scope: `Scope` is sealed.
use tenancy::__private::Exec;
use tenancy::Scope;

/// Claims to act for whichever tenant the caller likes.
pub struct AnyTenant;

impl<'s> Scope<'s> for &'s AnyTenant {
    fn into_exec(self) -> Exec<'s> {
        unimplemented!()
    }
}

fn main() {}
