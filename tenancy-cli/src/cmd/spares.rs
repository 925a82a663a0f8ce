//! `tenancy spares warm N`.

use serde_json::json;

use crate::cli::SparesCmd;
use crate::connect::{Connect, Who, tenancy};
use crate::fail::Fail;
use crate::output::Out;

pub async fn run(url: &str, cmd: SparesCmd, out: &Out) -> Result<(), Fail> {
    match cmd {
        SparesCmd::Warm {
            n,
            migrations,
            actor,
        } => {
            let who = Who::from_args(&actor)?;
            let t = tenancy(
                url,
                Connect {
                    migrations: Some(&migrations),
                    ..Connect::default()
                },
            )
            .await?;
            let su = who.superuser(&t).await?;
            let built = t.warm_schemas(&su, n as usize).await?;
            out.line(
                &format!("{built} spare schema(s) built; {n} wanted ready"),
                &json!({ "built": built, "wanted": n }),
            );
            Ok(())
        }
    }
}
