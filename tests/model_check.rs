//! A model's description is a claim: the runtime checks it against the database before the
//! model's first statement (without `verify`), once per `Tenancy` handle and table, and refuses
//! the model with the shape error otherwise. Descriptions that lie about the tenant column, and
//! hand-written implementations of the model traits, plant no row in another tenant.

mod common;

use common::TestDb;
use common::models::Spin;
use sqlx::Row;
use sqlx::postgres::PgRow;
use tenancy::testing::TestTenancy;
use tenancy::{
    ColumnMeta, ColumnType, Error, Migrations, Model, ModelMeta, NewModel, Placement, Repo,
    Tenancy, TenantCtx, TenantScoped,
};
use uuid::Uuid;

const NOTES: &str = "
CREATE TABLE notes (
    tenant_id  uuid NOT NULL REFERENCES tenancy.tenants (id),
    id         uuid NOT NULL,
    spinner_id uuid NOT NULL,
    body       text NOT NULL,
    PRIMARY KEY (tenant_id, id)
);";

/// Says its tenant column is `spinner_id`, and makes the real one, `tenant_id`, a field.
#[tenancy::tenant_scoped(table = "notes", tenant_column = "spinner_id")]
#[derive(Debug, Clone)]
pub struct LyingNote {
    /// The key.
    #[tenancy(id)]
    pub id: Uuid,
    /// The table's real tenant column, written as a field.
    pub tenant_id: Uuid,
    /// The body.
    pub body: String,
}

/// An honest model of the same table.
#[tenancy::tenant_scoped(table = "notes")]
#[derive(Debug, Clone)]
pub struct Note {
    /// The key.
    #[tenancy(id)]
    pub id: Uuid,
    /// A spinner.
    pub spinner_id: Uuid,
    /// The body.
    pub body: String,
}

/// A hand-written model (what a user copying an expansion could write): its description claims
/// `spinner_id` is the tenant column and lists `tenant_id` as a column.
#[derive(Debug, Clone)]
pub struct HandNote {
    /// The key.
    pub id: Uuid,
    /// The real tenant column.
    pub tenant_id: Uuid,
    /// The body.
    pub body: String,
}

impl TenantScoped for HandNote {}

impl Model for HandNote {
    type New = HandNote;
    const META: ModelMeta = ModelMeta {
        name: "HandNote",
        table: "notes",
        tenant_column: "spinner_id",
        columns: &[
            ColumnMeta {
                name: "id",
                field: "id",
                insert: true,
                update: false,
            },
            ColumnMeta {
                name: "tenant_id",
                field: "tenant_id",
                insert: true,
                update: true,
            },
            ColumnMeta {
                name: "body",
                field: "body",
                insert: true,
                update: true,
            },
        ],
        key: 0,
    };

    fn key(&self) -> Uuid {
        self.id
    }

    fn decode(row: &PgRow, _: Option<&'static [ColumnMeta]>) -> Result<Self, sqlx::Error> {
        Ok(Self {
            id: row.try_get(0)?,
            tenant_id: row.try_get(1)?,
            body: row.try_get(2)?,
        })
    }

    fn column(&self, index: usize) -> Option<&dyn ColumnType> {
        [&self.id as &dyn ColumnType, &self.tenant_id, &self.body]
            .get(index)
            .copied()
    }
}

impl NewModel for HandNote {
    type Model = HandNote;
    fn column(&self, n: usize) -> Option<&dyn ColumnType> {
        Model::column(self, n)
    }
}

/// A hand-written model with an honest description whose insertable value hands out one more
/// field than the model inserts: bound positionally, it would become the tenant's argument.
#[derive(Debug, Clone)]
pub struct Shifty {
    /// The key.
    pub id: Uuid,
    /// A spinner.
    pub spinner_id: Uuid,
    /// The body.
    pub body: String,
    /// Handed out after the insertable fields.
    pub extra: Uuid,
}

impl TenantScoped for Shifty {}

impl Model for Shifty {
    type New = Shifty;
    const META: ModelMeta = ModelMeta {
        name: "Shifty",
        table: "notes",
        tenant_column: "tenant_id",
        columns: &[
            ColumnMeta {
                name: "id",
                field: "id",
                insert: true,
                update: false,
            },
            ColumnMeta {
                name: "spinner_id",
                field: "spinner_id",
                insert: true,
                update: true,
            },
            ColumnMeta {
                name: "body",
                field: "body",
                insert: true,
                update: true,
            },
        ],
        key: 0,
    };

    fn key(&self) -> Uuid {
        self.id
    }

    fn decode(row: &PgRow, _: Option<&'static [ColumnMeta]>) -> Result<Self, sqlx::Error> {
        Ok(Self {
            id: row.try_get(0)?,
            spinner_id: row.try_get(1)?,
            body: row.try_get(2)?,
            extra: Uuid::nil(),
        })
    }

    fn column(&self, index: usize) -> Option<&dyn ColumnType> {
        [
            &self.id as &dyn ColumnType,
            &self.spinner_id,
            &self.body,
            &self.extra,
        ]
        .get(index)
        .copied()
    }
}

impl NewModel for Shifty {
    type Model = Shifty;
    fn column(&self, n: usize) -> Option<&dyn ColumnType> {
        Model::column(self, n)
    }
}

async fn two_tenants(db: &TestDb) -> (Tenancy, TenantCtx, TenantCtx) {
    let tenancy = db.tenancy().await;
    db.exec(NOTES).await;
    let mut ctxs = common::create_tenants(
        &tenancy,
        &[
            ("attacker", Placement::SharedTable),
            ("victim", Placement::SharedTable),
        ],
    )
    .await;
    let b = ctxs.pop().unwrap();
    let a = ctxs.pop().unwrap();
    (tenancy, a, b)
}

/// Rows of `notes` per tenant, read with plain SQL.
async fn notes_of(db: &TestDb, tenant: &TenantCtx) -> i64 {
    let mut conn = db.connect().await;
    sqlx::query_scalar("SELECT count(*) FROM notes WHERE tenant_id = $1")
        .bind(tenant.id().as_uuid())
        .fetch_one(&mut conn)
        .await
        .unwrap()
}

fn assert_shape_error(result: Result<impl std::fmt::Debug, Error>, wants: &str) {
    match result {
        Err(Error::TableShape(r)) => {
            assert!(r.problems.iter().any(|p| p.contains(wants)), "{r:#?}");
        }
        other => panic!("expected the shape error naming {wants:?}, got {other:?}"),
    }
}

#[tokio::test]
async fn a_lying_tenant_column_is_refused_before_the_first_statement() {
    let db = TestDb::new("lying_tenant_column").await;
    let (_tenancy, a, b) = two_tenants(&db).await;
    let planted = LyingNote {
        id: Uuid::new_v4(),
        tenant_id: b.id().as_uuid(),
        body: "x".into(),
    };
    let new = NewLyingNote {
        id: planted.id,
        tenant_id: planted.tenant_id,
        body: "x".into(),
    };
    assert_shape_error(
        LyingNote::repo().insert(&a, &new).await,
        "tenant column \"spinner_id\" is not the table's tenant column",
    );
    assert_shape_error(
        LyingNote::repo().get(&a, planted.id).await,
        "\"tenant_id\" of field `tenant_id` is a tenant column",
    );
    assert_eq!(notes_of(&db, &b).await, 0, "a row was planted in tenant B");
    assert_eq!(notes_of(&db, &a).await, 0);
}

#[tokio::test]
async fn a_hand_written_model_is_checked_like_a_generated_one() {
    let db = TestDb::new("hand_written_model").await;
    let (_tenancy, a, b) = two_tenants(&db).await;
    let new = HandNote {
        id: Uuid::new_v4(),
        tenant_id: b.id().as_uuid(),
        body: "x".into(),
    };
    assert_shape_error(
        Repo::<HandNote>::new().insert(&a, &new).await,
        "is a tenant column",
    );
    assert_shape_error(
        Repo::<HandNote>::new()
            .insert_many(&a, std::slice::from_ref(&new))
            .await,
        "is a tenant column",
    );
    assert_shape_error(
        Repo::<HandNote>::new().update(&a, &new).await,
        "is a tenant column",
    );
    assert_eq!(notes_of(&db, &b).await, 0, "a row was planted in tenant B");

    // An honest description cannot bind an extra value where the tenant goes.
    let shifty = Shifty {
        id: Uuid::new_v4(),
        spinner_id: Uuid::new_v4(),
        body: "x".into(),
        extra: b.id().as_uuid(),
    };
    match Repo::<Shifty>::new().insert(&a, &shifty).await {
        Err(Error::InvalidModel {
            model: "Shifty",
            reason,
        }) => {
            assert!(reason.contains("more fields"), "{reason}");
        }
        other => panic!("expected Error::InvalidModel, got {other:?}"),
    }
    assert_eq!(notes_of(&db, &b).await, 0, "a row was planted in tenant B");
    assert_eq!(notes_of(&db, &a).await, 0);
}

#[tokio::test]
async fn a_bad_table_is_refused_without_verify_and_the_check_is_remembered() {
    let db = TestDb::new("auto_verify").await;
    let (tenancy, a, _b) = two_tenants(&db).await;
    // A key without the tenant: refused at the first statement, nothing written.
    db.exec("ALTER TABLE notes DROP CONSTRAINT notes_pkey; ALTER TABLE notes ADD PRIMARY KEY (id)")
        .await;
    let new = NewNote {
        id: Uuid::new_v4(),
        spinner_id: Uuid::new_v4(),
        body: "x".into(),
    };
    assert_shape_error(Note::repo().insert(&a, &new).await, "primary key");
    assert_shape_error(Note::repo().query().fetch_all(&a).await, "primary key");
    assert_eq!(notes_of(&db, &a).await, 0);

    // Fixed: the same handle checks again (a refusal is not remembered) and passes.
    db.exec(
        "ALTER TABLE notes DROP CONSTRAINT notes_pkey; ALTER TABLE notes ADD PRIMARY KEY (tenant_id, id)",
    )
    .await;
    Note::repo().insert(&a, &new).await.unwrap();

    // A pass is remembered by this handle: breaking the table afterwards goes unseen by it (no
    // check runs again), while a new handle checks and refuses.
    db.exec("ALTER TABLE notes DROP CONSTRAINT notes_pkey; ALTER TABLE notes ADD PRIMARY KEY (id)")
        .await;
    assert_eq!(Note::repo().count(&a).await.unwrap(), 1);
    let fresh = db.tenancy().await;
    let a2 = fresh.resolve_slug("attacker").await.unwrap();
    assert_shape_error(Note::repo().count(&a2).await, "primary key");
    // `verify` always asks the database.
    match tenancy.verify::<Note>().await {
        Err(Error::TableShape(_)) => {}
        other => panic!("expected the shape error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_migration_through_the_handle_makes_it_check_again() {
    let db = TestDb::new("recheck_after_migration").await;
    let (tenancy, a, _b) = two_tenants(&db).await;
    assert_eq!(Note::repo().count(&a).await.unwrap(), 0);
    let breaking = Migrations::from_static(&[(
        1,
        "a key without the tenant",
        "ALTER TABLE notes DROP CONSTRAINT notes_pkey; ALTER TABLE notes ADD PRIMARY KEY (id)",
    )])
    .unwrap();
    let su = tenancy.superuser("test", "migrate").await.unwrap();
    assert_eq!(tenancy.migrate_shared(&su, &breaking).await.unwrap(), [1]);
    assert_shape_error(Note::repo().count(&a).await, "primary key");
}

#[tenancy::test(
    migrations = "tests/migrations",
    tenants(good = "schema", bad = "schema")
)]
async fn each_tenant_schema_is_checked_on_its_first_statement(t: TestTenancy) {
    let (good, bad) = (t.tenant("good"), t.tenant("bad"));
    Spin::repo().count(good).await.unwrap();
    // One schema's table loses its tenant-led key; the shared check does not cover it.
    t.exec("ALTER TABLE t_bad.spins DROP CONSTRAINT spins_pkey CASCADE; ALTER TABLE t_bad.spins ADD PRIMARY KEY (id)")
        .await;
    match Spin::repo().count(bad).await {
        Err(Error::TableShape(r)) => {
            assert_eq!(r.table, "t_bad.spins");
            assert!(
                r.problems.iter().any(|p| p.contains("primary key")),
                "{r:#?}"
            );
        }
        other => panic!("expected the shape error, got {other:?}"),
    }
    assert_eq!(Spin::repo().count(good).await.unwrap(), 0);
}

#[tokio::test]
async fn no_policy_is_installed_on_a_lying_tenant_column() {
    let db = TestDb::new("policy_lying_column").await;
    let (tenancy, _a, _b) = two_tenants(&db).await;
    let su = tenancy.superuser("test", "install rls").await.unwrap();
    assert_shape_error(
        tenancy.install_row_level_security::<LyingNote>(&su).await,
        "is not the table's tenant column",
    );
    let mut conn = db.connect().await;
    let policies: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_policies WHERE tablename = 'notes'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(policies, 0);
}
