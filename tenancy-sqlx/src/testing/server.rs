//! Which server the tests use, and a clear refusal when none answers.

use sqlx::{Connection, PgConnection};

use super::SetupError;

/// The variables read, first set wins: a project can point its tests at another server than its
/// application's `DATABASE_URL`.
const URL_VARS: [&str; 2] = ["TENANCY_TEST_DATABASE_URL", "DATABASE_URL"];

/// Where the tests look when no variable is set: a local server, as `scripts/pg` starts one.
pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The server tests run against: `TENANCY_TEST_DATABASE_URL`, else `DATABASE_URL`, else
/// [`DEFAULT_URL`]. Its role must be allowed to `CREATE DATABASE`.
pub fn server_url() -> String {
    url_and_source().0
}

/// The URL of the database `name` on [`server_url`]'s server (its query parameters kept).
pub fn database_url(name: &str) -> String {
    with_database(&server_url(), name)
}

fn url_and_source() -> (String, Option<&'static str>) {
    URL_VARS
        .iter()
        .find_map(|&var| std::env::var(var).ok().map(|url| (url, Some(var))))
        .unwrap_or_else(|| (DEFAULT_URL.to_owned(), None))
}

/// A connection to the server's maintenance database, where databases are created and dropped.
pub(super) async fn connect_admin() -> Result<PgConnection, SetupError> {
    let (url, source) = url_and_source();
    PgConnection::connect(&url)
        .await
        .map_err(|e| SetupError::NoServer {
            url: redact(&url),
            source_var: source,
            cause: e.to_string(),
        })
}

/// `url` with its database replaced by `db` (query parameters kept).
pub(super) fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[scheme_end..].rfind('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{db}?{q}"),
        None => format!("{base}/{db}"),
    }
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let rest = &url[scheme_end..];
    match (rest.find('@'), rest.find(':')) {
        (Some(at), Some(colon)) if colon < at => {
            format!(
                "{}{}:***{}",
                &url[..scheme_end],
                &rest[..colon],
                &rest[at..]
            )
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_is_swapped_and_the_query_kept() {
        assert_eq!(
            with_database("postgres://u@h:5/postgres?sslmode=disable", "t1"),
            "postgres://u@h:5/t1?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://u@h:5", "t1"),
            "postgres://u@h:5/t1"
        );
    }

    #[test]
    fn a_password_never_reaches_a_message() {
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
    }
}
