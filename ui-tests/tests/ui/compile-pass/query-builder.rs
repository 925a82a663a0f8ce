// The typed query builder: filters, ordering, paging and streaming, run with a tenant scope.
use tenancy::Select;
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

async fn queries(ctx: &TenantCtx, spinner: Uuid) -> tenancy::Result<()> {
    let repo = Spin::repo();
    let long: Select<Spin> = repo
        .query()
        .filter(Spin::DURATION.gt(120) & Spin::SPINNER_ID.eq(spinner))
        .filter(Spin::NOTE.is_not_null() | !Spin::NOTE.like("%test%"))
        .filter(Spin::ID.is_in([Uuid::new_v4(), Uuid::new_v4()]))
        .filter(
            Filter::all()
                .and(Spin::DURATION.ne(0))
                .or(Spin::DURATION.le(5)),
        )
        .order_by(Spin::CREATED_AT.desc())
        .order_by(Spin::DURATION.asc())
        .limit(50)
        .offset(0);
    let page: Vec<Spin> = long.fetch_all(ctx).await?;
    if let Some(last) = page.last() {
        let _next: Vec<Spin> = long.clone().after(last).fetch_all(ctx).await?;
    }
    let _: Spin = repo.query().fetch_one(ctx).await?;
    let _: Option<Spin> = repo
        .query()
        .filter(Spin::NOTE.ilike("fidget%"))
        .fetch_optional(ctx)
        .await?;
    let _stream = repo.query().filter(Spin::DURATION.lt(3)).fetch(ctx);

    let mut tx = ctx.begin().await?;
    let _: Vec<Spin> = repo.query().fetch_all(&mut tx).await?;
    drop(repo.query().fetch(&mut tx));
    tx.commit().await?;
    Ok(())
}

/// The futures are `Send`, so they can run in a spawned task or a web handler.
fn assert_send<T: Send>(_: T) {}

fn check(ctx: &TenantCtx) {
    assert_send(queries(ctx, Uuid::new_v4()));
}

fn main() {
    let _ = check;
}
