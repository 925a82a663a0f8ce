// Every repository method, with the `&TenantCtx` the registry hands out.
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

async fn with_ctx(tenancy: &Tenancy) -> tenancy::Result<()> {
    let ctx: TenantCtx = tenancy.resolve_host("acme.example.com").await?;
    let repo: Repo<Spin> = Spin::repo();
    let new = NewSpin {
        id: Uuid::new_v4(),
        spinner_id: Uuid::new_v4(),
        duration: 130,
        note: None,
    };
    let spin: Spin = repo.insert(&ctx, &new).await?;
    let _: Vec<Spin> = repo.insert_many(&ctx, std::slice::from_ref(&new)).await?;
    let _: Option<Spin> = repo.get(&ctx, spin.id).await?;
    let _: Vec<Spin> = repo.get_many(&ctx, &[spin.id]).await?;
    let _: Option<Spin> = repo.update(&ctx, &spin).await?;
    let _: Option<Spin> = repo
        .update_columns(
            &ctx,
            spin.id,
            [Spin::DURATION.set(131), Spin::NOTE.set(None)],
        )
        .await?;
    let _: u64 = repo
        .update_where(&ctx, Spin::DURATION.lt(10), [Spin::DURATION.set(10)])
        .await?;
    let _: i64 = repo.count(&ctx).await?;
    let _: i64 = repo.count_where(&ctx, Spin::DURATION.gt(120)).await?;
    let _: bool = repo.exists(&ctx, spin.id).await?;
    let _: bool = repo
        .exists_where(&ctx, Spin::SPINNER_ID.eq(spin.spinner_id))
        .await?;
    let _: u64 = repo.delete_where(&ctx, Spin::DURATION.lt(0)).await?;
    let _: bool = repo.delete(&ctx, spin.id).await?;
    Ok(())
}

/// The futures are `Send`, so they can run in a spawned task or a web handler.
fn assert_send<T: Send>(_: T) {}

fn check(tenancy: &Tenancy) {
    assert_send(with_ctx(tenancy));
}

fn main() {
    let _ = check;
}
