//! The models whose tables passed the model check (`verify.rs`) through one handle, so that a
//! table is checked once, not on every statement. Held by the runtime; forgotten when a
//! migration changes tables.

use std::any::TypeId;
use std::collections::{HashMap, HashSet};
use std::sync::{PoisonError, RwLock};

/// The tables each model was checked against through one `Tenancy` handle.
#[derive(Default)]
pub(crate) struct Checked(RwLock<HashMap<TypeId, Tables>>);

#[derive(Default)]
struct Tables {
    shared: bool,
    /// Quoted schema names.
    schemas: HashSet<Box<str>>,
}

impl Checked {
    pub(crate) fn has(&self, model: TypeId, schema: Option<&str>) -> bool {
        let map = self.0.read().unwrap_or_else(PoisonError::into_inner);
        map.get(&model).is_some_and(|t| match schema {
            None => t.shared,
            Some(s) => t.schemas.contains(s),
        })
    }

    /// Forgets every pass (after a migration through this handle).
    pub(crate) fn forget(&self) {
        self.0
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    pub(crate) fn mark(&self, model: TypeId, schema: Option<&str>) {
        let mut map = self.0.write().unwrap_or_else(PoisonError::into_inner);
        let tables = map.entry(model).or_default();
        match schema {
            None => tables.shared = true,
            Some(s) => {
                tables.schemas.insert(s.into());
            }
        }
    }
}

/// What a tenant database's table is remembered under: its database and quoted schema (the
/// same schema name in two databases is two tables).
pub(crate) fn database_key(
    database: &tenancy_core::home::DatabaseRef,
    quoted_schema: &str,
) -> String {
    format!(
        "{}.{quoted_schema}",
        tenancy_core::ident::quote(database.as_str())
    )
}
