//! One task of the soak: a seeded sequence of repository, query, stream, raw-SQL, transaction,
//! report, lifecycle and around-the-library work over random tenants, each call under a random
//! fault, its outcome written to the ledger, and every row it reads checked on the spot.

use futures_util::StreamExt;
use tenancy::{Agg, Error, NewTenant, Placement, TenantCtx, TenantId, TenantStatus, TenantTx};
use uuid::Uuid;

use crate::faults::{Ended, Fault, Rng, in_doubt, inject};
use crate::ledger::{Ledger, Outcome};
use crate::world::World;
use crate::world::model::*;

/// The message of the panics the soak injects.
pub const PANIC: &str = "soak: a panic injected inside a transaction";

/// How often, and how far apart, a lifecycle operation retries the calls that put its tenant
/// back in order when their backend was terminated under them.
const RETRIES: usize = 100;
const RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(10);

/// Percent of operations during which the side task terminates a backend.
const KILL_PCT: u64 = 4;

/// Percent of calls that get a cancellation fault.
const CANCEL_PCT: u64 = 25;

pub struct Task<'w> {
    w: &'w World,
    ledger: &'w Ledger,
    rng: Rng,
    index: usize,
    /// Rows this task wrote, acknowledged, and has not lost track of: `(tenant, id)`. Only this
    /// task touches them again, and a row whose fate becomes unknown leaves this list (a
    /// cancelled statement may still run later, on whichever connection it was sent on).
    mine: Vec<(usize, Uuid)>,
    temps: usize,
    /// Asks the terminator (`faults::terminator`) to terminate a backend.
    kill: tokio::sync::mpsc::UnboundedSender<()>,
}

/// Runs one task's `ops_per_task` operations, or fewer once a violation stopped the run.
pub async fn task(
    w: &World,
    ledger: &Ledger,
    seed: u64,
    index: usize,
    kill: tokio::sync::mpsc::UnboundedSender<()>,
) {
    let mut t = Task {
        w,
        ledger,
        rng: Rng::new(seed),
        index,
        mine: Vec::new(),
        temps: 0,
        kill,
    };
    for _ in 0..w.config.ops_per_task {
        if ledger.stopped() {
            return;
        }
        t.step().await;
    }
}

impl Task<'_> {
    async fn step(&mut self) {
        let tenant = self.rng.below(self.w.tenant_count());
        let roll = self.rng.below(100);
        let op = match roll {
            0..=15 => "insert",
            16..=21 => "insert_many",
            22..=35 => "transaction",
            36..=42 => "update",
            43..=47 => "delete",
            48..=54 => "get",
            55..=61 => "query",
            62..=67 => "stream",
            68..=72 => "stream_in_transaction",
            73..=78 => "raw",
            79..=82 => "report",
            83..=89 => "around_the_library",
            90..=92 => "panic",
            _ => "lifecycle",
        };
        self.ledger.count(&format!("op.{op}"));
        if self.rng.chance(KILL_PCT) {
            // The terminator picks a backend and kills it while this operation runs.
            let _ = self.kill.send(());
        }
        match op {
            "insert" => self.insert(tenant).await,
            "insert_many" => self.insert_many(tenant).await,
            "transaction" => self.transaction(tenant).await,
            "update" => self.update().await,
            "delete" => self.delete().await,
            "get" => self.get().await,
            "query" => self.query(tenant).await,
            "stream" => self.stream(tenant).await,
            "stream_in_transaction" => self.stream_in_transaction(tenant).await,
            "raw" => self.raw(tenant).await,
            "report" => self.report().await,
            "around_the_library" => self.around_the_library().await,
            "panic" => self.panic(tenant).await,
            _ => self.lifecycle(tenant).await,
        }
    }

    fn fault(&mut self) -> Fault {
        Fault::pick(&mut self.rng, CANCEL_PCT)
    }

    fn new_entry(&mut self, ctx: &TenantCtx) -> NewEntry {
        NewEntry {
            id: self.rng.uuid(),
            writer: ctx.id().as_uuid(),
            n: self.rng.below(1_000) as i32,
        }
    }

    /// Checks rows a tenant read: each was written by that tenant.
    fn check_read<'a>(
        &self,
        ctx: &TenantCtx,
        how: &str,
        rows: impl IntoIterator<Item = &'a Entry>,
    ) {
        for row in rows {
            if row.writer != ctx.id().as_uuid() {
                self.ledger.violation(format!(
                    "{how}: tenant {} ({}) read row {} written by tenant {}",
                    ctx.slug(),
                    ctx.id(),
                    row.id,
                    row.writer
                ));
            }
        }
    }

    /// A row this task owns, and the context of its tenant.
    fn pick_mine(&mut self) -> Option<(usize, usize, Uuid)> {
        if self.mine.is_empty() {
            return None;
        }
        let k = self.rng.below(self.mine.len());
        let (tenant, id) = self.mine[k];
        Some((k, tenant, id))
    }

    async fn insert(&mut self, tenant: usize) {
        let ctx = self.w.resolve(tenant).await;
        let new = self.new_entry(&ctx);
        let fault = self.fault();
        let ended = inject(self.ledger, fault, Entry::repo().insert(&ctx, &new)).await;
        let outcome = ended.outcome();
        if let Some(row) = ended.ok() {
            self.check_read(&ctx, "insert's returned row", [&row]);
        }
        self.ledger
            .inserted(ctx.id().as_uuid(), new.id, new.n, outcome);
        if outcome == Outcome::Ack {
            self.mine.push((tenant, new.id));
        }
    }

    async fn insert_many(&mut self, tenant: usize) {
        let ctx = self.w.resolve(tenant).await;
        let news: Vec<NewEntry> = (0..2 + self.rng.below(4))
            .map(|_| self.new_entry(&ctx))
            .collect();
        let fault = self.fault();
        let ended = inject(self.ledger, fault, Entry::repo().insert_many(&ctx, &news)).await;
        let outcome = ended.outcome();
        if let Some(rows) = ended.ok() {
            self.check_read(&ctx, "insert_many's returned rows", &rows);
        }
        for new in &news {
            self.ledger
                .inserted(ctx.id().as_uuid(), new.id, new.n, outcome);
            if outcome == Outcome::Ack {
                self.mine.push((tenant, new.id));
            }
        }
    }

    /// A transaction of a few writes (new rows, updates and deletes of this task's rows of the
    /// tenant, and sometimes a duplicate key that fails it), then a commit, a rollback or a
    /// drop. One of its steps may get a fault.
    async fn transaction(&mut self, tenant: usize) {
        let ctx = self.w.resolve(tenant).await;
        let ours: Vec<Uuid> = self
            .mine
            .iter()
            .filter(|(t, _)| *t == tenant)
            .map(|(_, id)| *id)
            .collect();
        let mut steps = Vec::new();
        let mut touched = std::collections::HashSet::new();
        for _ in 0..1 + self.rng.below(4) {
            let roll = self.rng.below(10);
            if roll < 5 || ours.is_empty() {
                steps.push(Step::Insert(self.new_entry(&ctx)));
                continue;
            }
            let id = ours[self.rng.below(ours.len())];
            if !touched.insert(id) {
                continue;
            }
            steps.push(match roll {
                5..=7 => Step::Update(id, self.rng.below(1_000) as i32),
                8 => Step::Delete(id),
                _ => Step::Duplicate(id),
            });
        }
        // 0 = begin, 1..=steps, then the end (commit, rollback or drop). The begin gets a
        // good share: a unit of work cut off while it starts is the classic leak.
        let faulty = if self.rng.chance(40) {
            0
        } else {
            self.rng.below(steps.len() + 2)
        };
        let fault = self.fault();
        let end = self.rng.below(10);
        let fault_at = |i: usize| if i == faulty { fault } else { Fault::None };

        let Some(mut tx) = inject(self.ledger, fault_at(0), ctx.begin()).await.ok() else {
            self.record_tx(tenant, &ctx, &writes(&steps), Outcome::Failed);
            return;
        };
        let mut failed = false;
        for (i, step) in steps.iter().enumerate() {
            let ended: Ended<bool> = match step {
                Step::Insert(new) => {
                    let e = inject(
                        self.ledger,
                        fault_at(i + 1),
                        Entry::repo().insert(&mut tx, new),
                    )
                    .await;
                    map(e, |row| {
                        self.check_read(&ctx, "insert's returned row", [&row]);
                        true
                    })
                }
                Step::Update(id, n) => {
                    let e = inject(
                        self.ledger,
                        fault_at(i + 1),
                        Entry::repo().update_columns(&mut tx, *id, [Entry::N.set(*n)]),
                    )
                    .await;
                    map(e, |row| {
                        self.check_read(&ctx, "update's returned row", row.iter());
                        row.is_some()
                    })
                }
                Step::Delete(id) => {
                    inject(
                        self.ledger,
                        fault_at(i + 1),
                        Entry::repo().delete(&mut tx, *id),
                    )
                    .await
                }
                Step::Duplicate(id) => {
                    let new = NewEntry {
                        id: *id,
                        writer: ctx.id().as_uuid(),
                        n: -1,
                    };
                    let e = inject(
                        self.ledger,
                        fault_at(i + 1),
                        Entry::repo().insert(&mut tx, &new),
                    )
                    .await;
                    if let Ended::Done(Ok(_)) = e {
                        self.ledger.violation(format!(
                            "tenant {}: inserting the key of its acknowledged row {id} again \
                             succeeded, so that row was missing",
                            ctx.slug()
                        ));
                    }
                    map(e, |_| true)
                }
            };
            match ended {
                Ended::Done(Ok(hit)) => {
                    if let (false, Step::Update(id, _) | Step::Delete(id)) = (hit, step) {
                        self.ledger.violation(format!(
                            "tenant {}: its acknowledged row {id} was not found by an update or \
                             delete in its own transaction",
                            ctx.slug()
                        ));
                    }
                }
                _ => {
                    failed = true;
                    break;
                }
            }
        }
        let outcomes = writes(&steps);
        if failed {
            drop(tx);
            self.record_tx(tenant, &ctx, &outcomes, Outcome::Failed);
            return;
        }
        let outcome = match end {
            0 => {
                let _ = tx.rollback().await;
                Outcome::Failed
            }
            1 => {
                drop(tx);
                Outcome::Failed
            }
            _ => inject(self.ledger, fault_at(steps.len() + 1), tx.commit())
                .await
                .outcome(),
        };
        self.record_tx(tenant, &ctx, &outcomes, outcome);
    }

    /// Writes a transaction's steps into the ledger once its fate is known.
    fn record_tx(&mut self, tenant: usize, ctx: &TenantCtx, steps: &[TxWrite], outcome: Outcome) {
        for step in steps {
            match *step {
                TxWrite::Insert(id, n) => {
                    self.ledger.inserted(ctx.id().as_uuid(), id, n, outcome);
                    if outcome == Outcome::Ack {
                        self.mine.push((tenant, id));
                    }
                }
                TxWrite::Update(id, n) => {
                    self.ledger.updated(id, n, outcome, true);
                    if outcome == Outcome::Unknown {
                        self.forget(id);
                    }
                }
                TxWrite::Delete(id) => {
                    self.ledger.deleted(id, outcome);
                    if outcome != Outcome::Failed {
                        self.forget(id);
                    }
                }
            }
        }
    }

    fn forget(&mut self, id: Uuid) {
        self.mine.retain(|(_, m)| *m != id);
    }

    async fn update(&mut self) {
        let Some((_, tenant, id)) = self.pick_mine() else {
            return self.insert(0).await;
        };
        let ctx = self.w.resolve(tenant).await;
        let n = self.rng.below(1_000) as i32;
        let fault = self.fault();
        let ended = inject(
            self.ledger,
            fault,
            Entry::repo().update_columns(&ctx, id, [Entry::N.set(n)]),
        )
        .await;
        let outcome = ended.outcome();
        let found = match ended.ok() {
            Some(Some(row)) => {
                self.check_read(&ctx, "update's returned row", [&row]);
                true
            }
            Some(None) => {
                self.ledger.violation(format!(
                    "tenant {}: its acknowledged row {id} was not found by an update",
                    ctx.slug()
                ));
                false
            }
            None => false,
        };
        self.ledger.updated(id, n, outcome, found);
        if outcome == Outcome::Unknown {
            self.forget(id);
        }
    }

    async fn delete(&mut self) {
        let Some((_, tenant, id)) = self.pick_mine() else {
            return;
        };
        let ctx = self.w.resolve(tenant).await;
        let fault = self.fault();
        let ended = inject(self.ledger, fault, Entry::repo().delete(&ctx, id)).await;
        let outcome = ended.outcome();
        if let Ended::Done(Ok(false)) = ended {
            self.ledger.violation(format!(
                "tenant {}: its acknowledged row {id} was not found by a delete",
                ctx.slug()
            ));
        }
        self.ledger.deleted(id, outcome);
        if outcome != Outcome::Failed {
            self.forget(id);
        }
    }

    /// Reads one of this task's rows back: present, with the value last acknowledged.
    async fn get(&mut self) {
        let Some((_, tenant, id)) = self.pick_mine() else {
            return;
        };
        let ctx = self.w.resolve(tenant).await;
        let fault = self.fault();
        let expect = self.ledger.expect(id).expect("a row of the ledger");
        match inject(self.ledger, fault, Entry::repo().get(&ctx, id)).await {
            Ended::Done(Ok(Some(row))) => {
                self.check_read(&ctx, "get", [&row]);
                if !expect.ns.contains(&row.n) {
                    self.ledger.violation(format!(
                        "tenant {}: row {id} reads n = {}, acknowledged {:?}",
                        ctx.slug(),
                        row.n,
                        expect.ns
                    ));
                }
            }
            Ended::Done(Ok(None)) => self.ledger.violation(format!(
                "tenant {}: its acknowledged row {id} is missing",
                ctx.slug()
            )),
            _ => {}
        }
    }

    async fn query(&mut self, tenant: usize) {
        let ctx = self.w.resolve(tenant).await;
        let from = self.rng.below(1_000) as i32;
        let limit = 1 + self.rng.below(50) as i64;
        let fault = self.fault();
        let q = Entry::repo()
            .query()
            .filter(Entry::N.ge(from))
            .order_by(Entry::N.asc())
            .limit(limit);
        if let Some(rows) = inject(self.ledger, fault, q.fetch_all(&ctx)).await.ok() {
            self.check_read(&ctx, "query", &rows);
        }
    }

    /// Reads a stream on a pooled connection, and drops it after a few rows (or is cancelled).
    async fn stream(&mut self, tenant: usize) {
        let ctx = self.w.resolve(tenant).await;
        let take = self.rng.below(20);
        let fault = self.fault();
        let q = Entry::repo().query().order_by(Entry::N.desc());
        let read = async {
            let mut rows = q.fetch(&ctx);
            let mut got = Vec::new();
            while got.len() < take {
                match rows.next().await {
                    Some(row) => got.push(row?),
                    None => return Ok((got, false)),
                }
            }
            Ok((got, true))
        };
        if let Some((rows, dropped)) = inject(self.ledger, fault, read).await.ok() {
            self.check_read(&ctx, "stream", &rows);
            if dropped {
                self.ledger.count("fault.stream_dropped");
            }
        }
    }

    /// A stream dropped part-way inside a transaction, which then goes on: a write after it
    /// must commit.
    async fn stream_in_transaction(&mut self, tenant: usize) {
        let ctx = self.w.resolve(tenant).await;
        let take = self.rng.below(10);
        let new = self.new_entry(&ctx);
        let fault = self.fault();
        let begin_fault = self.fault();
        let Some(mut tx) = inject(self.ledger, begin_fault, ctx.begin()).await.ok() else {
            return;
        };
        let got = {
            let q = Entry::repo().query();
            let read = async {
                let mut rows = q.fetch(&mut tx);
                let mut got = Vec::new();
                while got.len() < take {
                    match rows.next().await {
                        Some(row) => got.push(row?),
                        None => break,
                    }
                }
                Ok(got)
            };
            inject(self.ledger, fault, read).await
        };
        let Some(rows) = got.ok() else {
            // Cancelled or failed mid-stream: the transaction is dropped.
            return;
        };
        self.check_read(&ctx, "stream in a transaction", &rows);
        if rows.len() == take {
            // Dropped before its end (or exactly at it: the stream was not asked again).
            self.ledger.count("fault.stream_dropped");
        }
        let written = inject(
            self.ledger,
            Fault::None,
            Entry::repo().insert(&mut tx, &new),
        )
        .await;
        let outcome = match written {
            Ended::Done(Ok(_)) => inject(self.ledger, Fault::None, tx.commit())
                .await
                .outcome(),
            other => match other.outcome() {
                Outcome::Ack => unreachable!(),
                _ => Outcome::Failed,
            },
        };
        self.ledger
            .inserted(ctx.id().as_uuid(), new.id, new.n, outcome);
        if outcome == Outcome::Ack {
            self.mine.push((tenant, new.id));
        }
    }

    /// Scoped raw SQL: a grouped count by writer, and rows with a bound parameter.
    async fn raw(&mut self, tenant: usize) {
        let ctx = self.w.resolve(tenant).await;
        let fault = self.fault();
        if self.rng.chance(50) {
            let q = Entry::repo()
                .raw_as::<(Uuid, i64)>("SELECT writer, count(*) FROM {entries} GROUP BY writer");
            if let Some(groups) = inject(self.ledger, fault, q.fetch_all(&ctx)).await.ok() {
                for (writer, n) in groups {
                    if writer != ctx.id().as_uuid() {
                        self.ledger.violation(format!(
                            "raw SQL: tenant {} counted {n} rows written by tenant {writer}",
                            ctx.slug()
                        ));
                    }
                }
            }
        } else {
            let from = self.rng.below(1_000) as i32;
            let q = Entry::repo()
                .raw("SELECT e.* FROM {entries} e WHERE e.n >= $1 ORDER BY e.n LIMIT 40")
                .bind(from);
            if let Some(rows) = inject(self.ledger, fault, q.fetch_all(&ctx)).await.ok() {
                self.check_read(&ctx, "raw SQL", &rows);
            }
        }
    }

    /// A cross-tenant report over a few tenants: every row comes tagged with the tenant that
    /// wrote it.
    async fn report(&mut self) {
        let ids = self.w.tenant_ids();
        let some: Vec<TenantId> = (0..1 + self.rng.below(8))
            .map(|_| TenantId::from_uuid(ids[self.rng.below(ids.len())]))
            .collect();
        let fault = self.fault();
        if self.rng.chance(70) {
            let r = Entry::repo()
                .report()
                .tenants(&some)
                .order_by(Entry::N.desc())
                .limit(1 + self.rng.below(60) as i64);
            if let Some(rows) = inject(self.ledger, fault, r.fetch_all(&self.w.su))
                .await
                .ok()
            {
                for (tenant, row) in rows {
                    if row.writer != tenant.as_uuid() {
                        self.ledger.violation(format!(
                            "report: row {} tagged tenant {tenant} was written by tenant {}",
                            row.id, row.writer
                        ));
                    }
                }
            }
        } else {
            let r = Entry::repo().report().tenants(&some);
            let agg = r.aggregate(Agg::count());
            let _ = inject(self.ledger, fault, agg.fetch(&self.w.su)).await;
        }
    }

    /// SQL written around the library, on the library's own pool: the connection it gets
    /// carries no tenant, no cross-tenant setting, no open transaction and the default search
    /// path; with row-level security on, it reads no tenant's rows.
    async fn around_the_library(&mut self) {
        let mut conn = match self.w.pool.acquire().await {
            Ok(c) => c,
            Err(_) => return,
        };
        if let Err(e) =
            crate::invariants::check_session(self.w, &mut conn, "around the library").await
        {
            self.ledger.violation(e);
        }
    }

    /// A task that panics inside a transaction after writing: caught as a `JoinError`; its
    /// writes must be gone.
    async fn panic(&mut self, tenant: usize) {
        let ctx = self.w.resolve(tenant).await;
        let news: Vec<NewEntry> = (0..1 + self.rng.below(3))
            .map(|_| self.new_entry(&ctx))
            .collect();
        let writes = news.clone();
        let task_ctx = ctx.clone();
        let handle = tokio::spawn(async move {
            let mut tx: TenantTx = task_ctx.begin().await?;
            for new in &writes {
                Entry::repo().insert(&mut tx, new).await?;
            }
            std::panic::panic_any(PANIC);
            #[allow(unreachable_code)]
            Ok::<(), Error>(())
        });
        match handle.await {
            Err(e) if e.is_panic() => self.ledger.count("fault.panic_in_transaction"),
            Err(e) => panic!("the panicking task: {e}"),
            Ok(_) => {}
        }
        for new in &news {
            self.ledger
                .inserted(ctx.id().as_uuid(), new.id, new.n, Outcome::Failed);
        }
    }

    /// Suspends and resumes, or soft-deletes and restores, one of the world's tenants (the
    /// first call under a fault), and then resolves it again; or creates a tenant of its own,
    /// writes to it, and purges it.
    async fn lifecycle(&mut self, tenant: usize) {
        if self.rng.chance(30) {
            return self.temporary_tenant().await;
        }
        if !self.w.claim(tenant) {
            return;
        }
        let (tenancy, su) = (&self.w.tenancy, &self.w.su);
        let id = self.w.ctx(tenant).id();
        let fault = self.fault();
        if self.rng.chance(50) {
            self.ledger.count("lifecycle.suspend");
            let _ = inject(self.ledger, fault, tenancy.suspend(su, id)).await;
        } else {
            self.ledger.count("lifecycle.soft_delete");
            let _ = inject(self.ledger, fault, tenancy.soft_delete(su, id)).await;
        }
        // Back to active, whatever the faulted call did. A call cut off in flight may still
        // take effect later (its last message was sent, or sits in its connection's buffer),
        // so the status can change under this loop: it retries until it holds.
        let mut active = false;
        let mut last = None;
        for _ in 0..RETRIES {
            let back = match tenancy.tenant(su, id).await {
                Ok(t) if t.status == TenantStatus::Active => match tenancy.resolve_id(id).await {
                    Ok(ctx) => {
                        self.w.replace(tenant, ctx);
                        active = true;
                        break;
                    }
                    Err(e) => Err(e),
                },
                Ok(t) if t.status == TenantStatus::Suspended => {
                    tenancy.resume(su, id).await.map(drop)
                }
                Ok(_) => tenancy.restore(su, id).await.map(drop),
                Err(e) => Err(e),
            };
            if let Err(e) = back {
                last = Some(e);
                tokio::time::sleep(RETRY_PAUSE).await;
            }
        }
        if !active {
            self.ledger.violation(format!(
                "tenant {id} could not be made active in {RETRIES} attempts (last error: {last:?})"
            ));
        }
        self.w.release(tenant);
    }

    async fn temporary_tenant(&mut self) {
        let (tenancy, su) = (&self.w.tenancy, &self.w.su);
        let slug = format!("soak-tmp-{}-{}", self.index, self.temps);
        self.temps += 1;
        let placement = if self.rng.chance(50) {
            Placement::SharedTable
        } else {
            Placement::OwnSchema
        };
        self.ledger.count("lifecycle.create_write_purge");
        let fault = self.fault();
        let _ = inject(
            self.ledger,
            fault,
            tenancy.create_tenant(NewTenant::new(&slug, &slug).placement(placement)),
        )
        .await;
        let Ok(ctx) = tenancy.resolve_slug(&slug).await else {
            return;
        };
        let news: Vec<NewEntry> = (0..3).map(|_| self.new_entry(&ctx)).collect();
        let written = Entry::repo().insert_many(&ctx, &news).await;
        let outcome = match &written {
            Ok(_) => Outcome::Ack,
            Err(e) if in_doubt(e) => Outcome::Unknown,
            Err(_) => Outcome::Failed,
        };
        for new in &news {
            self.ledger
                .inserted(ctx.id().as_uuid(), new.id, new.n, outcome);
        }
        let id = ctx.id();
        let fault = self.fault();
        let _ = tenancy.soft_delete(su, id).await;
        let _ = inject(self.ledger, fault, tenancy.purge(su, id)).await;
        let mut last = None;
        for _ in 0..RETRIES {
            let step = match tenancy.tenant(su, id).await {
                Err(Error::TenantNotFound(_)) => {
                    self.ledger
                        .gone(&news.iter().map(|n| n.id).collect::<Vec<_>>());
                    return;
                }
                Ok(t) if t.status == TenantStatus::Deleted => tenancy.purge(su, id).await.map(drop),
                Ok(_) => tenancy.soft_delete(su, id).await.map(drop),
                Err(e) => Err(e),
            };
            if let Err(e) = step {
                last = Some(e);
                tokio::time::sleep(RETRY_PAUSE).await;
            }
        }
        self.ledger.violation(format!(
            "tenant {slug} could not be purged in {RETRIES} attempts (last error: {last:?})"
        ));
    }
}

/// A step of a transaction.
enum Step {
    Insert(NewEntry),
    Update(Uuid, i32),
    Delete(Uuid),
    /// An insert of a key the tenant already has: fails, and fails the transaction.
    Duplicate(Uuid),
}

/// A transaction's writes, for the ledger.
enum TxWrite {
    Insert(Uuid, i32),
    Update(Uuid, i32),
    Delete(Uuid),
}

fn writes(steps: &[Step]) -> Vec<TxWrite> {
    steps
        .iter()
        .filter_map(|s| match s {
            Step::Insert(new) => Some(TxWrite::Insert(new.id, new.n)),
            Step::Update(id, n) => Some(TxWrite::Update(*id, *n)),
            Step::Delete(id) => Some(TxWrite::Delete(*id)),
            Step::Duplicate(_) => None,
        })
        .collect()
}

fn map<T, U>(e: Ended<T>, f: impl FnOnce(T) -> U) -> Ended<U> {
    match e {
        Ended::Done(r) => Ended::Done(r.map(f)),
        Ended::Cancelled => Ended::Cancelled,
    }
}
