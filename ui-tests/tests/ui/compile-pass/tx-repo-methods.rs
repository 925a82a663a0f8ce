// Every repository method inside one tenant's transaction, with `&mut TenantTx`.
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

async fn with_tx(ctx: &TenantCtx) -> tenancy::Result<()> {
    let mut tx: TenantTx = ctx.begin().await?;
    let repo = Spin::repo();
    let new = NewSpin {
        id: Uuid::new_v4(),
        spinner_id: Uuid::new_v4(),
        duration: 130,
        note: Some("first".to_owned()),
    };
    let spin: Spin = repo.insert(&mut tx, &new).await?;
    let _: Vec<Spin> = repo
        .insert_many(&mut tx, std::slice::from_ref(&new))
        .await?;
    let _: Option<Spin> = repo.get(&mut tx, spin.id).await?;
    let _: Vec<Spin> = repo.get_many(&mut tx, &[spin.id]).await?;
    let _: Option<Spin> = repo.update(&mut tx, &spin).await?;
    let _: Option<Spin> = repo
        .update_columns(&mut tx, spin.id, [Spin::DURATION.set(131)])
        .await?;
    let _: u64 = repo
        .update_where(
            &mut tx,
            Spin::NOTE.is_null(),
            [Spin::NOTE.set(Some("n/a".to_owned()))],
        )
        .await?;
    let _: i64 = repo.count(&mut tx).await?;
    let _: i64 = repo.count_where(&mut tx, Spin::DURATION.gt(120)).await?;
    let _: bool = repo.exists(&mut tx, spin.id).await?;
    let _: bool = repo.exists_where(&mut tx, Spin::DURATION.ge(0)).await?;
    let _: u64 = repo.delete_where(&mut tx, Filter::all()).await?;
    let _: bool = repo.delete(&mut tx, spin.id).await?;
    assert_eq!(tx.ctx().id(), ctx.id());
    tx.commit().await?;

    let tx = ctx.begin().await?;
    tx.rollback().await?;
    Ok(())
}

/// The futures are `Send`, so they can run in a spawned task or a web handler.
fn assert_send<T: Send>(_: T) {}

fn check(ctx: &TenantCtx) {
    assert_send(with_tx(ctx));
}

fn main() {
    let _ = check;
}
