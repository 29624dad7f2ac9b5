//! [`SqliteGrainStorage`]: the async store over one connection.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use cluster_core::{GrainKey, GrainStorage, StorageError, StoredState};
use futures::future::BoxFuture;
use rusqlite::{Connection, OpenFlags};

use crate::error;
use crate::ops::{self, OpError};

/// SQLite's `synchronous` setting: how durable a write that returned is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Synchronous {
    /// Every commit is synced to disk: a write that returned survives a
    /// power loss (the default).
    #[default]
    Full,
    /// The WAL is synced at checkpoints only: faster; the last writes may
    /// be lost on a power loss (never on a process crash), and the file is
    /// never corrupted.
    Normal,
}

impl Synchronous {
    fn pragma(self) -> &'static str {
        match self {
            Self::Full => "FULL",
            Self::Normal => "NORMAL",
        }
    }
}

/// How a [`SqliteGrainStorage`] opens its file.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SqliteSettings {
    /// How long a call waits for another connection's write lock before it
    /// fails with `storage.unavailable` (default 5 s).
    pub busy_timeout: Duration,
    /// Durability of a returned write (default [`Synchronous::Full`]).
    pub synchronous: Synchronous,
}

impl Default for SqliteSettings {
    fn default() -> Self {
        Self {
            busy_timeout: Duration::from_secs(5),
            synchronous: Synchronous::Full,
        }
    }
}

impl SqliteSettings {
    /// The default settings.
    pub fn new() -> Self {
        Self::default()
    }

    /// With another busy timeout.
    pub fn busy_timeout(mut self, t: Duration) -> Self {
        self.busy_timeout = t;
        self
    }

    /// With another durability.
    pub fn synchronous(mut self, s: Synchronous) -> Self {
        self.synchronous = s;
        self
    }
}

/// Grain states in one SQLite file (see the [crate documentation](crate)).
/// Clones share the connection.
#[derive(Clone)]
pub struct SqliteGrainStorage {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl fmt::Debug for SqliteGrainStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteGrainStorage")
            .field("path", &self.inner.path)
            .finish()
    }
}

impl SqliteGrainStorage {
    /// Opens (or creates) the database at `path` with the default
    /// settings; see [`open_with`](Self::open_with).
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, StorageError> {
        Self::open_with(path, SqliteSettings::default()).await
    }

    /// Opens (or creates) the database at `path`, puts it in WAL mode and
    /// creates the table when missing. A file that is not an SQLite
    /// database is refused with `storage.corrupt`; a path that cannot be
    /// opened (missing folder, permissions) with `storage.unavailable`;
    /// both messages name the file. Runs on the blocking pool.
    pub async fn open_with(
        path: impl AsRef<Path>,
        settings: SqliteSettings,
    ) -> Result<Self, StorageError> {
        let path = path.as_ref().to_path_buf();
        blocking(move || Self::open_blocking(path, &settings)).await?
    }

    /// [`open_with`](Self::open_with), blocking the calling thread (for
    /// programs that open their store before starting a runtime).
    pub fn open_blocking(
        path: impl AsRef<Path>,
        settings: &SqliteSettings,
    ) -> Result<Self, StorageError> {
        let path = path.as_ref().to_path_buf();
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&path, flags).map_err(|e| error::map(&path, &e))?;
        ops::prepare(&conn, settings.busy_timeout, settings.synchronous.pragma())
            .map_err(|e| op_error(&path, e))?;
        Ok(Self {
            inner: Arc::new(Inner {
                path,
                conn: Mutex::new(conn),
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `f` on the connection on the blocking pool.
    async fn run<T, F>(&self, f: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, OpError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        blocking(move || {
            // A panic while holding the lock leaves no half transaction:
            // rusqlite's Transaction rolls back when dropped.
            let mut conn = inner.conn.lock().unwrap_or_else(PoisonError::into_inner);
            f(&mut conn).map_err(|e| op_error(&inner.path, e))
        })
        .await?
    }
}

fn op_error(path: &Path, e: OpError) -> StorageError {
    match e {
        OpError::Sqlite(e) => error::map(path, &e),
        OpError::Storage(StorageError::Unavailable(m)) => {
            StorageError::Unavailable(format!("sqlite {}: {m}", path.display()))
        }
        OpError::Storage(StorageError::Corrupt(m)) => {
            StorageError::Corrupt(format!("sqlite {}: {m}", path.display()))
        }
        OpError::Storage(e) => e,
    }
}

/// Runs `f` on tokio's blocking pool; outside a runtime, or when `f`
/// panics, a `storage.unavailable`.
async fn blocking<T, F>(f: F) -> Result<T, StorageError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let handle = tokio::runtime::Handle::try_current().map_err(|_| {
        StorageError::Unavailable("the SQLite store was called outside a tokio runtime".into())
    })?;
    handle
        .spawn_blocking(f)
        .await
        .map_err(|e| StorageError::Unavailable(format!("the SQLite call did not finish: {e}")))
}

impl GrainStorage for SqliteGrainStorage {
    fn read<'a>(
        &'a self,
        key: &'a GrainKey,
    ) -> BoxFuture<'a, Result<Option<StoredState>, StorageError>> {
        let key = key.clone();
        Box::pin(self.run(move |c| ops::read(c, &key)))
    }

    fn write<'a>(
        &'a self,
        key: &'a GrainKey,
        expected: u64,
        schema: u32,
        data: &'a [u8],
    ) -> BoxFuture<'a, Result<u64, StorageError>> {
        let key = key.clone();
        let data = data.to_vec();
        Box::pin(self.run(move |c| ops::write(c, &key, expected, schema, &data)))
    }

    fn clear<'a>(
        &'a self,
        key: &'a GrainKey,
        expected: u64,
    ) -> BoxFuture<'a, Result<(), StorageError>> {
        let key = key.clone();
        Box::pin(self.run(move |c| ops::clear(c, &key, expected)))
    }
}
