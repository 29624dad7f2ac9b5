//! [`ProviderFactory`]: how a provider kind (`memory`, `consul`, `etcd`,
//! ...) builds providers from descriptors.
//!
//! It lives here, next to [`ClusterProvider`], so that a provider crate
//! depends on `cluster-core` (and its backend's client) only: the registry
//! that collects the kinds (`provisioning_actors::ProviderKinds`) and the
//! supervisor that runs the providers stay out of the providers' build.

use std::sync::Arc;

use crate::error::ProviderError;
use crate::provider::{ClusterProvider, ProviderDescriptor};

/// Builds providers of one kind from their descriptors.
pub trait ProviderFactory: Send + Sync + 'static {
    /// The kind name (`memory`, `consul`, ...).
    fn kind(&self) -> &str;

    /// Builds a provider; a bad setting is `ProviderError::Config` naming
    /// the setting (read them with [`Settings`](crate::settings::Settings)).
    fn create(
        &self,
        descriptor: &ProviderDescriptor,
    ) -> std::result::Result<Arc<dyn ClusterProvider>, ProviderError>;
}
