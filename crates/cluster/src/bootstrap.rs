//! The `Cluster` bootstrap (A6): one builder that starts provisioning,
//! remoting, the partition manager and the placement supervisor on an
//! [`ActorSystem`], and one call that leaves the cluster in reverse order.
//!
//! ```text
//! Cluster::builder(&system, "shop", node_id)
//!     .bind("127.0.0.1:0")            // where Remoting listens
//!     .provider(descriptor) ...        // provider definitions (priority order)
//!     .kinds(provider_kinds)           // the kinds those definitions use
//!     .grain::<Cart>("cart", factory)  // virtual actors this node hosts
//!     .start().await?
//!
//! start():  bind the listener ─► local Member (advertised address, fresh incarnation)
//!           ─► /system/provisioning ─► /system/remoting ─► /system/partitions
//!           ─► /system/placement     (each subscribed to the EventStream)
//! leave():  placement hands off every activation ─► provisioning drains
//!           (status Draining, deregistered everywhere) ─► partitions stop
//!           ─► remoting says Goodbye and closes ─► placement and provisioning stop
//! ```
//!
//! The listener is bound before provisioning starts because the supervisor
//! registers the local member, and with it the address Remoting listens on,
//! with every provider.
//!
//! The incarnation is fresh at every start: the wall clock in microseconds,
//! and strictly greater than any incarnation this process handed out
//! before. A restarted node is therefore never mistaken for its quarantined
//! predecessor (R4.4).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actor_runtime::{ActorSystem, SpawnError};
use cluster_core::{
    Member, MemberAddress, NodeId, ProviderDescriptor, ProvisioningError, Topology,
};
use provisioning_actors::{
    ProviderKinds, ProvisioningConfig, ProvisioningHandle, ProvisioningSupervisor,
};
use tokio::net::TcpListener;

use crate::grain::{GrainOptions, NamedGrain};
use crate::partition_manager::{PartitionHandle, PartitionManager};
use crate::placement::{CALL_TYPE, PLACEMENT_ACTOR, RELEASE_TYPE, REPLY_TYPE};
use crate::placement::{
    Grain, GrainKinds, PlacementConfig, PlacementError, PlacementHandle, PlacementSupervisor,
};
use crate::remoting::{Remoting, RemotingConfig, RemotingError, RemotingHandle};

/// Why a cluster node could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// The listen address could not be bound (`cluster.bind`).
    #[error("could not bind {addr}")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A setting is invalid, or provisioning refused its definitions (the
    /// provisioning error's code).
    #[error(transparent)]
    Provisioning(#[from] ProvisioningError),
    /// A system actor could not be spawned (`cluster.spawn`).
    #[error("could not spawn a system actor: {0}")]
    Spawn(String),
    /// Remoting could not start (its own code, e.g. `remoting.spawn`).
    #[error(transparent)]
    Remoting(#[from] RemotingError),
    /// Remoting would listen off loopback with neither TLS nor a secret,
    /// and [`ClusterBuilder::insecure`] does not allow it
    /// (`cluster.insecure`).
    #[error(
        "Remoting would listen on {addr} (not loopback) with neither TLS nor a cluster secret: \
         anyone who reaches the port could join and read grain traffic; configure TLS or a \
         secret, or allow it explicitly (insecure)"
    )]
    Insecure {
        /// The bound address.
        addr: SocketAddr,
    },
}

impl ClusterError {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Bind { .. } => "cluster.bind",
            Self::Provisioning(e) => e.code(),
            Self::Spawn(_) => "cluster.spawn",
            Self::Remoting(e) => e.code(),
            Self::Insecure { .. } => "cluster.insecure",
        }
    }
}

impl From<SpawnError> for ClusterError {
    fn from(e: SpawnError) -> Self {
        Self::Spawn(e.to_string())
    }
}

/// A fresh incarnation: microseconds since the epoch, strictly increasing
/// within the process.
pub fn fresh_incarnation() -> u64 {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    let mut prev = LAST.load(Ordering::Relaxed);
    loop {
        let next = now.max(prev + 1);
        match LAST.compare_exchange_weak(prev, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(p) => prev = p,
        }
    }
}

/// Builds a [`Cluster`] node; see the [module documentation](self).
#[must_use]
pub struct ClusterBuilder {
    system: ActorSystem,
    cluster: String,
    node_id: NodeId,
    bind: String,
    advertise_host: Option<String>,
    roles: Vec<String>,
    labels: Vec<(String, String)>,
    incarnation: Option<u64>,
    providers: Vec<ProviderDescriptor>,
    kinds: ProviderKinds,
    provisioning: ProvisioningConfig,
    remoting: RemotingConfig,
    placement: PlacementConfig,
    grains: GrainKinds,
    secret: Option<Vec<u8>>,
    insecure: bool,
}

impl std::fmt::Debug for ClusterBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterBuilder")
            .field("cluster", &self.cluster)
            .field("node_id", &self.node_id)
            .field("bind", &self.bind)
            .field("providers", &self.providers)
            .field("grains", &self.grains)
            .finish_non_exhaustive()
    }
}

impl ClusterBuilder {
    /// Where Remoting listens (`host:port`; port 0 picks a free one).
    /// Default `0.0.0.0:4000`.
    pub fn bind(mut self, addr: impl Into<String>) -> Self {
        self.bind = addr.into();
        self
    }

    /// The host other members dial (default: the bound IP; required when
    /// binding `0.0.0.0`, which is not dialable).
    pub fn advertise_host(mut self, host: impl Into<String>) -> Self {
        self.advertise_host = Some(host.into());
        self
    }

    /// Adds a role to the local member.
    pub fn role(mut self, role: impl Into<String>) -> Self {
        self.roles.push(role.into());
        self
    }

    /// Adds a label to the local member.
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.push((key.into(), value.into()));
        self
    }

    /// Uses this incarnation instead of a fresh one (tests).
    pub fn incarnation(mut self, incarnation: u64) -> Self {
        self.incarnation = Some(incarnation);
        self
    }

    /// Adds a provider definition.
    pub fn provider(mut self, descriptor: ProviderDescriptor) -> Self {
        self.providers.push(descriptor);
        self
    }

    /// The provider kinds the definitions may use.
    pub fn kinds(mut self, kinds: ProviderKinds) -> Self {
        self.kinds = kinds;
        self
    }

    /// Provisioning settings (failover, merge, store); its `local` is set
    /// by [`start`](Self::start).
    pub fn provisioning_config(mut self, config: ProvisioningConfig) -> Self {
        self.provisioning = config;
        self
    }

    /// Remoting settings; the cluster name is the builder's, the listen
    /// address [`bind`](Self::bind)'s.
    pub fn remoting_config(mut self, config: RemotingConfig) -> Self {
        self.remoting = config;
        self
    }

    /// Mutual TLS on every association (see [`crate::remoting::tls`]): the
    /// node's certificate and key and the cluster's CA, as files.
    pub fn tls(mut self, tls: crate::remoting::TlsConfig) -> Self {
        self.remoting.tls = Some(tls);
        self
    }

    /// Allows Remoting to listen off loopback with neither TLS nor a
    /// secret (default `false`: [`start`](Self::start) refuses it with
    /// `cluster.insecure`). A warning is logged at every such start.
    pub fn insecure(mut self, allow: bool) -> Self {
        self.insecure = allow;
        self
    }

    /// The cluster secret of the Remoting handshake: only nodes that share
    /// it associate (set here rather than in [`RemotingConfig`]; applied
    /// whatever `remoting_config` is called before or after).
    pub fn secret(mut self, secret: impl Into<Vec<u8>>) -> Self {
        self.secret = Some(secret.into());
        self
    }

    /// [`secret`](Self::secret) read from a file (its content without the
    /// trailing newline). An unreadable or empty file is a
    /// `validation.invalid_field` error on `secret_file` naming the path.
    pub fn secret_file(mut self, path: impl AsRef<std::path::Path>) -> Result<Self, ClusterError> {
        let path = path.as_ref();
        let text = std::fs::read(path).map_err(|e| {
            ProvisioningError::validation(
                "secret_file",
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
        let end = text
            .iter()
            .rposition(|b| *b != b'\n' && *b != b'\r')
            .map_or(0, |i| i + 1);
        if end == 0 {
            return Err(ProvisioningError::validation(
                "secret_file",
                format!("{} is empty", path.display()),
            )
            .into());
        }
        self.secret = Some(text[..end].to_vec());
        Ok(self)
    }

    /// Hosts the grain kind named by `G::KIND` (see [`NamedGrain`]): the
    /// kind is carried by the type, so registering and calling cannot
    /// disagree on it.
    pub fn named_grain<G: NamedGrain>(
        self,
        options: GrainOptions,
        factory: impl Fn(&str) -> G + Send + Sync + 'static,
    ) -> Self {
        self.grain_with(G::KIND, options, factory)
    }

    /// Placement settings.
    pub fn placement_config(mut self, config: PlacementConfig) -> Self {
        self.placement = config;
        self
    }

    /// Hosts the grain kind `kind`, built by `factory(id)`.
    pub fn grain<G: Grain>(
        mut self,
        kind: &str,
        factory: impl Fn(&str) -> G + Send + Sync + 'static,
    ) -> Self {
        self.grains = self.grains.with(kind, factory);
        self
    }

    /// Hosts the grain kind `kind` with its options: storage for state that
    /// survives moves, schema version, idle timeout, deactivation deadline
    /// (see [`crate::grain`]).
    pub fn grain_with<G: Grain>(
        mut self,
        kind: &str,
        options: GrainOptions,
        factory: impl Fn(&str) -> G + Send + Sync + 'static,
    ) -> Self {
        self.grains = self.grains.with_options(kind, options, factory);
        self
    }

    /// Starts the node (see the [module documentation](self)). On an
    /// error, whatever was already started is stopped again.
    pub async fn start(self) -> Result<Cluster, ClusterError> {
        let listener = TcpListener::bind(self.bind.as_str())
            .await
            .map_err(|source| ClusterError::Bind {
                addr: self.bind.clone(),
                source,
            })?;
        let bound: SocketAddr = listener.local_addr().map_err(|source| ClusterError::Bind {
            addr: self.bind.clone(),
            source,
        })?;
        let secured = self.secret.is_some()
            || self.remoting.handshake.secret.is_some()
            || self.remoting.tls.is_some();
        if !bound.ip().is_loopback() && !secured {
            if !self.insecure {
                return Err(ClusterError::Insecure { addr: bound });
            }
            tracing::warn!(
                bind = %bound,
                "insecure: Remoting listens off loopback with neither TLS nor a secret: any peer \
                 that knows the cluster name can join and read grain traffic"
            );
        }
        let host = match &self.advertise_host {
            Some(h) => h.clone(),
            None if bound.ip().is_unspecified() => {
                return Err(ProvisioningError::validation(
                    "advertise_host",
                    format!("required when binding the unspecified address {bound}"),
                )
                .into());
            }
            None => bound.ip().to_string(),
        };
        let address = MemberAddress::new(host, bound.port())?;
        let mut local = Member::new(
            self.node_id.clone(),
            address,
            self.incarnation.unwrap_or_else(fresh_incarnation),
        );
        for r in self.roles {
            local = local.with_role(r);
        }
        for (k, v) in self.labels {
            local.labels.insert(k, v);
        }

        let mut pconfig = self.provisioning;
        pconfig.local = Some(local.clone());
        let provisioning =
            ProvisioningSupervisor::spawn(&self.system, pconfig, self.kinds, self.providers)
                .await?;

        let mut rconfig = self.remoting;
        if let Some(secret) = self.secret {
            rconfig = rconfig.with_secret(secret);
        }
        rconfig.handshake.cluster = self.cluster.clone();
        rconfig.bind = bound;
        let remoting = match Remoting::spawn_with_listener(
            &self.system,
            rconfig,
            local.clone(),
            provisioning.clone(),
            listener,
        ) {
            Ok(r) => r,
            Err(e) => {
                // The local member is registered with an address nobody
                // will serve: take it back before stopping.
                let _ = tokio::time::timeout(Duration::from_secs(5), provisioning.drain()).await;
                provisioning.actor().stop();
                return Err(e.into());
            }
        };
        let partitions = PartitionManager::spawn_following(
            &self.system,
            "partitions",
            Some(provisioning.clone()),
        );
        let mut placement_config = self.placement;
        placement_config.cluster = self.cluster.clone();
        let placement = partitions.as_ref().ok().map(|_| {
            PlacementSupervisor::spawn(
                &self.system,
                &local,
                self.grains,
                placement_config,
                Some(remoting.clone()),
                Some(provisioning.clone()),
            )
        });
        let (partitions, placement) = match (partitions, placement) {
            (Ok(p), Some(Ok(pl))) => (p, pl),
            (partitions, placement) => {
                let error = match (&partitions, placement) {
                    (Err(e), _) => ClusterError::from(e.clone()),
                    (Ok(_), Some(Err(e))) => ClusterError::from(e),
                    _ => ClusterError::Spawn("unknown".into()),
                };
                if let Ok(p) = partitions {
                    p.actor().stop();
                }
                remoting.stop();
                let _ = tokio::time::timeout(Duration::from_secs(5), provisioning.drain()).await;
                provisioning.actor().stop();
                return Err(error);
            }
        };
        tracing::info!(cluster = %self.cluster, node = %local.node_id, address = %local.address, incarnation = local.incarnation, "cluster node started");
        Ok(Cluster {
            inner: Arc::new(Inner {
                system: self.system,
                cluster: self.cluster,
                local,
                provisioning,
                remoting,
                partitions,
                placement,
            }),
        })
    }
}

struct Inner {
    system: ActorSystem,
    cluster: String,
    local: Member,
    provisioning: ProvisioningHandle,
    remoting: RemotingHandle,
    partitions: PartitionHandle,
    placement: PlacementHandle,
}

/// A running cluster node: the handles of its system actors, grain
/// requests, and a graceful [`leave`](Self::leave).
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("cluster", &self.inner.cluster)
            .field("local", &self.inner.local)
            .finish_non_exhaustive()
    }
}

/// The published topology, from [`Cluster::watch_topology`]: the current
/// one at once, then every newer one. Dropping it ends the subscription.
#[derive(Debug)]
pub struct TopologyWatch {
    rx: tokio::sync::watch::Receiver<Arc<Topology>>,
    subscription: Option<actor_runtime::Subscription>,
}

impl TopologyWatch {
    /// The latest topology.
    pub fn current(&self) -> Arc<Topology> {
        self.rx.borrow().clone()
    }

    /// Waits for a topology newer than the last one returned by `changed`
    /// or [`current`](Self::current); `None` once the node has stopped.
    pub async fn changed(&mut self) -> Option<Arc<Topology>> {
        self.rx.changed().await.ok()?;
        Some(self.rx.borrow_and_update().clone())
    }

    /// Waits until `ok` holds for the latest topology (checked at once,
    /// then at every change); `None` once the node has stopped.
    pub async fn wait_for(&mut self, ok: impl Fn(&Topology) -> bool) -> Option<Arc<Topology>> {
        let t = self.rx.wait_for(|t| ok(t)).await.ok()?;
        Some(t.clone())
    }
}

impl Drop for TopologyWatch {
    fn drop(&mut self) {
        if let Some(s) = self.subscription.take() {
            s.cancel();
        }
    }
}

/// What [`Cluster::leave`] did.
#[derive(Debug)]
pub struct LeaveReport {
    /// Activations handed off (stopped).
    pub handed_off: usize,
    /// Providers the local member was deregistered from, and how each went
    /// (an error does not stop the leave).
    pub deregistered: Vec<(
        cluster_core::ProviderId,
        Result<(), cluster_core::ProviderError>,
    )>,
}

impl Cluster {
    /// A builder for the node `node_id` of `cluster` on `system`.
    ///
    /// Name the system after the node (`ActorSystem::new(node_id.as_str())`):
    /// the runtime's own metrics carry the system's name as their `node`
    /// label, while provisioning, Remoting and placement label theirs with
    /// `node_id`, so the two then agree (N2).
    pub fn builder(system: &ActorSystem, cluster: &str, node_id: NodeId) -> ClusterBuilder {
        ClusterBuilder {
            system: system.clone(),
            cluster: cluster.to_owned(),
            node_id,
            bind: "0.0.0.0:4000".to_owned(),
            advertise_host: None,
            roles: Vec::new(),
            labels: Vec::new(),
            incarnation: None,
            providers: Vec::new(),
            kinds: ProviderKinds::new(),
            provisioning: ProvisioningConfig::default(),
            remoting: RemotingConfig::new(cluster),
            placement: PlacementConfig::default(),
            grains: GrainKinds::new(),
            secret: None,
            insecure: false,
        }
    }

    /// The local member, as registered with the providers.
    pub fn local(&self) -> &Member {
        &self.inner.local
    }

    /// The cluster name.
    pub fn name(&self) -> &str {
        &self.inner.cluster
    }

    /// The actor system.
    pub fn system(&self) -> &ActorSystem {
        &self.inner.system
    }

    /// The ProvisioningSupervisor.
    pub fn provisioning(&self) -> &ProvisioningHandle {
        &self.inner.provisioning
    }

    /// Remoting.
    pub fn remoting(&self) -> &RemotingHandle {
        &self.inner.remoting
    }

    /// The PartitionManager.
    pub fn partitions(&self) -> &PartitionHandle {
        &self.inner.partitions
    }

    /// The PlacementSupervisor.
    pub fn placement(&self) -> &PlacementHandle {
        &self.inner.placement
    }

    /// The current topology.
    pub async fn topology(&self) -> Result<Arc<Topology>, ProvisioningError> {
        self.inner.provisioning.topology().await
    }

    /// Waits until the published topology lists this node (its own
    /// incarnation) with placement running (status Active or Degraded), at
    /// most `timeout`; answers that topology. Use it instead of polling
    /// [`topology`](Self::topology) before the first grain request.
    pub async fn ready(&self, timeout: Duration) -> Result<Arc<Topology>, ProvisioningError> {
        let local = self.inner.local.clone();
        self.wait_for(timeout, move |t| {
            t.members
                .iter()
                .any(|m| m.node_id == local.node_id && m.incarnation == local.incarnation)
        })
        .await
    }

    /// Waits until the topology has at least `n` members with placement
    /// running, at most `timeout`; answers that topology. An error is the
    /// provisioning error of the last attempt, or
    /// `provisioning.unavailable` naming the members seen at the deadline.
    pub async fn wait_for_members(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<Arc<Topology>, ProvisioningError> {
        self.wait_for(timeout, move |t| t.members.len() >= n).await
    }

    async fn wait_for(
        &self,
        timeout: Duration,
        ok: impl Fn(&Topology) -> bool,
    ) -> Result<Arc<Topology>, ProvisioningError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let t = self.inner.provisioning.topology().await?;
            let running = matches!(
                t.status,
                cluster_core::ProvisioningStatus::Active
                    | cluster_core::ProvisioningStatus::Degraded
            );
            if running && ok(&t) {
                return Ok(t);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ProvisioningError::Unavailable(
                    "not ready within the timeout (see the topology's status and members)",
                ));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The published topology as a watch that **starts with the current
    /// one** and then follows every `TopologyUpdated` in seq_no order, so
    /// nothing published between subscribing and reading is missed (a
    /// plain EventStream subscription starts empty; polling
    /// [`topology`](Self::topology) can miss intermediate changes).
    /// Intermediate topologies may be skipped when several are published
    /// before the reader looks; the latest is never lost.
    pub async fn watch_topology(&self) -> Result<TopologyWatch, ProvisioningError> {
        let (tx, rx) = tokio::sync::watch::channel(Arc::new(Topology::starting()));
        let tx = Arc::new(tx);
        let newer = |tx: &tokio::sync::watch::Sender<Arc<Topology>>, t: &Arc<Topology>| {
            tx.send_if_modified(|cur| {
                if t.seq_no > cur.seq_no {
                    *cur = t.clone();
                    true
                } else {
                    false
                }
            });
        };
        let from_events = tx.clone();
        // Subscribe first, then read: whatever is published in between
        // reaches the watch through the subscription.
        let subscription = self
            .inner
            .system
            .event_stream()
            .subscribe_fn::<cluster_core::events::TopologyUpdated>(move |e| {
                newer(&from_events, &e.topology);
            });
        match self.inner.provisioning.topology().await {
            Ok(current) => {
                newer(&tx, &current);
                Ok(TopologyWatch {
                    rx,
                    subscription: Some(subscription),
                })
            }
            Err(e) => {
                subscription.cancel();
                Err(e)
            }
        }
    }

    /// Sends `request` to the grain `id` of the kind `G::KIND` (see
    /// [`NamedGrain`]).
    pub async fn call<G: NamedGrain>(
        &self,
        id: &str,
        request: &G::Request,
    ) -> Result<G::Response, PlacementError> {
        self.inner
            .placement
            .request::<G>(G::KIND, id, request)
            .await
    }

    /// Sends `request` to the grain `(kind, id)` of type `G`, wherever it
    /// lives (see [`PlacementHandle::request`]).
    pub async fn request<G: Grain>(
        &self,
        kind: &str,
        id: &str,
        request: &G::Request,
    ) -> Result<G::Response, PlacementError> {
        self.inner.placement.request::<G>(kind, id, request).await
    }

    /// Leaves the cluster gracefully, in the reverse order of the start:
    /// hands off every activation, drains provisioning (status Draining,
    /// the local member deregistered from every provider, so the others see
    /// it leave), stops the partition manager, closes every association
    /// with a `Goodbye`, then stops placement and provisioning. Each step
    /// is bounded by `timeout`; the actor system keeps running.
    pub async fn leave(&self, timeout: Duration) -> LeaveReport {
        let i = &self.inner;
        // Refuse new activations first: local requests fail with
        // `provisioning.draining`, remote callers are told to place again.
        // Every grain's on_deactivate (its save) finishes before the node
        // deregisters, so that no new owner loads an older state.
        let handed_off = match i.placement.hand_off_all_within(timeout).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(code = e.code(), error = %e, timeout = ?timeout, "hand-off did not finish: some grains may still be saving while this node deregisters");
                0
            }
        };
        let deregistered = tokio::time::timeout(timeout, i.provisioning.drain())
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        i.partitions.actor().stop();
        let _ = tokio::time::timeout(timeout, i.partitions.actor().stopped()).await;
        i.remoting.unregister(PLACEMENT_ACTOR, CALL_TYPE);
        i.remoting.unregister(PLACEMENT_ACTOR, REPLY_TYPE);
        i.remoting.unregister(PLACEMENT_ACTOR, RELEASE_TYPE);
        i.remoting.stop();
        let _ = tokio::time::timeout(timeout, i.remoting.stopped()).await;
        i.placement.stop();
        let _ = tokio::time::timeout(timeout, i.placement.stopped()).await;
        i.provisioning.actor().stop();
        let _ = tokio::time::timeout(timeout, i.provisioning.actor().stopped()).await;
        tracing::info!(node = %i.local.node_id, handed_off, "left the cluster");
        LeaveReport {
            handed_off,
            deregistered,
        }
    }

    /// Stops the node the way a crash would: no hand-off, no
    /// deregistration, connections dropped without `Goodbye`. The other
    /// members find out through their failure detectors (R4.2). For
    /// demonstrations and tests.
    pub async fn crash(&self) {
        let i = &self.inner;
        i.remoting.unregister(PLACEMENT_ACTOR, CALL_TYPE);
        i.remoting.unregister(PLACEMENT_ACTOR, REPLY_TYPE);
        i.remoting.unregister(PLACEMENT_ACTOR, RELEASE_TYPE);
        i.remoting.crash();
        i.remoting.stopped().await;
        i.placement.crash();
        i.partitions.actor().stop();
        i.provisioning.actor().stop();
        i.placement.stopped().await;
        i.provisioning.actor().stopped().await;
    }
}
