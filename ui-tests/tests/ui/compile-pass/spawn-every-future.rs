// Every public future of the crate runs in a spawned task: `tokio::spawn` needs it `Send` and
// `'static`, so each task owns what it uses (a `Tenancy`, a `TenantCtx`) and borrows the rest
// inside itself.
use futures_util::StreamExt;
use tenancy::prelude::*;
use tenancy::{MigrateOptions, Migrations, NewTenant};
use time::OffsetDateTime;
use uuid::Uuid;

#[tenant_scoped(table = "spins")]
#[derive(Debug, Clone)]
pub struct Spin {
    #[tenancy(id)]
    pub id: Uuid,
    pub duration: i32,
    #[tenancy(read_only)]
    pub created_at: OffsetDateTime,
}

fn new_spin() -> NewSpin {
    NewSpin {
        id: Uuid::new_v4(),
        duration: 130,
    }
}

fn repository(ctx: TenantCtx) {
    let repo = Spin::repo();
    let c = ctx.clone();
    tokio::spawn(async move { repo.insert(&c, &new_spin()).await });
    let c = ctx.clone();
    tokio::spawn(async move { Spin::repo().insert_many(&c, &[new_spin()]).await });
    let c = ctx.clone();
    tokio::spawn(async move { Spin::repo().get(&c, Uuid::new_v4()).await });
    let c = ctx.clone();
    tokio::spawn(async move { Spin::repo().get_many(&c, &[Uuid::new_v4()]).await });
    let c = ctx.clone();
    tokio::spawn(async move {
        let spin = Spin::repo().insert(&c, &new_spin()).await?;
        Spin::repo().update(&c, &spin).await
    });
    let c = ctx.clone();
    tokio::spawn(async move {
        Spin::repo()
            .update_columns(&c, Uuid::new_v4(), [Spin::DURATION.set(1)])
            .await
    });
    let c = ctx.clone();
    tokio::spawn(async move {
        Spin::repo()
            .update_where(&c, Spin::DURATION.lt(1), [Spin::DURATION.set(1)])
            .await
    });
    let c = ctx.clone();
    tokio::spawn(async move { Spin::repo().delete(&c, Uuid::new_v4()).await });
    let c = ctx.clone();
    tokio::spawn(async move { Spin::repo().delete_where(&c, Spin::DURATION.lt(0)).await });
    let c = ctx.clone();
    tokio::spawn(async move { Spin::repo().count(&c).await });
    let c = ctx.clone();
    tokio::spawn(async move { Spin::repo().count_where(&c, Spin::DURATION.gt(1)).await });
    let c = ctx.clone();
    tokio::spawn(async move { Spin::repo().exists(&c, Uuid::new_v4()).await });
    let c = ctx.clone();
    tokio::spawn(async move { Spin::repo().exists_where(&c, Spin::DURATION.gt(1)).await });
    // In a transaction.
    let c = ctx.clone();
    tokio::spawn(async move {
        let mut tx = c.begin().await?;
        Spin::repo().insert(&mut tx, &new_spin()).await?;
        tx.write_global("INSERT INTO outbox (topic) VALUES ($1)")
            .bind("spin.created")
            .execute()
            .await?;
        tx.commit().await
    });
    let c = ctx;
    tokio::spawn(async move { c.begin().await?.rollback().await });
}

fn queries(ctx: TenantCtx) {
    let c = ctx.clone();
    tokio::spawn(async move {
        Spin::repo()
            .query()
            .filter(Spin::DURATION.gt(1))
            .fetch_all(&c)
            .await
    });
    let c = ctx.clone();
    tokio::spawn(async move { Spin::repo().query().fetch_optional(&c).await });
    let c = ctx.clone();
    tokio::spawn(async move { Spin::repo().query().fetch_one(&c).await });
    let c = ctx.clone();
    tokio::spawn(async move {
        let mut rows = Spin::repo().query().fetch(&c);
        while let Some(row) = rows.next().await {
            row?;
        }
        Ok::<(), tenancy::Error>(())
    });
    let c = ctx.clone();
    tokio::spawn(async move {
        let mut tx = c.begin().await?;
        let _ = Spin::repo().query().fetch_all(&mut tx).await?;
        tx.commit().await
    });
    // Raw SQL.
    let c = ctx.clone();
    tokio::spawn(async move {
        Spin::repo()
            .raw("SELECT * FROM {spins} WHERE duration > $1")
            .bind(1)
            .fetch_all(&c)
            .await
    });
    let c = ctx.clone();
    tokio::spawn(async move {
        Spin::repo()
            .raw("SELECT * FROM {spins}")
            .fetch_optional(&c)
            .await
    });
    let c = ctx.clone();
    tokio::spawn(async move {
        Spin::repo()
            .raw_as::<(i64,)>("SELECT count(*) FROM {spins}")
            .fetch_one(&c)
            .await
    });
    let c = ctx;
    tokio::spawn(async move {
        let mut rows = Spin::repo()
            .raw_as::<(Uuid,)>("SELECT id FROM {spins}")
            .fetch(&c);
        while let Some(row) = rows.next().await {
            row?;
        }
        Ok::<(), tenancy::Error>(())
    });
}

fn cross_tenant(tenancy: Tenancy) {
    let t = tenancy.clone();
    tokio::spawn(async move {
        let su = t.superuser("ops@example", "spawned report").await?;
        Spin::repo().report().limit(10).fetch_all(&su).await
    });
    let t = tenancy.clone();
    tokio::spawn(async move {
        let su = t.superuser("ops@example", "spawned aggregate").await?;
        let report = Spin::repo().report();
        let _ = report.aggregate(Agg::count()).fetch(&su).await?;
        let _ = report.aggregate(Agg::sum(Spin::DURATION)).fetch(&su).await?;
        let _ = report.aggregate(Agg::avg(Spin::DURATION)).fetch(&su).await?;
        let _ = report.aggregate(Agg::min(Spin::DURATION)).fetch(&su).await?;
        report.aggregate(Agg::max(Spin::DURATION)).fetch(&su).await
    });
    let t = tenancy.clone();
    tokio::spawn(async move {
        let su = t.superuser("ops@example", "spawned audit").await?;
        let id = TenantId::new_v4();
        let _ = t.list_tenants(&su).await?;
        let _ = t.tenant(&su, id).await?;
        let _ = t.impersonate(&su, id).await?;
        t.audit_log(&su, tenancy::AuditQuery::default()).await
    });
    let t = tenancy;
    tokio::spawn(async move {
        let su = t.superuser("ops@example", "spawned export").await?;
        let id = TenantId::new_v4();
        let archive = t.export_tenant(&su, id).await?;
        t.import_tenant(&su, &archive, TenantId::new_v4()).await
    });
}

fn lifecycle(tenancy: Tenancy) {
    let t = tenancy.clone();
    tokio::spawn(async move {
        let ctx = t.create_tenant(NewTenant::new("acme", "Acme")).await?;
        let _ = t.resolve_id(ctx.id).await?;
        let _ = t.resolve_slug("acme").await?;
        let _ = t.resolve_host("acme.example.com").await?;
        t.resolve(&ctx.to_ref()).await
    });
    let t = tenancy.clone();
    tokio::spawn(async move {
        let su = t.superuser("ops@example", "spawned lifecycle").await?;
        let id = TenantId::new_v4();
        let _ = t.suspend(&su, id).await?;
        let _ = t.resume(&su, id).await?;
        let _ = t.soft_delete(&su, id).await?;
        let _ = t.restore(&su, id).await?;
        let _ = t.rename_slug(&su, id, "acme2").await?;
        let _ = t.add_host(&su, id, "acme2.example.com", false).await?;
        let _ = t.remove_host(&su, id, "acme2.example.com").await?;
        t.purge(&su, id).await
    });
    let t = tenancy;
    tokio::spawn(async move {
        let su = t.superuser("ops@example", "spawned migration").await?;
        let shared = Migrations::from_static(&[(1, "spins", "CREATE TABLE x ()")])?;
        let _ = t.migrate_shared(&su, &shared).await?;
        let _ = t.pending_migrations(&su).await?;
        let _ = t.migrate_tenants(&su, MigrateOptions::default()).await?;
        let _ = t.warm_schemas(&su, 1).await?;
        let _ = t
            .create_tenant_with_id(&su, NewTenant::new("acme", "Acme"), TenantId::new_v4())
            .await?;
        t.install_row_level_security::<Spin>(&su).await?;
        t.verify::<Spin>().await
    });
}

fn connect() {
    tokio::spawn(async move {
        let t = Tenancy::connect("postgres://postgres@127.0.0.1/app").await?;
        t.close().await;
        Ok::<(), tenancy::Error>(())
    });
}

fn main() {
    let _ = (repository, queries, cross_tenant, lifecycle, connect);
}
