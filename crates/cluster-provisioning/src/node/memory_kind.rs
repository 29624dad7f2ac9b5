//! The `memory` provider kind of the node runtime: tables shared by name
//! across the process, created on first use.

use std::sync::{Arc, Mutex};

use super::lock;

/// A `memory` kind whose tables are shared by name across the process, and
/// created on first use.
#[cfg(feature = "memory")]
pub(crate) fn shared_memory_kind() -> impl cluster_core::ProviderFactory {
    SharedMemoryKind
}

#[cfg(feature = "memory")]
struct SharedMemoryKind;

#[cfg(feature = "memory")]
impl cluster_core::ProviderFactory for SharedMemoryKind {
    fn kind(&self) -> &str {
        "memory"
    }

    fn create(
        &self,
        d: &cluster_core::ProviderDescriptor,
    ) -> Result<Arc<dyn cluster_core::ClusterProvider>, cluster_core::ProviderError> {
        use std::collections::HashMap;
        use std::sync::OnceLock;
        static TABLES: OnceLock<Mutex<HashMap<String, provider_memory::MembershipTable>>> =
            OnceLock::new();
        let name = d
            .settings
            .get("table")
            .cloned()
            .unwrap_or_else(|| "default".to_owned());
        let table = lock(TABLES.get_or_init(Default::default))
            .entry(name.clone())
            .or_default()
            .clone();
        provider_memory::MemoryKind::new()
            .with_table(&name, table)
            .create(d)
    }
}
