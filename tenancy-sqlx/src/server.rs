//! Reaching the server: where a connection goes, and why it could not get there.

use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};

use crate::Result;

/// `host:port`, or the Unix socket's path.
fn server_of(options: &PgConnectOptions) -> String {
    match options.get_socket() {
        Some(socket) => socket.display().to_string(),
        None => format!("{}:{}", options.get_host(), options.get_port()),
    }
}

/// `host:port/database` (the server's default database when none is named).
pub(crate) fn address(options: &PgConnectOptions) -> String {
    let database = options.get_database().unwrap_or("(default)");
    format!("{}/{database}", server_of(options))
}

/// Opens one connection with `options` and closes it: the cause when the server cannot be
/// reached, as [`Error::Connect`](crate::Error::Connect), and
/// with `check_path`, [`Error::SearchPath`](crate::Error::SearchPath) when its `search_path`
/// names a tenant schema.
pub(crate) async fn probe(
    options: &PgConnectOptions,
    timeout: Duration,
    check_path: bool,
) -> Result<()> {
    let server = server_of(options);
    let cause = match tokio::time::timeout(timeout, PgConnection::connect_with(options)).await {
        Ok(Ok(mut conn)) => {
            let checked = if check_path {
                crate::search_path::check(&mut conn).await
            } else {
                Ok(())
            };
            let _ = conn.close().await;
            return checked;
        }
        Err(_) => format!("no answer within {timeout:?}"),
        Ok(Err(sqlx::Error::Io(e))) => match e.kind() {
            std::io::ErrorKind::ConnectionRefused => "connection refused".to_owned(),
            std::io::ErrorKind::TimedOut => "timed out".to_owned(),
            _ => e.to_string(),
        },
        Ok(Err(sqlx::Error::Database(e))) => e.message().to_owned(),
        Ok(Err(e)) => e.to_string(),
    };
    Err(crate::Error::Connect { server, cause })
}
