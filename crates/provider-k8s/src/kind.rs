//! The `kubernetes` provider kind: builds [`KubernetesProvider`]s from
//! descriptors (settings in the [crate docs](crate)).

use std::path::PathBuf;
use std::sync::Arc;

use cluster_core::{ClusterProvider, ProviderDescriptor, ProviderError, ProviderFactory};
use kube::config::Kubeconfig;

use crate::provider::{ClientSource, KubernetesProvider};
use crate::settings::{KubernetesSettings, SERVICE_ACCOUNT_NAMESPACE_FILE, TlsSettings};

/// Factory of the `kubernetes` kind.
#[derive(Clone)]
pub struct KubernetesKind {
    config: Option<kube::Config>,
    namespace_file: PathBuf,
}

impl std::fmt::Debug for KubernetesKind {
    // By hand: a kube::Config may hold credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubernetesKind")
            .field(
                "config",
                &self.config.as_ref().map(|c| c.cluster_url.to_string()),
            )
            .field("namespace_file", &self.namespace_file)
            .finish()
    }
}

impl Default for KubernetesKind {
    fn default() -> Self {
        Self::new()
    }
}

impl KubernetesKind {
    /// The kind as deployed: in-cluster config or kubeconfig.
    pub fn new() -> Self {
        Self {
            config: None,
            namespace_file: PathBuf::from(SERVICE_ACCOUNT_NAMESPACE_FILE),
        }
    }

    /// Every provider of this kind uses `config` unless its descriptor names
    /// a `kubeconfig` (tests point it at a fake API server).
    pub fn with_client_config(mut self, config: kube::Config) -> Self {
        self.config = Some(config);
        self
    }

    /// Reads the default namespace from `path` instead of the
    /// service-account file.
    pub fn with_namespace_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.namespace_file = path.into();
        self
    }

    /// Parses and checks a descriptor's settings into a provider.
    pub fn build(&self, d: &ProviderDescriptor) -> Result<KubernetesProvider, ProviderError> {
        let sa = std::fs::read_to_string(&self.namespace_file).ok();
        let settings = KubernetesSettings::parse(&d.settings, |k| std::env::var(k).ok(), sa)?;
        check_tls_files(&settings.tls)?;
        let source = match (&settings.kubeconfig, &self.config) {
            (Some(path), _) => {
                let kc = Kubeconfig::read_from(path).map_err(|e| ProviderError::Config {
                    field: "kubeconfig".into(),
                    reason: format!("{}: {e}", path.display()),
                })?;
                if let Some(ctx) = &settings.context
                    && !kc.contexts.iter().any(|c| &c.name == ctx)
                {
                    return Err(ProviderError::Config {
                        field: "context".into(),
                        reason: format!("no context {ctx:?} in {}", path.display()),
                    });
                }
                ClientSource::Kubeconfig {
                    path: path.clone(),
                    context: settings.context.clone(),
                }
            }
            (None, _) if settings.server.is_some() => {
                let url = settings.server.as_deref().unwrap_or_default();
                let uri = url.parse().map_err(|e| ProviderError::Config {
                    field: "server".into(),
                    reason: format!("{url:?}: {e}"),
                })?;
                ClientSource::Config(Box::new(kube::Config::new(uri)))
            }
            (None, Some(c)) => ClientSource::Config(Box::new(c.clone())),
            (None, None) => ClientSource::Infer,
        };
        Ok(KubernetesProvider::new(settings, source))
    }
}

/// The setting names of this kind's TLS files.
pub(crate) const TLS_FIELDS: provider_tls::Fields = provider_tls::Fields {
    ca: "ca_file",
    cert: "client_cert",
    key: "client_key",
    server_name: "tls_server_name",
};

/// Reads and parses the explicit TLS files now, so that a missing file, one
/// without a certificate or key, or a key that does not go with its
/// certificate is a setting error naming the key at acceptance.
fn check_tls_files(tls: &TlsSettings) -> Result<(), ProviderError> {
    if tls.ca_file.is_none() && tls.client_cert.is_none() && tls.server_name.is_none() {
        return Ok(());
    }
    provider_tls::check_files(
        provider_tls::ClientFiles {
            ca: tls.ca_file.as_deref(),
            identity: tls.client_cert.as_deref().zip(tls.client_key.as_deref()),
            server_name: tls.server_name.as_deref(),
        },
        TLS_FIELDS,
    )
}

impl ProviderFactory for KubernetesKind {
    fn kind(&self) -> &str {
        "kubernetes"
    }

    fn create(&self, d: &ProviderDescriptor) -> Result<Arc<dyn ClusterProvider>, ProviderError> {
        Ok(Arc::new(self.build(d)?))
    }
}
