//! [`KubernetesProvider`]: the `ClusterProvider` over the API server.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use cluster_core::{Capabilities, ClusterProvider, Member, ProviderError, Snapshot};
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, Patch, PatchParams};
use kube::client::ClientBuilder;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::utils::Backoff;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use serde_json::{Value, json};
use tokio::sync::{OnceCell, watch};
use tokio::time::Instant;

use crate::errors;
use crate::member::{Applied, Membership};
use crate::probe::WatchStartedLayer;
use crate::settings::KubernetesSettings;

/// How the provider finds the API server.
#[derive(Clone)]
pub enum ClientSource {
    /// This configuration (tests point it at a fake server).
    Config(Box<kube::Config>),
    /// A kubeconfig file, with an optional context.
    Kubeconfig {
        /// The file.
        path: std::path::PathBuf,
        /// The context (default: the file's current context).
        context: Option<String>,
    },
    /// `kube::Config::infer`: in-cluster service account, else `KUBECONFIG`
    /// or `~/.kube/config`.
    Infer,
}

impl std::fmt::Debug for ClientSource {
    // By hand: a kube::Config may hold credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Config(c) => write!(f, "Config({})", c.cluster_url),
            Self::Kubeconfig { path, context } => f
                .debug_struct("Kubeconfig")
                .field("path", path)
                .field("context", context)
                .finish(),
            Self::Infer => f.write_str("Infer"),
        }
    }
}

struct Inner {
    settings: KubernetesSettings,
    source: ClientSource,
    client: OnceCell<Client>,
    /// Bumped by the client layer when a watch request is accepted.
    watch_started: Arc<watch::Sender<u64>>,
}

/// Members are the pods of one namespace selected by the cluster label;
/// see the [crate docs](crate).
#[derive(Clone)]
pub struct KubernetesProvider {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for KubernetesProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubernetesProvider")
            .field("namespace", &self.inner.settings.namespace)
            .field("selector", &self.inner.settings.selector())
            .field("pod_name", &self.inner.settings.pod_name)
            .field("source", &self.inner.source)
            .finish()
    }
}

impl KubernetesProvider {
    /// A provider with validated `settings`; the client is built on first
    /// use.
    pub fn new(settings: KubernetesSettings, source: ClientSource) -> Self {
        Self {
            inner: Arc::new(Inner {
                settings,
                source,
                client: OnceCell::new(),
                watch_started: Arc::new(watch::channel(0).0),
            }),
        }
    }

    /// Its settings.
    pub fn settings(&self) -> &KubernetesSettings {
        &self.inner.settings
    }
}

impl Inner {
    async fn client(&self) -> Result<Client, ProviderError> {
        self.client
            .get_or_try_init(|| async {
                let config =
                    match &self.source {
                        ClientSource::Config(c) => (**c).clone(),
                        ClientSource::Kubeconfig { path, context } => {
                            let kc =
                                Kubeconfig::read_from(path).map_err(|e| ProviderError::Config {
                                    field: "kubeconfig".into(),
                                    reason: format!("{}: {e}", path.display()),
                                })?;
                            let options = KubeConfigOptions {
                                context: context.clone(),
                                ..KubeConfigOptions::default()
                            };
                            kube::Config::from_custom_kubeconfig(kc, &options)
                                .await
                                .map_err(|e| ProviderError::Config {
                                    field: "kubeconfig".into(),
                                    reason: format!("{}: {e}", path.display()),
                                })?
                        }
                        ClientSource::Infer => kube::Config::infer().await.map_err(|e| {
                            ProviderError::Config {
                                field: "kubeconfig".into(),
                                reason: format!(
                                    "no in-cluster service account and no usable kubeconfig: {e}"
                                ),
                            }
                        })?,
                    };
                let mut config = config;
                // A watch answers at least every `watch_timeout_s` (the server
                // ends it then); a connection silent for longer is dead (no
                // RST reached us), and the read timeout turns that into an
                // error instead of a healthy-looking, stale provider.
                config.read_timeout = Some(Duration::from_secs(
                    u64::from(self.settings.watch_timeout_s) + 15,
                ));
                let builder = ClientBuilder::try_from(config).map_err(|e| {
                    ProviderError::Connectivity(format!("cannot build the Kubernetes client: {e}"))
                })?;
                Ok(builder
                    .with_layer(&WatchStartedLayer(self.watch_started.clone()))
                    .build())
            })
            .await
            .cloned()
    }

    async fn pods(&self) -> Result<Api<Pod>, ProviderError> {
        Ok(Api::namespaced(
            self.client().await?,
            &self.settings.namespace,
        ))
    }

    /// The merge patch of the local pod: the member's label and
    /// annotations, or nulls (removal) for `None`.
    fn registration_patch(&self, local: Option<&Member>) -> Value {
        let s = &self.settings;
        let text =
            |f: &dyn Fn(&Member) -> String| local.map_or(Value::Null, |m| Value::String(f(m)));
        let mut labels = serde_json::Map::new();
        labels.insert(s.cluster_label.clone(), text(&|_| s.cluster.clone()));
        let mut ann = serde_json::Map::new();
        ann.insert(s.keys.node_id.clone(), text(&|m| m.node_id.to_string()));
        ann.insert(s.keys.port.clone(), text(&|m| m.address.port.to_string()));
        ann.insert(
            s.keys.incarnation.clone(),
            text(&|m| m.incarnation.to_string()),
        );
        let roles = local
            .filter(|m| !m.roles.is_empty())
            .map_or(Value::Null, |m| {
                Value::String(m.roles.iter().cloned().collect::<Vec<_>>().join(","))
            });
        ann.insert(s.keys.roles.clone(), roles);
        json!({"metadata": {"labels": labels, "annotations": ann}})
    }

    async fn patch_own_pod(&self, local: Option<&Member>) -> Result<(), ProviderError> {
        let s = &self.settings;
        let Some(pod) = &s.pod_name else {
            return Err(ProviderError::Registration(
                "no local pod: set `pod_name` or the POD_NAME environment variable".into(),
            ));
        };
        let api = self.pods().await?;
        let patch = self.registration_patch(local);
        match api
            .patch(pod, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(st)) if st.code == 404 && local.is_none() => Ok(()),
            Err(kube::Error::Api(st)) if st.code == 404 => Err(ProviderError::Registration(
                format!("pod {pod:?} not found in namespace {:?}", s.namespace),
            )),
            Err(e) => match errors::from_kube(&e, "patch", &s.namespace) {
                ProviderError::Auth(m) => Err(ProviderError::Auth(m)),
                other => Err(ProviderError::Registration(format!(
                    "patching pod {pod:?}: {other}"
                ))),
            },
        }
    }
}

/// Exponential backoff with up to 25 % jitter, for the watcher's retries.
struct WatchBackoff {
    initial: Duration,
    max: Duration,
    current: Option<Duration>,
}

impl Iterator for WatchBackoff {
    type Item = Duration;
    fn next(&mut self) -> Option<Duration> {
        let next = match self.current {
            None => self.initial,
            Some(c) => (c * 2).min(self.max),
        };
        self.current = Some(next);
        let jitter = next.mul_f64(fastrand::f64() * 0.25);
        Some((next + jitter).min(self.max.max(self.initial)))
    }
}

impl Backoff for WatchBackoff {
    fn reset(&mut self) {
        self.current = None;
    }
}

type Events = BoxStream<'static, Result<watcher::Event<Pod>, watcher::Error>>;

/// The watch loop's state: the watcher's events in, snapshots and errors
/// out, with keepalives.
struct Pump {
    inner: Arc<Inner>,
    events: Events,
    membership: Membership,
    /// The last thing heard from the API server was good news.
    healthy: bool,
    next_keepalive: Instant,
    started: watch::Receiver<u64>,
}

impl Pump {
    fn snapshot(&mut self) -> Snapshot {
        self.next_keepalive = Instant::now() + self.inner.settings.keepalive;
        Snapshot {
            members: self.membership.members(),
            observed_at: SystemTime::now(),
        }
    }

    async fn next(&mut self) -> Option<Result<Snapshot, ProviderError>> {
        loop {
            tokio::select! {
                biased;
                ev = self.events.next() => match ev {
                    None => return None,
                    Some(Ok(ev)) => {
                        let resumed = matches!(
                            ev,
                            watcher::Event::InitDone | watcher::Event::Apply(_) | watcher::Event::Delete(_)
                        ) && !self.healthy;
                        let applied = self.membership.apply(ev);
                        if resumed && self.membership.initialized() {
                            self.healthy = true;
                        }
                        if self.membership.initialized() && (applied == Applied::Publish || resumed) {
                            return Some(Ok(self.snapshot()));
                        }
                    }
                    Some(Err(e)) => match errors::from_watcher(&e, &self.inner.settings.namespace) {
                        Some(pe) => {
                            tracing::debug!(error = %e, code = pe.code(), "kubernetes watch error");
                            self.healthy = false;
                            // A watch accepted before this error is no sign
                            // of recovery: only later ones count.
                            self.started.borrow_and_update();
                            return Some(Err(pe));
                        }
                        None => tracing::debug!(error = %e, "resource version expired; relisting"),
                    },
                },
                Ok(()) = self.started.changed() => {
                    if !self.healthy && self.membership.initialized() {
                        self.healthy = true;
                        return Some(Ok(self.snapshot()));
                    }
                }
                _ = tokio::time::sleep_until(self.next_keepalive) => {
                    if self.healthy && self.membership.initialized() {
                        return Some(Ok(self.snapshot()));
                    }
                    self.next_keepalive = Instant::now() + self.inner.settings.keepalive;
                }
            }
        }
    }
}

impl ClusterProvider for KubernetesProvider {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            watch: true,
            register: self.inner.settings.pod_name.is_some(),
            external: true,
        }
    }

    /// R1.4: the API answers and `list pods` (limit 1, with the selector)
    /// is permitted in the namespace.
    fn check_connectivity(&self) -> BoxFuture<'_, Result<(), ProviderError>> {
        async move {
            let s = &self.inner.settings;
            let api = self.inner.pods().await?;
            api.list(&ListParams::default().labels(&s.selector()).limit(1))
                .await
                .map(|_| ())
                .map_err(|e| errors::from_kube(&e, "list", &s.namespace))
        }
        .boxed()
    }

    /// Merge-patches the local pod with the cluster label and the node id,
    /// port, incarnation and roles annotations.
    fn register(&self, local: &Member) -> BoxFuture<'_, Result<(), ProviderError>> {
        let local = local.clone();
        async move { self.inner.patch_own_pod(Some(&local)).await }.boxed()
    }

    /// Removes the label and annotations again (a merge patch with nulls);
    /// a pod already gone is fine.
    fn deregister(&self, _local: &Member) -> BoxFuture<'_, Result<(), ProviderError>> {
        async move { self.inner.patch_own_pod(None).await }.boxed()
    }

    fn watch(&self) -> BoxStream<'static, Result<Snapshot, ProviderError>> {
        let inner = self.inner.clone();
        let start = async move {
            let api = match inner.pods().await {
                Ok(api) => api,
                Err(e) => return futures::stream::once(async { Err(e) }).boxed(),
            };
            let s = &inner.settings;
            let config = watcher::Config::default()
                .labels(&s.selector())
                .timeout(s.watch_timeout_s)
                .page_size(s.page_size);
            let backoff = WatchBackoff {
                initial: s.backoff_initial,
                max: s.backoff_max,
                current: None,
            };
            let events: Events = watcher(api, config).backoff(backoff).boxed();
            let pump = Pump {
                membership: Membership::new(s.keys.clone()),
                healthy: false,
                next_keepalive: Instant::now() + s.keepalive,
                started: inner.watch_started.subscribe(),
                events,
                inner: inner.clone(),
            };
            futures::stream::unfold(pump, |mut p| async move {
                let item = p.next().await?;
                Some((item, p))
            })
            .boxed()
        };
        futures::stream::once(start).flatten().boxed()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_max_and_resets() {
        let mut b = WatchBackoff {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(350),
            current: None,
        };
        let first = b.next().unwrap();
        assert!(first >= Duration::from_millis(100) && first <= Duration::from_millis(125));
        let second = b.next().unwrap();
        assert!(second >= Duration::from_millis(200));
        for _ in 0..5 {
            assert!(b.next().unwrap() <= Duration::from_millis(350));
        }
        b.reset();
        assert!(b.next().unwrap() <= Duration::from_millis(125));
    }
}
