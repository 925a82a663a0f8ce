//! Attribute names, in one place.

/// The field attribute: `#[tenancy(...)]`.
pub const TENANCY: &str = "tenancy";

// Options of `#[tenant_scoped(...)]`.
pub const TABLE: &str = "table";
pub const TENANT_COLUMN: &str = "tenant_column";
pub const NEW_DERIVE: &str = "new_derive";
pub const CRATE: &str = "crate";
pub const CONTAINER_OPTIONS: &str = "table, tenant_column, new_derive, crate";

// Options of `#[tenancy(...)]`.
pub const ID: &str = "id";
pub const RENAME: &str = "rename";
pub const DEFAULT: &str = "default";
pub const READ_ONLY: &str = "read_only";
pub const SKIP: &str = "skip";
pub const FIELD_OPTIONS: &str = "id, rename, default, read_only, skip";

/// The tenant column's name unless `tenant_column` says otherwise (one value for the
/// attribute and the runtime).
pub use tenancy_core::DEFAULT_TENANT_COLUMN;
