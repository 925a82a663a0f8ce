//! Adversarial review of the isolation guarantee (README "What is guaranteed"): each test is an
//! attack a careless or hostile user can write in safe Rust against the public API (a trait
//! impl, an option, a string, a cancelled future, a second handle, a concurrent change).
//!
//! Every test is an attack the library defeats. The review's first round broke seven; each was
//! fixed and its test made to assert the refusal. Two of them (a `notify_url` naming another
//! database, a listener behind PgBouncer without `notify_url`) are tested where the listener is:
//! `tests/revocation.rs` and `tests/pgbouncer.rs`.

mod common;

use sqlx::Row;

use std::time::{Duration, Instant};

use common::models::*;
use common::{SPINNER_SCHEMA, TestDb, create_tenants};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo};
use sqlx::{Decode, Encode, Postgres, Type};
use tenancy::{Error, Migrations, Placement, Tenancy, TenantCtx};
use uuid::Uuid;

const LONG_TTL: Duration = Duration::from_secs(3600);
/// How long a notification may take before a test calls it missed (normally milliseconds).
const DEADLINE: Duration = Duration::from_secs(10);

fn migrations() -> Migrations {
    Migrations::from_static(&[(1, "spinner app", SPINNER_SCHEMA)]).unwrap()
}

async fn handle_at(url: &str, max: u32) -> Tenancy {
    let tenancy = Tenancy::builder()
        .max_connections(max)
        .cache_ttl(LONG_TTL)
        .tenant_migrations(migrations())
        .connect(url)
        .await
        .unwrap();
    common::migrate_all(&tenancy).await;
    tenancy
}

fn new_spinner(name: &str) -> NewSpinner {
    NewSpinner {
        id: Uuid::new_v4(),
        name: name.to_owned(),
        color: None,
    }
}

async fn names(ctx: &TenantCtx) -> Vec<String> {
    let mut v: Vec<String> = Spinner::repo()
        .query()
        .fetch_all(ctx)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    v.sort();
    v
}

/// Polls `check` until it holds or [`DEADLINE`] passes; returns whether it held.
async fn within_deadline(mut check: impl AsyncFnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < DEADLINE {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

async fn is_revoked(ctx: &TenantCtx) -> bool {
    matches!(
        Spinner::repo().count(ctx).await,
        Err(Error::ContextRevoked { .. })
    )
}

// ---------------------------------------------------------------------------------------------
// 1. conn.rs: cancellation at every await of a unit of work, on a one-connection pool.
// ---------------------------------------------------------------------------------------------

/// Tenant A's transactions are cancelled by timeouts swept across every await (BEGIN in flight,
/// inside, INSERT in flight, COMMIT in flight); after each, tenant B borrows the only connection
/// and writes outside a transaction. If A's cancellation left a transaction open, B's
/// acknowledged write would be inside it and vanish with it; if it left state, B's raw read
/// would see an open transaction. Every B write must survive, and A keeps only what it may have
/// committed.
#[tokio::test]
async fn cancelled_transactions_never_swallow_the_next_tenants_write() {
    let db = TestDb::new("adv_cancel").await;
    // One connection, which the test also borrows to read the session the next borrower gets
    // (raw SQL may not read settings).
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&db.url)
        .await
        .unwrap();
    let tenancy = Tenancy::builder()
        .cache_ttl(LONG_TTL)
        .tenant_migrations(migrations())
        .from_pool(pool.clone())
        .await
        .unwrap();
    common::migrate_all(&tenancy).await;
    let ctxs = create_tenants(
        &tenancy,
        &[
            ("adv-a", Placement::SharedTable),
            ("adv-b", Placement::SharedTable),
        ],
    )
    .await;
    let (a, b) = (&ctxs[0], &ctxs[1]);
    let (mut a_ok, mut a_tried, mut b_ok) = (0usize, 0usize, 0usize);
    for step in 0..120u64 {
        a_tried += 1;
        let work = async {
            let mut tx = a.begin().await?;
            Spinner::repo()
                .insert(&mut tx, &new_spinner(&format!("a-{step}")))
                .await?;
            tx.commit().await
        };
        if let Ok(Ok(())) = tokio::time::timeout(Duration::from_micros(step * 40), work).await {
            a_ok += 1;
        }
        // The next borrower: must be outside any transaction, and its write must stay.
        // The simple-query protocol, in which `now()` (the transaction's start) equals
        // `statement_timestamp()` only outside a transaction block.
        let row = sqlx::raw_sql(
            "SELECT coalesce(current_setting('tenancy.tenant_id', true), ''), \
             current_setting('search_path'), now() = statement_timestamp()",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        let fresh: (String, String, bool) = (row.get(0), row.get(1), row.get(2));
        assert_eq!(
            (fresh.0.as_str(), fresh.1.as_str(), fresh.2),
            ("", "\"$user\", public", true),
            "step {step}: the next borrower got A's state (setting, search path, or an open transaction)"
        );
        Spinner::repo()
            .insert(b, &new_spinner(&format!("b-{step}")))
            .await
            .unwrap();
        b_ok += 1;
    }
    let b_rows = Spinner::repo().count(b).await.unwrap();
    assert_eq!(b_rows as usize, b_ok, "an acknowledged write of B was lost");
    let a_rows = Spinner::repo().count(a).await.unwrap() as usize;
    assert!(
        a_ok <= a_rows && a_rows <= a_tried,
        "{a_ok} <= {a_rows} <= {a_tried}"
    );
}

/// A task panics inside a transaction after its write; the one connection goes to tenant B
/// next. The panicked write must not appear, and B's write must not join A's transaction.
#[tokio::test]
async fn a_panic_inside_a_transaction_leaves_nothing_for_the_next_borrower() {
    let db = TestDb::new("adv_panic").await;
    let tenancy = handle_at(&db.url, 1).await;
    let ctxs = create_tenants(
        &tenancy,
        &[
            ("adv-pa", Placement::SharedTable),
            ("adv-pb", Placement::SharedTable),
        ],
    )
    .await;
    let a = ctxs[0].clone();
    let joined = tokio::spawn(async move {
        let mut tx = a.begin().await.unwrap();
        Spinner::repo()
            .insert(&mut tx, &new_spinner("panicked"))
            .await
            .unwrap();
        panic!("the handler panics mid-transaction");
    })
    .await;
    assert!(joined.is_err());
    Spinner::repo()
        .insert(&ctxs[1], &new_spinner("b"))
        .await
        .unwrap();
    assert_eq!(names(&ctxs[0]).await, Vec::<String>::new());
    assert_eq!(names(&ctxs[1]).await, vec!["b".to_owned()]);
}

/// A stream of rows dropped after its first row, then the same connection lent to tenant B.
#[tokio::test]
async fn a_dropped_stream_hands_nothing_to_the_next_tenant() {
    use futures_util::StreamExt;
    let db = TestDb::new("adv_stream").await;
    let tenancy = handle_at(&db.url, 1).await;
    let ctxs = create_tenants(
        &tenancy,
        &[
            ("adv-sa", Placement::SharedTable),
            ("adv-sb", Placement::SharedTable),
        ],
    )
    .await;
    for i in 0..50 {
        Spinner::repo()
            .insert(&ctxs[0], &new_spinner(&format!("a-{i}")))
            .await
            .unwrap();
    }
    for _ in 0..5 {
        let mut rows = Spinner::repo()
            .raw("SELECT s.* FROM {spinners} s, generate_series(1, 200) g")
            .fetch(&ctxs[0]);
        let _ = rows.next().await;
        drop(rows);
        assert_eq!(names(&ctxs[1]).await, Vec::<String>::new());
    }
}

// ---------------------------------------------------------------------------------------------
// 2. bind.rs: a column type whose encoder forges the tenant's argument.
// ---------------------------------------------------------------------------------------------

/// A column value whose `Encode` writes its text, then a fake length prefix and another
/// tenant's id, hoping the server reads them as the next (tenant) argument; and whose
/// `size_hint` lies.
#[derive(Debug, Clone, PartialEq)]
pub struct Forged(String);

static VICTIM: std::sync::Mutex<Option<Uuid>> = std::sync::Mutex::new(None);

impl Type<Postgres> for Forged {
    fn type_info() -> PgTypeInfo {
        <String as Type<Postgres>>::type_info()
    }
    fn compatible(ty: &PgTypeInfo) -> bool {
        <String as Type<Postgres>>::compatible(ty)
    }
}

impl Encode<'_, Postgres> for Forged {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        let victim = VICTIM.lock().unwrap().unwrap_or_default();
        // Rewind over anything before us the buffer exposes, then forge a tail.
        let len = buf.len();
        buf.truncate(len.saturating_sub(4));
        buf.extend_from_slice(&(self.0.len() as i32).to_be_bytes());
        buf.extend_from_slice(self.0.as_bytes());
        buf.extend_from_slice(&16_i32.to_be_bytes());
        buf.extend_from_slice(victim.as_bytes());
        Ok(IsNull::No)
    }
    fn size_hint(&self) -> usize {
        0
    }
}

impl<'r> Decode<'r, Postgres> for Forged {
    fn decode(value: sqlx::postgres::PgValueRef<'r>) -> Result<Self, BoxDynError> {
        <String as Decode<Postgres>>::decode(value).map(Forged)
    }
}

mod forged {
    use super::Forged;
    use tenancy::tenant_scoped;
    use uuid::Uuid;

    #[tenant_scoped(table = "spinners", new_derive(Debug, Clone))]
    #[derive(Debug, Clone, PartialEq)]
    pub struct ForgedSpinner {
        #[tenancy(id)]
        pub id: Uuid,
        pub name: String,
        pub color: Option<Forged>,
    }
}

/// Through the repository (insert, update) and raw SQL: the forged encoder never moves a row or
/// a read into the victim tenant.
#[tokio::test]
async fn an_encoder_that_forges_the_tenant_argument_reaches_only_its_own_rows() {
    use forged::*;
    let db = TestDb::new("adv_forge").await;
    let tenancy = handle_at(&db.url, 2).await;
    let ctxs = create_tenants(
        &tenancy,
        &[
            ("adv-fa", Placement::SharedTable),
            ("adv-fv", Placement::SharedTable),
        ],
    )
    .await;
    let (attacker, victim) = (&ctxs[0], &ctxs[1]);
    *VICTIM.lock().unwrap() = Some(victim.id().as_uuid());
    Spinner::repo()
        .insert(victim, &new_spinner("victim's"))
        .await
        .unwrap();

    let planted = ForgedSpinner::repo()
        .insert(
            attacker,
            &NewForgedSpinner {
                id: Uuid::new_v4(),
                name: "planted".into(),
                color: Some(Forged("red".into())),
            },
        )
        .await;
    if let Ok(row) = &planted {
        let mut row = row.clone();
        row.color = Some(Forged("blue".into()));
        let _ = ForgedSpinner::repo().update(attacker, &row).await;
    }
    let read: tenancy::Result<Vec<(String,)>> = Spinner::repo()
        .raw_as::<(String,)>("SELECT s.name FROM {spinners} s WHERE s.color IS DISTINCT FROM $1")
        .bind(Forged("x".into()))
        .fetch_all(attacker)
        .await;
    if let Ok(rows) = read {
        assert!(rows.iter().all(|r| r.0 != "victim's"), "{rows:?}");
    }
    assert_eq!(names(victim).await, vec!["victim's".to_owned()]);
}

/// Pages are decoded as their rows arrive, so a row that fails to decode stops the read with
/// rows still unread on the connection. Nothing of them reaches the next borrower of that one
/// connection, with and without row-level security: it reads its own rows, complete.
#[tokio::test]
async fn a_page_that_fails_to_decode_half_way_leaves_nothing_on_the_connection() {
    use common::picky::*;
    let plain = TestDb::new("adv_picky").await;
    let with_rls = common::Rls::new("adv_picky_rls").await;
    for rls in [false, true] {
        let tenancy = if rls {
            Tenancy::builder()
                .row_level_security(true)
                .cache_ttl(LONG_TTL)
                .tenant_migrations(common::spinner_rls_migrations())
                .from_pool(with_rls.app_pool(1).await)
                .await
                .unwrap()
        } else {
            Tenancy::builder()
                .max_connections(1)
                .cache_ttl(LONG_TTL)
                .tenant_migrations(migrations())
                .connect(&plain.url)
                .await
                .unwrap()
        };
        common::migrate_all(&tenancy).await;
        let (a, b) = (format!("adv-pa-{rls}"), format!("adv-pb-{rls}"));
        let ctxs = create_tenants(
            &tenancy,
            &[(&a, Placement::SharedTable), (&b, Placement::SharedTable)],
        )
        .await;
        let (failing, next) = (&ctxs[0], &ctxs[1]);
        for name in poisoned_names() {
            Spinner::repo()
                .insert(failing, &new_spinner(&name))
                .await
                .unwrap();
        }
        for name in ["b1", "b2"] {
            Spinner::repo()
                .insert(next, &new_spinner(name))
                .await
                .unwrap();
        }
        let page = PickySpinner::repo()
            .query()
            .order_by(PickySpinner::NAME.desc())
            .fetch_all(failing)
            .await;
        assert!(
            matches!(page, Err(Error::Database(sqlx::Error::ColumnDecode { .. }))),
            "rls {rls}: {page:?}"
        );
        assert_eq!(names(next).await, ["b1", "b2"], "rls {rls}");
        assert_eq!(names(failing).await.len(), 400, "rls {rls}");
        tenancy.close().await;
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Model descriptions against the database: the search path decides which table they name.
// ---------------------------------------------------------------------------------------------

/// A careless connection string: `options=-c search_path=<an own-schema tenant's schema>,public`
/// (or the same `ALTER ROLE ... SET search_path`). Shared-table statements and the model check
/// name tables unqualified, so a shared tenant's write lands in the own-schema tenant's table.
#[tokio::test]
async fn a_search_path_in_the_url_cannot_redirect_shared_tenants() {
    // The attack: connect a handle with `?options=-c search_path=<own's schema>,public`, so that
    // a shared tenant's unqualified statements resolve to the own-schema tenant's table. Such a
    // handle is refused at connect, and nothing is written anywhere.
    let db = TestDb::new("adv_searchpath").await;
    let setup = handle_at(&db.url, 2).await;
    create_tenants(
        &setup,
        &[
            ("adv-own", Placement::OwnSchema),
            ("adv-shr", Placement::SharedTable),
        ],
    )
    .await;
    let mut conn = db.connect().await;
    let schema: String =
        sqlx::query_scalar("SELECT schema_name FROM tenancy.tenants WHERE slug = 'adv-own'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    let url = format!("{}?options=-c%20search_path%3D{schema}%2Cpublic", db.url);
    let careless = Tenancy::builder()
        .max_connections(2)
        .tenant_migrations(migrations())
        .connect(&url)
        .await;
    assert!(
        matches!(careless, Err(tenancy::Error::SearchPath(..))),
        "a search path naming a tenant schema was accepted: {:?}",
        careless.map(|_| ())
    );
    let in_own: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM \"{schema}\".spinners"
    )))
    .fetch_one(&mut conn)
    .await
    .unwrap();
    let shared_rows: i64 = sqlx::query_scalar("SELECT count(*) FROM public.spinners")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!((in_own, shared_rows), (0, 0));
}

mod swapped {
    use tenancy::tenant_scoped;
    use uuid::Uuid;

    /// Claims the key column `id` is the tenant column, and maps the real tenant column as its
    /// key: an insert would then bind the caller's tenant as `id` and the field as `tenant_id`.
    #[tenant_scoped(table = "spinners", tenant_column = "id", new_derive(Debug, Clone))]
    #[derive(Debug, Clone, PartialEq)]
    pub struct Swapped {
        #[tenancy(id)]
        pub tenant_id: Uuid,
        pub name: String,
    }
}

/// A description that swaps the tenant column with the key: refused before its first statement,
/// and the victim's tenant gains no row.
#[tokio::test]
async fn a_model_that_swaps_the_tenant_column_and_the_key_is_refused() {
    use swapped::*;
    let db = TestDb::new("adv_swap").await;
    let tenancy = handle_at(&db.url, 2).await;
    let ctxs = create_tenants(
        &tenancy,
        &[
            ("adv-wa", Placement::SharedTable),
            ("adv-wv", Placement::SharedTable),
        ],
    )
    .await;
    let planted = Swapped::repo()
        .insert(
            &ctxs[0],
            &NewSwapped {
                tenant_id: ctxs[1].id().as_uuid(),
                name: "planted".into(),
            },
        )
        .await;
    assert!(planted.is_err(), "{planted:?}");
    let read = Swapped::repo().get(&ctxs[0], ctxs[1].id().as_uuid()).await;
    assert!(read.is_err(), "{read:?}");
    assert!(tenancy.verify::<Swapped>().await.is_err());
    assert_eq!(names(&ctxs[1]).await, Vec::<String>::new());
}

// ---------------------------------------------------------------------------------------------
// 4. registry/notify.rs: revocation across handles; purged ids.
// ---------------------------------------------------------------------------------------------

/// A transaction opened through another handle before a suspension: the suspension waits for
/// it (the registry row is locked by the transaction's foreign-key check), then reaches the
/// other handle, whose context is refused from then on, also for a new transaction.
#[tokio::test]
async fn a_suspension_racing_an_open_transaction_of_another_handle_stops_it_after() {
    let db = TestDb::new("adv_opentx").await;
    let a = handle_at(&db.url, 2).await;
    let b = handle_at(&db.url, 2).await;
    create_tenants(&a, &[("adv-tx", Placement::SharedTable)]).await;
    let held = b.resolve_slug("adv-tx").await.unwrap();
    let mut tx = held.begin().await.unwrap();
    Spinner::repo()
        .insert(&mut tx, &new_spinner("before"))
        .await
        .unwrap();
    let id = held.id();
    let suspension = tokio::spawn(async move {
        let su = a.superuser("adv", "suspend").await.unwrap();
        a.suspend(&su, id).await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let during = Spinner::repo()
        .insert(&mut tx, &new_spinner("during"))
        .await;
    let committed = tx.commit().await;
    suspension.await.unwrap().unwrap();
    assert!(within_deadline(async || is_revoked(&held).await).await);
    // A new transaction may begin, but writes nothing.
    if let Ok(mut late) = held.begin().await {
        let wrote = Spinner::repo()
            .insert(&mut late, &new_spinner("after"))
            .await;
        assert!(
            matches!(wrote, Err(Error::ContextRevoked { .. })),
            "{wrote:?}"
        );
        // Nothing was sent, so its commit commits nothing (it says Ok: see the count below).
        let _ = late.commit().await;
    }
    // What the transaction did before the suspension committed is all or nothing.
    let mut conn = db.connect().await;
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM spinners WHERE tenant_id = $1")
        .bind(id.as_uuid())
        .fetch_one(&mut conn)
        .await
        .unwrap();
    match (during, committed) {
        (Ok(_), Ok(())) => assert_eq!(rows, 2),
        _ => assert_eq!(rows, 0),
    }
}

/// After a purge by one handle, another handle that resolved the tenant before cannot bring the
/// id back, and neither handle can create a tenant under it.
#[tokio::test]
async fn a_purged_id_cannot_be_reused_from_any_handle() {
    let db = TestDb::new("adv_tomb").await;
    let a = handle_at(&db.url, 2).await;
    let b = handle_at(&db.url, 2).await;
    create_tenants(&a, &[("adv-gone", Placement::OwnSchema)]).await;
    let held = b.resolve_slug("adv-gone").await.unwrap();
    let id = held.id();
    let su = a.superuser("adv", "purge").await.unwrap();
    a.soft_delete(&su, id).await.unwrap();
    a.purge(&su, id).await.unwrap();
    for h in [&a, &b] {
        let su = h.superuser("adv", "reuse").await.unwrap();
        let again = h
            .create_tenant_with_id(&su, tenancy::NewTenant::new("adv-gone", "again"), id)
            .await;
        assert!(matches!(again, Err(Error::TenantIdPurged(_))), "{again:?}");
    }
    assert!(within_deadline(async || is_revoked(&held).await).await);
}

/// A migration that sets the search path for the session (`SET`, not `SET LOCAL`, as a
/// pg_dump header or a careless script does): on a one-connection handle, the next tenant's
/// statements must find the default search path.
#[tokio::test]
async fn a_migration_leaves_no_session_setting_on_the_pool() {
    // Reproduction: a one-connection handle whose tenant migration 2 is
    // `SET search_path TO pg_catalog, public; SET row_security TO off; SET SESSION
    // statement_timeout TO 12345`; after `migrate_tenants` (or `create_tenant` of an own-schema
    // tenant, which runs the same script) every tenant's statements on that connection run with
    // those settings (seen: search_path "pg_catalog, public", row_security off, 12345ms). Run
    // create_tenant before migrate_tenants and the shared migration itself fails: "permission
    // denied to create pg_catalog.spinners". Fix: end every migration/provisioning unit by
    // closing its connection (or `DISCARD ALL` before release), and refuse session-level SET /
    // set_config(.., false) in migration text with the file and line.
    let db = TestDb::new("adv_migset").await;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&db.url)
        .await
        .unwrap();
    let tenancy = Tenancy::builder()
        .tenant_migrations(
            Migrations::from_static(&[
                (1, "spinner app", SPINNER_SCHEMA),
                (
                    2,
                    "careless header",
                    "SET search_path TO pg_catalog, public; SET row_security TO off; \
                     SET SESSION statement_timeout TO 12345",
                ),
            ])
            .unwrap(),
        )
        .from_pool(pool.clone())
        .await
        .unwrap();
    let migrated = async {
        let su = tenancy.superuser("adv", "migrate").await?;
        tenancy
            .migrate_tenants(&su, tenancy::MigrateOptions::default())
            .await
    }
    .await;
    assert!(
        migrated.as_ref().is_ok_and(|r| r.is_success()),
        "{migrated:?}"
    );
    let ctxs = create_tenants(
        &tenancy,
        &[
            ("adv-mo", Placement::OwnSchema),
            ("adv-ma", Placement::SharedTable),
        ],
    )
    .await;
    if migrated.is_ok() {
        for ctx in &ctxs {
            // Each tenant's statements still work, and the one pooled connection is clean.
            Spinner::repo().count(ctx).await.unwrap();
            let seen: (String, String, String) = sqlx::query_as(
                "SELECT current_setting('search_path'), current_setting('row_security'), \
                 current_setting('statement_timeout')",
            )
            .fetch_one(&pool)
            .await
            .unwrap();
            assert_eq!(
                (seen.0.as_str(), seen.1.as_str(), seen.2.as_str()),
                ("\"$user\", public", "on", "0"),
                "a migration's session setting stayed on the pooled connection"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Raw SQL: names hidden in strings, and views the deny-list does not know.
// ---------------------------------------------------------------------------------------------

/// Tenant B's raw query with a literal is cached as a prepared statement on the pooled
/// connection; tenant A, on the same connection, reads its text from
/// `pg_backend_memory_contexts` (the `ident` of its CachedPlanSource).
#[tokio::test]
async fn raw_sql_cannot_read_another_tenants_statement_text() {
    // Reproduction: one-connection pool; B runs raw SQL with the literal 'b-secret-literal';
    // A runs `SELECT m.ident FROM pg_backend_memory_contexts m ...` with a {spinners}
    // placeholder and reads B's statement text. Fix: the allow-list of issue 10 item 4 (no
    // system views at all); short of it, add pg_backend_memory_contexts (and
    // pg_get_backend_memory_contexts) to SYSTEM_RELATIONS.
    let db = TestDb::new("adv_memctx").await;
    let tenancy = handle_at(&db.url, 1).await;
    let ctxs = create_tenants(
        &tenancy,
        &[
            ("adv-ma", Placement::SharedTable),
            ("adv-mb", Placement::SharedTable),
        ],
    )
    .await;
    let _ = Spinner::repo()
        .raw("SELECT s.* FROM {spinners} s WHERE s.name = 'b-secret-literal'")
        .fetch_all(&ctxs[1])
        .await
        .unwrap();
    let seen = Spinner::repo()
        .raw_as::<(Option<String>,)>(
            "SELECT m.ident FROM pg_backend_memory_contexts m \
             WHERE EXISTS (SELECT 1 FROM {spinners}) OR true",
        )
        .fetch_all(&ctxs[0])
        .await;
    if let Ok(rows) = seen {
        assert!(
            !rows.iter().any(|r| r
                .0
                .as_deref()
                .is_some_and(|t| t.contains("b-secret-literal"))),
            "tenant A read tenant B's statement text"
        );
    }
}

/// The table's name in a string, not an identifier: `pg_class.reltuples` counts every tenant's
/// rows (the README refuses views that show other tenants' counts).
#[tokio::test]
async fn raw_sql_cannot_count_other_tenants_rows_through_pg_class() {
    // Reproduction: B has 40 spinners, A none; after ANALYZE, A's raw
    // `SELECT c.reltuples FROM pg_class c WHERE c.relname = 'spinners'` (with a {spinners}
    // placeholder) returns 40. Fix: the allow-list of issue 10 item 4 (no system catalog);
    // short of it, refuse pg_class/pg_stat_get_* and every regclass/relname comparison.
    let db = TestDb::new("adv_reltuples").await;
    let tenancy = handle_at(&db.url, 2).await;
    let ctxs = create_tenants(
        &tenancy,
        &[
            ("adv-ra", Placement::SharedTable),
            ("adv-rb", Placement::SharedTable),
        ],
    )
    .await;
    for i in 0..40 {
        Spinner::repo()
            .insert(&ctxs[1], &new_spinner(&format!("b-{i}")))
            .await
            .unwrap();
    }
    db.exec("ANALYZE spinners").await;
    let seen = Spinner::repo()
        .raw_as::<(f32,)>(
            "SELECT c.reltuples FROM pg_class c \
             WHERE c.relname = 'spinners' AND (EXISTS (SELECT 1 FROM {spinners}) OR true)",
        )
        .fetch_all(&ctxs[0])
        .await;
    if let Ok(rows) = seen {
        assert!(
            rows.iter().all(|r| r.0 < 1.0),
            "tenant A counted tenant B's rows: {rows:?}"
        );
    }
}

/// `pg_settings` is a writable view: an `UPDATE` of it is a session-level `SET`, left on the
/// pooled connection. Tenant B points the search path at own-schema tenant `own`'s schema;
/// the next shared-table statements on that connection land there.
#[tokio::test]
async fn raw_sql_cannot_leave_a_setting_on_the_pooled_connection() {
    let db = TestDb::new("adv_pgsettings").await;
    let setup = handle_at(&db.url, 1).await;
    let ctxs = create_tenants(
        &setup,
        &[
            ("adv-sown", Placement::OwnSchema),
            ("adv-sb", Placement::SharedTable),
            ("adv-sc", Placement::SharedTable),
        ],
    )
    .await;
    let mut conn = db.connect().await;
    let schema: String =
        sqlx::query_scalar("SELECT schema_name FROM tenancy.tenants WHERE slug = 'adv-sown'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    let sql = format!(
        "WITH x AS (UPDATE pg_settings SET setting = '{schema}, public' \
         WHERE name = 'search_path' RETURNING name) \
         SELECT x.name FROM x, (SELECT count(*) FROM {{spinners}}) s"
    );
    let r = Spinner::repo()
        .raw_as::<(String,)>(sqlx::AssertSqlSafe(sql))
        .fetch_all(&ctxs[1])
        .await;
    assert!(r.is_err(), "UPDATE pg_settings ran: {r:?}");
    let wrote = Spinner::repo()
        .insert(&ctxs[2], &new_spinner("C's row"))
        .await;
    assert!(wrote.is_ok(), "{wrote:?}");
    let shared: i64 = sqlx::query_scalar("SELECT count(*) FROM public.spinners")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        shared, 1,
        "C's acknowledged write is not in the shared table"
    );
    assert_eq!(names(&ctxs[0]).await, Vec::<String>::new());
}

/// The user's predicate runs before the tenant filter: with no rows of its own, tenant A's
/// cast of a column to a number fails with an error that quotes tenant B's value.
#[tokio::test]
async fn raw_sql_predicates_never_see_another_tenants_rows() {
    // Reproduction: tenant B has rows named b-secret-N, tenant A none; A's raw
    // `SELECT s.* FROM {spinners} s WHERE has_schema_privilege(s.name, 'USAGE')` fails with
    // `schema "b-secret-0" does not exist`: the placeholder's CTE is inlined and the planner
    // evaluates A's predicate (same cost as the tenant's `=`) before the tenant filter. Fix:
    // fence the tenant's rows (`AS MATERIALIZED`, or a security-barrier subquery) so no user
    // expression sees another tenant's row; measure it in `raw_lookup_vs_repo`.
    let db = TestDb::new("adv_pushdown").await;
    let tenancy = handle_at(&db.url, 2).await;
    let ctxs = create_tenants(
        &tenancy,
        &[
            ("adv-pa", Placement::SharedTable),
            ("adv-pb", Placement::SharedTable),
        ],
    )
    .await;
    for i in 0..20 {
        Spinner::repo()
            .insert(&ctxs[1], &new_spinner(&format!("b-secret-{i}")))
            .await
            .unwrap();
    }
    db.exec("ANALYZE spinners").await;
    for sql in [
        "SELECT s.* FROM {spinners} s WHERE s.name::int = 1",
        "SELECT s.* FROM {spinners} s WHERE s.name::uuid IS NOT NULL",
        "SELECT s.* FROM {spinners} s WHERE int4(s.name) > 0 OR s.id IS NULL",
        "SELECT s.* FROM {spinners} s WHERE s.id::text = 'x' OR s.name::int = 1",
        "SELECT s.* FROM {spinners} s WHERE has_schema_privilege(s.name, 'USAGE')",
        "SELECT s.* FROM {spinners} s WHERE pg_catalog.to_regclass(s.name) IS NULL \
         AND has_table_privilege(s.name, 'SELECT')",
    ] {
        if let Err(e) = Spinner::repo().raw(sql).fetch_all(&ctxs[0]).await {
            assert!(
                !e.to_string().contains("b-secret"),
                "{sql}: tenant A's predicate saw tenant B's row: {e}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 5. Connecting: a dead server names itself and its cause, quickly.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn connecting_to_a_dead_port_says_where_and_why() {
    // A port nothing listens on (bound, then released).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = Tenancy::builder()
        .acquire_timeout(Duration::from_secs(2))
        .connect(&format!("postgres://postgres@127.0.0.1:{port}/postgres"))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");
    assert!(text.contains(&port.to_string()), "{text}");
    assert!(text.contains("refused"), "{text}");
}

// ---------------------------------------------------------------------------------------------
// 6. Raw SQL's fence verdict: what the server will run, not what the text suggests.
// ---------------------------------------------------------------------------------------------

/// A `numeric` zero sent in binary (no digits, weight 0, positive, scale 0): sqlx has no
/// numeric type without a feature this workspace leaves off.
struct NumericZero;

impl Type<Postgres> for NumericZero {
    fn type_info() -> PgTypeInfo {
        PgTypeInfo::with_oid(sqlx::postgres::types::Oid(1700))
    }
}

impl Encode<'_, Postgres> for NumericZero {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        buf.extend_from_slice(&[0; 8]);
        Ok(IsNull::No)
    }
}

/// The statement a raw query sent, read from `pg_stat_activity` while a lock held by the test
/// keeps it waiting on `spins` (so nothing depends on how fast anything runs).
async fn statement_sent(db: &TestDb, run: impl Future<Output = ()> + Send + 'static) -> String {
    statement_sent_on(db, "spins", run).await
}

/// [`statement_sent`] of a raw query on `table`.
async fn statement_sent_on(
    db: &TestDb,
    table: &str,
    run: impl Future<Output = ()> + Send + 'static,
) -> String {
    let mut locker = db.connect().await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "BEGIN; LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"
    )))
    .execute(&mut locker)
    .await
    .unwrap();
    let task = tokio::spawn(run);
    let mut watcher = db.connect().await;
    let mut seen = None;
    for _ in 0..2000 {
        seen = sqlx::query_scalar::<_, String>(
            "SELECT query FROM pg_stat_activity WHERE datname = current_database() \
             AND pid <> pg_backend_pid() AND wait_event_type = 'Lock' \
             AND query LIKE '%tenancy_scoped_' || $1 || '%'",
        )
        .bind(table)
        .fetch_optional(&mut watcher)
        .await
        .unwrap();
        if seen.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    sqlx::raw_sql("ROLLBACK")
        .execute(&mut locker)
        .await
        .unwrap();
    task.await.unwrap();
    seen.expect("the raw query never waited on the lock")
}

/// `s.duration > $1` reads like `int4 > int4` (leakproof, so the tenant's CTE was left
/// inlinable), but bound with a `numeric` the server runs `numeric_gt`, which is not leakproof:
/// PostgreSQL may then evaluate it on other tenants' rows before the tenant filter. The verdict
/// now judges the operator by the type the parameter was bound with, and fences.
#[tokio::test]
async fn a_parameter_of_another_type_than_its_column_fences_the_tenants_rows() {
    let db = TestDb::new("adv_paramtype").await;
    let tenancy = handle_at(&db.url, 2).await;
    let ctxs = create_tenants(&tenancy, &[("adv-pa", Placement::SharedTable)]).await;
    let ctx = ctxs[0].clone();
    let sent = statement_sent(&db, async move {
        let n = Spin::repo()
            .raw_as::<(i64,)>("SELECT count(*) FROM {spins} s WHERE s.duration > $1")
            .bind(NumericZero)
            .fetch_one(&ctx)
            .await
            .unwrap();
        assert_eq!(n.0, 0);
    })
    .await;
    assert!(
        sent.contains("AS MATERIALIZED"),
        "int4 > numeric ran unfenced: {sent}"
    );
    // The same text bound with the column's own type keeps its leakproof verdict (and is a
    // separate entry of the verdict cache: the numeric one above must not answer for it).
    let ctx = ctxs[0].clone();
    let sent = statement_sent(&db, async move {
        Spin::repo()
            .raw_as::<(i64,)>("SELECT count(*) FROM {spins} s WHERE s.duration > $1")
            .bind(0_i32)
            .fetch_one(&ctx)
            .await
            .unwrap();
    })
    .await;
    assert!(!sent.contains("MATERIALIZED"), "{sent}");
    // An int8 value: the server runs int84lt, a built-in taking exactly both types, leakproof.
    // (Other text: a connection that prepared the text above keeps its int4 parameter.)
    let ctx = ctxs[0].clone();
    let sent = statement_sent(&db, async move {
        Spin::repo()
            .raw_as::<(i64,)>("SELECT count(*) FROM {spins} s WHERE $1 < s.duration")
            .bind(0_i64)
            .fetch_one(&ctx)
            .await
            .unwrap();
    })
    .await;
    assert!(!sent.contains("MATERIALIZED"), "{sent}");
}

/// A model whose table has a `numeric` column it does not read, for the renaming alias below.
mod renamed {
    use tenancy::tenant_scoped;
    use uuid::Uuid;

    pub const TABLE: &str = "CREATE TABLE readings (
        tenant_id uuid NOT NULL, id uuid NOT NULL, amount numeric, score float8 NOT NULL,
        PRIMARY KEY (tenant_id, id))";

    #[tenant_scoped(table = "readings", new_derive(Debug, Clone))]
    #[derive(Debug, Clone)]
    pub struct Reading {
        #[tenancy(id)]
        pub id: Uuid,
        pub score: f64,
    }
}

/// `AS s(tenant_id, id, score, amount)` swaps two names: `s.score` is the `numeric` column.
/// Judged as the table's `score` (`float8 > float8`, leakproof) the tenant's rows were left
/// inlinable, while the server casts `numeric` to `float8` (not leakproof: an overflow's error
/// shows the row). A reference through an alias that renames columns is attributed to no
/// column, and fences.
#[tokio::test]
async fn an_alias_that_renames_columns_is_not_judged_by_the_tables_names() {
    let db = TestDb::new("adv_rename").await;
    let tenancy = Tenancy::builder()
        .max_connections(2)
        .cache_ttl(LONG_TTL)
        .tenant_migrations(
            Migrations::from_list(vec![
                tenancy::Migration::new(1, "spinner app", SPINNER_SCHEMA),
                tenancy::Migration::new(2, "readings", renamed::TABLE),
            ])
            .unwrap(),
        )
        .connect(&db.url)
        .await
        .unwrap();
    common::migrate_all(&tenancy).await;
    let ctxs = create_tenants(&tenancy, &[("adv-rn", Placement::SharedTable)]).await;
    let run = |sql: &'static str| {
        let ctx = ctxs[0].clone();
        async move {
            let n = renamed::Reading::repo()
                .raw_as::<(i64,)>(sql)
                .bind(0.5_f64)
                .fetch_one(&ctx)
                .await
                .unwrap();
            assert_eq!(n.0, 0);
        }
    };
    let sent = statement_sent_on(
        &db,
        "readings",
        run(
            "SELECT count(*) FROM {readings} AS s(tenant_id, id, score, amount) WHERE s.score > $1",
        ),
    )
    .await;
    assert!(
        sent.contains("AS MATERIALIZED"),
        "renamed columns ran unfenced: {sent}"
    );
    // A bare column under the same alias: the statement's one range item, renamed.
    let sent = statement_sent_on(
        &db,
        "readings",
        run("SELECT count(*) FROM {readings} AS s(tenant_id, id, score, amount) WHERE score > $1"),
    )
    .await;
    assert!(
        sent.contains("AS MATERIALIZED"),
        "renamed columns ran unfenced: {sent}"
    );
    // The alias alone (no column list) keeps the table's names, and the leakproof verdict.
    let sent = statement_sent_on(
        &db,
        "readings",
        run("SELECT count(*) FROM {readings} AS s WHERE s.score > $1"),
    )
    .await;
    assert!(!sent.contains("MATERIALIZED"), "{sent}");
}

// ---------------------------------------------------------------------------------------------
// 7. A context belongs to the handle (the database) that resolved it.
// ---------------------------------------------------------------------------------------------

/// Database B's registry happens to hold a tenant with the id of A's tenant, and `u` is its
/// member there (not in A). `B.member(ctx_of_A, "u")` returned a `Member` wrapping A's context:
/// proof of a membership A's registry never granted. It is refused like a `Superuser` of
/// another handle.
#[tokio::test]
async fn a_context_of_another_handle_proves_no_membership() {
    let (db_a, db_b) = (
        TestDb::new("adv_member_a").await,
        TestDb::new("adv_member_b").await,
    );
    let (a, b) = (handle_at(&db_a.url, 2).await, handle_at(&db_b.url, 2).await);
    let ctx_a = create_tenants(&a, &[("adv-m", Placement::SharedTable)]).await[0].clone();
    create_tenants(&b, &[("adv-m", Placement::SharedTable)]).await;
    db_b.exec(&format!(
        "UPDATE tenancy.tenants SET id = '{}' WHERE slug = 'adv-m'",
        ctx_a.id().as_uuid()
    ))
    .await;
    // A handle that has not cached the tenant under its old id.
    let b = handle_at(&db_b.url, 2).await;
    let su = b.superuser("adv", "member").await.unwrap();
    b.add_member(&su, ctx_a.id(), "u", "owner").await.unwrap();
    // B's own context of the tenant is a member; A's is not, through either handle.
    let ctx_b = b.resolve_slug("adv-m").await.unwrap();
    assert!(b.member(ctx_b, "u").await.is_ok());
    assert!(matches!(
        a.member(ctx_a.clone(), "u").await,
        Err(Error::NotMember { .. })
    ));
    let err = b.member(ctx_a, "u").await.unwrap_err();
    assert!(matches!(err, Error::Forbidden(_)), "{err:?}");
}

// ---------------------------------------------------------------------------------------------
// 8. Declared global tables: a partition tree is read whole.
// ---------------------------------------------------------------------------------------------

/// A partitioned table passes the global-table checks by itself (no tenant column, no foreign
/// key to the registry, in `public`), but reading it reads its partitions: one in a tenant's
/// schema, or one with a foreign key to the registry, holds tenant data. Each is refused, and
/// so is naming a partition of such a tree directly.
#[tokio::test]
async fn a_global_partitioned_table_with_tenant_partitions_is_refused() {
    let db = TestDb::new("adv_partitions").await;
    let setup = handle_at(&db.url, 2).await;
    create_tenants(&setup, &[("adv-pt", Placement::SharedTable)]).await;
    db.exec(
        "CREATE TABLE plans (k int NOT NULL, owner uuid) PARTITION BY RANGE (k);
         CREATE TABLE plans_low PARTITION OF plans FOR VALUES FROM (0) TO (10);
         INSERT INTO plans VALUES (1, NULL);
         CREATE SCHEMA t_adv_secret;
         CREATE TABLE t_adv_secret.plans_mid PARTITION OF plans FOR VALUES FROM (10) TO (20);
         CREATE TABLE rates (k int NOT NULL, owner uuid) PARTITION BY RANGE (k);
         CREATE TABLE rates_low PARTITION OF rates FOR VALUES FROM (0) TO (10);
         ALTER TABLE rates_low ADD FOREIGN KEY (owner) REFERENCES tenancy.tenants (id);
         CREATE TABLE fine (k int NOT NULL) PARTITION BY RANGE (k);
         CREATE TABLE fine_low PARTITION OF fine FOR VALUES FROM (0) TO (10);
         INSERT INTO fine VALUES (1);",
    )
    .await;
    let tenancy = Tenancy::builder()
        .global_tables(["plans", "plans_low", "rates", "fine"])
        .connect(&db.url)
        .await
        .unwrap();
    let ctx = tenancy.resolve_slug("adv-pt").await.unwrap();
    let read = async |sql: &'static str| {
        Spin::repo()
            .raw_as::<(i64,)>(sql)
            .fetch_one(&ctx)
            .await
            .map(|r| r.0)
    };
    // A tree of tables without tenant data is still readable.
    assert_eq!(
        read("SELECT count(*) FROM fine f WHERE EXISTS (SELECT 1 FROM {spins}) OR true")
            .await
            .unwrap(),
        1
    );
    for sql in [
        "SELECT count(*) FROM plans p WHERE EXISTS (SELECT 1 FROM {spins}) OR true",
        "SELECT count(*) FROM plans_low p WHERE EXISTS (SELECT 1 FROM {spins}) OR true",
        "SELECT count(*) FROM rates r WHERE EXISTS (SELECT 1 FROM {spins}) OR true",
    ] {
        match read(sql).await {
            Err(Error::UnscopedSql(r)) => {
                assert_eq!(r.kind(), tenancy::RefusalKind::GlobalTable, "{sql}: {r}")
            }
            other => panic!("{sql}: {other:?}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 9. Session values in raw SQL: the pool's, never a tenant's.
// ---------------------------------------------------------------------------------------------

/// Raw SQL may read `CURRENT_USER`, `CURRENT_CATALOG` and values formatted with the session's
/// time zone. They are harmless only if they are the same for every tenant: two tenants on
/// the same single connection, one of them in its own schema, read exactly what a plain
/// connection reads.
#[tokio::test]
async fn session_values_in_raw_sql_are_the_same_for_every_tenant() {
    let db = TestDb::new("adv_session").await;
    let tenancy = handle_at(&db.url, 1).await;
    let ctxs = create_tenants(
        &tenancy,
        &[
            ("adv-sa", Placement::SharedTable),
            ("adv-sb", Placement::OwnSchema),
        ],
    )
    .await;
    const SQL: &str = "SELECT current_user::text, session_user::text, current_catalog::text, \
                       to_char(TIMESTAMPTZ '2020-01-01 00:00:00+00', 'YYYY-MM-DD HH24 TZ') \
                       FROM (SELECT count(*) FROM {spins}) s";
    let mut plain = db.connect().await;
    let expected: (String, String, String, String) = sqlx::query_as(
        "SELECT current_user::text, session_user::text, current_catalog::text, \
         to_char(TIMESTAMPTZ '2020-01-01 00:00:00+00', 'YYYY-MM-DD HH24 TZ')",
    )
    .fetch_one(&mut plain)
    .await
    .unwrap();
    for ctx in &ctxs {
        let seen = Spin::repo()
            .raw_as::<(String, String, String, String)>(SQL)
            .fetch_one(ctx)
            .await
            .unwrap();
        assert_eq!(seen, expected, "{}", ctx.slug());
    }
}

// ---------------------------------------------------------------------------------------------
// 10. A context kept across a purge and a re-creation under the same slug.
// ---------------------------------------------------------------------------------------------

/// An own-schema tenant is purged and created again with the same slug (a new id, and the
/// schema name the slug gives). A context of the old tenant, held by the handle that purged
/// it, must not write into or read the new tenant's schema.
#[tokio::test]
async fn a_context_kept_across_a_purge_and_recreation_cannot_reach_the_new_tenant() {
    let db = TestDb::new("adv_recreate").await;
    let a = handle_at(&db.url, 2).await;
    let old = create_tenants(&a, &[("adv-again", Placement::OwnSchema)]).await[0].clone();
    let su = a.superuser("adv", "purge").await.unwrap();
    a.soft_delete(&su, old.id()).await.unwrap();
    a.purge(&su, old.id()).await.unwrap();
    let new = create_tenants(&a, &[("adv-again", Placement::OwnSchema)]).await[0].clone();
    assert_ne!(new.id(), old.id());
    Spinner::repo()
        .insert(&new, &new_spinner("new-secret"))
        .await
        .unwrap();
    let wrote = Spinner::repo()
        .insert(&old, &new_spinner("from-the-old-ctx"))
        .await;
    assert!(
        matches!(wrote, Err(Error::ContextRevoked { .. })),
        "{:?}",
        wrote.map(|_| ())
    );
    let read = Spinner::repo().query().fetch_all(&old).await;
    assert!(
        matches!(read, Err(Error::ContextRevoked { .. })),
        "{:?}",
        read.map(|r| r.len())
    );
    assert_eq!(names(&new).await, ["new-secret"]);
}
