//! [`PostgresGrainStorage`]: one connection per store, replaced when it
//! breaks, every call bounded.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use cluster_core::{GrainKey, GrainStorage, StorageError, StoredState};
use futures::future::BoxFuture;
use tokio_postgres::{Client, NoTls, Statement};

use crate::error;
use crate::settings::PostgresSettings;
use crate::sql;

/// How often a write or clear is tried again when it changed nothing yet
/// the version read right after is the expected one (the row was changed
/// back in between: cleared and written again).
const RETRIES: usize = 3;

/// Grain states in a PostgreSQL table (see the [crate
/// documentation](crate)). Clones share the connection.
#[derive(Clone)]
pub struct PostgresGrainStorage {
    inner: Arc<Inner>,
}

struct Inner {
    settings: PostgresSettings,
    server: String,
    /// The current connection; `None` until the first call and after it
    /// broke. The lock is held while connecting, so one caller connects
    /// and the others wait for it (within their own call timeout).
    conn: tokio::sync::Mutex<Option<Arc<Conn>>>,
}

/// An open connection with the statements prepared on it.
struct Conn {
    client: Client,
    /// Set when a call on it failed in a way that means the connection is
    /// gone or no longer trustworthy.
    broken: AtomicBool,
    read: Statement,
    version: Statement,
    insert: Statement,
    update: Statement,
    delete: Statement,
}

impl Conn {
    fn usable(&self) -> bool {
        !self.client.is_closed() && !self.broken.load(Ordering::Relaxed)
    }
}

impl fmt::Debug for PostgresGrainStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresGrainStorage")
            .field("settings", &self.inner.settings)
            .finish()
    }
}

impl PostgresGrainStorage {
    /// Connects to the server and creates the table when missing; fails
    /// with `storage.unavailable` (the reason, naming the server) when the
    /// server cannot be reached within the connect timeout, refuses the
    /// login, or the table cannot be created.
    pub async fn connect(settings: PostgresSettings) -> Result<Self, StorageError> {
        let store = Self::lazy(settings);
        let within = store.inner.settings.connect_timeout;
        store.bounded(within, store.connection()).await?;
        Ok(store)
    }

    /// A store that connects on its first call (a node may start before
    /// its database; calls fail with `storage.unavailable` until it is
    /// there).
    pub fn lazy(settings: PostgresSettings) -> Self {
        Self {
            inner: Arc::new(Inner {
                server: settings.server(),
                settings,
                conn: tokio::sync::Mutex::new(None),
            }),
        }
    }

    /// The settings.
    pub fn settings(&self) -> &PostgresSettings {
        &self.inner.settings
    }

    /// The open connection, or a new one.
    async fn connection(&self) -> Result<Arc<Conn>, StorageError> {
        self.connection_reused().await.map(|(c, _)| c)
    }

    /// The open connection (`true`: it was open before this call), or a
    /// new one (`false`).
    async fn connection_reused(&self) -> Result<(Arc<Conn>, bool), StorageError> {
        let mut slot = self.inner.conn.lock().await;
        if let Some(c) = slot.as_ref()
            && c.usable()
        {
            return Ok((Arc::clone(c), true));
        }
        *slot = None;
        let within = self.inner.settings.connect_timeout;
        let c = tokio::time::timeout(within, self.open())
            .await
            .map_err(|_| {
                StorageError::Unavailable(format!(
                    "postgres {}: could not connect within {within:?}",
                    self.inner.server
                ))
            })??;
        let c = Arc::new(c);
        *slot = Some(Arc::clone(&c));
        Ok((c, false))
    }

    async fn open(&self) -> Result<Conn, StorageError> {
        let server = &self.inner.server;
        let failed = |e: tokio_postgres::Error| error::unavailable(server, &e);
        let (client, connection) = self
            .inner
            .settings
            .client_config()
            .connect(NoTls)
            .await
            .map_err(failed)?;
        // Drives the socket; ends when the client is dropped or the server
        // goes (the client then reports closed and is replaced).
        tokio::spawn(connection);
        client.batch_execute(sql::CREATE).await.map_err(failed)?;
        Ok(Conn {
            read: client.prepare(sql::READ).await.map_err(failed)?,
            version: client.prepare(sql::VERSION).await.map_err(failed)?,
            insert: client.prepare(sql::INSERT).await.map_err(failed)?,
            update: client.prepare(sql::UPDATE).await.map_err(failed)?,
            delete: client.prepare(sql::DELETE).await.map_err(failed)?,
            broken: AtomicBool::new(false),
            client,
        })
    }

    /// `fut` within `within`; past it, `storage.unavailable` and the
    /// connection is replaced on the next call.
    async fn bounded<T>(
        &self,
        within: std::time::Duration,
        fut: impl Future<Output = Result<T, StorageError>>,
    ) -> Result<T, StorageError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(StorageError::Unavailable(
                "the PostgreSQL store was called outside a tokio runtime".into(),
            ));
        }
        match tokio::time::timeout(within, fut).await {
            Ok(r) => r,
            Err(_) => {
                // When the lock is held, its holder is opening a new
                // connection already.
                if let Ok(mut slot) = self.inner.conn.try_lock()
                    && let Some(c) = slot.take()
                {
                    c.broken.store(true, Ordering::Relaxed);
                }
                Err(StorageError::Unavailable(format!(
                    "postgres {}: no answer within {within:?}",
                    self.inner.server
                )))
            }
        }
    }

    /// A failed statement on `conn` as a storage error; a lost connection
    /// is marked to be replaced.
    fn failed(&self, conn: &Conn, e: &tokio_postgres::Error) -> StorageError {
        if error::connection_lost(e) {
            conn.broken.store(true, Ordering::Relaxed);
        }
        error::unavailable(&self.inner.server, e)
    }

    async fn current_version(&self, conn: &Conn, key: &GrainKey) -> Result<u64, StorageError> {
        let row = conn
            .client
            .query_opt(&conn.version, &[&&*key.cluster, &&*key.kind, &&*key.id])
            .await
            .map_err(|e| self.failed(conn, &e))?;
        match row {
            None => Ok(0),
            Some(r) => {
                let v: i64 = r.try_get(0).map_err(|e| corrupt(key, &e))?;
                stored_version(key, v)
            }
        }
    }

    async fn read_now(&self, key: &GrainKey) -> Result<Option<StoredState>, StorageError> {
        let (mut conn, mut reused) = self.connection_reused().await?;
        let row = loop {
            match conn
                .client
                .query_opt(&conn.read, &[&&*key.cluster, &&*key.kind, &&*key.id])
                .await
            {
                Ok(row) => break row,
                // A read changes nothing: when a connection kept from
                // before turns out lost (the server restarted since), read
                // once more on a new one.
                Err(e) if reused && error::connection_lost(&e) => {
                    conn.broken.store(true, Ordering::Relaxed);
                    conn = self.connection().await?;
                    reused = false;
                }
                Err(e) => return Err(self.failed(&conn, &e)),
            }
        };
        let Some(row) = row else {
            return Ok(None);
        };
        let version: i64 = row.try_get(0).map_err(|e| corrupt(key, &e))?;
        let schema: i64 = row.try_get(1).map_err(|e| corrupt(key, &e))?;
        let data: Vec<u8> = row.try_get(2).map_err(|e| corrupt(key, &e))?;
        Ok(Some(StoredState {
            version: stored_version(key, version)?,
            schema: u32::try_from(schema).map_err(|_| {
                StorageError::Corrupt(format!("the row of {key} has schema version {schema}"))
            })?,
            data,
        }))
    }

    async fn write_now(
        &self,
        key: &GrainKey,
        expected: u64,
        schema: u32,
        data: &[u8],
    ) -> Result<u64, StorageError> {
        let conn = self.connection().await?;
        let (c, k, i) = (&*key.cluster, &*key.kind, &*key.id);
        let schema = i64::from(schema);
        for _ in 0..RETRIES {
            let changed = if expected == 0 {
                conn.client
                    .execute(&conn.insert, &[&c, &k, &i, &schema, &data])
                    .await
            } else {
                let expected = sql_version(expected);
                conn.client
                    .execute(&conn.update, &[&c, &k, &i, &expected, &schema, &data])
                    .await
            }
            .map_err(|e| self.failed(&conn, &e))?;
            if changed == 1 {
                return Ok(expected + 1);
            }
            let actual = self.current_version(&conn, key).await?;
            if actual != expected {
                return Err(StorageError::Conflict { expected, actual });
            }
        }
        Err(contended(&self.inner.server, key))
    }

    async fn clear_now(&self, key: &GrainKey, expected: u64) -> Result<(), StorageError> {
        let conn = self.connection().await?;
        let (c, k, i) = (&*key.cluster, &*key.kind, &*key.id);
        for _ in 0..RETRIES {
            if expected != 0 {
                let v = sql_version(expected);
                let changed = conn
                    .client
                    .execute(&conn.delete, &[&c, &k, &i, &v])
                    .await
                    .map_err(|e| self.failed(&conn, &e))?;
                if changed == 1 {
                    return Ok(());
                }
            }
            match self.current_version(&conn, key).await? {
                0 if expected == 0 => return Ok(()),
                actual if actual != expected => {
                    return Err(StorageError::Conflict { expected, actual });
                }
                _ => {}
            }
        }
        Err(contended(&self.inner.server, key))
    }
}

fn contended(server: &str, key: &GrainKey) -> StorageError {
    StorageError::Unavailable(format!(
        "postgres {server}: the row of {key} kept changing under the write; try again"
    ))
}

fn corrupt(key: &GrainKey, e: &tokio_postgres::Error) -> StorageError {
    StorageError::Corrupt(format!(
        "the row of {key} is unreadable: {}",
        error::reason(e)
    ))
}

fn stored_version(key: &GrainKey, v: i64) -> Result<u64, StorageError> {
    u64::try_from(v)
        .ok()
        .filter(|v| *v > 0)
        .ok_or_else(|| StorageError::Corrupt(format!("the row of {key} has version {v}")))
}

/// A version as the table stores it (bigint); one that cannot be stored
/// matches no row (-1).
fn sql_version(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(-1)
}

impl GrainStorage for PostgresGrainStorage {
    fn read<'a>(
        &'a self,
        key: &'a GrainKey,
    ) -> BoxFuture<'a, Result<Option<StoredState>, StorageError>> {
        let within = self.inner.settings.call_timeout;
        Box::pin(self.bounded(within, self.read_now(key)))
    }

    fn write<'a>(
        &'a self,
        key: &'a GrainKey,
        expected: u64,
        schema: u32,
        data: &'a [u8],
    ) -> BoxFuture<'a, Result<u64, StorageError>> {
        let within = self.inner.settings.call_timeout;
        Box::pin(self.bounded(within, self.write_now(key, expected, schema, data)))
    }

    fn clear<'a>(
        &'a self,
        key: &'a GrainKey,
        expected: u64,
    ) -> BoxFuture<'a, Result<(), StorageError>> {
        let within = self.inner.settings.call_timeout;
        Box::pin(self.bounded(within, self.clear_now(key, expected)))
    }
}
