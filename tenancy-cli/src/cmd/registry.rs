//! `tenancy registry install`.

use serde_json::json;
use tenancy::Tenancy;

use crate::cli::RegistryCmd;
use crate::fail::Fail;
use crate::output::Out;

pub async fn run(url: &str, cmd: RegistryCmd, out: &Out) -> Result<(), Fail> {
    match cmd {
        RegistryCmd::Install => {
            Tenancy::install(url).await?;
            out.line(
                "registry installed (schema tenancy, current version)",
                &json!({ "installed": true }),
            );
            Ok(())
        }
    }
}
