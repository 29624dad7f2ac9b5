//! SQLite errors as [`StorageError`]s, each message naming the file.

use std::path::Path;

use cluster_core::StorageError;
use rusqlite::ErrorCode;

/// `e`, met while working on the file at `path`, as a storage error:
/// a damaged or foreign file is `storage.corrupt`, a value of the wrong type
/// in a row too; everything else (locks, permissions, a full disk, IO) is
/// `storage.unavailable`.
pub(crate) fn map(path: &Path, e: &rusqlite::Error) -> StorageError {
    let file = path.display();
    match e {
        rusqlite::Error::SqliteFailure(f, msg) => {
            // SQLite's own message when it gave one, else the code's text.
            let detail = match msg {
                Some(m) => format!("{m} (SQLite code {})", f.extended_code),
                None => f.to_string(),
            };
            match f.code {
                ErrorCode::NotADatabase => StorageError::Corrupt(format!(
                    "sqlite {file}: not an SQLite database: {detail}"
                )),
                ErrorCode::DatabaseCorrupt => StorageError::Corrupt(format!(
                    "sqlite {file}: the database file is damaged: {detail}"
                )),
                ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => {
                    StorageError::Unavailable(format!(
                        "sqlite {file}: the database stayed locked by another connection past the busy timeout: {detail}"
                    ))
                }
                _ => StorageError::Unavailable(format!("sqlite {file}: {detail}")),
            }
        }
        rusqlite::Error::InvalidColumnType(..)
        | rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::IntegralValueOutOfRange(..) => {
            StorageError::Corrupt(format!("sqlite {file}: a stored row is unreadable: {e}"))
        }
        _ => StorageError::Unavailable(format!("sqlite {file}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(code: i32) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None)
    }

    #[test]
    fn sqlite_errors_map_to_stable_codes_naming_the_file() {
        let p = Path::new("/data/grains.db");
        for (code, expected) in [
            (rusqlite::ffi::SQLITE_NOTADB, "storage.corrupt"),
            (rusqlite::ffi::SQLITE_CORRUPT, "storage.corrupt"),
            (rusqlite::ffi::SQLITE_BUSY, "storage.unavailable"),
            (rusqlite::ffi::SQLITE_LOCKED, "storage.unavailable"),
            (rusqlite::ffi::SQLITE_CANTOPEN, "storage.unavailable"),
            (rusqlite::ffi::SQLITE_FULL, "storage.unavailable"),
            (rusqlite::ffi::SQLITE_READONLY, "storage.unavailable"),
            (rusqlite::ffi::SQLITE_IOERR, "storage.unavailable"),
        ] {
            let e = map(p, &failure(code));
            assert_eq!(e.code(), expected, "{code}: {e}");
            assert!(e.to_string().contains("/data/grains.db"), "{e}");
        }
        let e = map(
            p,
            &rusqlite::Error::InvalidColumnType(0, "data".into(), rusqlite::types::Type::Text),
        );
        assert_eq!(e.code(), "storage.corrupt", "{e}");
    }
}
