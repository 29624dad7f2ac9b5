//! What a grain is and how it lives: the [`Grain`] trait with its lifecycle
//! hooks, the [`GrainContext`] an activation gets, [`PersistentState`] for
//! state that survives moves, and the per-kind [`GrainOptions`].
//!
//! # Lifecycle of one activation
//!
//! ```text
//!  first request ─► wait for the previous owner to release the grain
//!                   (its deactivation, and so its save, is finished)
//!                ─► on_activate(ctx)          load state; an Err fails that
//!                                             request with the error's code
//!                                             and the activation is dropped
//!                ─► handle(request) ...       one at a time, in order
//!                ─► on_deactivate(reason)     on hand-off (the owner moved),
//!                                             idle timeout, leave, shutdown;
//!                                             bounded by the kind's deadline
//! ```
//!
//! A crash runs no hook: the next activation, on the new owner, loads the
//! last saved state. A grain whose `handle` panics is restarted fresh; its
//! `on_deactivate` is not run for the failed instance (its state may be
//! half-changed), and the next request activates it again from storage.
//!
//! # State that survives moves
//!
//! Hold a [`PersistentState<S>`], load it in `on_activate`, save it when it
//! changed (write-through in `handle`, or in `on_deactivate`). Each save
//! names the version it was loaded at, so a second activation of the same
//! grain (two members that briefly disagree on the owner, a partition) is
//! refused by the store with `storage.conflict` instead of overwriting
//! silently.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use cluster_core::{GrainKey, GrainStorage, StorageError};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A virtual actor: one instance per `(kind, id)` in the cluster, on the
/// identity's owner.
pub trait Grain: Send + 'static {
    /// What it is asked.
    type Request: Serialize + DeserializeOwned + Send + 'static;
    /// What it answers.
    type Response: Serialize + DeserializeOwned + Send + 'static;

    /// Handles one request (requests are handled one at a time, in arrival
    /// order).
    fn handle(&mut self, request: Self::Request) -> impl Future<Output = Self::Response> + Send;

    /// Runs once per activation, before its first request: load state here
    /// ([`PersistentState::load`]). An error fails the request that caused
    /// the activation with the error's code (`storage.unavailable`, ...)
    /// and the activation is not kept; the next request tries again.
    fn on_activate(
        &mut self,
        ctx: &GrainContext,
    ) -> impl Future<Output = Result<(), GrainError>> + Send {
        let _ = ctx;
        async { Ok(()) }
    }

    /// Runs when the activation ends gracefully: the owner moved (join,
    /// leave, rebalance), it was idle for the kind's idle timeout, or the
    /// node leaves or shuts down. Bounded by the kind's deactivation
    /// deadline; an error or a timeout is logged (WARN), and the new owner
    /// then loads whatever was last saved.
    fn on_deactivate(
        &mut self,
        reason: DeactivationReason,
    ) -> impl Future<Output = Result<(), GrainError>> + Send {
        let _ = reason;
        async { Ok(()) }
    }
}

/// A grain whose kind is part of its type: register it with
/// [`ClusterBuilder::named_grain`](crate::ClusterBuilder::named_grain) and
/// call it with [`Cluster::call`](crate::Cluster::call), and the two cannot
/// disagree on the kind's name.
pub trait NamedGrain: Grain {
    /// The kind's name.
    const KIND: &'static str;
}

/// Why an activation ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeactivationReason {
    /// Another member owns the grain now (a join, a leave, a rebalance), or
    /// its new owner asked for it.
    HandOff,
    /// No request for the kind's idle timeout.
    Idle,
    /// This node leaves the cluster or placement pauses.
    Leaving,
}

impl DeactivationReason {
    /// A stable lower-case name (logs, metrics).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HandOff => "hand_off",
            Self::Idle => "idle",
            Self::Leaving => "leaving",
        }
    }
}

/// Why a lifecycle hook failed. [`code`](Self::code) is stable.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum GrainError {
    /// A storage call failed (its own code: `storage.conflict`,
    /// `storage.unavailable`, `storage.decode`, ...).
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The kind has no storage but the grain used one (`grain.no_storage`).
    #[error("the grain kind {0:?} has no storage configured")]
    NoStorage(String),
    /// The grain refused to activate for a reason of its own
    /// (`grain.activation_refused`).
    #[error("{0}")]
    Refused(String),
    /// `on_activate` did not finish within the kind's deadline
    /// (`grain.activation_timeout`): a store that hangs fails the request
    /// instead of wedging the grain.
    #[error("the activation did not finish within {0:?}")]
    ActivationTimeout(Duration),
    /// `save` or `clear` before `load` (`grain.not_loaded`).
    #[error("the state was not loaded")]
    NotLoaded,
}

impl GrainError {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Storage(e) => e.code(),
            Self::NoStorage(_) => "grain.no_storage",
            Self::Refused(_) => "grain.activation_refused",
            Self::ActivationTimeout(_) => "grain.activation_timeout",
            Self::NotLoaded => "grain.not_loaded",
        }
    }
}

/// How the grains of one kind live. `Default`: no storage, schema 1, no
/// idle timeout, a 5 s deactivation deadline.
#[derive(Clone)]
pub struct GrainOptions {
    pub(crate) storage: Option<Arc<dyn GrainStorage>>,
    pub(crate) schema: u32,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) deactivation_deadline: Duration,
}

impl Default for GrainOptions {
    fn default() -> Self {
        Self {
            storage: None,
            schema: 1,
            idle_timeout: None,
            deactivation_deadline: Duration::from_secs(5),
        }
    }
}

impl fmt::Debug for GrainOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrainOptions")
            .field("storage", &self.storage.is_some())
            .field("schema", &self.schema)
            .field("idle_timeout", &self.idle_timeout)
            .field("deactivation_deadline", &self.deactivation_deadline)
            .finish()
    }
}

impl GrainOptions {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Where the kind's state is stored.
    pub fn storage(mut self, storage: impl GrainStorage) -> Self {
        self.storage = Some(Arc::new(storage));
        self
    }

    /// [`storage`](Self::storage) with a shared store.
    pub fn shared_storage(mut self, storage: Arc<dyn GrainStorage>) -> Self {
        self.storage = Some(storage);
        self
    }

    /// The schema version of the kind's state (default 1): bump it when the
    /// state type changes incompatibly; a stored state of another version
    /// fails activation with `storage.schema_mismatch` instead of decoding
    /// garbage or starting empty.
    pub fn schema(mut self, version: u32) -> Self {
        self.schema = version;
        self
    }

    /// Deactivate an activation after this long without a request (at
    /// least 10 ms).
    pub fn idle_timeout(mut self, idle: Duration) -> Self {
        self.idle_timeout = Some(idle.max(Duration::from_millis(10)));
        self
    }

    /// Bound of `on_activate` and of `on_deactivate`, each (default 5 s).
    pub fn deactivation_deadline(mut self, deadline: Duration) -> Self {
        self.deactivation_deadline = deadline;
        self
    }
}

/// What an activation knows about itself: its key and its kind's storage.
/// Cheap to clone; keep it if the grain saves outside `on_activate`.
#[derive(Clone)]
pub struct GrainContext {
    key: GrainKey,
    storage: Option<Arc<dyn GrainStorage>>,
    schema: u32,
}

impl fmt::Debug for GrainContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrainContext")
            .field("key", &self.key)
            .field("storage", &self.storage.is_some())
            .field("schema", &self.schema)
            .finish()
    }
}

impl GrainContext {
    /// The context of the grain `key` of a kind with `options` (placement
    /// builds it for each activation; public for tests of grains).
    pub fn new(key: GrainKey, options: &GrainOptions) -> Self {
        Self {
            key,
            storage: options.storage.clone(),
            schema: options.schema,
        }
    }

    /// (cluster, kind, id).
    pub fn key(&self) -> &GrainKey {
        &self.key
    }

    /// The grain's id.
    pub fn id(&self) -> &str {
        &self.key.id
    }

    /// The kind's storage, if it has one.
    pub fn storage(&self) -> Option<&Arc<dyn GrainStorage>> {
        self.storage.as_ref()
    }

    /// The kind's schema version.
    pub fn schema(&self) -> u32 {
        self.schema
    }
}

/// A grain's state in its kind's storage, encoded with `rmp-serde`.
///
/// ```
/// use cluster::grain::{Grain, GrainContext, GrainError, PersistentState, DeactivationReason};
///
/// #[derive(Default)]
/// struct Order { items: PersistentState<Vec<String>> }
///
/// impl Grain for Order {
///     type Request = String;          // an item to add
///     type Response = Result<usize, String>;
///     async fn on_activate(&mut self, ctx: &GrainContext) -> Result<(), GrainError> {
///         self.items.load(ctx).await  // the last saved state, or empty
///     }
///     async fn handle(&mut self, item: String) -> Self::Response {
///         self.items.get_mut().push(item);
///         // Write-through: saved before answering. A conflict means another
///         // activation wrote first: drop the unsaved change, answer an error.
///         if let Err(e) = self.items.save().await {
///             let _ = self.items.reload().await;
///             return Err(e.code().to_owned());
///         }
///         Ok(self.items.get().len())
///     }
/// }
/// ```
pub struct PersistentState<S> {
    value: S,
    version: u64,
    ctx: Option<GrainContext>,
}

impl<S: Default> Default for PersistentState<S> {
    fn default() -> Self {
        Self {
            value: S::default(),
            version: 0,
            ctx: None,
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for PersistentState<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PersistentState")
            .field("value", &self.value)
            .field("version", &self.version)
            .finish()
    }
}

impl<S> PersistentState<S>
where
    S: Serialize + DeserializeOwned + Default + Send + Sync,
{
    /// A default state, not loaded.
    pub fn new() -> Self {
        Self::default()
    }

    /// Loads the stored state (or the default when nothing is stored) and
    /// remembers `ctx` for [`save`](Self::save). A state of another schema
    /// version is `storage.schema_mismatch`; one that does not decode is
    /// `storage.decode`: never silently reset.
    pub async fn load(&mut self, ctx: &GrainContext) -> Result<(), GrainError> {
        let storage = ctx
            .storage
            .as_ref()
            .ok_or_else(|| GrainError::NoStorage(ctx.key.kind.to_string()))?;
        self.ctx = Some(ctx.clone());
        match storage.read(&ctx.key).await? {
            None => {
                self.value = S::default();
                self.version = 0;
            }
            Some(stored) => {
                if stored.schema != ctx.schema {
                    return Err(StorageError::SchemaMismatch {
                        stored: stored.schema,
                        declared: ctx.schema,
                    }
                    .into());
                }
                self.value = rmp_serde::from_slice(&stored.data)
                    .map_err(|e| StorageError::Decode(format!("{}: {e}", ctx.key)))?;
                self.version = stored.version;
            }
        }
        Ok(())
    }

    /// Saves the state, based on the version it was loaded (or last saved)
    /// at; `storage.conflict` when another activation wrote in between.
    pub async fn save(&mut self) -> Result<(), GrainError> {
        let ctx = self.ctx.as_ref().ok_or(GrainError::NotLoaded)?;
        let storage = ctx
            .storage
            .as_ref()
            .ok_or_else(|| GrainError::NoStorage(ctx.key.kind.to_string()))?;
        let data =
            rmp_serde::to_vec(&self.value).map_err(|e| StorageError::Encode(e.to_string()))?;
        self.version = storage
            .write(&ctx.key, self.version, ctx.schema, &data)
            .await?;
        Ok(())
    }

    /// Removes the stored state and resets to the default.
    pub async fn clear(&mut self) -> Result<(), GrainError> {
        let ctx = self.ctx.as_ref().ok_or(GrainError::NotLoaded)?;
        let storage = ctx
            .storage
            .as_ref()
            .ok_or_else(|| GrainError::NoStorage(ctx.key.kind.to_string()))?;
        storage.clear(&ctx.key, self.version).await?;
        self.version = 0;
        self.value = S::default();
        Ok(())
    }

    /// Loads the stored state again, dropping unsaved changes: after a
    /// `storage.conflict`, to continue from what the other activation
    /// wrote.
    pub async fn reload(&mut self) -> Result<(), GrainError> {
        let ctx = self.ctx.clone().ok_or(GrainError::NotLoaded)?;
        self.load(&ctx).await
    }

    /// The state.
    pub fn get(&self) -> &S {
        &self.value
    }

    /// The state, to change it (then [`save`](Self::save)).
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.value
    }

    /// The version it was loaded or last saved at (0: nothing stored).
    pub fn version(&self) -> u64 {
        self.version
    }
}
