//! `[storage]`: where the node's stateful grains keep their state (issue
//! 18). One store per node, shared by every grain kind registered with
//! [`NodeBuilder::stored_grain`](crate::NodeBuilder::stored_grain).
//!
//! ```toml
//! [storage]
//! kind = "sqlite"                          # memory (default) | sqlite | postgres
//! path = "/var/lib/cluster-node/grains.db"
//!
//! # [storage]
//! # kind = "postgres"
//! # host = "10.0.0.5"
//! # port = 5432
//! # user = "cluster"
//! # dbname = "cluster"
//! # password_file = "/run/secrets/pg-password"
//! ```
//!
//! `memory` keeps state in the process only: it survives moves between the
//! nodes of one process, not a restart. `sqlite` is one file on one machine
//! (feature `sqlite`); `postgres` is shared by the machines of a cluster
//! (feature `postgres`). See `docs/grains-storage.md`.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Secret, duration};

/// `[storage]`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
#[non_exhaustive]
pub enum StorageConfig {
    /// In the process (default).
    #[default]
    Memory,
    /// One SQLite file.
    Sqlite {
        /// The database file (created if missing).
        path: PathBuf,
        /// How long a write waits for a lock held by another process
        /// (default 5s).
        #[serde(
            default,
            with = "duration::option",
            skip_serializing_if = "Option::is_none"
        )]
        busy_timeout: Option<Duration>,
    },
    /// A PostgreSQL server.
    Postgres {
        /// Host (default `127.0.0.1`).
        #[serde(default = "localhost")]
        host: String,
        /// Port (default 5432).
        #[serde(default = "pg_port")]
        port: u16,
        /// User.
        user: String,
        /// Database.
        dbname: String,
        /// Password.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        password: Option<Secret>,
        /// A file holding the password.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        password_file: Option<PathBuf>,
        /// Bound of connecting (default 5s).
        #[serde(
            default,
            with = "duration::option",
            skip_serializing_if = "Option::is_none"
        )]
        connect_timeout: Option<Duration>,
        /// Bound of one call (default 5s).
        #[serde(
            default,
            with = "duration::option",
            skip_serializing_if = "Option::is_none"
        )]
        call_timeout: Option<Duration>,
    },
}

fn localhost() -> String {
    "127.0.0.1".to_owned()
}

fn pg_port() -> u16 {
    5432
}

impl StorageConfig {
    /// The kind's name.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::Sqlite { .. } => "sqlite",
            Self::Postgres { .. } => "postgres",
        }
    }

    /// Whether this build has the kind (its cargo feature).
    pub fn compiled_in(&self) -> bool {
        match self {
            Self::Memory => true,
            Self::Sqlite { .. } => cfg!(feature = "sqlite"),
            Self::Postgres { .. } => cfg!(feature = "postgres"),
        }
    }

    /// Checks what can be checked without opening the store: the kind is
    /// compiled in, a password and a password file are not both given, the
    /// password file is readable. Returns (field, reason).
    pub(crate) fn check(&self) -> Result<(), (String, String)> {
        if !self.compiled_in() {
            return Err((
                "storage.kind".into(),
                format!(
                    "{:?} is not compiled into this build (cargo feature {:?} of cluster-provisioning)",
                    self.kind(),
                    self.kind()
                ),
            ));
        }
        if let Self::Postgres {
            password,
            password_file,
            ..
        } = self
        {
            match (password, password_file) {
                (Some(_), Some(_)) => {
                    return Err((
                        "storage.password_file".into(),
                        "give either password or password_file".into(),
                    ));
                }
                (None, Some(f)) => {
                    super::read_secret_file(f).map_err(|r| ("storage.password_file".into(), r))?;
                }
                _ => {}
            }
        }
        Ok(())
    }
}
