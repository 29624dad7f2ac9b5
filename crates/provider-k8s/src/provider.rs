//! [`KubernetesProvider`]: the `ClusterProvider` over the API server.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use cluster_core::backoff::{Backoff as Delays, Jitter};
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
use crate::probe::{Liveness, ProbeLayer};
use crate::settings::KubernetesSettings;

/// The client's connect timeout.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

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
    /// When the API server last answered, recorded by the client layer.
    live: Arc<Liveness>,
    /// `host:port` and host of an `https` API server, once the client is
    /// built, for [`diagnose`](Inner::diagnose).
    tls_target: std::sync::OnceLock<(String, String)>,
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
                live: Arc::new(Liveness::new()),
                tls_target: std::sync::OnceLock::new(),
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
                apply_tls(&mut config, &self.settings.tls)?;
                if config.cluster_url.scheme_str() == Some("https")
                    && let Some(host) = config.cluster_url.host()
                {
                    let host = host
                        .trim_start_matches('[')
                        .trim_end_matches(']')
                        .to_owned();
                    let port = config.cluster_url.port_u16().unwrap_or(443);
                    let _ = self.tls_target.set((format!("{host}:{port}"), host));
                }
                // A watch answers at least every `watch_timeout_s` (the server
                // ends it then); a connection silent for longer is dead (no
                // RST reached us), and the read timeout turns that into an
                // error instead of a healthy-looking, stale provider. It
                // counts from the request, not from when a pooled connection
                // went idle.
                config.read_timeout = Some(Duration::from_secs(
                    u64::from(self.settings.watch_timeout_s) + 15,
                ));
                config.reset_reader_on_write = true;
                // kube's default is 30 s: a silent address (a vanished node,
                // dropped packets) would hold each retry that long.
                config.connect_timeout = Some(CONNECT_TIMEOUT);
                // kube-rs builds its rustls configuration with the process
                // default provider: make it ring, unless the application
                // chose one (never ambiguous, never a panic).
                provider_tls::install_ring_default();
                let builder = ClientBuilder::try_from(config).map_err(|e| {
                    ProviderError::Connectivity(format!("cannot build the Kubernetes client: {e}"))
                })?;
                Ok(builder.with_layer(&ProbeLayer(self.live.clone())).build())
            })
            .await
            .cloned()
    }

    /// A connectivity error whose TLS reason the HTTP client lost (a Go
    /// API server refusing the client certificate closes the connection
    /// after the handshake) gets it from one handshake of our own, when
    /// the TLS files are explicit settings (issue 14).
    async fn diagnose(&self, e: ProviderError) -> ProviderError {
        let tls = &self.settings.tls;
        let (ProviderError::Connectivity(msg), Some(ca), Some((addr, host))) =
            (&e, &tls.ca_file, self.tls_target.get())
        else {
            return e;
        };
        if msg.contains("[tls.") {
            return e;
        }
        let files = provider_tls::ClientFiles {
            ca: Some(ca),
            identity: tls.client_cert.as_deref().zip(tls.client_key.as_deref()),
            server_name: tls.server_name.as_deref(),
        };
        let Ok(config) = provider_tls::client_config(files, crate::kind::TLS_FIELDS, |_| {
            Err(ProviderError::Connectivity(String::new()))
        }) else {
            return e;
        };
        let Ok(name) = provider_tls::ServerName::try_from(host.clone()) else {
            return e;
        };
        match provider_tls::probe(
            addr,
            name,
            Arc::new(config),
            CONNECT_TIMEOUT.min(Duration::from_secs(2)),
        )
        .await
        {
            Some(f) => ProviderError::Connectivity(provider_tls::message(f, addr, msg)),
            None => e,
        }
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
        if let Some(role) = local
            .into_iter()
            .flat_map(|m| m.roles.iter())
            .find(|r| r.contains(','))
        {
            // The roles annotation is comma-separated.
            return Err(ProviderError::Registration(format!(
                "role {role:?} contains a comma, which the {} annotation cannot carry",
                s.keys.roles
            )));
        }
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

/// Puts the descriptor's explicit TLS settings over what the kubeconfig or
/// the in-cluster configuration says. The files were checked when the
/// provider was built; reading them again here can only fail if they
/// vanished since, which names the setting too.
fn apply_tls(
    config: &mut kube::Config,
    tls: &crate::settings::TlsSettings,
) -> Result<(), ProviderError> {
    let path_text = |p: &std::path::Path| p.to_string_lossy().into_owned();
    if let Some(ca) = &tls.ca_file {
        let roots = provider_tls::read_chain("ca_file", ca)?;
        config.root_cert = Some(roots.into_iter().map(|c| c.to_vec()).collect());
        // kube-rs re-reads this file about every minute: a rotated CA is
        // picked up by new connections without a restart.
        config.root_cert_file = Some(ca.clone());
    }
    if let (Some(cert), Some(key)) = (&tls.client_cert, &tls.client_key) {
        config.auth_info.client_certificate = Some(path_text(cert));
        config.auth_info.client_key = Some(path_text(key));
        // Inline data would win over the files.
        config.auth_info.client_certificate_data = None;
        config.auth_info.client_key_data = None;
    }
    if let Some(name) = &tls.server_name {
        config.tls_server_name = Some(name.clone());
    }
    Ok(())
}

/// The watcher's retry delays: `backoff_initial` doubling up to
/// `backoff_max`, with up to +25 % jitter (never above `backoff_max`).
fn watch_delays(s: &KubernetesSettings) -> Delays {
    Delays::new(s.backoff_initial, s.backoff_max).with_jitter(Jitter::up_to(0.25))
}

/// The watcher's backoff ([`watch_delays`]), reset only after real progress.
///
/// `kube_runtime`'s backoff wrapper resets its backoff on every `Ok` item,
/// and the watcher yields `Ok(Event::Init)` before every list attempt, so a
/// list that keeps failing (403, 5xx) would be retried at the initial delay
/// forever. Here a reset takes effect only when the stream made progress
/// since the last one: a completed list, a pod event (`progress`, set by
/// the stream before the wrapper sees the item) or an accepted watch.
struct GatedBackoff {
    inner: Delays,
    progress: Arc<AtomicBool>,
    accepted: watch::Receiver<Instant>,
}

impl GatedBackoff {
    fn progressed(&mut self) -> bool {
        let accepted = self.accepted.has_changed().unwrap_or(false);
        if accepted {
            self.accepted.borrow_and_update();
        }
        self.progress.swap(false, Ordering::Relaxed) | accepted
    }
}

impl Iterator for GatedBackoff {
    type Item = Duration;
    fn next(&mut self) -> Option<Duration> {
        if self.progressed() {
            self.inner.reset();
        }
        Some(self.inner.next_delay())
    }
}

impl Backoff for GatedBackoff {
    fn reset(&mut self) {
        if self.progressed() {
            self.inner.reset();
        }
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
    /// The API server went silent for longer than the answer timeout (an
    /// error was reported): only an answer with a body (not a merely
    /// accepted watch) or an event ends this.
    silent: bool,
    next_keepalive: Instant,
    accepted: watch::Receiver<Instant>,
    answered: watch::Receiver<Instant>,
}

impl Pump {
    fn snapshot(&mut self) -> Snapshot {
        self.next_keepalive = Instant::now() + self.inner.settings.keepalive;
        Snapshot {
            members: self.membership.members().into(),
            observed_at: SystemTime::now(),
        }
    }

    /// An error was reported: signs of life seen before it do not count.
    fn unhealthy(&mut self) {
        self.healthy = false;
        self.accepted.borrow_and_update();
        self.answered.borrow_and_update();
    }

    /// When the API server last showed it is alive.
    fn last_answer(&self) -> Instant {
        let answered = *self.answered.borrow();
        if self.silent {
            answered
        } else {
            answered.max(*self.accepted.borrow())
        }
    }

    async fn next(&mut self) -> Option<Result<Snapshot, ProviderError>> {
        loop {
            tokio::select! {
                biased;
                ev = self.events.next() => match ev {
                    None => return None,
                    Some(Ok(ev)) => {
                        let progress = matches!(
                            ev,
                            watcher::Event::InitDone | watcher::Event::Apply(_) | watcher::Event::Delete(_)
                        );
                        let resumed = progress && !self.healthy;
                        let applied = self.membership.apply(ev);
                        if resumed && self.membership.initialized() {
                            self.healthy = true;
                            self.silent = false;
                        }
                        if self.membership.initialized() && (applied == Applied::Publish || resumed) {
                            return Some(Ok(self.snapshot()));
                        }
                    }
                    Some(Err(e)) => match errors::from_watcher(&e, &self.inner.settings.namespace) {
                        Some(pe) => {
                            tracing::debug!(error = %e, code = pe.code(), "kubernetes watch error");
                            // A watch accepted before this error is no sign
                            // of recovery: only later ones count.
                            self.unhealthy();
                            return Some(Err(pe));
                        }
                        None => tracing::debug!(error = %e, "resource version expired; relisting"),
                    },
                },
                Ok(()) = self.answered.changed() => {
                    self.answered.borrow_and_update();
                    if !self.healthy && self.membership.initialized() {
                        self.healthy = true;
                        self.silent = false;
                        return Some(Ok(self.snapshot()));
                    }
                }
                Ok(()) = self.accepted.changed() => {
                    self.accepted.borrow_and_update();
                    if !self.healthy && !self.silent && self.membership.initialized() {
                        self.healthy = true;
                        return Some(Ok(self.snapshot()));
                    }
                }
                _ = tokio::time::sleep_until(self.next_keepalive) => {
                    let now = Instant::now();
                    self.next_keepalive = now + self.inner.settings.keepalive;
                    if !self.membership.initialized() {
                        continue;
                    }
                    let quiet = now.saturating_duration_since(self.last_answer());
                    let limit = self.inner.settings.answer_timeout();
                    if quiet <= limit {
                        if self.healthy {
                            return Some(Ok(self.snapshot()));
                        }
                    } else if self.healthy || self.silent {
                        // The watcher gives up on an idle watch without an
                        // error and a new connection may wait for its
                        // connect timeout: without this, keepalives would
                        // make a dead API server look healthy.
                        self.unhealthy();
                        self.silent = true;
                        tracing::debug!(?quiet, "the kubernetes API server is silent");
                        return Some(Err(ProviderError::Connectivity(format!(
                            "no answer from the API server for {} s (a watch answers at least every watch_timeout_s = {} s)",
                            quiet.as_secs(),
                            self.inner.settings.watch_timeout_s
                        ))));
                    }
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
    /// is permitted in the namespace; with a local pod name, that pod
    /// exists and `get pods` is permitted (a missing pod is a
    /// `Registration` error before the provider is accepted).
    fn check_connectivity(&self) -> BoxFuture<'_, Result<(), ProviderError>> {
        async move {
            let s = &self.inner.settings;
            let api = self.inner.pods().await?;
            if let Err(e) = api
                .list(&ListParams::default().labels(&s.selector()).limit(1))
                .await
            {
                let e = errors::from_kube(&e, "list", &s.namespace);
                return Err(self.inner.diagnose(e).await);
            }
            if let Some(pod) = &s.pod_name {
                match api.get(pod).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(st)) if st.code == 404 => {
                        return Err(ProviderError::Registration(format!(
                            "the local pod {pod:?} (pod_name / POD_NAME) does not exist in namespace {:?}",
                            s.namespace
                        )));
                    }
                    Err(e) => return Err(errors::from_kube(&e, "get", &s.namespace)),
                }
            }
            Ok(())
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
            let accepted = inner.live.accepted.subscribe();
            let progress = Arc::new(AtomicBool::new(false));
            let backoff = GatedBackoff {
                inner: watch_delays(s),
                progress: progress.clone(),
                accepted: accepted.clone(),
            };
            let events: Events = watcher(api, config)
                .inspect(move |ev| {
                    if matches!(
                        ev,
                        Ok(watcher::Event::InitDone
                            | watcher::Event::Apply(_)
                            | watcher::Event::Delete(_))
                    ) {
                        progress.store(true, Ordering::Relaxed);
                    }
                })
                .backoff(backoff)
                .boxed();
            let pump = Pump {
                membership: Membership::new(s.keys.clone()),
                healthy: false,
                silent: false,
                next_keepalive: Instant::now() + s.keepalive,
                accepted,
                answered: inner.live.answered.subscribe(),
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

    /// P3: the watcher's delays come from the backoff settings, with up
    /// to +25 % jitter, never above `backoff_max_ms`.
    #[test]
    fn p3_watch_delays_follow_the_backoff_settings() {
        let m = cluster_core::settings::pairs(&[
            ("cluster", "c"),
            ("namespace", "a"),
            ("backoff_initial_ms", "100"),
            ("backoff_max_ms", "350"),
        ]);
        let d = watch_delays(&KubernetesSettings::parse(&m, |_| None, None).unwrap());
        assert_eq!(d.jitter(), Jitter::up_to(0.25));
        assert_eq!(d.initial(), Duration::from_millis(100));
        assert_eq!(d.delay(1, 1.0), Duration::from_millis(250));
        assert_eq!(d.delay(5, 1.0), Duration::from_millis(350));
    }

    /// P3: the watcher's `Init` before each list attempt resets nothing;
    /// progress (an event, an accepted watch) does.
    #[test]
    fn p3_backoff_resets_only_after_progress() {
        let progress = Arc::new(AtomicBool::new(false));
        let accepted = watch::channel(Instant::now()).0;
        let mut b = GatedBackoff {
            inner: Delays::new(Duration::from_millis(100), Duration::from_secs(10))
                .with_jitter(Jitter::up_to(0.25)),
            progress: progress.clone(),
            accepted: accepted.subscribe(),
        };
        b.next().unwrap();
        b.reset(); // an `Ok(Init)`: no progress
        assert!(b.next().unwrap() >= Duration::from_millis(200));
        b.reset();
        assert!(b.next().unwrap() >= Duration::from_millis(400));
        progress.store(true, Ordering::Relaxed);
        b.reset();
        assert!(b.next().unwrap() <= Duration::from_millis(125));
        b.next().unwrap();
        // A watch accepted before an error counts even without a reset.
        accepted.send_replace(Instant::now());
        assert!(b.next().unwrap() <= Duration::from_millis(125));
    }
}
