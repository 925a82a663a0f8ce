//! The compile-time guarantees of `tenancy`, proven with trybuild.
//!
//! - `ui/compile-fail/<topic>/*.rs`: each file is one attempt to reach a tenant's rows without a
//!   `TenantCtx`, or several tenants without a `Superuser`; the `.stderr` beside it is the error
//!   the attempt must produce.
//! - `ui/compile-pass/*.rs`: the intended uses, which must keep compiling.
//! - `ui/diagnostics/*.rs`: one mistake each in a `#[tenant_scoped]` model, and the error (with
//!   its span) the attribute reports.
//! - `ui/test-attr/*.rs`: one misuse each of `#[tenancy::test]`, and its error; `pass/` the
//!   shapes it takes (a test of its own, `cargo test -p ui-tests test_attr`, so that it runs and
//!   fails by itself).
//!
//! Regenerate the expected output with `TRYBUILD=overwrite cargo test -p ui-tests`, then read
//! every changed `.stderr`: a case that fails for another reason than the one it names proves
//! nothing.

#[test]
#[cfg_attr(
    not(ui_rustc),
    ignore = "ui tests are pinned to rustc 1.95; expected output differs on other compilers"
)]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/compile-fail/**/*.rs");
    t.pass("tests/ui/compile-pass/*.rs");
    t.compile_fail("tests/ui/diagnostics/*.rs");
}

#[test]
#[cfg_attr(
    not(ui_rustc),
    ignore = "ui tests are pinned to rustc 1.95; expected output differs on other compilers"
)]
fn test_attr() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/test-attr/*.rs");
    t.pass("tests/ui/test-attr/pass/*.rs");
}
