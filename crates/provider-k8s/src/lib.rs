//! The Kubernetes membership provider (requirement P3): members are the
//! cluster's pods, watched with `kube_runtime`'s watcher.
//!
//! # Who is a member
//!
//! The pods of one namespace carrying the cluster label
//! (`cluster-provisioning.io/cluster=<cluster>` by default, plus an optional
//! extra `label_selector`). A selected pod is a member only when **all** of
//! these hold ([`member_of`]):
//!
//! - `status.phase` is `Running` and its `Ready` condition is `True`;
//! - it is not terminating (no `metadata.deletionTimestamp`);
//! - it has a `status.podIP` (the member's host);
//! - it carries the annotations `cluster-provisioning.io/node-id` (a valid
//!   node id) and `cluster-provisioning.io/port` (1..=65535), and optionally
//!   `cluster-provisioning.io/incarnation` (an integer, default 0) and
//!   `cluster-provisioning.io/roles` (comma-separated; a role containing a
//!   comma is refused at registration).
//!
//! Node ids may contain `:` and be 128 characters long, which label values
//! may not: that is why they are annotations, and only the cluster name is
//! a label (the selector needs it). Members carry no labels (each label map
//! would cost a B-tree node per member in every copy of the list).
//!
//! # Watching
//!
//! One `kube_runtime::watcher` per stream (one paginated list, then one
//! long watch with bookmarks, renewed every `watch_timeout_s`; no polling),
//! with exponential backoff that resets only after progress (a completed
//! list, a pod event, an accepted watch: not the `Init` the watcher yields
//! before every list attempt, so a relist that keeps failing backs off).
//! Its events go through a [`Membership`] store:
//!
//! - the first snapshot is published once the first list is complete;
//! - a relist (after a watch restart that could not resume, or an expired
//!   resource version: the API's 410 `Expired`) is buffered and replaces the
//!   members at once, so pods deleted while the watch was down disappear;
//! - each membership change publishes a full snapshot at once;
//! - while healthy, the snapshot is re-sent every `keepalive_ms` without a
//!   change (the watcher surfaces no bookmark, so a timer proves life), but
//!   only while the API server answered within `watch_timeout_s` + 3 s (a
//!   layer on the client records accepted watches, list answers, watch
//!   chunks and watch ends). The watcher reconnects an idle watch without
//!   an error, so without this a dead API server would look healthy; past
//!   that bound the keepalives stop and each tick sends a `Connectivity`
//!   error until the server answers with a body or an event. The client's
//!   connect timeout is 5 s;
//! - failures are `Err` items (see [`errors`]): a 403 is
//!   `ProviderError::Auth` naming the missing permission (`watch pods in
//!   namespace "x"`), an unreachable API is `Connectivity`. After an error
//!   no keepalive is sent until the API answers again (a completed list,
//!   an event, or an accepted watch request), so the supervisor turns the
//!   provider Degraded and keeps its last topology; it never receives an
//!   empty list because of an error.
//!
//! # Self-registration
//!
//! With a local pod name (`pod_name`, or the `POD_NAME` environment variable
//! from the downward API), `register` merge-patches that pod with the
//! cluster label and the node id, port, incarnation and roles annotations of
//! the local member (its host is ignored: others reach it at its pod IP),
//! and `deregister` (graceful leave) removes them with a merge patch of
//! nulls. Without a pod name the provider does not register (its
//! capabilities say so) and pods must carry the annotations from their
//! manifest. Do not use the cluster label in a Deployment's or
//! StatefulSet's selector: removing it on leave would orphan the pod.
//!
//! # Settings (`kind: kubernetes`)
//!
//! | key | required | default | meaning |
//! |---|---|---|---|
//! | `cluster` | yes | | the cluster name: the value of `cluster_label` on member pods |
//! | `cluster_label` | no | `cluster-provisioning.io/cluster` | the label key naming the cluster |
//! | `label_selector` | no | | an extra label selector ANDed with the cluster label (e.g. `app=web`) |
//! | `namespace` | no | the service-account namespace file, else `POD_NAMESPACE` | the namespace watched, holding the local pod |
//! | `pod_name` | no | `POD_NAME` | the local pod, patched on register / deregister; without it, no self-registration |
//! | `node_id_annotation` | no | `cluster-provisioning.io/node-id` | annotation with the node id |
//! | `port_annotation` | no | `cluster-provisioning.io/port` | annotation with the remoting port |
//! | `incarnation_annotation` | no | `cluster-provisioning.io/incarnation` | annotation with the incarnation |
//! | `roles_annotation` | no | `cluster-provisioning.io/roles` | annotation with comma-separated roles |
//! | `keepalive_ms` | no | `5000` | re-send the snapshot after this long without a change (10..=60000; keep it well below the failover silence timeout) |
//! | `kubeconfig` | no | in-cluster config, else `KUBECONFIG` / `~/.kube/config` | a kubeconfig file (checked when the provider is created) |
//! | `context` | no | the file's current context | the kubeconfig context (needs `kubeconfig`) |
//! | `backoff_initial_ms` | no | `800` | first retry delay of a failed list or watch (1..=60000) |
//! | `backoff_max_ms` | no | `30000` | largest retry delay (at least `backoff_initial_ms`, ≤ 600000) |
//! | `watch_timeout_s` | no | `10` | `timeoutSeconds` of each watch request (1..=3600); the API is taken for silent (no keepalive, `Connectivity` errors) after this plus 3 s without an answer, so keep it below the failover silence timeout; the client's read timeout is this plus 15 s |
//! | `page_size` | no | `500` | `limit` of each list page (1..=10000) |
//! | `server` | no | the kubeconfig's / in-cluster | the API server's `https://host:port` (not with `kubeconfig`) |
//! | `ca_file` | no | the kubeconfig's / service account's | PEM CA bundle verifying the API server; re-read about every minute (a rotated CA applies to new connections) |
//! | `client_cert`, `client_key` | together | the kubeconfig's | PEM client certificate and key (mutual TLS); only the paths are ever shown |
//! | `tls_server_name` | no | the server's host | the name the API server's certificate must carry |
//!
//! The explicit TLS settings replace what the kubeconfig or the in-cluster
//! configuration says, and are checked when the provider is created (a
//! missing file, one without a certificate or key, or a key that does not
//! go with its certificate is `provider.config` naming the key). A refused
//! handshake is `provider.connectivity` with its reason in the message
//! (`[tls.unknown_ca]`, `[tls.expired]`, `[tls.wrong_name]`,
//! `[tls.client_cert_refused]`, `[tls.handshake]`). TLS is rustls with
//! ring: the provider installs ring as the process's default crypto
//! provider when none is installed, as kube-rs builds its configuration
//! with the default (no aws-lc, no OpenSSL).
//!
//! Unknown keys are refused (a typo would otherwise be silently ignored).
//! A bad value is `ProviderError::Config { field, .. }` naming the key.
//!
//! # Permissions
//!
//! `get` (the connectivity check reads the local pod), `list`, `watch` and
//! `patch` on `pods` in the namespace, nothing else; `deploy/kubernetes/` has the Role, and `docs/providers/kubernetes.md`
//! explains each verb.
//!
//! # Example
//!
//! ```no_run
//! use cluster_core::{ProviderDescriptor, ProviderId};
//! use provider_k8s::KubernetesKind;
//! use provisioning_actors::{ProviderKinds, ProvisioningConfig, ProvisioningSupervisor};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let system = actor_runtime::ActorSystem::new("node");
//! let kinds = ProviderKinds::new().with(KubernetesKind::new());
//! let k8s = ProviderDescriptor::new(ProviderId::new("k8s")?, "kubernetes", 0)
//!     .with_setting("cluster", "demo");
//! let provisioning =
//!     ProvisioningSupervisor::spawn(&system, ProvisioningConfig::default(), kinds, vec![k8s]).await?;
//! println!("{:?}", provisioning.topology().await?);
//! # Ok(()) }
//! ```
//!
//! # Testing
//!
//! The tests run the real client stack against `fake-kube`, an in-repo fake
//! API server on loopback. `tests/real_cluster.rs` is an opt-in suite
//! against a real cluster: `KUBECONFIG=... cargo test -p provider-k8s
//! --test real_cluster -- --ignored`.

pub mod errors;
mod kind;
pub mod member;
mod probe;
mod provider;
pub mod settings;

pub use kind::KubernetesKind;
pub use member::{AnnotationKeys, Membership, NotMember, member_of};
pub use provider::{ClientSource, KubernetesProvider};
pub use settings::KubernetesSettings;
