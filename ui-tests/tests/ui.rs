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
//! nothing. A new directory of cases needs its line in `ui_groups!` below
//! (`every_case_directory_is_a_group` fails until it has one).

/// One trybuild run per directory, each its own `#[test]`: libtest names the group that failed
/// as soon as it finishes, `cargo test -p ui-tests --test ui superuser` runs one group, and
/// trybuild prints each case's verdict as it goes. A run with only compile-fail cases builds
/// them all in one `cargo` invocation (`--keep-going`); a run that also holds `pass` cases
/// builds one case at a time, so the passing cases are a group of their own.
macro_rules! ui_groups {
    ($($name:ident: $kind:ident $dir:literal,)*) => {
        $(
            #[test]
            #[cfg_attr(
                not(ui_rustc),
                ignore = "ui tests are pinned to rustc 1.95; expected output differs on other compilers"
            )]
            fn $name() {
                trybuild::TestCases::new().$kind(concat!("tests/ui/", $dir, "/*.rs"));
            }
        )*

        /// Every directory of cases, as the groups above name them.
        const GROUPS: &[&str] = &[$($dir),*];
    };
}

ui_groups! {
    compile_fail_column: compile_fail "compile-fail/column",
    compile_fail_ctx: compile_fail "compile-fail/ctx",
    compile_fail_query: compile_fail "compile-fail/query",
    compile_fail_raw: compile_fail "compile-fail/raw",
    compile_fail_repo: compile_fail "compile-fail/repo",
    compile_fail_report: compile_fail "compile-fail/report",
    compile_fail_sealed: compile_fail "compile-fail/sealed",
    compile_fail_superuser: compile_fail "compile-fail/superuser",
    compile_pass: pass "compile-pass",
    diagnostics: compile_fail "diagnostics",
    test_attr: compile_fail "test-attr",
    test_attr_pass: pass "test-attr/pass",
}

/// A directory of cases without a group above would never run: each one must be listed, and
/// cases sit only in listed directories.
#[test]
fn every_case_directory_is_a_group() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui");
    let mut dirs = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        let mut has_cases = false;
        for entry in std::fs::read_dir(&dir).expect("read a ui directory") {
            let path = entry.expect("a ui directory entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                has_cases = true;
            }
        }
        if has_cases {
            let rel = dir.strip_prefix(&root).expect("under tests/ui");
            dirs.push(rel.to_string_lossy().replace('\\', "/"));
        }
    }
    dirs.sort();
    let mut groups: Vec<String> = GROUPS.iter().map(|g| (*g).to_owned()).collect();
    groups.sort();
    assert_eq!(
        dirs, groups,
        "tests/ui directories holding cases, against the groups in tests/ui.rs"
    );
}
