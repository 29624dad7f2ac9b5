//! Grain state on SQLite: the embedded default for one machine (issue 18).
//!
//! [`SqliteGrainStorage`] implements [`cluster_core::GrainStorage`] on one
//! SQLite file. SQLite is compiled into the binary (rusqlite's `bundled`
//! feature): nothing has to be installed. Several stores, in one process or
//! in several processes on the same machine, may open the same file; they
//! see each other's writes and versions. For several machines use a server
//! (the `grain-storage-postgres` crate): SQLite on a network file system is
//! not safe.
//!
//! # Use
//!
//! ```no_run
//! # async fn f() -> Result<(), cluster_core::StorageError> {
//! use cluster_core::{GrainKey, GrainStorage};
//! use grain_storage_sqlite::SqliteGrainStorage;
//!
//! let store = SqliteGrainStorage::open("/var/lib/my-node/grains.db").await?;
//! let key = GrainKey::new("shop", "order", "o-1");
//! let v1 = store.write(&key, 0, 1, b"state").await?; // create: expected 0
//! let v2 = store.write(&key, v1, 1, b"state 2").await?; // based on v1
//! assert_eq!(store.read(&key).await?.map(|s| s.version), Some(v2));
//! # Ok(()) }
//! ```
//!
//! # Schema
//!
//! Created by [`open`](SqliteGrainStorage::open) when missing (the file too):
//!
//! ```sql
//! CREATE TABLE IF NOT EXISTS grain_state (
//!     cluster    TEXT    NOT NULL,
//!     kind       TEXT    NOT NULL,
//!     id         TEXT    NOT NULL,
//!     version    INTEGER NOT NULL CHECK (version > 0),
//!     schema     INTEGER NOT NULL,
//!     data       BLOB    NOT NULL,
//!     updated_at INTEGER NOT NULL, -- milliseconds since the Unix epoch
//!     PRIMARY KEY (cluster, kind, id)
//! ) WITHOUT ROWID;
//! ```
//!
//! `PRAGMA user_version` holds the layout version ([`LAYOUT_VERSION`]); a
//! file written by a newer layout is refused (`storage.unavailable`) rather
//! than misread. The file is put in WAL mode (readers do not block the
//! writer, and several processes can share the file).
//!
//! # Settings
//!
//! [`SqliteSettings`]: `busy_timeout` (default 5 s: how long a call waits
//! for another connection's write lock before it fails with
//! `storage.unavailable`) and `synchronous` (default
//! [`Synchronous::Full`]: a write that returned is on disk even after a power
//! loss; [`Synchronous::Normal`] is faster and may lose the last writes on a
//! power loss, never on a process crash).
//!
//! # Versions
//!
//! Each write and clear runs in one `BEGIN IMMEDIATE` transaction: an
//! `INSERT ... ON CONFLICT DO NOTHING` (expected version 0) or an
//! `UPDATE ... WHERE version = expected`, and the number of rows it changed
//! decides. So of several writers based on the same version, in any number
//! of processes, exactly one succeeds and the others get
//! `storage.conflict` with the version they lost to.
//!
//! # Errors
//!
//! | code | when |
//! |---|---|
//! | `storage.conflict` | the stored version is not the expected one |
//! | `storage.corrupt` | the file is not an SQLite database or is damaged (at open or later), or a row has impossible values (a negative version, a text where a blob belongs); the message names the file |
//! | `storage.unavailable` | the file cannot be opened or created (path, permissions), the write lock was not had within the busy timeout, the disk is full, or a newer layout; the message names the file |
//!
//! # Operations
//!
//! Back up with `sqlite3 grains.db ".backup copy.db"` (or `VACUUM INTO`)
//! while nodes run; copying the file alone is not enough in WAL mode (the
//! `-wal` file beside it holds recent writes).
//!
//! # Runtime
//!
//! Calls never block the async runtime: each runs on tokio's blocking pool
//! (`spawn_blocking`) against one connection behind a mutex. Called outside
//! a tokio runtime, a call fails with `storage.unavailable`.

mod error;
mod ops;
mod store;

pub use ops::LAYOUT_VERSION;
pub use store::{SqliteGrainStorage, SqliteSettings, Synchronous};
