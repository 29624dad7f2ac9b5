//! Grain state on PostgreSQL: a real server shared by the machines of a
//! cluster (issue 18).
//!
//! [`PostgresGrainStorage`] implements [`cluster_core::GrainStorage`] on one
//! table. Every node of a cluster (and several clusters: rows are keyed by
//! cluster name) may use the same database; the versions make a write
//! based on an old state fail, whichever node sends it.
//!
//! # Use
//!
//! ```no_run
//! # async fn f() -> Result<(), cluster_core::StorageError> {
//! use std::time::Duration;
//! use cluster_core::{GrainKey, GrainStorage};
//! use grain_storage_postgres::{PostgresGrainStorage, PostgresSettings};
//!
//! let settings = PostgresSettings::new("db.internal", 5432, "grains", "grains")
//!     .password("from a secret file")
//!     .call_timeout(Duration::from_secs(2));
//! let store = PostgresGrainStorage::connect(settings).await?;
//! let key = GrainKey::new("shop", "order", "o-1");
//! let v1 = store.write(&key, 0, 1, b"state").await?; // create: expected 0
//! store.write(&key, v1, 1, b"state 2").await?; // based on v1
//! # Ok(()) }
//! ```
//!
//! # Schema
//!
//! Created on every new connection when missing (under an advisory lock,
//! so nodes starting together do not collide); the role needs `CREATE` on
//! the database's default schema the first time, then only `SELECT`,
//! `INSERT`, `UPDATE` and `DELETE` on the table. An operator may create it
//! beforehand instead:
//!
//! ```sql
//! CREATE TABLE IF NOT EXISTS grain_state (
//!     cluster    text        NOT NULL,
//!     kind       text        NOT NULL,
//!     id         text        NOT NULL,
//!     version    bigint      NOT NULL CHECK (version > 0),
//!     schema     bigint      NOT NULL CHECK (schema >= 0 AND schema <= 4294967295),
//!     data       bytea       NOT NULL,
//!     updated_at timestamptz NOT NULL DEFAULT now(),
//!     PRIMARY KEY (cluster, kind, id)
//! );
//! ```
//!
//! # Versions
//!
//! Each write and clear is decided by one statement:
//! `INSERT ... ON CONFLICT DO NOTHING` for a create (expected version 0),
//! `UPDATE ... SET version = version + 1 ... WHERE ... AND version = $expected`
//! or `DELETE ... WHERE ... AND version = $expected` otherwise; the number
//! of rows it changed decides. PostgreSQL applies each atomically, so of
//! several writers based on the same version, on any number of machines,
//! exactly one succeeds and the others get `storage.conflict` with the
//! version read right after.
//!
//! A call that times out or loses its connection fails with
//! `storage.unavailable`, but its statement may still have been applied
//! by the server: the caller does not know the new version, so its next
//! write (based on the old one) gets `storage.conflict`. Read again
//! before writing after an `unavailable` write; never retry it blindly.
//!
//! # Settings
//!
//! [`PostgresSettings`]: host (a name, an address, or a Unix socket
//! directory), port, user, database, password (never printed), and two
//! bounds: `connect_timeout` (opening a connection, default 5 s) and
//! `call_timeout` (every read, write and clear, reconnecting included,
//! default 5 s).
//!
//! # Connections
//!
//! One connection per store (clones share it); concurrent calls are
//! pipelined on it. When it breaks (the server restarted, a network
//! error, a call timed out) the next call opens a new one: a server that
//! comes back is used again without restarting the node.
//!
//! # Errors
//!
//! | code | when |
//! |---|---|
//! | `storage.conflict` | the stored version is not the expected one |
//! | `storage.unavailable` | the server cannot be reached, refuses the login, answers an error, or does not answer within the timeout; the message names the server and gives the reason (the IO error, or the server's message and SQLSTATE) |
//! | `storage.corrupt` | a row has impossible values (a version ≤ 0, a column of another type) |
//!
//! # Not yet
//!
//! TLS: connections are plain TCP (or a Unix socket). Keep the database on
//! a trusted network or loopback, or tunnel it; TLS (rustls) is future
//! work.

mod error;
mod settings;
mod sql;
mod store;

pub use settings::PostgresSettings;
pub use store::PostgresGrainStorage;
