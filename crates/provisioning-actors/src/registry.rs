//! The provider registry: which kinds exist, and the acceptance rules for a
//! definition (R1.1–R1.4).
//!
//! Acceptance of one [`ProviderDescriptor`], in order:
//!
//! 1. the shared fields are valid (R1.1, `validation.invalid_field` naming
//!    the field);
//! 2. its id is not taken (R1.2, `registry.duplicate`; the existing one is
//!    kept);
//! 3. its kind is known (`registry.unknown_kind`) and the kind's factory
//!    accepts its settings (R1.1: a `ProviderError::Config` becomes a
//!    validation error on `settings.<key>`);
//! 4. external kinds pass a connectivity check (R1.4), bounded by a timeout;
//! 5. a provider lacking a required capability (`watch`) is **kept but
//!    Disabled** with the reason (R1.3), not rejected.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

pub use cluster_core::ProviderFactory;
use cluster_core::{
    Capabilities, ClusterProvider, ProviderDescriptor, ProviderError, ProvisioningError, Result,
};

/// The kinds a supervisor knows.
#[derive(Clone, Default)]
pub struct ProviderKinds {
    factories: BTreeMap<String, Arc<dyn ProviderFactory>>,
}

impl std::fmt::Debug for ProviderKinds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.factories.keys()).finish()
    }
}

impl ProviderKinds {
    /// No kinds.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a kind.
    pub fn with(mut self, factory: impl ProviderFactory) -> Self {
        self.factories
            .insert(factory.kind().to_owned(), Arc::new(factory));
        self
    }

    /// The factory for `kind`.
    pub fn get(&self, kind: &str) -> Option<&Arc<dyn ProviderFactory>> {
        self.factories.get(kind)
    }
}

/// The capabilities every active provider needs.
pub const REQUIRED: Capabilities = Capabilities {
    watch: true,
    register: false,
    external: false,
};

/// An accepted provider.
#[derive(Clone)]
pub struct Accepted {
    /// Its definition.
    pub descriptor: ProviderDescriptor,
    /// The built provider.
    pub provider: Arc<dyn ClusterProvider>,
    /// Why it is kept Disabled, if it is (R1.3, or `enabled: false`).
    pub disabled: Option<String>,
}

/// Runs steps 1, 3, 4 and 5 for one descriptor (the caller checks
/// duplicates against its own set, step 2).
///
/// `connectivity_timeout: None` skips step 4: used when restoring stored
/// definitions, so that a backend that is down at restart gives a Degraded
/// provider instead of a lost definition.
pub async fn accept(
    kinds: &ProviderKinds,
    descriptor: ProviderDescriptor,
    connectivity_timeout: Option<Duration>,
) -> Result<Accepted> {
    descriptor.validate()?;
    let factory = kinds
        .get(&descriptor.kind)
        .ok_or_else(|| ProvisioningError::UnknownKind(descriptor.kind.clone()))?;
    let provider = factory.create(&descriptor).map_err(|e| match e {
        ProviderError::Config { field, reason } => {
            ProvisioningError::validation(format!("settings.{field}"), reason)
        }
        other => ProvisioningError::Provider {
            provider: descriptor.id.clone(),
            source: other,
        },
    })?;
    let caps = provider.capabilities();
    let missing = caps.missing(REQUIRED);
    let mut disabled = (!descriptor.enabled).then(|| "disabled by configuration".to_owned());
    if !missing.is_empty() {
        disabled = Some(format!("missing capability: {}", missing.join(", ")));
    }
    if let Some(connectivity_timeout) = connectivity_timeout
        && caps.external
        && disabled.is_none()
    {
        match tokio::time::timeout(connectivity_timeout, provider.check_connectivity()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                return Err(ProvisioningError::Provider {
                    provider: descriptor.id.clone(),
                    source: e,
                });
            }
            Err(_) => {
                return Err(ProvisioningError::Provider {
                    provider: descriptor.id.clone(),
                    source: ProviderError::Connectivity(format!(
                        "no answer within {connectivity_timeout:?}"
                    )),
                });
            }
        }
    }
    Ok(Accepted {
        descriptor,
        provider,
        disabled,
    })
}
