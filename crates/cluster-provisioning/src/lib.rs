//! Actor-native cluster provisioning: the crate an application adds.
//!
//! ```toml
//! [dependencies]
//! cluster-provisioning = { version = "0.1", features = ["consul"] }
//! ```
//!
//! It gathers what the workspace's crates do behind one name:
//!
//! - the [`Cluster`] bootstrap and grains ([`Grain`], [`Cluster::request`]);
//! - the events consumers follow ([`events`]: `TopologyUpdated`,
//!   `RemoteNodeQuarantined`, `ProviderChanged`, ...);
//! - each membership provider behind a cargo feature: `memory` (default),
//!   `file`, `consul`, `kubernetes`, `etcd`, `seed` (the `static` and
//!   `dns` kinds);
//! - the **node runtime** ([`Node`]): one call that does everything the
//!   `cluster-node` program does, inside the application's own service: a
//!   configuration file with environment overrides ([`config`]), logs
//!   ([`telemetry`]), the admin HTTP surface with probes, members,
//!   providers and Prometheus metrics ([`admin`]), and a graceful leave on
//!   SIGTERM / SIGINT.
//!
//! # A node in a service
//!
//! ```no_run
//! use cluster_provisioning::{Grain, Node};
//!
//! #[derive(Default)]
//! struct Counter(u64);
//!
//! impl Grain for Counter {
//!     type Request = u64;
//!     type Response = u64;
//!     async fn handle(&mut self, add: u64) -> u64 {
//!         self.0 += add;
//!         self.0
//!     }
//! }
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let node = Node::from_file("node.toml")?          // file + CLUSTER_* env, checked
//!     .grain("counter", |_id| Counter::default())
//!     .start()                                       // logs, metrics, cluster, admin HTTP
//!     .await?;
//! node.ready(std::time::Duration::from_secs(30)).await?; // listed by a healthy provider
//! let n = node.cluster().request::<Counter>("counter", "visits", &1).await?;
//! println!("visits: {n}");
//! node.run_until_signal().await;                    // SIGTERM: graceful leave, then return
//! # Ok(()) }
//! ```
//!
//! See `docs/embedding.md` for the walk-through and `examples/embed.rs` for
//! the program. Without a file, build a [`NodeConfig`] in code, or use
//! [`Cluster::builder`] directly and run only the parts you want
//! ([`admin::serve`], [`telemetry::init_logs`]).

pub mod admin;
pub mod config;
mod node;
pub mod probe;
mod storage;
pub mod telemetry;
pub mod view;

pub use node::{Node, NodeBuilder, NodeError, ReloadError, validate};

pub use config::{ConfigError, NodeConfig};

pub use actor_runtime;
pub use actor_runtime::ActorSystem;
pub use cluster::grain::{
    DeactivationReason, GrainContext, GrainError, GrainOptions, NamedGrain, PersistentState,
};
pub use cluster::monitoring::{MonitoringConfig, MonitoringDetector, MonitoringMode};
pub use cluster::placement::{Grain, GrainKinds, PlacementConfig, PlacementError};
pub use cluster::remoting::RemotingConfig;
pub use cluster::{Cluster, ClusterBuilder, ClusterError, LeaveReport, TopologyWatch};
pub use cluster_core;
pub use cluster_core::events;
pub use cluster_core::{GrainKey, GrainStorage, MemoryGrainStorage, StorageError};
pub use cluster_core::{
    Member, MemberAddress, NodeId, ProviderDescriptor, ProviderId, ProvisioningError,
    ProvisioningStatus, Topology,
};
pub use provisioning_actors::{ProviderFactory, ProviderKinds, ProvisioningConfig};

/// The in-memory provider (`memory` feature).
#[cfg(feature = "memory")]
pub mod memory {
    pub use provider_memory::*;
}

/// The shared-directory provider (`file` feature).
#[cfg(feature = "file")]
pub use provider_file as file;

/// The Consul provider (`consul` feature).
#[cfg(feature = "consul")]
pub use provider_consul as consul;

/// The Kubernetes provider (`kubernetes` feature).
#[cfg(feature = "kubernetes")]
pub use provider_k8s as kubernetes;

/// The etcd provider (`etcd` feature).
#[cfg(feature = "etcd")]
pub use provider_etcd as etcd;

/// The contact-point providers, kinds `static` and `dns` (`seed` feature).
#[cfg(feature = "seed")]
pub use provider_seed as seed;

/// The `static` and `dns` kinds bound to this node's cluster name, secret
/// and Remoting TLS (their probes carry all three), replacing the unbound
/// ones of [`built_in_kinds`].
#[cfg(feature = "seed")]
pub(crate) fn bind_seed_kinds(
    kinds: ProviderKinds,
    cluster: &str,
    secret: Option<Vec<u8>>,
    tls: Option<cluster::remoting::ProbeTls>,
) -> ProviderKinds {
    let mut identity = provider_seed::Identity::new(cluster);
    identity.secret = secret;
    identity.tls = tls;
    kinds
        .with(provider_seed::StaticKind::new(identity.clone()))
        .with(provider_seed::DnsKind::new(identity))
}

/// Grain state in one SQLite file (`sqlite` feature).
#[cfg(feature = "sqlite")]
pub use grain_storage_sqlite as sqlite;

/// Grain state in PostgreSQL (`postgres` feature).
#[cfg(feature = "postgres")]
pub use grain_storage_postgres as postgres;

/// The provider kinds compiled into this build, ready for
/// [`ClusterBuilder::kinds`]: `memory` tables are shared by name within the
/// process.
pub fn built_in_kinds() -> ProviderKinds {
    #[allow(unused_mut)]
    let mut kinds = ProviderKinds::new();
    #[cfg(feature = "memory")]
    {
        kinds = kinds.with(node::shared_memory_kind());
    }
    #[cfg(feature = "file")]
    {
        kinds = kinds.with(provider_file::FileKind);
    }
    #[cfg(feature = "consul")]
    {
        kinds = kinds.with(provider_consul::ConsulKind::new());
    }
    #[cfg(feature = "kubernetes")]
    {
        kinds = kinds.with(provider_k8s::KubernetesKind::new());
    }
    #[cfg(feature = "etcd")]
    {
        kinds = kinds.with(provider_etcd::EtcdKind::new());
    }
    // Unbound: they validate settings; a node binds them to its cluster
    // name and secret when it starts.
    #[cfg(feature = "seed")]
    {
        kinds = kinds
            .with(provider_seed::StaticKind::unbound())
            .with(provider_seed::DnsKind::unbound());
    }
    kinds
}
