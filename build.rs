//! Turns the README's Rust snippets into doc tests, so that a snippet that stops compiling fails
//! `cargo test --doc` (they are compiled, not run: they need a server).
//!
//! The README shows each snippet as a reader needs it, without the setup a compiler needs. The
//! setup lives in an HTML comment just before the snippet, which GitHub and crates.io do not
//! show:
//!
//! ```text
//! <!-- doctest
//! let host_header = "acme.spinners.example";
//! -->
//! ```
//!
//! Its lines run before the snippet, inside an `async fn` that has in scope what most snippets
//! use: `tenancy`, `ctx`, `su`, `url`, the `Spin` and `Spinner` models of `PRELUDE` and the
//! prelude. `<!-- doctest: items -->` puts the snippet at the top level instead (a test
//! function), and `<!-- doctest: ignore REASON -->` leaves it untested, the reason said there.
//! The generated file, one code block per snippet, is the doc of a `cfg(doctest)` item of
//! `src/lib.rs`.

use std::fmt::Write as _;

/// What every snippet has in scope, hidden.
const PRELUDE: &str = r#"use tenancy::prelude::*;
use tenancy::uuid::Uuid;
#[tenant_scoped(table = "spins")]
#[derive(Debug, Clone, PartialEq)]
pub struct Spin {
    #[tenancy(id)]
    pub id: Uuid,
    pub spinner_id: Uuid,
    pub duration: i32,
    pub note: Option<String>,
    #[tenancy(read_only)]
    pub created_at: time::OffsetDateTime,
}
#[tenant_scoped(table = "spinners")]
#[derive(Debug, Clone, serde::Serialize)]
pub struct Spinner {
    #[tenancy(id)]
    pub id: Uuid,
    pub name: String,
    pub color: Option<String>,
}
fn new_spin() -> NewSpin {
    NewSpin { id: Uuid::new_v4(), spinner_id: Uuid::new_v4(), duration: 90, note: None }
}"#;

const OPEN: &str = "#[allow(unused_variables, unreachable_code)]
async fn readme(tenancy: Tenancy, ctx: TenantCtx, su: Superuser, url: &str)
    -> Result<(), Box<dyn std::error::Error>> {";

const CLOSE: &str = "Ok(())\n}";

fn main() {
    println!("cargo:rerun-if-changed=README.md");
    println!("cargo:rerun-if-changed=build.rs");
    let readme = std::fs::read_to_string("README.md").expect("README.md is read");
    let out = std::path::Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("readme.md");
    std::fs::write(out, doctests(&readme)).expect("the doc tests are written");
}

fn hidden(out: &mut String, code: &str) {
    for line in code.lines() {
        if line.is_empty() {
            out.push_str("#\n");
        } else {
            let _ = writeln!(out, "# {line}");
        }
    }
}

/// One `rust,no_run` block per ```` ```rust ```` snippet of `readme`, wrapped as its comment says.
fn doctests(readme: &str) -> String {
    let mut out = String::new();
    let mut lines = readme.lines().enumerate();
    let mut setup: Option<String> = None;
    while let Some((n, line)) = lines.next() {
        if let Some(rest) = line.strip_prefix("<!-- doctest") {
            let mut text = rest.to_owned();
            while !text.trim_end().ends_with("-->") {
                let (_, next) = lines.next().expect("a doctest comment ends with -->");
                text.push('\n');
                text.push_str(next);
            }
            let text = text.trim_end().trim_end_matches("-->");
            setup = Some(text.to_owned());
            continue;
        }
        if line.trim_end() != "```rust" {
            if !line.trim().is_empty() {
                // A comment belongs to the snippet right after it.
                setup = None;
            }
            continue;
        }
        let mut body = String::new();
        for (_, code) in lines.by_ref() {
            if code.starts_with("```") {
                break;
            }
            body.push_str(code);
            body.push('\n');
        }
        let setup = setup.take().unwrap_or_default();
        let _ = writeln!(out, "README.md, line {}:\n", n + 1);
        if let Some(reason) = setup.strip_prefix(": ignore") {
            let _ = writeln!(out, "Not compiled:{reason}\n\n```ignore\n{body}```\n");
            continue;
        }
        out.push_str("```rust,no_run\n");
        hidden(&mut out, PRELUDE);
        if setup.starts_with(": items") {
            out.push_str(&body);
            out.push_str("# fn main() {}\n");
        } else {
            hidden(&mut out, OPEN);
            hidden(&mut out, setup.trim_start_matches('\n'));
            out.push_str(&body);
            hidden(&mut out, CLOSE);
            out.push_str("# fn main() {}\n");
        }
        out.push_str("```\n\n");
    }
    out
}
