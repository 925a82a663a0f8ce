// The support type the repository runs on cannot be assembled around a connection of the caller's choosing: `TenantUnit` has no public constructor or fields.
use tenancy::__private::TenantUnit;
use tenancy::TenantCtx;
use tenancy::sqlx::PgConnection;

fn unit_on<'a>(ctx: &'a TenantCtx, conn: &'a mut PgConnection) -> TenantUnit<'a> {
    TenantUnit {
        ctx,
        conn: Some(conn),
    }
}

fn main() {}
