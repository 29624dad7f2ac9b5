//! PostgreSQL client errors as [`StorageError`]s, each message naming the
//! server.

use std::error::Error as _;

use cluster_core::StorageError;

/// `e`, met talking to `server`, as `storage.unavailable` with the whole
/// reason (the client's error, then each cause: the IO error, the server's
/// message and SQLSTATE).
pub(crate) fn unavailable(server: &str, e: &tokio_postgres::Error) -> StorageError {
    StorageError::Unavailable(format!("postgres {server}: {}", reason(e)))
}

/// The error and its causes, joined with `: `.
pub(crate) fn reason(e: &tokio_postgres::Error) -> String {
    let mut out = e.to_string();
    if let Some(db) = e.as_db_error() {
        out = format!(
            "{}: {} (SQLSTATE {})",
            db.severity(),
            db.message(),
            db.code().code()
        );
        if let Some(d) = db.detail() {
            out.push_str(&format!("; {d}"));
        }
        return out;
    }
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// Whether the connection that gave `e` should be replaced: it is closed,
/// the error is not the server's answer (IO, protocol), or the server says
/// the connection is going (SQLSTATE classes 08, connection exception, and
/// 57, operator intervention: a shutdown or a terminated backend; not
/// 57014, a statement cancelled by its timeout, after which the
/// connection is fine).
pub(crate) fn connection_lost(e: &tokio_postgres::Error) -> bool {
    e.is_closed()
        || e.as_db_error().is_none_or(|db| {
            let code = db.code().code();
            code.starts_with("08") || (code.starts_with("57") && code != "57014")
        })
}
