//! [`MemoryKind`]: the `memory` provider kind, which builds
//! [`MemoryProvider`]s over named in-process tables (P1).
//!
//! Settings of a `memory` descriptor (read with
//! [`Settings`](cluster_core::settings::Settings)):
//!
//! | key | required | meaning |
//! |---|---|---|
//! | `table` | yes | the name of a table registered with [`MemoryKind::with_table`] |
//! | `keepalive_ms` | no | re-send the snapshot after this many ms without a change (default 5000, 1..=3600000; must stay below the failover silence timeout) |

use std::collections::BTreeMap;
use std::sync::Arc;

use cluster_core::settings::{Settings, invalid};
use cluster_core::{ClusterProvider, ProviderDescriptor, ProviderError, ProviderFactory};

use crate::{FaultHandle, MembershipTable, MemoryProvider};

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
        let s = Settings::of(d);
        let name = s.required("table", "the name of a registered in-memory table")?;
        let table = self
            .tables
            .get(&name)
            .ok_or_else(|| invalid("table", format!("no in-memory table named {name:?}")))?;
        let keepalive = s.millis("keepalive_ms", 1..=3_600_000, 5_000)?;
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use cluster_core::ProviderId;

    fn descriptor(kv: &[(&str, &str)]) -> ProviderDescriptor {
        kv.iter().fold(
            ProviderDescriptor::new(ProviderId::new("m").unwrap(), "memory", 0),
            |d, (k, v)| d.with_setting(*k, *v),
        )
    }

    fn field(r: Result<Arc<dyn ClusterProvider>, ProviderError>) -> String {
        match r.map(drop).unwrap_err() {
            ProviderError::Config { field, .. } => field,
            other => panic!("not a config error: {other:?}"),
        }
    }

    /// R1.1: the kind names the bad setting; a good descriptor builds a
    /// provider whose fault handle the kind keeps.
    #[test]
    fn r1_1_memory_settings_are_checked_per_field() {
        let kind = MemoryKind::new().with_table("lab", MembershipTable::new());
        assert_eq!(field(kind.create(&descriptor(&[]))), "table");
        assert_eq!(field(kind.create(&descriptor(&[("table", " ")]))), "table");
        assert_eq!(
            field(kind.create(&descriptor(&[("table", "other")]))),
            "table"
        );
        assert_eq!(
            field(kind.create(&descriptor(&[("table", "lab"), ("keepalive_ms", "0")]))),
            "keepalive_ms"
        );
        assert!(kind.faults("m").is_none());
        let p = kind.create(&descriptor(&[("table", "lab")])).unwrap();
        assert!(p.capabilities().watch);
        assert!(kind.faults("m").is_some());
    }
}
