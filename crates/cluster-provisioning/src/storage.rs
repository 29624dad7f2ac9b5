//! Opens the node's `[storage]`.

use std::sync::{Arc, OnceLock};

use cluster_core::{GrainStorage, MemoryGrainStorage, StorageError};

use crate::config::StorageConfig;

/// One in-memory store per process: the nodes of one process (tests, the
/// quickstart) share it, like the `memory` provider's tables.
fn process_memory() -> MemoryGrainStorage {
    static STORE: OnceLock<MemoryGrainStorage> = OnceLock::new();
    STORE.get_or_init(MemoryGrainStorage::new).clone()
}

/// Opens (or connects to) the store of `config`.
pub(crate) async fn open(config: &StorageConfig) -> Result<Arc<dyn GrainStorage>, StorageError> {
    match config {
        StorageConfig::Memory => Ok(Arc::new(process_memory())),
        #[cfg(feature = "sqlite")]
        StorageConfig::Sqlite { path, busy_timeout } => {
            let mut settings = grain_storage_sqlite::SqliteSettings::new();
            if let Some(t) = busy_timeout {
                settings = settings.busy_timeout(*t);
            }
            Ok(Arc::new(
                grain_storage_sqlite::SqliteGrainStorage::open_with(path, settings).await?,
            ))
        }
        #[cfg(feature = "postgres")]
        StorageConfig::Postgres {
            host,
            port,
            user,
            dbname,
            password,
            password_file,
            connect_timeout,
            call_timeout,
        } => {
            let mut s = grain_storage_postgres::PostgresSettings::new(host, *port, user, dbname);
            let password = match (password, password_file) {
                (Some(p), _) => Some(p.clone()),
                (None, Some(f)) => {
                    Some(crate::config::read_secret_file(f).map_err(StorageError::Unavailable)?)
                }
                (None, None) => None,
            };
            if let Some(p) = password {
                s = s.password(p.expose());
            }
            if let Some(t) = connect_timeout {
                s = s.connect_timeout(*t);
            }
            if let Some(t) = call_timeout {
                s = s.call_timeout(*t);
            }
            Ok(Arc::new(
                grain_storage_postgres::PostgresGrainStorage::connect(s).await?,
            ))
        }
        #[allow(unreachable_patterns)]
        other => Err(StorageError::Unavailable(format!(
            "the storage kind {:?} is not compiled into this build",
            other.kind()
        ))),
    }
}
