//! Connecting, acquiring the audited `Superuser`, and finding a tenant by slug or id.

use std::path::Path;

use tenancy::sqlx::postgres::PgConnectOptions;
use tenancy::{Migrations, Slug, Superuser, Tenancy, TenancyBuilder, TenantId};

use crate::cli::{Actor, MaybeActor};
use crate::fail::Fail;

/// Who acts and why, checked before anything connects, so bad input changes nothing.
pub struct Who {
    pub actor: String,
    pub reason: String,
}

impl Who {
    pub fn from_args(args: &Actor) -> Result<Self, Fail> {
        Self::new(args.actor.as_deref(), Some(&args.reason))
    }

    /// `None` when neither a reason nor anything that needs one was given.
    pub fn maybe(args: &MaybeActor) -> Result<Option<Self>, Fail> {
        match &args.reason {
            Some(reason) => Self::new(args.actor.as_deref(), Some(reason)).map(Some),
            None => Ok(None),
        }
    }

    fn new(actor: Option<&str>, reason: Option<&str>) -> Result<Self, Fail> {
        let reason = reason.map(str::trim).unwrap_or_default();
        if reason.is_empty() {
            return Err(Fail::usage(
                "--reason (or TENANCY_REASON) must say why: it is written to the audit log",
            ));
        }
        let actor = match actor.map(str::trim) {
            Some(a) if !a.is_empty() => a.to_owned(),
            Some(_) => return Err(Fail::usage("--actor must not be empty")),
            None => std::env::var("USER")
                .or_else(|_| std::env::var("LOGNAME"))
                .ok()
                .filter(|u| !u.trim().is_empty())
                .ok_or_else(|| {
                    Fail::usage("say who acts: --actor NAME or TENANCY_ACTOR (USER is not set)")
                })?,
        };
        Ok(Self {
            actor,
            reason: reason.to_owned(),
        })
    }

    /// The audited capability: the acquisition itself is the first audit record.
    pub async fn superuser(&self, tenancy: &Tenancy) -> Result<Superuser, Fail> {
        Ok(tenancy.superuser(&self.actor, &self.reason).await?)
    }
}

/// Options for [`tenancy()`].
#[derive(Default)]
pub struct Connect<'a> {
    pub migrations: Option<&'a Path>,
    pub connections: Option<u32>,
}

/// Connects without installing the registry (an explicit `tenancy registry install` does) and
/// without the change listener (a command is short-lived; its own changes still notify).
pub async fn tenancy(url: &str, options: Connect<'_>) -> Result<Tenancy, Fail> {
    Ok(builder(options)?.connect(url).await?)
}

/// The builder [`tenancy()`] connects with, for a caller that handles the connection's error
/// itself.
pub fn builder(options: Connect<'_>) -> Result<TenancyBuilder, Fail> {
    let mut builder = Tenancy::builder()
        .install_registry(false)
        .listen_for_changes(false)
        .max_connections(options.connections.unwrap_or(2).max(2));
    if let Some(dir) = options.migrations {
        builder = builder.tenant_migrations(migrations(dir)?);
    }
    if let Ok(list) = std::env::var(SERVERS_ENV) {
        for (key, options) in servers(&list)? {
            builder = builder.server(key, options);
        }
    }
    Ok(builder)
}

/// The environment variable that maps server keys to URLs, for tenants whose database is on a
/// server other than the registry's: `eu-2=postgres://... eu-3=postgres://...`.
pub const SERVERS_ENV: &str = "TENANCY_SERVERS";

/// Parses [`SERVERS_ENV`]: `key=url` pairs separated by whitespace or commas. A malformed pair
/// is a usage error that names the key, never the URL (it may hold a password).
pub fn servers(list: &str) -> Result<Vec<(String, PgConnectOptions)>, Fail> {
    let mut out = Vec::new();
    for pair in list
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|p| !p.is_empty())
    {
        let (key, url) = pair.split_once('=').ok_or_else(|| {
            Fail::usage(format!(
                "{SERVERS_ENV}: each entry is KEY=URL (one had no '=')"
            ))
        })?;
        tenancy::validate_server_key(key)
            .map_err(|e| Fail::usage(format!("{SERVERS_ENV}: {e}")))?;
        let postgres = url.starts_with("postgres://") || url.starts_with("postgresql://");
        let options = Some(url)
            .filter(|_| postgres)
            .and_then(|u| u.parse::<PgConnectOptions>().ok())
            .ok_or_else(|| {
                Fail::usage(format!(
                    "{SERVERS_ENV}: the URL of server {key} is not a PostgreSQL URL"
                ))
            })?;
        out.push((key.to_owned(), options));
    }
    Ok(out)
}

/// Reads a migrations directory; a missing or unreadable one is a usage error.
pub fn migrations(dir: &Path) -> Result<Migrations, Fail> {
    if !dir.is_dir() {
        return Err(Fail::usage(format!(
            "{}: not a directory of migrations",
            dir.display()
        )));
    }
    let m = Migrations::from_dir(dir)?;
    m.check_runnable()?;
    Ok(m)
}

/// A tenant named by id or slug, whatever its status. A malformed slug is a usage error; an
/// unknown one fails. Resolution answers for active tenants, and its refusals of suspended and
/// deleted ones carry the id, so no registry listing (and no audit record) is needed.
pub async fn tenant_id(tenancy: &Tenancy, name: &str) -> Result<TenantId, Fail> {
    let found = match name.parse::<TenantId>() {
        Ok(id) => tenancy.resolve_id(id).await,
        Err(_) => {
            let slug = Slug::parse(name).map_err(|e| Fail::usage(format!("{name:?}: {e}")))?;
            tenancy.resolve_slug(slug.as_str()).await
        }
    };
    match found {
        Ok(ctx) => Ok(ctx.id()),
        Err(
            tenancy::Error::TenantSuspended { id, .. } | tenancy::Error::TenantDeleted { id, .. },
        ) => Ok(id),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::servers;

    #[test]
    fn server_lists_parse_and_bad_entries_are_refused_without_echoing_urls() {
        let got =
            servers("eu-2=postgres://a@h1/postgres, eu-3=postgres://a@h2:6543/postgres\n").unwrap();
        let keys: Vec<&str> = got.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["eu-2", "eu-3"]);
        assert_eq!(got[1].1.get_port(), 6543);
        assert!(servers("").unwrap().is_empty());
        for bad in ["eu-2", "EU=postgres://h/db", "eu-2=mysql://u:secret@h/db"] {
            let e = servers(bad).expect_err(bad);
            assert_eq!(e.code, 2, "{bad}");
            assert!(!e.message.contains("secret"), "{}", e.message);
        }
    }
}
