//! [`EtcdKind`]: the `etcd` provider kind for the registry.

use std::sync::Arc;

use cluster_core::{ClusterProvider, ProviderDescriptor, ProviderError, ProviderFactory};

use crate::config::EtcdConfig;
use crate::provider::EtcdProvider;

/// Factory of the `etcd` kind: validates a descriptor's settings (see the
/// [crate docs](crate) for the table) and builds an [`EtcdProvider`].
#[derive(Clone, Debug, Default)]
pub struct EtcdKind {
    default_cluster: Option<String>,
}

impl EtcdKind {
    /// A kind whose descriptors must name their `cluster`.
    pub fn new() -> Self {
        Self::default()
    }

    /// A kind that uses `cluster` for descriptors without a `cluster`
    /// setting (the application's cluster name).
    pub fn with_cluster(cluster: impl Into<String>) -> Self {
        Self {
            default_cluster: Some(cluster.into()),
        }
    }
}

impl ProviderFactory for EtcdKind {
    fn kind(&self) -> &str {
        "etcd"
    }

    fn create(&self, d: &ProviderDescriptor) -> Result<Arc<dyn ClusterProvider>, ProviderError> {
        let mut config = EtcdConfig::from_settings(&d.settings, self.default_cluster.as_deref())?;
        config.name = d.id.to_string();
        Ok(Arc::new(EtcdProvider::new(config)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cluster_core::ProviderId;

    #[test]
    fn r1_1_the_kind_builds_external_providers_and_rejects_bad_settings() {
        let d = ProviderDescriptor::new(ProviderId::new("etcd-a").unwrap(), "etcd", 0)
            .with_setting("endpoints", "127.0.0.1:2379");
        let e = EtcdKind::new().create(&d).map(drop).unwrap_err();
        assert!(
            matches!(e, ProviderError::Config { ref field, .. } if field == "cluster"),
            "{e}"
        );
        let p = EtcdKind::with_cluster("lab").create(&d).unwrap();
        let caps = p.capabilities();
        assert!(caps.watch && caps.register && caps.external);
        let typo = d.clone().with_setting("passwd", "secret");
        let e = EtcdKind::with_cluster("lab")
            .create(&typo)
            .map(drop)
            .unwrap_err();
        assert!(
            matches!(e, ProviderError::Config { ref field, .. } if field == "passwd"),
            "{e}"
        );
        let missing_ca = d.with_setting("tls_ca", "/nonexistent/ca.pem");
        let e = EtcdKind::with_cluster("lab")
            .create(&missing_ca)
            .map(drop)
            .unwrap_err();
        assert!(
            matches!(e, ProviderError::Config { ref field, .. } if field == "tls_ca"),
            "{e}"
        );
    }
}
