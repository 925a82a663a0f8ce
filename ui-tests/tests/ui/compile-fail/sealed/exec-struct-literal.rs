// The support type the repository runs on cannot be assembled around a connection of the caller's choosing: `Exec` has no public constructor or fields.
use tenancy::__private::Exec;
use tenancy::TenantCtx;
use tenancy::sqlx::PgConnection;

fn exec_on<'a>(ctx: &'a TenantCtx, conn: &'a mut PgConnection) -> Exec<'a> {
    Exec {
        ctx,
        conn: Some(conn),
    }
}

fn main() {}
