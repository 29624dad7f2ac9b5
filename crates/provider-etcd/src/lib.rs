//! The etcd membership provider (P5): members register as leased keys under
//! a prefix, and every node watches that prefix.
//!
//! # Key layout
//!
//! One key per member, `<prefix>/<cluster>/members/<node_id>`, holding the
//! [`Member`](cluster_core::Member) as JSON, so operators can read it with
//! `etcdctl get --prefix /cluster-provisioning/lab/members/`:
//!
//! ```text
//! /cluster-provisioning/lab/members/node-a
//! {"node_id":"node-a","address":{"host":"10.0.0.1","port":4000},"incarnation":1732609025,"roles":[],"labels":{}}
//! ```
//!
//! # Registration: a lease kept alive
//!
//! [`register`](cluster_core::ClusterProvider::register) grants a lease of
//! `lease_ttl_s` seconds, puts the member's key with it, and leaves a
//! background task (owned by the provider) that keeps the lease alive every
//! TTL / 3. When etcd reports the lease gone (it expired while etcd was
//! unreachable, or etcd restarted without its data), or a keep-alive fails,
//! the task grants a new lease and puts the key again, with backoff.
//!
//! Every put of the key, the first one included, is a compare-and-swap
//! guarded by the incarnation order
//! ([`Member::incarnation`](cluster_core::Member::incarnation): a greater
//! one is a newer process of the node): it puts only if the key is absent,
//! holds an incarnation not newer than ours, or holds no member at all
//! (overwritten with a warning), and only if the key did not change since
//! it was read. When a newer incarnation holds the key, nothing is put:
//! the process is superseded, `register` fails with
//! `ProviderError::Superseded` (`provider.superseded`), or, for a
//! re-registration, every watch stream yields that error once, as it also
//! does when a snapshot lists a newer incarnation of the registered node;
//! the task warns, counts it ([`EtcdStats::superseded`]) and stops. A node
//! that dies without deregistering disappears when its lease expires, at
//! most `lease_ttl_s` later. [`deregister`](cluster_core::ClusterProvider::deregister)
//! stops the task and deletes the key (only if it still holds this
//! incarnation).
//!
//! # Watch: get, then watch from the get's revision + 1
//!
//! [`watch`](cluster_core::ClusterProvider::watch) reads every key under the
//! members prefix, yields that snapshot, and watches the prefix from the
//! read's revision + 1, so no change in between is lost. Each change yields
//! a full snapshot (members sorted by node id). When the watch's revision
//! was compacted, the stream reads the prefix again and goes on (no error);
//! on a disconnect it yields an `Err` (the supervisor counts them), waits a
//! backoff with jitter, and reads again. A value that does not decode to a
//! member matching its key is skipped with a warning and counted
//! ([`EtcdStats::malformed_values`], metric
//! `provider_etcd_malformed_values_total`), never fatal.
//!
//! When nothing changes, the stream asks etcd for a progress notification
//! every `keepalive_ms` and re-sends the snapshot when etcd answers: the
//! supervisor's silence detection sees a quiet cluster as alive and a hung
//! etcd as silent.
//!
//! # Settings of an `etcd` descriptor
//!
//! | key | required | default | meaning |
//! |---|---|---|---|
//! | `endpoints` | yes | | comma-separated etcd client URLs: `http://host:port`, `https://host:port` or `host:port` |
//! | `cluster` | yes, unless the kind has a default ([`EtcdKind::with_cluster`]) | | cluster name: `[A-Za-z0-9._-]`, 1 to 128 |
//! | `prefix` | no | `/cluster-provisioning` | key prefix: starts with `/`, no trailing `/` |
//! | `lease_ttl_s` | no | `10` | registration lease TTL in seconds (2..=3600); keep-alive every TTL/3 |
//! | `keepalive_ms` | no | `5000` | re-send an unchanged snapshot after this long (100..=60000); keep it well below the supervisor's silence timeout (15 s) |
//! | `connect_timeout_ms` | no | `3000` | bound of one connection attempt |
//! | `request_timeout_ms` | no | `2000` | bound of one request (get, put, grant, keep-alive answer); must be below `lease_ttl_s` × 1000 / 3 |
//! | `register_timeout_ms` | no | `4000` | bound of a whole `register` call (connect, grant, put), below the supervisor's `register_timeout` (5 s); the task keeps trying after it |
//! | `retry_initial_ms` | no | `500` | first delay before reconnecting after an error (doubles, ±20 % jitter) |
//! | `retry_max_ms` | no | `10000` | longest delay between reconnection attempts |
//! | `user` / `password` | together | | etcd authentication; the password never appears in logs or `Debug` |
//! | `tls_ca` | with https | | PEM file of the CA that signed etcd's certificate; endpoints then use TLS |
//! | `tls_cert` / `tls_key` | together, with `tls_ca` | | PEM files of a client certificate and key (mutual TLS) |
//! | `tls_server_name` | no, with `tls_ca` | the endpoint's host | the name etcd's certificate must carry (an etcd reached by IP address whose certificate names `etcd.internal`) |
//!
//! Any other key is refused as `ProviderError::Config` naming it (a typo
//! such as `passwd` would otherwise give an unauthenticated client). TLS
//! uses rustls with ring (no OpenSSL, no aws-lc). The TLS files are parsed
//! when the provider is built: a missing file, one without a certificate or
//! key, or a key that does not go with its certificate is
//! `provider.config` naming `tls_ca`, `tls_cert` or `tls_key`. A refused
//! handshake is `provider.connectivity` with its reason in the message
//! (`[tls.unknown_ca]`, `[tls.expired]`, `[tls.wrong_name]`,
//! `[tls.client_cert_refused]`, `[tls.handshake]`); when the gRPC client
//! only saw its connection closed (etcd refusing the client certificate),
//! one handshake of our own with the first endpoint reads the reason.
//!
//! # Example
//!
//! ```no_run
//! use std::sync::Arc;
//! use actor_runtime::ActorSystem;
//! use cluster_core::{Member, MemberAddress, NodeId, ProviderDescriptor, ProviderId};
//! use provider_etcd::EtcdKind;
//! use provisioning_actors::{ProviderKinds, ProvisioningConfig, ProvisioningSupervisor};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let system = ActorSystem::new("node-a");
//! let kinds = ProviderKinds::new().with(EtcdKind::with_cluster("lab"));
//! let local = Member::new(NodeId::new("node-a")?, MemberAddress::new("10.0.0.1", 4000)?, 1);
//! let config = ProvisioningConfig { local: Some(local), ..Default::default() };
//! let etcd = ProviderDescriptor::new(ProviderId::new("etcd")?, "etcd", 0)
//!     .with_setting("endpoints", "http://127.0.0.1:2379")
//!     .with_setting("lease_ttl_s", "10");
//! // Accepted only if etcd answers (R1.4); node-a registers itself, and the
//! // topology lists every node registered under /cluster-provisioning/lab.
//! let provisioning = ProvisioningSupervisor::spawn(&system, config, kinds, vec![etcd]).await?;
//! let topology = provisioning.topology().await?;
//! # let _ = topology; Ok(()) }
//! ```
//!
//! docs/providers/etcd.md covers RBAC (a user allowed only on the prefix),
//! failure behaviour and how the tests run against a real etcd.

mod config;
mod connection;
mod kind;
mod layout;
mod provider;
mod registration;
mod stats;
mod supersession;
mod watch;

pub use config::{
    Credentials, DEFAULT_CONNECT_TIMEOUT, DEFAULT_KEEPALIVE, DEFAULT_LEASE_TTL, DEFAULT_PREFIX,
    DEFAULT_REGISTER_TIMEOUT, DEFAULT_REQUEST_TIMEOUT, DEFAULT_RETRY_INITIAL, DEFAULT_RETRY_MAX,
    EtcdConfig, TlsFiles,
};
pub use kind::EtcdKind;
pub use layout::KeyLayout;
pub use provider::EtcdProvider;
pub use stats::EtcdStats;
pub use watch::{MALFORMED_VALUES_TOTAL, describe};
