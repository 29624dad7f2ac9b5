//! Where grain state lives between activations: the [`GrainStorage`]
//! trait, its versions (etags), and [`MemoryGrainStorage`], the reference
//! implementation.
//!
//! # Versions
//!
//! Every stored state has a version: `0` means "nothing stored", and each
//! successful [`write`](GrainStorage::write) returns the next one. A write
//! names the version it is based on (`expected`); when the stored version
//! differs, the write is refused with [`StorageError::Conflict`]
//! (`storage.conflict`) and nothing changes. This is optimistic concurrency
//! (Orleans' etags): two activations of one grain (a partition, two
//! members briefly disagreeing on the owner) cannot silently overwrite each
//! other: the stale writer is refused by the store.
//!
//! # Keys
//!
//! A [`GrainKey`] is (cluster, kind, id): one store can serve several
//! clusters without mixing their rows.
//!
//! # Schema
//!
//! Each write carries the grain kind's schema version. A reader whose kind
//! declares another schema gets the stored one back and decides: the
//! `cluster` crate's `PersistentState` refuses it with
//! `storage.schema_mismatch` rather than decoding garbage or resetting.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use futures::future::BoxFuture;

/// Which grain a state belongs to.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GrainKey {
    /// The cluster's name.
    pub cluster: Arc<str>,
    /// The grain kind.
    pub kind: Arc<str>,
    /// The grain's id.
    pub id: Arc<str>,
}

impl GrainKey {
    /// The key of `(kind, id)` in `cluster`.
    pub fn new(cluster: &str, kind: &str, id: &str) -> Self {
        Self {
            cluster: Arc::from(cluster),
            kind: Arc::from(kind),
            id: Arc::from(id),
        }
    }
}

impl fmt::Debug for GrainKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.cluster, self.kind, self.id)
    }
}

impl fmt::Display for GrainKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.cluster, self.kind, self.id)
    }
}

/// A stored state.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct StoredState {
    /// Its version (never 0).
    pub version: u64,
    /// The schema version it was written with.
    pub schema: u32,
    /// The encoded state.
    pub data: Vec<u8>,
}

/// Why a storage call failed. [`code`](Self::code) is stable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The write was based on `expected`, the store holds `actual`
    /// (`storage.conflict`): another activation wrote in between.
    #[error("version conflict: the write expected version {expected}, the store holds {actual}")]
    Conflict {
        /// The version the write was based on.
        expected: u64,
        /// The stored version (0: nothing stored).
        actual: u64,
    },
    /// The store could not be reached or answered an error
    /// (`storage.unavailable`); nothing is known to have changed.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// A stored row is unreadable (`storage.corrupt`).
    #[error("stored state is corrupt: {0}")]
    Corrupt(String),
    /// The stored state was written with another schema version than the
    /// kind declares (`storage.schema_mismatch`).
    #[error("stored state has schema version {stored}, the grain kind declares {declared}")]
    SchemaMismatch {
        /// In the store.
        stored: u32,
        /// Declared by the kind.
        declared: u32,
    },
    /// The stored state does not decode into the state type
    /// (`storage.decode`): its type changed without a schema bump.
    #[error("stored state does not decode: {0}")]
    Decode(String),
    /// The state could not be encoded (`storage.encode`).
    #[error("state does not encode: {0}")]
    Encode(String),
}

impl StorageError {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Conflict { .. } => "storage.conflict",
            Self::Unavailable(_) => "storage.unavailable",
            Self::Corrupt(_) => "storage.corrupt",
            Self::SchemaMismatch { .. } => "storage.schema_mismatch",
            Self::Decode(_) => "storage.decode",
            Self::Encode(_) => "storage.encode",
        }
    }
}

/// A store of grain states with versioned writes (see the [module
/// documentation](self)).
pub trait GrainStorage: Send + Sync + 'static {
    /// The stored state of `key`, or `None`.
    fn read<'a>(
        &'a self,
        key: &'a GrainKey,
    ) -> BoxFuture<'a, Result<Option<StoredState>, StorageError>>;

    /// Stores `data` for `key` if the stored version is `expected` (0:
    /// nothing stored); returns the new version.
    fn write<'a>(
        &'a self,
        key: &'a GrainKey,
        expected: u64,
        schema: u32,
        data: &'a [u8],
    ) -> BoxFuture<'a, Result<u64, StorageError>>;

    /// Removes the state of `key` if the stored version is `expected`
    /// (clearing what is not stored, with `expected` 0, succeeds).
    fn clear<'a>(
        &'a self,
        key: &'a GrainKey,
        expected: u64,
    ) -> BoxFuture<'a, Result<(), StorageError>>;
}

/// Grain states in memory, shared by clones (tests, the quickstart, nodes of
/// one process). Faults can be injected: [`set_unavailable`](Self::set_unavailable).
#[derive(Clone, Default)]
pub struct MemoryGrainStorage {
    inner: Arc<Mutex<MemoryInner>>,
}

#[derive(Default)]
struct MemoryInner {
    rows: HashMap<GrainKey, StoredState>,
    unavailable: bool,
}

impl fmt::Debug for MemoryGrainStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryGrainStorage")
            .field("rows", &self.lock().rows.len())
            .finish()
    }
}

impl MemoryGrainStorage {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryInner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes every call fail with `storage.unavailable` (or work again).
    pub fn set_unavailable(&self, unavailable: bool) {
        self.lock().unavailable = unavailable;
    }

    /// Puts a raw row (tests: a state written by another schema, garbage).
    pub fn put_raw(&self, key: &GrainKey, state: StoredState) {
        self.lock().rows.insert(key.clone(), state);
    }

    /// The stored row of `key`.
    pub fn get_raw(&self, key: &GrainKey) -> Option<StoredState> {
        self.lock().rows.get(key).cloned()
    }

    /// Rows stored.
    pub fn len(&self) -> usize {
        self.lock().rows.len()
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn unavailable() -> StorageError {
    StorageError::Unavailable("the in-memory store is set unavailable".into())
}

impl GrainStorage for MemoryGrainStorage {
    fn read<'a>(
        &'a self,
        key: &'a GrainKey,
    ) -> BoxFuture<'a, Result<Option<StoredState>, StorageError>> {
        let r = {
            let inner = self.lock();
            if inner.unavailable {
                Err(unavailable())
            } else {
                Ok(inner.rows.get(key).cloned())
            }
        };
        Box::pin(async move { r })
    }

    fn write<'a>(
        &'a self,
        key: &'a GrainKey,
        expected: u64,
        schema: u32,
        data: &'a [u8],
    ) -> BoxFuture<'a, Result<u64, StorageError>> {
        let r = {
            let mut inner = self.lock();
            if inner.unavailable {
                Err(unavailable())
            } else {
                let actual = inner.rows.get(key).map_or(0, |s| s.version);
                if actual == expected {
                    let version = actual + 1;
                    inner.rows.insert(
                        key.clone(),
                        StoredState {
                            version,
                            schema,
                            data: data.to_vec(),
                        },
                    );
                    Ok(version)
                } else {
                    Err(StorageError::Conflict { expected, actual })
                }
            }
        };
        Box::pin(async move { r })
    }

    fn clear<'a>(
        &'a self,
        key: &'a GrainKey,
        expected: u64,
    ) -> BoxFuture<'a, Result<(), StorageError>> {
        let r = {
            let mut inner = self.lock();
            if inner.unavailable {
                Err(unavailable())
            } else {
                let actual = inner.rows.get(key).map_or(0, |s| s.version);
                if actual == expected {
                    inner.rows.remove(key);
                    Ok(())
                } else {
                    Err(StorageError::Conflict { expected, actual })
                }
            }
        };
        Box::pin(async move { r })
    }
}

/// Runs the contract every [`GrainStorage`] must meet against `store`
/// (each implementation's tests call it): versions start at 1 and grow by
/// one, a stale write or clear is a conflict that changes nothing, keys of
/// other clusters and kinds are apart, and the schema is kept. Panics with
/// the broken rule.
pub async fn check_storage_contract(store: &dyn GrainStorage, cluster: &str) {
    let k = GrainKey::new(cluster, "order", "o-1");
    let other_cluster = GrainKey::new(&format!("{cluster}-other"), "order", "o-1");
    let other_kind = GrainKey::new(cluster, "cart", "o-1");
    assert_eq!(store.read(&k).await, Ok(None), "nothing stored yet");
    assert_eq!(
        store.write(&k, 0, 1, b"a").await,
        Ok(1),
        "first version is 1"
    );
    assert_eq!(
        store.write(&k, 1, 1, b"ab").await,
        Ok(2),
        "versions grow by one"
    );
    assert_eq!(
        store.write(&k, 1, 1, b"stale").await,
        Err(StorageError::Conflict {
            expected: 1,
            actual: 2
        }),
        "a stale write is a conflict"
    );
    assert_eq!(
        store.write(&k, 0, 1, b"again").await,
        Err(StorageError::Conflict {
            expected: 0,
            actual: 2
        }),
        "a create over an existing row is a conflict"
    );
    let s = store.read(&k).await.expect("read").expect("stored");
    assert_eq!((s.version, s.schema, s.data.as_slice()), (2, 1, &b"ab"[..]));
    assert_eq!(store.read(&other_cluster).await, Ok(None), "clusters apart");
    assert_eq!(store.read(&other_kind).await, Ok(None), "kinds apart");
    assert_eq!(store.write(&other_cluster, 0, 7, b"x").await, Ok(1));
    assert_eq!(
        store
            .read(&other_cluster)
            .await
            .expect("read")
            .map(|s| s.schema),
        Some(7),
        "the schema is kept"
    );
    assert!(matches!(
        store.clear(&k, 1).await,
        Err(StorageError::Conflict { .. })
    ));
    assert_eq!(store.clear(&k, 2).await, Ok(()));
    assert_eq!(store.read(&k).await, Ok(None));
    assert_eq!(
        store.write(&k, 0, 1, b"new").await,
        Ok(1),
        "a cleared row starts again"
    );
    let big = vec![7u8; 256 * 1024];
    assert_eq!(
        store.write(&k, 1, 1, &big).await,
        Ok(2),
        "256 KiB states fit"
    );
    assert_eq!(
        store.read(&k).await.expect("read").map(|s| s.data.len()),
        Some(big.len())
    );
    assert_eq!(
        store.clear(&GrainKey::new(cluster, "none", "x"), 0).await,
        Ok(())
    );
}

/// Runs the concurrency part of the contract: `stores` (several
/// connections to one backend, as several nodes would have) each start
/// writes of one key based on the same version at once, 12 per round, for 5
/// rounds; in every round exactly one wins with the next version, the others
/// are `storage.conflict` naming the version that won, and the winner's data
/// is what is stored. Panics with the broken rule.
pub async fn check_concurrent_writers(stores: &[&dyn GrainStorage], cluster: &str) {
    assert!(!stores.is_empty(), "at least one store");
    let key = GrainKey::new(cluster, "order", "hot");
    for round in 0..5u64 {
        let datas: Vec<String> = (0..12)
            .map(|i| format!("round {round} writer {i}"))
            .collect();
        let writes = datas.iter().enumerate().map(|(i, data)| {
            let store = stores[i % stores.len()];
            let key = &key;
            async move {
                store
                    .write(key, round, 1, data.as_bytes())
                    .await
                    .map(|v| (v, data))
            }
        });
        let mut wins = Vec::new();
        for outcome in futures::future::join_all(writes).await {
            match outcome {
                Ok(w) => wins.push(w),
                Err(StorageError::Conflict { expected, actual }) => {
                    assert_eq!((expected, actual), (round, round + 1), "round {round}");
                }
                Err(e) => panic!("a writer failed with {} ({e})", e.code()),
            }
        }
        assert_eq!(wins.len(), 1, "round {round}: exactly one writer wins");
        let (v, data) = wins.pop().expect("one winner");
        assert_eq!(v, round + 1);
        let stored = stores[stores.len() - 1]
            .read(&key)
            .await
            .expect("read")
            .expect("stored");
        assert_eq!(stored.data, data.as_bytes(), "the winner's state is stored");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_memory_store_meets_the_contract() {
        let store = MemoryGrainStorage::new();
        check_storage_contract(&store, "c").await;
        check_concurrent_writers(&[&store, &store.clone()], "c").await;
        store.set_unavailable(true);
        let k = GrainKey::new("c", "k", "i");
        assert_eq!(
            store.read(&k).await.unwrap_err().code(),
            "storage.unavailable"
        );
    }
}
