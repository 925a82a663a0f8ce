//! The startup shape check, `Tenancy::verify`: Ok for tables whose keys, foreign keys and
//! indexes all lead with the tenant, and `Error::TableShape` naming the table and each problem
//! otherwise.

mod common;

use common::models::{Spin, Spinner};
use tenancy::testing::TestTenancy;
use tenancy::{Error, ShapeReport, Tenancy};
use time::OffsetDateTime;
use uuid::Uuid;

/// The model whose table each case reshapes.
#[tenancy::tenant_scoped(table = "widgets")]
#[derive(Debug, Clone)]
pub struct Widget {
    /// The key.
    #[tenancy(id)]
    pub id: Uuid,
    /// The parent.
    pub parent_id: Uuid,
    /// A name, unique in the tenant.
    pub name: String,
    /// Filled by the database.
    #[tenancy(read_only)]
    pub created_at: OffsetDateTime,
}

/// What widgets point at.
#[tenancy::tenant_scoped(table = "parents")]
#[derive(Debug, Clone)]
pub struct Parent {
    /// The key.
    #[tenancy(id)]
    pub id: Uuid,
    /// A name.
    pub name: String,
}

/// A model with its own tenant column name and a renamed column.
#[tenancy::tenant_scoped(table = "accounts", tenant_column = "org_id")]
#[derive(Debug, Clone)]
pub struct Account {
    /// The key.
    #[tenancy(id)]
    pub id: Uuid,
    /// Stored as `display_name`.
    #[tenancy(rename = "display_name")]
    pub name: String,
}

const PARENTS: &str = "
CREATE TABLE parents (
    tenant_id uuid NOT NULL REFERENCES tenancy.tenants (id),
    id        uuid NOT NULL,
    name      text NOT NULL,
    PRIMARY KEY (tenant_id, id)
);";

const GOOD_WIDGETS: &str = "
CREATE TABLE widgets (
    tenant_id  uuid NOT NULL REFERENCES tenancy.tenants (id),
    id         uuid NOT NULL,
    parent_id  uuid NOT NULL,
    name       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    extra      jsonb,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, name),
    FOREIGN KEY (tenant_id, parent_id) REFERENCES parents (tenant_id, id)
);
CREATE INDEX widgets_recent ON widgets (tenant_id, created_at DESC);
CREATE UNIQUE INDEX widgets_lower_name ON widgets (tenant_id, lower(name));
CREATE INDEX widgets_partial ON widgets (tenant_id, parent_id) WHERE extra IS NOT NULL;";

async fn reshape(t: &TestTenancy, widgets: &str) {
    t.exec(&format!(
        "DROP TABLE IF EXISTS widgets, parents CASCADE; {PARENTS} {widgets}"
    ))
    .await;
}

/// Runs the check and returns the report, failing if it passed or failed otherwise.
async fn report(tenancy: &Tenancy, case: &str) -> ShapeReport {
    match tenancy.verify::<Widget>().await {
        Err(Error::TableShape(r)) => r,
        other => panic!("{case}: expected Error::TableShape, got {other:?}"),
    }
}

/// Each expected fragment names a distinct problem, and there is no other problem.
fn assert_problems(case: &str, r: &ShapeReport, expected: &[&str]) {
    assert_eq!(r.table, "widgets", "{case}");
    let mut left: Vec<&String> = r.problems.iter().collect();
    for want in expected {
        let Some(i) = left.iter().position(|p| p.contains(want)) else {
            panic!(
                "{case}: no problem mentions {want:?}; got {:#?}",
                r.problems
            );
        };
        left.remove(i);
    }
    assert!(left.is_empty(), "{case}: unexpected problems {left:#?}");
    // The message names the table and lists every problem.
    let text = Error::TableShape(r.clone()).to_string();
    assert!(text.contains("\"widgets\""), "{text}");
    for p in &r.problems {
        assert!(text.contains(p.as_str()), "{text}");
    }
}

#[tenancy::test(migrations = "tests/migrations")]
async fn well_shaped_tables_pass(t: TestTenancy) {
    let tenancy = t.tenancy();
    tenancy.verify::<Spinner>().await.unwrap();
    tenancy.verify::<Spin>().await.unwrap();
    reshape(&t, GOOD_WIDGETS).await;
    tenancy.verify::<Widget>().await.unwrap();
    tenancy.verify::<Parent>().await.unwrap();
    t.exec(
        "CREATE TABLE accounts (
             org_id       uuid NOT NULL REFERENCES tenancy.tenants (id),
             id           uuid NOT NULL,
             display_name text NOT NULL,
             PRIMARY KEY (org_id, id),
             UNIQUE (org_id, display_name)
         );",
    )
    .await;
    tenancy.verify::<Account>().await.unwrap();

    // The same table checked for the default tenant column name: it has none.
    t.exec("ALTER TABLE accounts RENAME COLUMN org_id TO tenant_id")
        .await;
    match tenancy.verify::<Account>().await {
        Err(Error::TableShape(r)) => {
            assert_eq!(r.table, "accounts");
            assert!(
                r.problems
                    .iter()
                    .any(|p| p.contains("no tenant column \"org_id\"")),
                "{r:?}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[tenancy::test]
async fn each_shape_problem_is_named(t: TestTenancy) {
    let tenancy = t.tenancy();
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "missing table",
            "",
            &["the table does not exist"],
        ),
        (
            "missing tenant column",
            "CREATE TABLE widgets (
                 id uuid PRIMARY KEY, parent_id uuid NOT NULL, name text NOT NULL,
                 created_at timestamptz NOT NULL DEFAULT now());",
            &["no tenant column \"tenant_id\"", "primary key \"widgets_pkey\" is (id); expected (tenant_id, id)"],
        ),
        (
            "tenant column not uuid",
            "CREATE TABLE widgets (
                 tenant_id text NOT NULL, id uuid NOT NULL, parent_id uuid NOT NULL,
                 name text NOT NULL, created_at timestamptz NOT NULL DEFAULT now(),
                 PRIMARY KEY (tenant_id, id));",
            &["tenant column \"tenant_id\" is text; expected uuid"],
        ),
        (
            "tenant column bigint",
            "CREATE TABLE widgets (
                 tenant_id bigint NOT NULL, id uuid NOT NULL, parent_id uuid NOT NULL,
                 name text NOT NULL, created_at timestamptz NOT NULL DEFAULT now(),
                 PRIMARY KEY (tenant_id, id));",
            &["tenant column \"tenant_id\" is bigint; expected uuid"],
        ),
        (
            "tenant column nullable",
            "CREATE TABLE widgets (
                 tenant_id uuid, id uuid NOT NULL, parent_id uuid NOT NULL,
                 name text NOT NULL, created_at timestamptz NOT NULL DEFAULT now(),
                 UNIQUE (tenant_id, id));",
            &["tenant column \"tenant_id\" must be NOT NULL", "no primary key; expected (tenant_id, id)"],
        ),
        (
            "primary key without the tenant",
            "CREATE TABLE widgets (
                 tenant_id uuid NOT NULL, id uuid PRIMARY KEY, parent_id uuid NOT NULL,
                 name text NOT NULL, created_at timestamptz NOT NULL DEFAULT now());",
            &["primary key \"widgets_pkey\" is (id); expected (tenant_id, id)"],
        ),
        (
            "primary key with the tenant second",
            "CREATE TABLE widgets (
                 tenant_id uuid NOT NULL, id uuid NOT NULL, parent_id uuid NOT NULL,
                 name text NOT NULL, created_at timestamptz NOT NULL DEFAULT now(),
                 PRIMARY KEY (id, tenant_id));",
            &["primary key \"widgets_pkey\" is (id, tenant_id); expected (tenant_id, id)"],
        ),
        (
            "primary key on the tenant and another column",
            "CREATE TABLE widgets (
                 tenant_id uuid NOT NULL, id uuid NOT NULL, parent_id uuid NOT NULL,
                 name text NOT NULL, created_at timestamptz NOT NULL DEFAULT now(),
                 PRIMARY KEY (tenant_id, name));",
            &["primary key \"widgets_pkey\" is (tenant_id, name); expected (tenant_id, id)"],
        ),
        (
            "UNIQUE (name) without the tenant",
            "CREATE TABLE widgets (
                 tenant_id uuid NOT NULL, id uuid NOT NULL, parent_id uuid NOT NULL,
                 name text NOT NULL UNIQUE, created_at timestamptz NOT NULL DEFAULT now(),
                 PRIMARY KEY (tenant_id, id));",
            &["unique constraint \"widgets_name_key\" is on (name)"],
        ),
        (
            "UNIQUE (name, tenant_id): the tenant not first",
            "CREATE TABLE widgets (
                 tenant_id uuid NOT NULL, id uuid NOT NULL, parent_id uuid NOT NULL,
                 name text NOT NULL, created_at timestamptz NOT NULL DEFAULT now(),
                 PRIMARY KEY (tenant_id, id), CONSTRAINT widgets_name_uq UNIQUE (name, tenant_id));",
            &["unique constraint \"widgets_name_uq\" is on (name, tenant_id)"],
        ),
        (
            "FOREIGN KEY (parent_id) REFERENCES parents (id)",
            "ALTER TABLE parents ADD CONSTRAINT parents_id_key UNIQUE (id);
             CREATE TABLE widgets (
                 tenant_id uuid NOT NULL, id uuid NOT NULL,
                 parent_id uuid NOT NULL REFERENCES parents (id),
                 name text NOT NULL, created_at timestamptz NOT NULL DEFAULT now(),
                 PRIMARY KEY (tenant_id, id));",
            &["foreign key \"widgets_parent_id_fkey\" on (parent_id) references (id)"],
        ),
        (
            "foreign key leading with the tenant on one side only",
            "ALTER TABLE parents ADD CONSTRAINT parents_id_tenant_key UNIQUE (id, tenant_id);
             CREATE TABLE widgets (
                 tenant_id uuid NOT NULL, id uuid NOT NULL, parent_id uuid NOT NULL,
                 name text NOT NULL, created_at timestamptz NOT NULL DEFAULT now(),
                 PRIMARY KEY (tenant_id, id),
                 CONSTRAINT widgets_parent_fk FOREIGN KEY (tenant_id, parent_id) REFERENCES parents (id, tenant_id));",
            &["foreign key \"widgets_parent_fk\" on (tenant_id, parent_id) references (id, tenant_id)"],
        ),
        (
            "index on (created_at)",
            "CREATE TABLE widgets (
                 tenant_id uuid NOT NULL, id uuid NOT NULL, parent_id uuid NOT NULL,
                 name text NOT NULL, created_at timestamptz NOT NULL DEFAULT now(),
                 PRIMARY KEY (tenant_id, id));
             CREATE INDEX widgets_created ON widgets (created_at);",
            &["index \"widgets_created\" starts with \"created_at\""],
        ),
        (
            "index on (created_at, tenant_id)",
            "CREATE TABLE widgets (
                 tenant_id uuid NOT NULL, id uuid NOT NULL, parent_id uuid NOT NULL,
                 name text NOT NULL, created_at timestamptz NOT NULL DEFAULT now(),
                 PRIMARY KEY (tenant_id, id));
             CREATE INDEX widgets_created ON widgets (created_at, tenant_id);",
            &["index \"widgets_created\" starts with \"created_at\""],
        ),
        (
            "unique index (not a constraint) on (name)",
            "CREATE TABLE widgets (
                 tenant_id uuid NOT NULL, id uuid NOT NULL, parent_id uuid NOT NULL,
                 name text NOT NULL, created_at timestamptz NOT NULL DEFAULT now(),
                 PRIMARY KEY (tenant_id, id));
             CREATE UNIQUE INDEX widgets_name_idx ON widgets (name);",
            &["index \"widgets_name_idx\" starts with \"name\""],
        ),
        (
            "expression index",
            "CREATE TABLE widgets (
                 tenant_id uuid NOT NULL, id uuid NOT NULL, parent_id uuid NOT NULL,
                 name text NOT NULL, created_at timestamptz NOT NULL DEFAULT now(),
                 PRIMARY KEY (tenant_id, id));
             CREATE INDEX widgets_lower ON widgets (lower(name));",
            &["index \"widgets_lower\" starts with an expression"],
        ),
        (
            "missing model column",
            "CREATE TABLE widgets (
                 tenant_id uuid NOT NULL, id uuid NOT NULL, parent_id uuid NOT NULL,
                 created_at timestamptz NOT NULL DEFAULT now(),
                 PRIMARY KEY (tenant_id, id));",
            &["no column \"name\" for field `name` of Widget"],
        ),
        (
            "missing key column",
            "CREATE TABLE widgets (
                 tenant_id uuid NOT NULL, widget_id uuid NOT NULL, parent_id uuid NOT NULL,
                 name text NOT NULL, created_at timestamptz NOT NULL DEFAULT now(),
                 PRIMARY KEY (tenant_id, widget_id));",
            &[
                "no column \"id\" for field `id` of Widget",
                "primary key \"widgets_pkey\" is (tenant_id, widget_id); expected (tenant_id, id)",
            ],
        ),
        (
            "no primary key",
            "CREATE TABLE widgets (
                 tenant_id uuid NOT NULL, id uuid NOT NULL, parent_id uuid NOT NULL,
                 name text NOT NULL, created_at timestamptz NOT NULL DEFAULT now());",
            &["no primary key; expected (tenant_id, id)"],
        ),
        (
            "everything at once",
            "ALTER TABLE parents ADD CONSTRAINT parents_id_key UNIQUE (id);
             CREATE TABLE widgets (
                 tenant_id text, id uuid PRIMARY KEY,
                 parent_id uuid NOT NULL REFERENCES parents (id),
                 created_at timestamptz NOT NULL DEFAULT now(), label text UNIQUE);
             CREATE INDEX widgets_created ON widgets (created_at);",
            &[
                "tenant column \"tenant_id\" is text; expected uuid",
                "tenant column \"tenant_id\" must be NOT NULL",
                "no column \"name\" for field `name` of Widget",
                "primary key \"widgets_pkey\" is (id)",
                "foreign key \"widgets_parent_id_fkey\" on (parent_id) references (id)",
                "unique constraint \"widgets_label_key\" is on (label)",
                "index \"widgets_created\" starts with \"created_at\"",
            ],
        ),
    ];
    for (case, ddl, expected) in cases {
        reshape(&t, ddl).await;
        let r = report(tenancy, case).await;
        assert_problems(case, &r, expected);
    }
    // And back to the good shape.
    reshape(&t, GOOD_WIDGETS).await;
    tenancy.verify::<Widget>().await.unwrap();
}

/// The index check skips indexes "behind a constraint" (reported with the constraint). It asks
/// for any constraint whose index is this one, and a foreign key *of another table* records the
/// referenced unique index as its own: a unique index on `parents (id)` alone, which lets
/// tenants collide on keys, is then skipped and reported nowhere for `parents`.
#[tenancy::test]
async fn a_unique_index_referenced_by_another_tables_foreign_key_is_still_checked(t: TestTenancy) {
    let tenancy = t.tenancy();
    let flagged = async || match tenancy.verify::<Parent>().await {
        Err(Error::TableShape(r)) => {
            assert_eq!(r.table, "parents");
            r.problems
                .iter()
                .any(|p| p.contains("index \"parents_id_idx\" starts with \"id\""))
        }
        Ok(()) => false,
        Err(e) => panic!("{e:?}"),
    };
    t.exec(&format!(
        "{PARENTS} CREATE UNIQUE INDEX parents_id_idx ON parents (id);"
    ))
    .await;
    assert!(flagged().await, "flagged while no foreign key uses it");
    t.exec("CREATE TABLE audit_refs (ref uuid REFERENCES parents (id));")
        .await;
    assert!(
        flagged().await,
        "not flagged once another table's foreign key uses it"
    );
}
