// Raw SQL through the scoped escape hatch: `{table}` placeholders, bound parameters, other models declared with `with`.
use tenancy::prelude::*;
use time::OffsetDateTime;
use uuid::Uuid;

#[tenant_scoped(table = "spins")]
#[derive(Debug, Clone)]
pub struct Spin {
    #[tenancy(id)]
    pub id: Uuid,
    pub spinner_id: Uuid,
    pub duration: i32,
    pub note: Option<String>,
    #[tenancy(read_only)]
    pub created_at: OffsetDateTime,
}

#[tenant_scoped(table = "spinners")]
#[derive(Debug, Clone)]
pub struct Spinner {
    pub id: Uuid,
    pub name: String,
}

async fn raw(ctx: &TenantCtx) -> tenancy::Result<()> {
    let _: Vec<Spin> = Spin::repo()
        .raw(
            "SELECT s.* FROM {spins} s JOIN {spinners} p ON p.id = s.spinner_id \
             WHERE p.name = $1 AND s.duration > $2",
        )
        .with::<Spinner>()
        .bind("Fidget X")
        .bind(120)
        .fetch_all(ctx)
        .await?;
    let _: Option<Spin> = Spin::repo()
        .raw("SELECT * FROM {spins} WHERE id = $1")
        .bind(Uuid::new_v4())
        .fetch_optional(ctx)
        .await?;

    let mut tx = ctx.begin().await?;
    let (_count,): (i64,) = Spin::repo()
        .raw_as::<(i64,)>("SELECT count(*) FROM {spins}")
        .fetch_one(&mut tx)
        .await?;
    drop(
        Spin::repo()
            .raw_as::<(Uuid, i32)>("SELECT id, duration FROM {spins}")
            .fetch(&mut tx),
    );
    tx.commit().await?;
    Ok(())
}

/// The futures are `Send`, so they can run in a spawned task or a web handler.
fn assert_send<T: Send>(_: T) {}

fn check(ctx: &TenantCtx) {
    assert_send(raw(ctx));
}

fn main() {
    let _ = check;
}
