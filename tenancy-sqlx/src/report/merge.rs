//! Merging report rows from several statements into one order, the same order PostgreSQL gives
//! each of them.
//!
//! Each statement returns its rows ordered by the report's columns, then the tenant, then the
//! key; the rows of all statements are put in that same total order here. For this to be right,
//! Rust must compare exactly as the database does, so sort keys are decoded by the column's
//! actual type, with PostgreSQL's rules: NULL after every value (before them, descending), NaN
//! after every other float, text byte-wise (the statements order text with `COLLATE "C"`).

use std::cmp::Ordering;

use sqlx::postgres::PgRow;
use sqlx::{Decode, Postgres, Row, TypeInfo, ValueRef};
use tenancy_core::TenantId;
use uuid::Uuid;

use crate::{Error, Result};

/// A value of an ordering column, as the merge compares it.
#[derive(Debug, Clone)]
pub(crate) enum SortKey {
    Int(i64),
    Float(f64),
    Bool(bool),
    Text(String),
    Bytes(Vec<u8>),
    Uuid(Uuid),
    Timestamp(time::PrimitiveDateTime),
    TimestampTz(time::OffsetDateTime),
    Date(time::Date),
    Time(time::Time),
    /// After every value, as PostgreSQL sorts NULL by default.
    Null,
}

impl SortKey {
    fn rank(&self) -> u8 {
        match self {
            Self::Int(_) => 0,
            Self::Float(_) => 1,
            Self::Bool(_) => 2,
            Self::Text(_) => 3,
            Self::Bytes(_) => 4,
            Self::Uuid(_) => 5,
            Self::Timestamp(_) => 6,
            Self::TimestampTz(_) => 7,
            Self::Date(_) => 8,
            Self::Time(_) => 9,
            Self::Null => 10,
        }
    }
}

/// PostgreSQL's float order: NaN equals NaN and follows every other value; -0 equals 0.
pub(crate) fn cmp_float(a: f64, b: f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        (false, false) => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
    }
}

impl PartialEq for SortKey {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for SortKey {}

impl PartialOrd for SortKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for SortKey {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Self::Int(a), Self::Int(b)) => a.cmp(b),
            (Self::Float(a), Self::Float(b)) => cmp_float(*a, *b),
            (Self::Bool(a), Self::Bool(b)) => a.cmp(b),
            (Self::Text(a), Self::Text(b)) => a.as_bytes().cmp(b.as_bytes()),
            (Self::Bytes(a), Self::Bytes(b)) => a.cmp(b),
            (Self::Uuid(a), Self::Uuid(b)) => a.cmp(b),
            (Self::Timestamp(a), Self::Timestamp(b)) => a.cmp(b),
            (Self::TimestampTz(a), Self::TimestampTz(b)) => a.cmp(b),
            (Self::Date(a), Self::Date(b)) => a.cmp(b),
            (Self::Time(a), Self::Time(b)) => a.cmp(b),
            (a, b) => a.rank().cmp(&b.rank()),
        }
    }
}

fn decode<'r, T: Decode<'r, Postgres>>(value: sqlx::postgres::PgValueRef<'r>) -> Result<T> {
    T::decode(value).map_err(|e| Error::Database(sqlx::Error::Decode(e)))
}

/// Decodes column `index` of `row` as a sort key, by the column's type in the database.
pub(crate) fn sort_key(row: &PgRow, index: usize, column: &str) -> Result<SortKey> {
    let value = row.try_get_raw(index)?;
    if value.is_null() {
        return Ok(SortKey::Null);
    }
    let ty = value.type_info().name().to_owned();
    Ok(match ty.as_str() {
        "INT2" => SortKey::Int(i64::from(decode::<i16>(value)?)),
        "INT4" => SortKey::Int(i64::from(decode::<i32>(value)?)),
        "INT8" => SortKey::Int(decode::<i64>(value)?),
        "FLOAT4" => SortKey::Float(f64::from(decode::<f32>(value)?)),
        "FLOAT8" => SortKey::Float(decode::<f64>(value)?),
        "BOOL" => SortKey::Bool(decode::<bool>(value)?),
        "TEXT" | "VARCHAR" | "NAME" => SortKey::Text(decode::<String>(value)?),
        // `character(n)` compares without its trailing blanks.
        "CHAR" => SortKey::Text(decode::<String>(value)?.trim_end_matches(' ').to_owned()),
        "BYTEA" => SortKey::Bytes(decode::<Vec<u8>>(value)?),
        "UUID" => SortKey::Uuid(decode::<Uuid>(value)?),
        "TIMESTAMP" => SortKey::Timestamp(decode::<time::PrimitiveDateTime>(value)?),
        "TIMESTAMPTZ" => SortKey::TimestampTz(decode::<time::OffsetDateTime>(value)?),
        "DATE" => SortKey::Date(decode::<time::Date>(value)?),
        "TIME" => SortKey::Time(decode::<time::Time>(value)?),
        other => {
            return Err(crate::ReportError::UnorderableColumn {
                column: column.to_owned(),
                type_name: other.to_owned(),
            }
            .into());
        }
    })
}

/// One row of a report, with what the merge orders it by.
pub(crate) struct RankedRow<M> {
    pub(crate) keys: Vec<SortKey>,
    pub(crate) tenant: TenantId,
    pub(crate) id: Uuid,
    pub(crate) row: M,
}

/// The report's total order: its columns (each ascending or descending), then the tenant, then
/// the key, both ascending.
pub(crate) fn cmp_ranked<M>(a: &RankedRow<M>, b: &RankedRow<M>, desc: &[bool]) -> Ordering {
    for (i, &d) in desc.iter().enumerate() {
        let o = a.keys[i].cmp(&b.keys[i]);
        let o = if d { o.reverse() } else { o };
        if o != Ordering::Equal {
            return o;
        }
    }
    a.tenant.cmp(&b.tenant).then_with(|| a.id.cmp(&b.id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nulls_and_nans_sort_last_like_postgres() {
        let mut keys = [
            SortKey::Null,
            SortKey::Float(f64::NAN),
            SortKey::Float(1.0),
            SortKey::Float(-0.0),
            SortKey::Float(f64::NEG_INFINITY),
        ];
        keys.sort();
        assert!(matches!(keys[0], SortKey::Float(f) if f == f64::NEG_INFINITY));
        assert!(matches!(keys[3], SortKey::Float(f) if f.is_nan()));
        assert!(matches!(keys[4], SortKey::Null));
        assert_eq!(SortKey::Float(0.0), SortKey::Float(-0.0));
    }

    #[test]
    fn text_compares_bytewise() {
        let mut keys = [
            SortKey::Text("b".into()),
            SortKey::Text("B".into()),
            SortKey::Text("a".into()),
            SortKey::Text("é".into()),
        ];
        keys.sort();
        let got: Vec<String> = keys
            .into_iter()
            .map(|k| match k {
                SortKey::Text(s) => s,
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(got, ["B", "a", "b", "é"]);
    }
}
