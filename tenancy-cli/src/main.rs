//! `tenancy`: the command line for operating a tenancy deployment, in the shape of sqlx-cli.
//!
//! ```text
//! tenancy registry install
//! tenancy migrate tenants migrations/tenant --parallel 8 --reason "release 42"
//! tenancy tenants create acme --name "Acme Corp" --host acme.example.com
//! tenancy tenants suspend acme --reason "ticket #4411"
//! tenancy tenants export acme -o acme.archive --reason "backup"
//! tenancy audit --tenant acme --since 7d --reason "review"
//! ```
//!
//! Exit status: 0 on success, 1 when the work failed (a database error, an unknown tenant, a
//! tenant that failed to migrate), 2 for a usage error (a missing or malformed argument, or a
//! destructive command without `--yes` off a terminal); nothing is changed then.

mod cli;
mod cmd;
mod confirm;
mod connect;
mod fail;
mod output;
mod progress;
mod since;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::fail::Fail;
use crate::output::Out;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(fail) => {
            eprintln!("error: {}", fail.message);
            ExitCode::from(fail.code)
        }
    }
}

async fn run(cli: Cli) -> Result<(), Fail> {
    let out = Out::new(cli.json);
    let url = cli.database_url.ok_or_else(|| {
        Fail::usage("no database: set DATABASE_URL or pass --database-url postgres://...")
    })?;
    match cli.command {
        Command::Registry(cmd) => cmd::registry::run(&url, cmd, &out).await,
        Command::Migrate(cmd) => cmd::migrate::run(&url, cmd, &out).await,
        Command::Tenants(cmd) => cmd::tenants::run(&url, cmd, &out).await,
        Command::Spares(cmd) => cmd::spares::run(&url, cmd, &out).await,
        Command::Servers(cmd) => cmd::servers::run(&url, cmd, &out).await,
        Command::Verify(args) => cmd::verify::run(&url, args, &out).await,
        Command::Audit(args) => cmd::audit::run(&url, args, &out).await,
    }
}
