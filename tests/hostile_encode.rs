//! A column type whose `Encode` is hostile cannot move a statement to another tenant.
//!
//! sqlx gives an encoder the statement's whole argument buffer. Each type here attacks it one
//! way: rewriting the tenant's bytes where it finds them, truncating the buffer and writing it
//! again, forging a length prefix, and leaving a type hole (an offset sqlx overwrites with a
//! type's oid at send time, after every encoder ran) or a JSON patch (a callback sqlx runs at
//! send time) on the tenant's bytes. Each is the type of a column of a model, and every
//! repository method that binds a user value runs with it for tenant A: each call either fails
//! before anything reaches another tenant or touches only A's rows, and the other tenants' rows
//! are exactly as they were.

mod common;

use common::TestDb;
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgHasArrayType, PgTypeInfo};
use sqlx::{Decode, Encode, Postgres, Type};
use tenancy::{NewTenant, Placement, Tenancy, TenantCtx, TenantId};
use uuid::Uuid;

/// The attacker.
const A: Uuid = Uuid::from_u128(0x0a0a_0a0a_0000_4000_8000_0000_0000_00aa);
/// The victim. A's bytes but for bytes 4..8, which are the oid of `text` (25): a type hole there,
/// resolved to `text`, turns A into B.
const B: Uuid = Uuid::from_u128(0x0a0a_0a0a_0000_0019_8000_0000_0000_00aa);

const TABLE: &str = "
CREATE TABLE labels (
    tenant_id uuid NOT NULL REFERENCES tenancy.tenants (id),
    id        uuid NOT NULL,
    label     text NOT NULL,
    n         integer NOT NULL,
    PRIMARY KEY (tenant_id, id)
);";

/// A third tenant: A's bytes but for byte 7, a space (0x20), which is what the patch sqlx's JSON
/// encoder leaves writes at its offset when the parameter is `json`.
const C: Uuid = Uuid::from_u128(0x0a0a_0a0a_0000_4020_8000_0000_0000_00aa);

/// Where `needle` first occurs in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The text a label encodes as, after its attack.
fn write_text(buf: &mut PgArgumentBuffer, text: &str) -> Result<IsNull, BoxDynError> {
    buf.extend_from_slice(text.as_bytes());
    Ok(IsNull::No)
}

/// Declares a hostile label type: a `text` column whose encoder first runs `$attack` on the
/// argument buffer.
macro_rules! hostile {
    ($name:ident, |$buf:ident| $attack:block) => {
        /// A hostile label.
        #[derive(Debug, Clone, PartialEq)]
        pub struct $name(pub String);

        impl Type<Postgres> for $name {
            fn type_info() -> PgTypeInfo {
                <String as Type<Postgres>>::type_info()
            }
        }

        impl Decode<'_, Postgres> for $name {
            fn decode(value: sqlx::postgres::PgValueRef<'_>) -> Result<Self, BoxDynError> {
                Ok(Self(<String as Decode<Postgres>>::decode(value)?))
            }
        }

        impl Encode<'_, Postgres> for $name {
            fn encode_by_ref(&self, $buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
                $attack
                write_text($buf, &self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_owned())
            }
        }
    };
}

// Rewrites the attacker's tenant id, wherever it is in the buffer, with the victim's.
hostile!(Overwrite, |buf| {
    if let Some(at) = find(buf, A.as_bytes()) {
        buf[at..at + 16].copy_from_slice(B.as_bytes());
    }
});

// Cuts the buffer back to the attacker's tenant id and writes it again with the victim's.
hostile!(Truncate, |buf| {
    if let Some(at) = find(buf, A.as_bytes()) {
        let rest = buf[at + 16..].to_vec();
        buf.truncate(at);
        buf.extend_from_slice(B.as_bytes());
        buf.extend_from_slice(&rest);
    }
});

// Appends a forged `uuid` argument (length 16, the victim) and rewrites the first length
// prefix in the buffer so that the server would read the arguments shifted.
hostile!(Forge, |buf| {
    if buf.len() >= 4 {
        let claimed = i32::try_from(buf.len() - 4).unwrap_or(i32::MAX);
        buf[0..4].copy_from_slice(&claimed.to_be_bytes());
    }
    buf.extend_from_slice(&16_i32.to_be_bytes());
    buf.extend_from_slice(B.as_bytes());
});

/// An element type sqlx knows only by name, so that arrays of it leave a type hole.
#[derive(Clone)]
pub struct NamedText;

impl Type<Postgres> for NamedText {
    fn type_info() -> PgTypeInfo {
        PgTypeInfo::with_name("text")
    }
}

impl PgHasArrayType for NamedText {
    fn array_type_info() -> PgTypeInfo {
        PgTypeInfo::with_name("_text")
    }
}

impl Encode<'_, Postgres> for NamedText {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        buf.extend_from_slice(b"x");
        Ok(IsNull::No)
    }
}

// Leaves a type hole on bytes 4..8 of the attacker's tenant id where it finds it in the buffer
// (else at a harmless offset): sqlx writes `text`'s oid there when it sends the statement. An
// array encoder writes two words, then the hole.
hostile!(Hole, |buf| {
    let hole = find(buf, A.as_bytes()).map_or(8, |at| at + 4);
    let saved = buf.to_vec();
    buf.resize(hole - 8, 0);
    let _ = <Vec<NamedText> as Encode<Postgres>>::encode_by_ref(&vec![NamedText], buf)?;
    buf.truncate(0);
    buf.extend_from_slice(&saved);
});

/// A `json` label that leaves, through sqlx's JSON encoder, a patch on byte 7 of the attacker's
/// tenant id where it finds it in the buffer (else at a harmless offset): at send time sqlx runs
/// it, writing a space there, because the parameter is `json`.
#[derive(Debug, Clone, PartialEq)]
pub struct Patch(pub String);

impl Type<Postgres> for Patch {
    fn type_info() -> PgTypeInfo {
        PgTypeInfo::with_name("json")
    }

    fn compatible(ty: &PgTypeInfo) -> bool {
        <String as Type<Postgres>>::compatible(ty)
    }
}

impl Decode<'_, Postgres> for Patch {
    fn decode(value: sqlx::postgres::PgValueRef<'_>) -> Result<Self, BoxDynError> {
        Ok(Self(<String as Decode<Postgres>>::decode(value)?))
    }
}

impl Encode<'_, Postgres> for Patch {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        let at = find(buf, A.as_bytes()).map_or(0, |at| at + 7);
        let saved = buf.to_vec();
        buf.resize(at, 0);
        let _ = sqlx::types::Json("x").encode_by_ref(buf)?;
        buf.truncate(0);
        buf.extend_from_slice(&saved);
        write_text(buf, &format!("{:?}", self.0))
    }
}

impl From<&str> for Patch {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

/// Declares a model over `labels` whose `label` column has the hostile type `$label`.
macro_rules! model {
    ($model:ident, $new:ident, $label:ty) => {
        /// A model over `labels` with a hostile label.
        #[tenancy::tenant_scoped(table = "labels")]
        #[derive(Debug, Clone, PartialEq)]
        pub struct $model {
            /// The key.
            #[tenancy(id)]
            pub id: Uuid,
            /// The hostile column.
            pub label: $label,
            /// A plain column.
            pub n: i32,
        }
    };
}

model!(Overwritten, NewOverwritten, Overwrite);
model!(Truncated, NewTruncated, Truncate);
model!(Forged, NewForged, Forge);
model!(Holed, NewHoled, Hole);
model!(Patched, NewPatched, Patch);

/// Two tenants with two rows each (written with plain SQL, so no hostile encoder runs).
async fn world(test: &str) -> (TestDb, Tenancy, TenantCtx) {
    let db = TestDb::new(test).await;
    let tenancy = db.tenancy().await;
    db.exec(TABLE).await;
    let su = tenancy.superuser("test", "fixed ids").await.unwrap();
    for (id, slug) in [(A, "attacker"), (B, "victim"), (C, "victim-c")] {
        tenancy
            .create_tenant_with_id(
                &su,
                NewTenant::new(slug, slug).placement(Placement::SharedTable),
                TenantId::from_uuid(id),
            )
            .await
            .unwrap();
    }
    db.exec(&format!(
        "INSERT INTO labels VALUES \
         ('{A}', '00000000-0000-0000-0000-00000000000a', 'a1', 1), \
         ('{A}', '00000000-0000-0000-0000-00000000000b', 'a2', 2), \
         ('{B}', '00000000-0000-0000-0000-00000000000a', 'b1', 1), \
         ('{B}', '00000000-0000-0000-0000-00000000000b', 'b2', 2), \
         ('{C}', '00000000-0000-0000-0000-00000000000a', 'c1', 1)"
    ))
    .await;
    let a = tenancy.resolve_slug("attacker").await.unwrap();
    (db, tenancy, a)
}

/// The victims' rows, read with plain SQL.
async fn victim_rows(db: &TestDb) -> Vec<(Uuid, Uuid, String, i32)> {
    let mut conn = db.connect().await;
    sqlx::query_as(
        "SELECT tenant_id, id, label, n FROM labels WHERE tenant_id <> $1 ORDER BY tenant_id, id, label, n",
    )
        .bind(A)
        .fetch_all(&mut conn)
        .await
        .unwrap()
}

/// Ids of rows tenant A may see: its own, and those it inserted.
async fn attacker_ids(db: &TestDb) -> Vec<Uuid> {
    let mut conn = db.connect().await;
    sqlx::query_scalar("SELECT id FROM labels WHERE tenant_id = $1")
        .bind(A)
        .fetch_all(&mut conn)
        .await
        .unwrap()
}

/// Every repository method that binds a value of the model's types, run for tenant A with the
/// hostile label; then B's rows must be untouched and everything A read must be its own.
macro_rules! attack_every_method {
    ($test:ident, $model:ident, $new:ident, $label:ident) => {
        #[tokio::test]
        async fn $test() {
            let (db, _tenancy, a) = world(stringify!($test)).await;
            let before = victim_rows(&db).await;
            let repo = $model::repo();
            let label = || $label::from("pwned");
            let key_a = Uuid::from_u128(0xa);
            let mut read = Vec::new();

            let fresh = Uuid::new_v4();
            let new = $new {
                id: fresh,
                label: label(),
                n: 7,
            };
            if let Ok(row) = repo.insert(&a, &new).await {
                read.push(row.id);
            }
            let many = [
                $new {
                    id: Uuid::new_v4(),
                    label: label(),
                    n: 8,
                },
                $new {
                    id: Uuid::new_v4(),
                    label: label(),
                    n: 9,
                },
            ];
            if let Ok(rows) = repo.insert_many(&a, &many).await {
                read.extend(rows.iter().map(|r| r.id));
            }
            let row = $model {
                id: key_a,
                label: label(),
                n: 11,
            };
            if let Ok(Some(row)) = repo.update(&a, &row).await {
                read.push(row.id);
            }
            if let Ok(Some(row)) = repo
                .update_columns(&a, key_a, [$model::LABEL.set(label())])
                .await
            {
                read.push(row.id);
            }
            let _ = repo
                .update_where(&a, $model::LABEL.ne(label()), [$model::N.set(12)])
                .await;
            let _ = repo.count_where(&a, $model::LABEL.ne(label())).await;
            let _ = repo.exists_where(&a, $model::LABEL.ne(label())).await;
            if let Ok(rows) = repo
                .query()
                .filter($model::LABEL.ne(label()))
                .fetch_all(&a)
                .await
            {
                read.extend(rows.iter().map(|r| r.id));
            }
            let cursor = $model {
                id: Uuid::nil(),
                label: label(),
                n: 0,
            };
            if let Ok(rows) = repo
                .query()
                .order_by($model::LABEL.asc())
                .after(&cursor)
                .fetch_all(&a)
                .await
            {
                read.extend(rows.iter().map(|r| r.id));
            }
            let own = attacker_ids(&db).await;
            for id in read {
                assert!(
                    own.contains(&id),
                    "tenant A got a row that is not its own: {id}"
                );
            }
            let _ = repo.delete_where(&a, $model::LABEL.eq(label())).await;
            let _ = repo.delete_where(&a, $model::LABEL.ne(label())).await;

            assert_eq!(
                victim_rows(&db).await,
                before,
                "another tenant's rows changed"
            );
        }
    };
}

attack_every_method!(
    an_encoder_overwriting_the_tenant_reaches_no_other_tenant,
    Overwritten,
    NewOverwritten,
    Overwrite
);
attack_every_method!(
    an_encoder_truncating_the_buffer_reaches_no_other_tenant,
    Truncated,
    NewTruncated,
    Truncate
);
attack_every_method!(
    an_encoder_forging_a_length_prefix_reaches_no_other_tenant,
    Forged,
    NewForged,
    Forge
);
attack_every_method!(
    an_encoder_leaving_a_type_hole_reaches_no_other_tenant,
    Holed,
    NewHoled,
    Hole
);
attack_every_method!(
    an_encoder_leaving_a_json_patch_reaches_no_other_tenant,
    Patched,
    NewPatched,
    Patch
);

/// The hostile values are fenced, not refused: the attacker's own writes still work, with the
/// bytes its encoder wrote for its own value.
#[tokio::test]
async fn a_fenced_encoder_still_writes_its_own_value() {
    let (db, _tenancy, a) = world("fenced_own_value").await;
    let row = Overwritten::repo()
        .insert(
            &a,
            &NewOverwritten {
                id: Uuid::new_v4(),
                label: "mine".into(),
                n: 3,
            },
        )
        .await
        .unwrap();
    assert_eq!(row.label, Overwrite("mine".into()));
    assert_eq!(attacker_ids(&db).await.len(), 3);
}
