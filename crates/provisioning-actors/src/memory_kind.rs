//! The `memory` provider kind: builds [`MemoryProvider`]s over named
//! in-process tables (P1).
//!
//! Settings of a `memory` descriptor:
//!
//! | key | required | meaning |
//! |---|---|---|
//! | `table` | yes | the name of a table registered with [`MemoryKind::with_table`] |
//! | `keepalive_ms` | no | re-send the snapshot after this many ms without a change (default 5000; must stay below the failover silence timeout) |

use std::collections::BTreeMap;
use std::sync::Arc;

use cluster_core::{ClusterProvider, ProviderDescriptor, ProviderError};
use provider_memory::{FaultHandle, MembershipTable, MemoryProvider};

use crate::registry::ProviderFactory;

/// Factory of the `memory` kind.
#[derive(Clone, Default)]
pub struct MemoryKind {
    tables: BTreeMap<String, MembershipTable>,
    faults: Arc<std::sync::Mutex<BTreeMap<String, FaultHandle>>>,
    /// Fault handles given beforehand, by descriptor id.
    preset: BTreeMap<String, FaultHandle>,
}

impl std::fmt::Debug for MemoryKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryKind")
            .field("tables", &self.tables.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl MemoryKind {
    /// A kind without tables.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes `table` available under `name`.
    pub fn with_table(mut self, name: &str, table: MembershipTable) -> Self {
        self.tables.insert(name.to_owned(), table);
        self
    }

    /// Builds the provider of descriptor id `id` with `faults` as its fault
    /// handle, so that faults set on it beforehand apply from the
    /// provider's very first call (a provider failing its activation).
    pub fn with_faults(mut self, id: &str, faults: FaultHandle) -> Self {
        self.preset.insert(id.to_owned(), faults);
        self
    }

    /// The fault handle of the provider most recently built for the
    /// descriptor id `id` (tests inject faults through it).
    pub fn faults(&self, id: &str) -> Option<FaultHandle> {
        self.faults
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(id)
            .cloned()
    }
}

impl ProviderFactory for MemoryKind {
    fn kind(&self) -> &str {
        "memory"
    }

    fn create(&self, d: &ProviderDescriptor) -> Result<Arc<dyn ClusterProvider>, ProviderError> {
        let name = d
            .settings
            .get("table")
            .ok_or_else(|| ProviderError::Config {
                field: "table".into(),
                reason: "missing: the name of a registered in-memory table".into(),
            })?;
        let table = self.tables.get(name).ok_or_else(|| ProviderError::Config {
            field: "table".into(),
            reason: format!("no in-memory table named {name:?}"),
        })?;
        let keepalive = d.millis_setting("keepalive_ms", 1..=3_600_000, 5_000)?;
        let mut provider = MemoryProvider::new(table.clone()).with_keepalive(keepalive);
        if let Some(f) = self.preset.get(d.id.as_str()) {
            provider = provider.with_faults(f.clone());
        }
        self.faults
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(d.id.to_string(), provider.faults());
        Ok(Arc::new(provider))
    }
}
