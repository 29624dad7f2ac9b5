//! The node runtime: one call that starts a node from its configuration,
//! the way the `cluster-node` program does, inside any tokio service.
//!
//! ```text
//! Node::from_file(path)  ─► NodeConfig (file + env, checked)
//!   .grain(kind, factory) ...
//!   .start()  ─► logs (unless already set up) ─► Prometheus recorder
//!             ─► safety rules (secret off loopback, admin token off loopback)
//!             ─► ActorSystem named after the node id ─► Cluster bootstrap
//!             ─► admin HTTP (probes, members, providers, metrics, leave, reload)
//!   .run_until_signal()
//!             SIGTERM / SIGINT / POST /cluster/leave ─► graceful leave within
//!             [leave].deadline ─► admin stops ─► actor system shuts down
//!             a second signal during the leave exits the process at once (1)
//!             SIGHUP ─► reload the providers from the file (R5.4)
//! ```

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actor_runtime::ActorSystem;
use cluster::placement::{Grain, PlacementConfig};
use cluster::{Cluster, ClusterBuilder, ClusterError};
use cluster_core::events::ProviderChanged;
use provisioning_actors::{ProviderKinds, ProvisioningConfig};
use tokio::sync::watch;

use crate::config::{ConfigError, MergeSetting, NodeConfig};

#[cfg(feature = "memory")]
mod memory_kind;
mod signals;

#[cfg(feature = "memory")]
pub(crate) use memory_kind::shared_memory_kind;

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// The configuration is unusable (`config.invalid`).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The configuration is valid but unsafe to run (`config.unsafe`): e.g.
    /// Remoting off loopback without a secret, or the admin port off
    /// loopback without a token.
    #[error("{0}")]
    Unsafe(String),
    /// The cluster bootstrap failed (its own code).
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// The `[storage]` could not be opened (its `storage.*` code).
    #[error("could not open the grain storage")]
    Storage(#[source] cluster_core::StorageError),
    /// The admin address could not be bound (`admin.bind`).
    #[error("could not bind the admin address {addr}")]
    AdminBind {
        /// The address.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl NodeError {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Config(e) => e.code(),
            Self::Unsafe(_) => "config.unsafe",
            Self::Cluster(e) => e.code(),
            Self::AdminBind { .. } => "admin.bind",
            Self::Storage(e) => e.code(),
        }
    }
}

type GrainFn =
    Box<dyn FnOnce(ClusterBuilder, &Arc<dyn cluster_core::GrainStorage>) -> ClusterBuilder + Send>;

/// Builds a [`Node`]; see the [crate documentation](crate).
#[must_use]
pub struct NodeBuilder {
    config: NodeConfig,
    grains: Vec<GrainFn>,
    kinds: ProviderKinds,
    init_logs: bool,
    handle_signals: bool,
}

impl std::fmt::Debug for NodeBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeBuilder")
            .field("config", &self.config)
            .field("grains", &self.grains.len())
            .finish_non_exhaustive()
    }
}

impl NodeBuilder {
    /// Hosts the grain kind `kind`, built by `factory(id)`.
    pub fn grain<G: Grain>(
        mut self,
        kind: &str,
        factory: impl Fn(&str) -> G + Send + Sync + 'static,
    ) -> Self {
        let kind = kind.to_owned();
        self.grains.push(Box::new(move |b: ClusterBuilder, _: &_| {
            b.grain::<G>(&kind, factory)
        }));
        self
    }

    /// Hosts the grain kind `kind` with its own options (storage, schema,
    /// idle timeout, deactivation deadline; see [`cluster::grain`]).
    pub fn grain_with<G: Grain>(
        mut self,
        kind: &str,
        options: cluster::grain::GrainOptions,
        factory: impl Fn(&str) -> G + Send + Sync + 'static,
    ) -> Self {
        let kind = kind.to_owned();
        self.grains.push(Box::new(move |b: ClusterBuilder, _: &_| {
            b.grain_with::<G>(&kind, options, factory)
        }));
        self
    }

    /// Hosts the grain kind `kind` with its state in the node's `[storage]`
    /// (its other options from `options`: schema, idle timeout, deadline).
    pub fn stored_grain<G: Grain>(
        mut self,
        kind: &str,
        options: cluster::grain::GrainOptions,
        factory: impl Fn(&str) -> G + Send + Sync + 'static,
    ) -> Self {
        let kind = kind.to_owned();
        self.grains
            .push(Box::new(move |b: ClusterBuilder, storage: &_| {
                b.grain_with::<G>(&kind, options.shared_storage(Arc::clone(storage)), factory)
            }));
        self
    }

    /// Adds a provider kind of the application's own (its settings are
    /// passed through as strings).
    pub fn provider_kind(mut self, factory: impl provisioning_actors::ProviderFactory) -> Self {
        self.kinds = self.kinds.with(factory);
        self
    }

    /// Whether [`start`](Self::start) installs the `tracing` subscriber of
    /// the `[log]` section (default true; it never replaces one the
    /// application installed).
    pub fn init_logs(mut self, yes: bool) -> Self {
        self.init_logs = yes;
        self
    }

    /// Whether [`Node::run_until_signal`] listens for SIGTERM, SIGINT and
    /// SIGHUP (default true). Without, it waits for `POST /cluster/leave`
    /// or [`Node::leave`].
    pub fn handle_signals(mut self, yes: bool) -> Self {
        self.handle_signals = yes;
        self
    }

    /// The configuration.
    pub fn config(&self) -> &NodeConfig {
        &self.config
    }

    /// Starts the node: logs, metrics, the cluster and the admin HTTP
    /// surface.
    pub async fn start(self) -> Result<Node, NodeError> {
        let config = self.config;
        // Signals first: from here on SIGTERM, SIGINT and SIGHUP no longer
        // kill the process; one that arrives during the start is acted on
        // by `run_until_signal` as soon as the start has finished.
        let signals = if self.handle_signals {
            signals::Signals::register()
        } else {
            None
        };
        if self.init_logs {
            crate::telemetry::init_logs(&config.log);
        }
        // The same checks as `cluster-node check-config`, so a bad setting
        // is a `config.invalid` naming the file's key, not a provisioning
        // error naming the lowered one.
        validate(&config, &self.kinds)?;
        let descriptors = config.descriptors()?;
        let prometheus = crate::telemetry::prometheus();
        // The admin port before the cluster: a port that cannot be bound
        // fails the start before this node registers anywhere.
        let admin_listener = if config.admin.enabled {
            Some(
                tokio::net::TcpListener::bind(config.admin.bind.as_str())
                    .await
                    .map_err(|source| NodeError::AdminBind {
                        addr: config.admin.bind.clone(),
                        source,
                    })?,
            )
        } else {
            None
        };

        let system = ActorSystem::new(config.node_id.as_str());
        let kinds = self.kinds;
        #[cfg(feature = "seed")]
        let kinds = crate::bind_seed_kinds(
            kinds,
            &config.cluster,
            config
                .secret
                .as_ref()
                .map(|s| s.expose().as_bytes().to_vec()),
            match &config.remoting.tls {
                Some(tls) => Some(
                    cluster::remoting::ProbeTls::load(tls.to_tls_config(), config.node_id.as_str())
                        .map_err(|e| {
                            ClusterError::from(cluster::remoting::RemotingError::from(e))
                        })?,
                ),
                None => None,
            },
        );
        let remoting = config.remoting_config();
        let mut provisioning = ProvisioningConfig::default();
        provisioning.failover.silence_timeout = config.failover.silence_timeout;
        provisioning.failover.error_threshold = config.failover.error_threshold;
        provisioning.failover.stability_window = config.failover.stability_window;
        provisioning.suspect_hold = config.failover.suspect_hold;
        provisioning.merge.policy = match config.failover.merge {
            MergeSetting::Priority => provisioning_actors::merge::MergePolicy::Priority,
            MergeSetting::Union => provisioning_actors::merge::MergePolicy::Union,
        };
        if let Some(dir) = &config.store_dir {
            provisioning.store_path = Some(dir.join("provisioning.store"));
            provisioning.definitions_from_config = true;
        }
        let placement = PlacementConfig {
            request_timeout: config.placement.request_timeout,
            ..PlacementConfig::default()
        };
        let mut builder = Cluster::builder(&system, &config.cluster, config.node_id.clone())
            .bind(config.bind.clone())
            .kinds(kinds.clone())
            .remoting_config(remoting)
            .provisioning_config(provisioning)
            .placement_config(placement);
        if let Some(h) = &config.advertise_host {
            builder = builder.advertise_host(h.clone());
        }
        for r in &config.roles {
            builder = builder.role(r.clone());
        }
        for (k, v) in &config.labels {
            builder = builder.label(k.clone(), v.clone());
        }
        for d in descriptors {
            builder = builder.provider(d);
        }
        let storage = match crate::storage::open(&config.storage).await {
            Ok(s) => s,
            Err(e) => {
                system.shutdown().await;
                return Err(NodeError::Storage(e));
            }
        };
        for g in self.grains {
            builder = g(builder, &storage);
        }
        if config.diagnostics.probe_counter {
            builder = crate::probe::register(builder, &config);
        }
        // The bootstrap warns at every start when `insecure` is what lets
        // it run (off loopback, neither TLS nor a secret).
        builder = builder.insecure(config.insecure);
        let cluster = match builder.start().await {
            Ok(c) => c,
            Err(e) => {
                system.shutdown().await;
                return Err(e.into());
            }
        };

        let failovers = Arc::new(AtomicU64::new(0));
        let counter = failovers.clone();
        let subscription = system
            .event_stream()
            .subscribe_fn::<ProviderChanged>(move |e| {
                // The first choice of a provider is not a failover.
                if e.from.is_some() {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            });
        let (left_tx, _) = watch::channel(false);
        let (stop_admin, _) = watch::channel(false);
        let inner = Arc::new(Inner {
            storage,
            config: Mutex::new(config.clone()),
            kinds,
            reloading: tokio::sync::Mutex::new(()),
            signals: Mutex::new(signals),
            cluster,
            system,
            failovers,
            leaving: AtomicBool::new(false),
            left: left_tx,
            stop_admin,
            admin_addr: Mutex::new(None),
            prometheus,
            _subscription: Mutex::new(Some(subscription)),
            admin_task: Mutex::new(None),
        });
        let node = Node { inner };
        if let Some(listener) = admin_listener {
            let addr = listener.local_addr().ok();
            *lock(&node.inner.admin_addr) = addr;
            let task = tokio::spawn(crate::admin::serve(listener, node.clone()));
            *lock(&node.inner.admin_task) = Some(task);
            tracing::info!(admin = ?addr, "admin HTTP serving");
        }
        Ok(node)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `[remoting.tls]`'s files can be read and fit together.
fn check_tls(config: &NodeConfig) -> Result<(), NodeError> {
    let Some(tls) = &config.remoting.tls else {
        return Ok(());
    };
    tls.to_tls_config()
        .check_for(&config.cluster, config.node_id.as_str())
        .map_err(|e| {
            let field = if e.path == tls.cert_file {
                "cert_file"
            } else if e.path == tls.key_file {
                "key_file"
            } else {
                "ca_file"
            };
            ConfigError {
                source_name: config.source_name(),
                field: format!("remoting.tls.{field}"),
                reason: e.to_string(),
            }
            .into()
        })
}

/// The start-time safety rules (`config.unsafe`).
fn check_safety(config: &NodeConfig) -> Result<(), NodeError> {
    if !config.binds_loopback()
        && config.secret.is_none()
        && config.remoting.tls.is_none()
        && !config.insecure
    {
        return Err(NodeError::Unsafe(format!(
            "{}: bind: Remoting on {} (not loopback) needs [remoting.tls] or a cluster secret \
             (secret or secret_file); set insecure = true to run without either",
            config.source_name(),
            config.bind
        )));
    }
    if config.admin.enabled
        && !crate::config::is_loopback(&config.admin.bind)
        && config.admin.token.is_none()
    {
        return Err(NodeError::Unsafe(format!(
            "{}: admin.bind: the admin port on {} (not loopback) needs admin.token or admin.token_file \
             for POST /cluster/leave and /cluster/reload",
            config.source_name(),
            config.admin.bind
        )));
    }
    Ok(())
}

/// Every provider's kind must be compiled in or registered.
fn check_kinds(config: &NodeConfig, kinds: &ProviderKinds) -> Result<(), ConfigError> {
    for p in &config.providers {
        if kinds.get(&p.kind).is_some() {
            continue;
        }
        let reason = if crate::config::providers::BUILT_IN_KINDS.contains(&p.kind.as_str()) {
            format!(
                "the kind {:?} is not compiled into this build (cargo feature {:?} of cluster-provisioning)",
                p.kind, p.kind
            )
        } else {
            format!(
                "unknown provider kind {:?} (known: {})",
                p.kind,
                crate::config::providers::BUILT_IN_KINDS.join(", ")
            )
        };
        return Err(ConfigError {
            source_name: config.source_name(),
            field: format!("providers[{}].kind", p.id),
            reason,
        });
    }
    Ok(())
}

/// Checks `config` as far as it can be without starting anything: the
/// safety rules, the kinds, and each provider's settings through its kind's
/// own parser (ranges, combinations), and `[remoting.monitoring]`'s
/// ranges (for a configuration changed in code). What `cluster-node
/// check-config` runs.
pub fn validate(config: &NodeConfig, kinds: &ProviderKinds) -> Result<(), NodeError> {
    check_safety(config)?;
    config.check_monitoring()?;
    check_tls(config)?;
    check_kinds(config, kinds)?;
    let descriptors = config.descriptors()?;
    for d in &descriptors {
        d.validate().map_err(|e| ConfigError {
            source_name: config.source_name(),
            field: format!("providers[{}]", d.id),
            reason: e.to_string(),
        })?;
        if let Some(factory) = kinds.get(&d.kind)
            && let Err(e) = factory.create(d)
        {
            let (field, reason) = match e {
                cluster_core::ProviderError::Config { field, reason } => (
                    format!(
                        "providers[{}].settings.{}",
                        d.id,
                        crate::config::ProviderSettings::field_name(&field)
                    ),
                    crate::config::ProviderSettings::reason_in_file_units(&field, &reason),
                ),
                other => (format!("providers[{}]", d.id), other.to_string()),
            };
            return Err(ConfigError {
                source_name: config.source_name(),
                field,
                reason,
            }
            .into());
        }
    }
    Ok(())
}

struct Inner {
    /// The `[storage]` of stateful grains.
    storage: Arc<dyn cluster_core::GrainStorage>,
    config: Mutex<NodeConfig>,
    /// The provider kinds, to check a reloaded file like `check-config`.
    kinds: ProviderKinds,
    /// One reload at a time, in the order they were asked for.
    reloading: tokio::sync::Mutex<()>,
    /// Registered at the start (see [`NodeBuilder::start`]).
    signals: Mutex<Option<signals::Signals>>,
    cluster: Cluster,
    system: ActorSystem,
    failovers: Arc<AtomicU64>,
    leaving: AtomicBool,
    left: watch::Sender<bool>,
    stop_admin: watch::Sender<bool>,
    admin_addr: Mutex<Option<SocketAddr>>,
    prometheus: Option<metrics_exporter_prometheus::PrometheusHandle>,
    _subscription: Mutex<Option<actor_runtime::Subscription>>,
    admin_task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// A running node: the [`Cluster`], its admin surface, and the graceful
/// leave. Cheap to clone.
#[derive(Clone)]
pub struct Node {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("cluster", &self.inner.cluster)
            .field("admin", &self.admin_addr())
            .finish_non_exhaustive()
    }
}

impl Node {
    /// A builder for a node of `config`.
    pub fn builder(config: NodeConfig) -> NodeBuilder {
        NodeBuilder {
            config,
            grains: Vec::new(),
            kinds: crate::built_in_kinds(),
            init_logs: true,
            handle_signals: true,
        }
    }

    /// Loads `path` (file + `CLUSTER_*` environment, see [`crate::config`])
    /// and returns a builder for it.
    pub fn from_file(path: impl AsRef<std::path::Path>) -> Result<NodeBuilder, ConfigError> {
        Ok(Self::builder(NodeConfig::load(path)?))
    }

    /// The cluster: grain requests, topology, handles.
    pub fn cluster(&self) -> &Cluster {
        &self.inner.cluster
    }

    /// The actor system (named after the node id).
    pub fn system(&self) -> &ActorSystem {
        &self.inner.system
    }

    /// Where the admin HTTP surface listens (`None` when disabled).
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        *lock(&self.inner.admin_addr)
    }

    /// A copy of the configuration in force (providers change on reload).
    pub fn config(&self) -> NodeConfig {
        lock(&self.inner.config).clone()
    }

    /// The node's grain storage (`[storage]`).
    pub fn storage(&self) -> &Arc<dyn cluster_core::GrainStorage> {
        &self.inner.storage
    }

    /// Changes of the active provider since the start.
    pub fn failovers(&self) -> u64 {
        self.inner.failovers.load(Ordering::Relaxed)
    }

    /// Whether the node is leaving or has left.
    pub fn is_leaving(&self) -> bool {
        self.inner.leaving.load(Ordering::Relaxed)
    }

    pub(crate) fn prometheus(&self) -> Option<&metrics_exporter_prometheus::PrometheusHandle> {
        self.inner.prometheus.as_ref()
    }

    pub(crate) fn admin_stopped(&self) -> watch::Receiver<bool> {
        self.inner.stop_admin.subscribe()
    }

    /// Leaves the cluster gracefully (hand off, deregister everywhere,
    /// goodbye), bounded by `[leave].deadline`. Idempotent: a second call
    /// waits for the first to finish.
    pub async fn leave(&self) {
        self.request_leave();
        let mut rx = self.inner.left.subscribe();
        let _ = rx.wait_for(|left| *left).await;
    }

    async fn leave_now(&self) {
        let deadline = lock(&self.inner.config).leave.deadline;
        let started = tokio::time::Instant::now();
        tracing::info!(node = %self.inner.cluster.local().node_id, deadline = ?deadline, "leaving the cluster");
        // Each step of the leave is bounded; the whole by the deadline.
        let step = deadline / 4;
        let report = tokio::time::timeout(deadline, self.inner.cluster.leave(step)).await;
        match report {
            Ok(r) => {
                let failed: Vec<String> = r
                    .deregistered
                    .iter()
                    .filter_map(|(id, res)| res.as_ref().err().map(|e| format!("{id}: {e}")))
                    .collect();
                if failed.is_empty() {
                    // The bootstrap logs "left the cluster" (N3: one line).
                    tracing::debug!(
                        handed_off = r.handed_off,
                        providers = r.deregistered.len(),
                        elapsed = ?started.elapsed(),
                        "leave finished"
                    );
                } else {
                    tracing::warn!(
                        handed_off = r.handed_off,
                        failed = %failed.join("; "),
                        "left the cluster; some providers could not deregister (their TTL or lease removes the member)"
                    );
                }
            }
            Err(_) => {
                tracing::warn!(deadline = ?deadline, "the leave did not finish within its deadline")
            }
        }
        // `send_replace`, not `send`: with no receiver subscribed yet,
        // `send` would drop the value and a later `run_until_signal` would
        // wait for a leave that already happened.
        self.inner.left.send_replace(true);
    }

    /// Reloads the providers from the configuration file (R5.4): the new
    /// set replaces the running one atomically, or, on any error, the
    /// running set stays and the error says why. Only `[[providers]]` are
    /// reloaded; other changed sections are logged and wait for a restart.
    pub async fn reload(&self) -> Result<usize, ReloadError> {
        let _one_at_a_time = self.inner.reloading.lock().await;
        if self.is_leaving() {
            return Err(ReloadError::Leaving);
        }
        // The TLS files first, whatever becomes of the rest (they are
        // also watched): a rotation takes effect for the next association.
        // A failure is logged by Remoting, and the running material stays.
        if let Ok(true) = self.inner.cluster.remoting().reload_tls() {
            tracing::info!("reload: remoting TLS files re-read");
        }
        let path = lock(&self.inner.config).path.clone();
        let Some(path) = path else {
            return Err(ReloadError::NoFile);
        };
        let new = NodeConfig::load(&path)?;
        validate(&new, &self.inner.kinds).map_err(|e| match e {
            NodeError::Config(c) => ReloadError::Config(c),
            other => ReloadError::Unsafe(other.to_string()),
        })?;

        let descriptors = new.descriptors()?;
        let old = lock(&self.inner.config).clone();
        let changed = changed_sections(&old, &new);
        if !changed.is_empty() {
            tracing::warn!(
                changed = %changed.join(", "),
                "reload: only [[providers]] are reloaded; these changes wait for a restart"
            );
        }
        let n = descriptors.len();
        self.inner
            .cluster
            .provisioning()
            .reload(descriptors)
            .await
            .map_err(ReloadError::Refused)?;
        lock(&self.inner.config).providers = new.providers;
        tracing::info!(providers = n, file = %path.display(), "providers reloaded");
        Ok(n)
    }

    /// Waits for SIGTERM or SIGINT (or a leave requested by `POST
    /// /cluster/leave` or [`leave`](Self::leave)), runs the graceful leave,
    /// then stops the admin surface and the actor system. SIGHUP reloads the
    /// providers. A second SIGTERM / SIGINT during the leave exits the
    /// process at once with code 1.
    pub async fn run_until_signal(&self) {
        let mut left = self.inner.left.subscribe();
        let signals = lock(&self.inner.signals).take();
        let Some(mut signals) = signals else {
            let _ = left.wait_for(|l| *l).await;
            self.shutdown().await;
            return;
        };
        loop {
            tokio::select! {
                asked = signals.next() => match asked {
                    signals::Asked::Leave(signal) => {
                        tracing::info!(signal, "leave requested");
                        break;
                    }
                    signals::Asked::Reload => {
                        if let Err(e) = self.reload().await {
                            tracing::warn!(error = %e, "SIGHUP: reload refused; the running providers stay");
                        }
                    }
                },
                _ = left.wait_for(|l| *l) => break,
            }
        }
        let leave = self.leave();
        tokio::pin!(leave);
        loop {
            tokio::select! {
                () = &mut leave => break,
                asked = signals.next() => match asked {
                    signals::Asked::Leave(signal) => signals::second_signal(signal),
                    signals::Asked::Reload => {}
                },
            }
        }
        self.shutdown().await;
    }

    /// Stops the admin surface and shuts the actor system down (after a
    /// [`leave`](Self::leave), or instead of one in tests).
    pub async fn shutdown(&self) {
        self.inner.stop_admin.send_replace(true);
        let task = lock(&self.inner.admin_task).take();
        if let Some(task) = task {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(2), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
        lock(&self.inner._subscription).take();
        self.inner.system.shutdown().await;
    }

    /// Requests a leave from outside the runtime loop (`POST
    /// /cluster/leave`): runs it in the background.
    pub(crate) fn request_leave(&self) {
        // In a task of its own: a caller that stops waiting (a timeout, a
        // `select!`) must not cancel the leave half-way.
        if !self.inner.leaving.swap(true, Ordering::SeqCst) {
            let node = self.clone();
            tokio::spawn(async move { node.leave_now().await });
        }
    }

    /// Waits until this node is ready by the rule of `GET /health/ready`
    /// (a topology from a healthy provider that lists it, Remoting up, not
    /// leaving: [`crate::view::readiness`]), at most `timeout`. Grain
    /// requests made before may fail with `provisioning.starting`.
    pub async fn ready(&self, timeout: Duration) -> Result<(), crate::view::NotReady> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match self.readiness().await {
                Ok(()) => return Ok(()),
                Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    }

    /// This node's readiness now (see [`ready`](Self::ready)).
    pub async fn readiness(&self) -> Result<(), crate::view::NotReady> {
        use crate::view::NotReady;
        if self.is_leaving() {
            return Err(NotReady::Draining);
        }
        let c = &self.inner.cluster;
        let answers = tokio::time::timeout(Duration::from_secs(1), async {
            let t = c.topology().await?;
            let p = c.provisioning().providers().await?;
            Ok::<_, cluster_core::ProvisioningError>((t, p))
        })
        .await;
        match answers {
            Ok(Ok((topology, providers))) => crate::view::readiness(
                c.local(),
                &topology,
                &providers,
                c.remoting().is_running(),
                false,
            ),
            Ok(Err(e)) => Err(NotReady::NoHealthyProvider(e.to_string())),
            Err(_) => Err(NotReady::NoHealthyProvider(
                "provisioning did not answer within 1s".into(),
            )),
        }
    }
}

/// The sections other than `[[providers]]` that differ (a reload applies
/// only the providers; secrets are compared, never printed).
fn changed_sections(old: &NodeConfig, new: &NodeConfig) -> Vec<&'static str> {
    let secret = |s: &Option<crate::config::Secret>| s.as_ref().map(|s| s.expose().to_owned());
    let checks: [(&'static str, bool); 13] = [
        ("cluster", old.cluster != new.cluster),
        ("node_id", old.node_id != new.node_id),
        (
            "bind",
            old.bind != new.bind || old.advertise_host != new.advertise_host,
        ),
        (
            "roles/labels",
            old.roles != new.roles || old.labels != new.labels,
        ),
        ("secret", secret(&old.secret) != secret(&new.secret)),
        (
            "admin",
            old.admin.bind != new.admin.bind
                || old.admin.enabled != new.admin.enabled
                || secret(&old.admin.token) != secret(&new.admin.token),
        ),
        ("log", old.log != new.log),
        ("failover", old.failover != new.failover),
        ("remoting", old.remoting != new.remoting),
        ("placement", old.placement != new.placement),
        ("leave", old.leave != new.leave),
        ("diagnostics", old.diagnostics != new.diagnostics),
        (
            "store_dir/insecure",
            old.store_dir != new.store_dir || old.insecure != new.insecure,
        ),
    ];
    checks.iter().filter(|(_, c)| *c).map(|(n, _)| *n).collect()
}

/// Why a reload was refused (the running providers stay).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReloadError {
    /// The node was not started from a file.
    #[error("the node was not started from a configuration file")]
    NoFile,
    /// The file is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The file is valid but unsafe (see [`NodeError::Unsafe`]).
    #[error("{0}")]
    Unsafe(String),
    /// The node is leaving.
    #[error("the node is leaving the cluster")]
    Leaving,
    /// Provisioning refused the new set (a setting, a duplicate, a backend
    /// that is unreachable).
    #[error("provisioning refused the new provider set: {0}")]
    Refused(cluster_core::ProvisioningError),
}
