//! A column type whose decoder refuses the value `poison`, and a spinner model that reads its
//! name as one: a page of rows that fails part way through (`tests/adversary.rs`,
//! `tests/server_homes.rs`).

use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo, PgValueRef};
use sqlx::{Decode, Encode, Postgres, Type};
use tenancy::tenant_scoped;
use uuid::Uuid;

/// Text, except that it refuses to decode `poison`.
#[derive(Debug, Clone, PartialEq)]
pub struct Picky(String);

impl Type<Postgres> for Picky {
    fn type_info() -> PgTypeInfo {
        <String as Type<Postgres>>::type_info()
    }
    fn compatible(ty: &PgTypeInfo) -> bool {
        <String as Type<Postgres>>::compatible(ty)
    }
}

impl Encode<'_, Postgres> for Picky {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <String as Encode<Postgres>>::encode_by_ref(&self.0, buf)
    }
}

impl<'r> Decode<'r, Postgres> for Picky {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        let s = <String as Decode<Postgres>>::decode(value)?;
        if s == "poison" {
            return Err("picky refuses poison".into());
        }
        Ok(Picky(s))
    }
}

/// The spinner app's `spinners`, its names read as [`Picky`].
#[tenant_scoped(table = "spinners")]
#[derive(Debug, Clone, PartialEq)]
pub struct PickySpinner {
    #[tenancy(id)]
    pub id: Uuid,
    pub name: Picky,
    pub color: Option<String>,
}

/// The names of the 400 spinners a poisoned page is made of, in the order a page by name
/// descending reads them: `poison` sorts after every `aNNN`, so it is the first row, and 399
/// rows stay unread behind it (more than one socket read holds).
pub fn poisoned_names() -> impl Iterator<Item = String> {
    (0..400).map(|i| {
        if i == 1 {
            "poison".to_owned()
        } else {
            format!("a{i:03}")
        }
    })
}
