//! Confirmation for destructive commands: asked on a terminal, `--yes` otherwise.

use std::io::{BufRead, IsTerminal, Write};

use crate::fail::Fail;

/// Proceeds when `yes`, or when the user types `expected` at a terminal prompt. Off a terminal
/// without `yes`, refuses (a script must say so explicitly).
pub fn confirm(yes: bool, what: &str, expected: &str) -> Result<(), Fail> {
    if yes {
        return Ok(());
    }
    if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
        return Err(Fail::usage(format!(
            "refusing to {what} without --yes: not on a terminal, so nobody can confirm"
        )));
    }
    let mut stderr = std::io::stderr();
    let _ = write!(
        stderr,
        "This will {what}. It cannot be undone.\nType {expected:?} to go on: "
    );
    let _ = stderr.flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| Fail::failed(format!("cannot read the answer: {e}")))?;
    if answer.trim() == expected {
        Ok(())
    } else {
        Err(Fail::failed("not confirmed: nothing was changed"))
    }
}
