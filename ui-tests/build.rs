//! Pins the ui tests to one compiler, the way darling does: rustc's wording and spans change
//! between releases, so the expected `.stderr` files are only meaningful on rustc 1.95.
//! On any other compiler `ui_rustc` is unset and the ui test is ignored (shown as ignored,
//! never as passed).

use std::env;
use std::process::Command;

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=RUSTC");
    // Always declared, so `cfg(not(ui_rustc))` is an expected cfg on every compiler.
    println!("cargo::rustc-check-cfg=cfg(ui_rustc)");
    if rustc_minor() == Some(95) {
        println!("cargo::rustc-cfg=ui_rustc");
    }
}

/// The minor version of `$RUSTC -V` (`rustc 1.95.0 (...)` gives 95), if it is a 1.x compiler.
fn rustc_minor() -> Option<u32> {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let out = Command::new(rustc).arg("-V").output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let version = text.strip_prefix("rustc ")?.split_whitespace().next()?;
    let mut parts = version.split('.');
    if parts.next()? != "1" {
        return None;
    }
    parts.next()?.parse().ok()
}
