//! The hidden first lines of the doc examples that use a model.
//!
//! An example in this crate cannot name the `tenancy` facade (which depends on this crate), so
//! it declares a module of that name for `#[tenant_scoped(crate = "tenancy")]` to expand into,
//! and then the `Spin` model. Written once here and put in front of an example's code with
//! `#[doc = doc_setup!()]` (or `doc_setup!(", more: Fields")` for more fields), between the
//! example's opening fence and its first line.

/// The `# ` lines that declare the `tenancy` path and a `Spin` model with `id` and `duration`,
/// then the extra fields given.
macro_rules! doc_setup {
    () => {
        doc_setup!("")
    };
    ($fields:literal) => {
        concat!(
            "# mod tenancy { pub use tenancy_sqlx::*; pub mod __private { pub use tenancy_sqlx::__private::*; pub use tenancy_sqlx::{sqlx, uuid}; } }\n",
            "# #[tenancy_macros::tenant_scoped(table = \"spins\", crate = \"tenancy\")]\n",
            "# pub struct Spin { #[tenancy(id)] pub id: uuid::Uuid, pub duration: i32",
            $fields,
            " }\n",
        )
    };
}
