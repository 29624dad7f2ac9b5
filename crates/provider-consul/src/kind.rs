//! [`ConsulKind`]: the `consul` provider kind for the registry.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use cluster_core::{ClusterProvider, ProviderDescriptor, ProviderError, ProviderFactory};

use crate::provider::Inner;
use crate::{ConsulConfig, ConsulProvider};

type Env = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Factory of the `consul` kind: validates a descriptor's settings (see the
/// table in the [crate docs](crate)) and builds a [`ConsulProvider`].
#[derive(Clone)]
pub struct ConsulKind {
    env: Env,
    /// Weak: the kind must not keep a provider (and its heartbeat) alive
    /// after the supervisor dropped it.
    built: Arc<Mutex<BTreeMap<String, Weak<Inner>>>>,
}

impl std::fmt::Debug for ConsulKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsulKind").finish_non_exhaustive()
    }
}

impl Default for ConsulKind {
    fn default() -> Self {
        Self::new()
    }
}

impl ConsulKind {
    /// Reads the `CONSUL_*` variables of the process environment for
    /// settings a descriptor leaves out.
    pub fn new() -> Self {
        Self::with_env(|k| std::env::var(k).ok())
    }

    /// Ignores the environment: only descriptor settings count (tests).
    pub fn without_env() -> Self {
        Self::with_env(|_| None)
    }

    /// Reads `CONSUL_*` variables through `env`.
    pub fn with_env(env: impl Fn(&str) -> Option<String> + Send + Sync + 'static) -> Self {
        Self {
            env: Arc::new(env),
            built: Arc::default(),
        }
    }

    /// The provider most recently built for descriptor id `id`, while it
    /// is in use (tests read its counters).
    pub fn provider(&self, id: &str) -> Option<ConsulProvider> {
        self.built
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .and_then(Weak::upgrade)
            .map(ConsulProvider::from_inner)
    }
}

impl ProviderFactory for ConsulKind {
    fn kind(&self) -> &str {
        "consul"
    }

    fn create(&self, d: &ProviderDescriptor) -> Result<Arc<dyn ClusterProvider>, ProviderError> {
        let env = self.env.clone();
        let config = ConsulConfig::from_settings(&d.settings, &move |k| env(k))?;
        let provider = ConsulProvider::new(config)?;
        self.built
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(d.id.to_string(), provider.downgrade());
        Ok(Arc::new(provider))
    }
}
