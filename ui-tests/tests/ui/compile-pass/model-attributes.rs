// Every `#[tenant_scoped]` option, and the types it generates: writable and read-only column handles, `New<Model>`.
use tenancy::{Column, ReadOnly, Writable, tenant_scoped};
use time::OffsetDateTime;
use uuid::Uuid;

#[tenant_scoped(
    table = "fidget_spins",
    tenant_column = "org_id",
    new_derive(Debug, Clone, PartialEq),
    crate = "::tenancy"
)]
#[derive(Debug, Clone)]
pub struct Spin {
    #[tenancy(id, rename = "spin_id")]
    pub key: Uuid,
    pub duration: i32,
    #[tenancy(default)]
    pub rpm: i64,
    #[tenancy(read_only, rename = "createdAt")]
    pub created_at: OffsetDateTime,
    #[tenancy(skip)]
    pub cached: Vec<u8>,
    /// A raw identifier is a column named `type`.
    pub r#type: String,
}

/// A field named `id` is the key when none is marked.
#[tenant_scoped]
pub struct Spinner {
    pub id: Uuid,
    pub name: Option<String>,
}

fn main() {
    let _: Column<Spin, Uuid, ReadOnly> = Spin::KEY;
    let _: Column<Spin, i32, Writable> = Spin::DURATION;
    let _: Column<Spin, i64, Writable> = Spin::RPM;
    let _: Column<Spin, OffsetDateTime, ReadOnly> = Spin::CREATED_AT;
    let _: Column<Spin, String, Writable> = Spin::TYPE;
    let _: Column<Spinner, Option<String>, Writable> = Spinner::NAME;
    let _: Column<Spinner, Uuid, ReadOnly> = Spinner::ID; // the implicit key is read-only too

    // `New<Model>` leaves out what the database fills (`default`, `read_only`) and what is not a column.
    let new = NewSpin {
        key: Uuid::nil(),
        duration: 130,
        r#type: "fidget".to_owned(),
    };
    assert_eq!(new.clone(), new);
    let _ = NewSpinner {
        id: Uuid::nil(),
        name: None,
    };

    assert_eq!(Spin::DURATION.name(), "duration");
    assert_eq!(Spin::KEY.name(), "spin_id");
    assert_eq!(Spin::CREATED_AT.name(), "createdAt");
    assert_eq!(<Spin as tenancy::Model>::META.table, "fidget_spins");
    assert_eq!(<Spin as tenancy::Model>::META.tenant_column, "org_id");
    assert_eq!(<Spinner as tenancy::Model>::META.table, "spinners");
    let _: tenancy::Repo<Spin> = Spin::repo();
}
