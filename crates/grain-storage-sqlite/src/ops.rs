//! The synchronous operations on one connection: opening (pragmas and
//! schema), read, write and clear. The async store runs them on the
//! blocking pool.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cluster_core::{GrainKey, StorageError, StoredState};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

/// The table layout this build writes (`PRAGMA user_version`).
pub const LAYOUT_VERSION: i64 = 1;

const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS grain_state (
    cluster    TEXT    NOT NULL,
    kind       TEXT    NOT NULL,
    id         TEXT    NOT NULL,
    version    INTEGER NOT NULL CHECK (version > 0),
    schema     INTEGER NOT NULL,
    data       BLOB    NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (cluster, kind, id)
) WITHOUT ROWID";

const SELECT_ROW: &str =
    "SELECT version, schema, data FROM grain_state WHERE cluster = ?1 AND kind = ?2 AND id = ?3";
const SELECT_VERSION: &str =
    "SELECT version FROM grain_state WHERE cluster = ?1 AND kind = ?2 AND id = ?3";
const INSERT: &str =
    "INSERT INTO grain_state (cluster, kind, id, version, schema, data, updated_at)
    VALUES (?1, ?2, ?3, 1, ?4, ?5, ?6) ON CONFLICT (cluster, kind, id) DO NOTHING";
const UPDATE: &str =
    "UPDATE grain_state SET version = version + 1, schema = ?5, data = ?6, updated_at = ?7
    WHERE cluster = ?1 AND kind = ?2 AND id = ?3 AND version = ?4";
const DELETE: &str =
    "DELETE FROM grain_state WHERE cluster = ?1 AND kind = ?2 AND id = ?3 AND version = ?4";

/// Why a step failed: SQLite's error (mapped with the file's name by the
/// caller) or a storage error already decided.
#[derive(Debug)]
pub(crate) enum OpError {
    Sqlite(rusqlite::Error),
    Storage(StorageError),
}

impl From<rusqlite::Error> for OpError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Sqlite(e)
    }
}

impl From<StorageError> for OpError {
    fn from(e: StorageError) -> Self {
        Self::Storage(e)
    }
}

type Result<T> = std::result::Result<T, OpError>;

/// Sets up a freshly opened connection: busy timeout, WAL, synchronous,
/// layout check and the table. The first statement that reads the file
/// is where a foreign or damaged file is found.
pub(crate) fn prepare(conn: &Connection, busy_timeout: Duration, synchronous: &str) -> Result<()> {
    conn.busy_timeout(busy_timeout)?;
    // Reads the header: a file that is not SQLite fails here.
    let layout: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if layout > LAYOUT_VERSION {
        return Err(StorageError::Unavailable(format!(
            "the grain table layout is version {layout}, this build knows {LAYOUT_VERSION}: written by a newer build"
        ))
        .into());
    }
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StorageError::Unavailable(format!(
            "the database refused WAL mode (journal mode {mode})"
        ))
        .into());
    }
    conn.execute_batch(&format!("PRAGMA synchronous = {synchronous}"))?;
    conn.execute_batch(&format!(
        "BEGIN IMMEDIATE; {CREATE_TABLE}; PRAGMA user_version = {LAYOUT_VERSION}; COMMIT;"
    ))
    .inspect_err(|_| {
        let _ = conn.execute_batch("ROLLBACK");
    })?;
    Ok(())
}

/// The stored row of `key`.
pub(crate) fn read(conn: &Connection, key: &GrainKey) -> Result<Option<StoredState>> {
    let row = conn
        .query_row(
            SELECT_ROW,
            params![&*key.cluster, &*key.kind, &*key.id],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                ))
            },
        )
        .optional()
        .map_err(|e| match e {
            rusqlite::Error::InvalidColumnType(..)
            | rusqlite::Error::FromSqlConversionFailure(..)
            | rusqlite::Error::IntegralValueOutOfRange(..) => OpError::Storage(
                StorageError::Corrupt(format!("the row of {key} is unreadable: {e}")),
            ),
            e => OpError::Sqlite(e),
        })?;
    let Some((version, schema, data)) = row else {
        return Ok(None);
    };
    Ok(Some(StoredState {
        version: stored_version(key, version)?,
        schema: u32::try_from(schema).map_err(|_| {
            StorageError::Corrupt(format!("the row of {key} has schema version {schema}"))
        })?,
        data,
    }))
}

fn stored_version(key: &GrainKey, v: i64) -> std::result::Result<u64, StorageError> {
    u64::try_from(v)
        .ok()
        .filter(|v| *v > 0)
        .ok_or_else(|| StorageError::Corrupt(format!("the row of {key} has version {v}")))
}

/// The stored version of `key` (0: none), inside the caller's transaction.
fn current_version(conn: &Connection, key: &GrainKey) -> Result<u64> {
    let v: Option<i64> = conn
        .query_row(
            SELECT_VERSION,
            params![&*key.cluster, &*key.kind, &*key.id],
            |r| r.get(0),
        )
        .optional()?;
    Ok(match v {
        None => 0,
        Some(v) => stored_version(key, v)?,
    })
}

/// A version as SQLite stores it; one past `i64::MAX` can never be stored,
/// so it matches no row (-1).
fn sql_version(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(-1)
}

fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Writes `data` if the stored version is `expected`: one statement
/// decides, in an immediate transaction (the write lock is taken first, so
/// the conflict's reported version is the one that won).
pub(crate) fn write(
    conn: &mut Connection,
    key: &GrainKey,
    expected: u64,
    schema: u32,
    data: &[u8],
) -> Result<u64> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let (c, k, i) = (&*key.cluster, &*key.kind, &*key.id);
    let changed = if expected == 0 {
        tx.execute(INSERT, params![c, k, i, schema, data, now_millis()])?
    } else {
        tx.execute(
            UPDATE,
            params![c, k, i, sql_version(expected), schema, data, now_millis()],
        )?
    };
    if changed == 1 {
        tx.commit()?;
        return Ok(expected + 1);
    }
    let actual = current_version(&tx, key)?;
    Err(StorageError::Conflict { expected, actual }.into())
}

/// Removes the row of `key` if its version is `expected` (0: succeeds when
/// nothing is stored).
pub(crate) fn clear(conn: &mut Connection, key: &GrainKey, expected: u64) -> Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if expected != 0 {
        let changed = tx.execute(
            DELETE,
            params![&*key.cluster, &*key.kind, &*key.id, sql_version(expected)],
        )?;
        if changed == 1 {
            tx.commit()?;
            return Ok(());
        }
    }
    match current_version(&tx, key)? {
        0 if expected == 0 => Ok(()),
        actual => Err(StorageError::Conflict { expected, actual }.into()),
    }
}
