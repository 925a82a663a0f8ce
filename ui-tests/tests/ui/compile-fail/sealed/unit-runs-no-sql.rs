// A scope's `TenantUnit` cannot run SQL of the caller's (such as a read without the tenant predicate): its methods are private.
use tenancy::Scope;
use tenancy::TenantCtx;
use tenancy::sqlx::SqlStr;
use tenancy::sqlx::postgres::PgArguments;

async fn leak(ctx: &TenantCtx) {
    let mut unit = ctx.open().unwrap();
    let _rows = unit
        .fetch_all(
            SqlStr::from_static("SELECT * FROM spins"),
            PgArguments::default(),
        )
        .await;
}

fn main() {}
