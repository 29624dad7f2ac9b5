//! **A fake Kubernetes API server for tests. It is not Kubernetes.** An
//! HTTP/1.1 server on loopback, written from the Kubernetes API
//! documentation ("API Concepts": lists, `limit`/`continue`,
//! `resourceVersion` semantics, watches and bookmarks, 410 Gone; "Labels and
//! Selectors"; the `Status` kind), serving the `pods` resource of the core
//! `v1` group so that a real client stack (`kube`'s `Client` and
//! `kube_runtime::watcher`, `kubectl get pods`) can talk to it.
//!
//! # What it implements
//!
//! | request | behaviour |
//! |---|---|
//! | `GET /api/v1/namespaces/{ns}/pods`, `GET /api/v1/pods` | `PodList`; `labelSelector` (equality, `in`/`notin`, existence), `fieldSelector` (`metadata.name`, `metadata.namespace`, `status.phase`, `status.podIP`, `spec.nodeName`); `limit` + `continue` (`remainingItemCount`); `resourceVersion` unset or `0` (current state), `N` with `resourceVersionMatch=NotOlderThan` or none (current state; `N` in the future → 504 `Too large resource version`), `N` with `Exact` (410 `Expired` unless `N` is current); a continue token older than the compaction point → 410 `Expired`. `Accept: ...;as=Table` gets a `meta.k8s.io/v1` `Table` (for `kubectl get`) |
//! | `... pods?watch=true` | chunked JSON lines `{"type","object"}`: `ADDED`, `MODIFIED`, `DELETED` (also when an object stops matching the selector), `BOOKMARK` with `allowWatchBookmarks=true` (every `bookmark_interval`, or on [`FakeKube::send_bookmarks`]), `timeoutSeconds`; `resourceVersion` unset or `0`: synthetic `ADDED` for the current objects first; `N`: the changes after `N`, or an in-stream `ERROR` event with a 410 `Expired` `Status` when `N` is compacted; `sendInitialEvents=true` (with `resourceVersionMatch=NotOlderThan`): initial `ADDED` events then a `BOOKMARK` annotated `k8s.io/initial-events-end: "true"` |
//! | `GET /api/v1/namespaces/{ns}/pods/{name}` | the pod, or 404 `NotFound` |
//! | `PATCH /api/v1/namespaces/{ns}/pods/{name}` | `application/merge-patch+json` (RFC 7386), `application/strategic-merge-patch+json` (treated as a merge patch: they agree for metadata maps, not for lists with patch strategies), `application/json-patch+json` (RFC 6902); others 415. `dryRun=All`. Label keys/values and annotation keys are validated (422 `Invalid`), a stale `metadata.resourceVersion` in the patch gives 409 `Conflict`, immutable fields (name, namespace, uid, creationTimestamp) give 422. A patch that changes nothing does not bump the resource version |
//! | `POST /api/v1/namespaces/{ns}/pods`, `DELETE .../pods/{name}` | create (409 `AlreadyExists`), delete at once (no grace period) |
//! | `GET /version`, `/api`, `/api/v1`, `/apis`, `/healthz`, `/readyz`, `/livez` | discovery for clients such as `kubectl` (legacy discovery only: the aggregated form is not served, clients fall back) |
//!
//! Errors are `Status` objects (`kind: Status`, `reason`, `code`, `details`).
//! Every write bumps one global resource version (like etcd's revision);
//! changes are kept in a history of `history_limit` entries that watches
//! replay; older versions are compacted (410).
//!
//! # Test handle
//!
//! [`FakeKube`] starts the server and changes pods directly:
//! [`create_pod`](FakeKube::create_pod) (from a [`FakePod`] builder),
//! [`set_ready`](FakeKube::set_ready), [`set_phase`](FakeKube::set_phase),
//! [`set_terminating`](FakeKube::set_terminating),
//! [`update_pod`](FakeKube::update_pod), [`delete_pod`](FakeKube::delete_pod).
//!
//! # Faults
//!
//! - [`drop_watches`](FakeKube::drop_watches): every open watch ends (a
//!   clean end of the chunked body).
//! - [`refuse_watches`](FakeKube::refuse_watches): new watches get 503
//!   (with `drop_watches`, a client is disconnected while pods change).
//! - [`compact`](FakeKube::compact): every older resource version expires
//!   (watches from them get the in-stream 410, continue tokens a 410).
//! - [`forbid`](FakeKube::forbid): a verb answers 403 `Forbidden` with the
//!   message the API server gives (`User ... cannot list resource "pods" ...`).
//! - [`stall_watches`](FakeKube::stall_watches): watches are accepted and
//!   then send nothing, not even their end at `timeoutSeconds` (a stuck
//!   server or proxy).
//! - [`restore_backup`](FakeKube::restore_backup): the API comes back from
//!   a backup: every pod changed in one step (say, without the labels
//!   written since), older resource versions expired, open watches ended.
//! - [`set_delay`](FakeKube::set_delay): every answer is delayed.
//! - [`stop`](FakeKube::stop) / [`start_again`](FakeKube::start_again): the
//!   API is down (connections dropped and refused), then back on the same
//!   port with the same state.
//! - [`requests`](FakeKube::requests) counts requests by kind and
//!   [`open_watches`](FakeKube::open_watches) the watches being served;
//!   [`request_times`](FakeKube::request_times) tells when each request of
//!   a verb arrived.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use fake_kube::{FakeKube, FakePod};
//! let kube = FakeKube::start().await?;
//! kube.create_pod(FakePod::new("default", "web-0").label("app", "web").ip("10.0.0.5").ready(true))?;
//! assert_eq!(kube.pods("default").len(), 1);
//! println!("server: {}\n{}", kube.url(), kube.kubeconfig("default"));
//! kube.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! # What it does not model
//!
//! Authentication and RBAC (every request is allowed unless a verb is
//! [`forbid`](FakeKube::forbid)den; a TLS client certificate is checked
//! against the CA of [`FakeKubeConfig::tls`] but names no user), every resource but pods (no
//! namespaces objects: any namespace name exists), subresources
//! (`status`, `log`, `exec`...), PUT, server-side apply, strategic-merge
//! list semantics, graceful deletion (DELETE removes at once; use
//! [`set_terminating`](FakeKube::set_terminating) to play a terminating pod),
//! admission, defaulting and most validation, controllers and the kubelet
//! (phases and conditions change only through the handle), consistent
//! snapshots across list pages (pages after the first are read from the
//! current state; a watch from the list's resource version replays what
//! changed meanwhile), aggregated discovery, OpenAPI, protobuf, and
//! `kubectl get -w` (watches are served as JSON events, not as Tables).

mod http;
mod pod;
mod selector;
mod store;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use http::{RequestCounts, Verb};
pub use pod::FakePod;
pub use selector::Selector;
pub use store::StoreError;

use http::{Faults, Shared};
use store::Store;

/// Settings of a [`FakeKube`].
#[derive(Clone, Debug)]
pub struct FakeKubeConfig {
    /// Where to listen; port 0 picks a free one. Default `127.0.0.1:0`.
    pub addr: SocketAddr,
    /// How often an idle watch with `allowWatchBookmarks` gets a
    /// `BOOKMARK` (the API server: about a minute). Default 60 s.
    pub bookmark_interval: Duration,
    /// How many changes are kept for watches to replay; older resource
    /// versions are compacted. Default 10 000.
    pub history_limit: usize,
    /// Serve HTTPS with this configuration (issue 14): the certificate the
    /// server presents and, if it has a client certificate verifier, the
    /// client certificates it accepts (like the API server's
    /// `--client-ca-file`). A handshake that fails or stalls (5 s) closes
    /// the connection and counts in [`FakeKube::tls_handshake_failures`].
    /// Default: plain HTTP.
    pub tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
}

impl Default for FakeKubeConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            bookmark_interval: Duration::from_secs(60),
            history_limit: 10_000,
            tls: None,
        }
    }
}

/// How long a TLS client may take to finish its handshake.
const TLS_HANDSHAKE_BOUND: Duration = Duration::from_secs(5);

struct Running {
    accept: JoinHandle<()>,
    /// Bumped to close every connection of this run.
    close: watch::Sender<u64>,
}

/// A running fake API server; see the [crate docs](crate).
pub struct FakeKube {
    shared: Arc<Shared>,
    addr: SocketAddr,
    tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    tls_failures: Arc<std::sync::atomic::AtomicU64>,
    running: Mutex<Option<Running>>,
}

impl std::fmt::Debug for FakeKube {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeKube")
            .field("addr", &self.addr)
            .finish()
    }
}

impl FakeKube {
    /// Starts a server on a free loopback port.
    pub async fn start() -> std::io::Result<Self> {
        Self::start_with(FakeKubeConfig::default()).await
    }

    /// Starts a server with `config`.
    pub async fn start_with(config: FakeKubeConfig) -> std::io::Result<Self> {
        let listener = TcpListener::bind(config.addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            store: Mutex::new(Store::new(config.history_limit)),
            changed: watch::channel(0).0,
            drop_watches: watch::channel(0).0,
            bookmark_now: watch::channel(0).0,
            faults: Mutex::new(Faults::default()),
            counters: Default::default(),
            open_watches: Default::default(),
            bookmarks_sent: Default::default(),
            bookmark_interval: config.bookmark_interval,
            addr: Mutex::new(addr),
            stall: watch::channel(false).0,
            log: Mutex::new(std::collections::VecDeque::new()),
        });
        let me = Self {
            shared,
            addr,
            tls: config.tls,
            tls_failures: Default::default(),
            running: Mutex::new(None),
        };
        me.serve(listener);
        Ok(me)
    }

    fn serve(&self, listener: TcpListener) {
        let (close, _) = watch::channel(0u64);
        let close_tx = close.clone();
        let shared = self.shared.clone();
        let tls = self.tls.clone();
        let tls_failures = self.tls_failures.clone();
        let accept = tokio::spawn(async move {
            loop {
                let stream = match listener.accept().await {
                    Ok((s, _)) => s,
                    Err(_) => {
                        // Out of file descriptors and the like: do not spin.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let shared = shared.clone();
                let mut closed = close_tx.subscribe();
                let tls = tls.clone();
                let tls_failures = tls_failures.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let shared = shared.clone();
                        async move { Ok::<_, std::convert::Infallible>(http::handle(shared, req).await) }
                    });
                    let Some(config) = tls else {
                        let conn =
                            http1::Builder::new().serve_connection(TokioIo::new(stream), svc);
                        tokio::select! {
                            _ = conn => {}
                            _ = closed.changed() => {}
                        }
                        return;
                    };
                    let acceptor = tokio_rustls::TlsAcceptor::from(config);
                    let handshake =
                        tokio::time::timeout(TLS_HANDSHAKE_BOUND, acceptor.accept(stream));
                    let stream = tokio::select! {
                        r = handshake => match r {
                            Ok(Ok(s)) => s,
                            Ok(Err(e)) => {
                                tracing::debug!(error = %e, "fake-kube: TLS handshake failed");
                                tls_failures.fetch_add(1, Ordering::Relaxed);
                                return;
                            }
                            Err(_) => {
                                tls_failures.fetch_add(1, Ordering::Relaxed);
                                return;
                            }
                        },
                        _ = closed.changed() => return,
                    };
                    let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), svc);
                    tokio::select! {
                        _ = conn => {}
                        _ = closed.changed() => {}
                    }
                });
            }
        });
        *self.running.lock().unwrap_or_else(PoisonError::into_inner) =
            Some(Running { accept, close });
    }

    /// `http://127.0.0.1:<port>`, or `https://` when serving TLS.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// TLS handshakes that failed or stalled so far.
    pub fn tls_handshake_failures(&self) -> u64 {
        self.tls_failures.load(Ordering::Relaxed)
    }

    /// [`kubeconfig`](Self::kubeconfig) for a TLS server: the cluster's
    /// `certificate-authority` and the user's `client-certificate` and
    /// `client-key` are these files.
    pub fn kubeconfig_tls(
        &self,
        namespace: &str,
        ca: &std::path::Path,
        client_cert: &std::path::Path,
        client_key: &std::path::Path,
    ) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake-kube\n  cluster:\n    server: {}\n    certificate-authority: {}\ncontexts:\n- name: fake-kube\n  context:\n    cluster: fake-kube\n    user: fake-kube\n    namespace: {namespace}\ncurrent-context: fake-kube\nusers:\n- name: fake-kube\n  user:\n    client-certificate: {}\n    client-key: {}\npreferences: {{}}\n",
            self.url(),
            ca.display(),
            client_cert.display(),
            client_key.display()
        )
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A kubeconfig (YAML) with one context pointing at this server, with
    /// `namespace` as the context's namespace and no credentials.
    pub fn kubeconfig(&self, namespace: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake-kube\n  cluster:\n    server: {}\ncontexts:\n- name: fake-kube\n  context:\n    cluster: fake-kube\n    user: fake-kube\n    namespace: {namespace}\ncurrent-context: fake-kube\nusers:\n- name: fake-kube\n  user: {{}}\npreferences: {{}}\n",
            self.url()
        )
    }

    // ---------- pods ----------

    /// Creates a pod (like `POST`); returns it as stored.
    pub fn create_pod(&self, pod: FakePod) -> Result<Value, StoreError> {
        self.create_pod_json(pod.build())
    }

    /// Creates a pod from raw JSON (`metadata.name` required, namespace
    /// `default` when absent).
    pub fn create_pod_json(&self, pod: Value) -> Result<Value, StoreError> {
        self.shared.write(|s| s.create(pod))
    }

    /// Changes a pod with `f` (a no-op change writes nothing).
    pub fn update_pod(
        &self,
        namespace: &str,
        name: &str,
        f: impl FnOnce(&mut Value),
    ) -> Result<Value, StoreError> {
        self.shared.write(|s| {
            s.update(namespace, name, |p| {
                f(p);
                Ok(())
            })
        })
    }

    /// Sets the pod's `Ready` (and `ContainersReady`) condition.
    pub fn set_ready(&self, namespace: &str, name: &str, ready: bool) -> Result<Value, StoreError> {
        self.update_pod(namespace, name, |p| pod::set_condition(p, "Ready", ready))
    }

    /// Sets `status.phase` (`Pending`, `Running`, `Succeeded`, `Failed`).
    pub fn set_phase(&self, namespace: &str, name: &str, phase: &str) -> Result<Value, StoreError> {
        self.update_pod(namespace, name, |p| p["status"]["phase"] = json!(phase))
    }

    /// Marks the pod terminating: sets `metadata.deletionTimestamp` and
    /// `deletionGracePeriodSeconds` (what a graceful DELETE does first).
    pub fn set_terminating(&self, namespace: &str, name: &str) -> Result<Value, StoreError> {
        self.update_pod(namespace, name, |p| {
            let m = store::metadata_mut(p);
            m.insert("deletionTimestamp".into(), json!(store::now_rfc3339()));
            m.insert("deletionGracePeriodSeconds".into(), json!(30));
        })
    }

    /// Deletes a pod at once; returns its last state.
    pub fn delete_pod(&self, namespace: &str, name: &str) -> Result<Value, StoreError> {
        self.shared.write(|s| s.delete(namespace, name))
    }

    /// The pod, if it exists.
    pub fn pod(&self, namespace: &str, name: &str) -> Option<Value> {
        self.shared.store().get(namespace, name).cloned()
    }

    /// Every pod of `namespace`, by name.
    pub fn pods(&self, namespace: &str) -> Vec<Value> {
        self.shared.store().all(Some(namespace))
    }

    /// The current resource version.
    pub fn resource_version(&self) -> u64 {
        self.shared.store().rv
    }

    // ---------- faults ----------

    /// The API comes back from a restored backup: every pod becomes
    /// `f(pod)` in one step (e.g. the labels and annotations written since
    /// the backup are gone), every earlier resource version expires (410)
    /// and every open watch ends, so clients relist and see the restored
    /// state at once.
    pub fn restore_backup(&self, f: impl Fn(&mut Value)) {
        self.shared.write(|s| s.restore(f));
        self.drop_watches();
    }

    /// Ends every open watch (cleanly: the chunked body ends).
    pub fn drop_watches(&self) {
        self.shared.drop_watches.send_modify(|g| *g += 1);
    }

    /// While set, new watch requests are answered 503.
    pub fn refuse_watches(&self, refuse: bool) {
        self.shared.faults().refuse_watches = refuse;
    }

    /// Expires every resource version before the current one (like an
    /// etcd compaction): watches from them get the in-stream 410 `ERROR`.
    /// Open watches are not affected until they restart.
    pub fn compact(&self) {
        self.shared.store().compact();
    }

    /// While set, `verb` on pods answers 403 `Forbidden`.
    pub fn forbid(&self, verb: Verb, forbidden: bool) {
        let mut f = self.shared.faults();
        if forbidden {
            f.forbidden.insert(verb);
        } else {
            f.forbidden.remove(&verb);
        }
    }

    /// While set, watches stall: new watch requests are accepted (status
    /// 200 and headers) and then get nothing, and open watches send
    /// nothing more; neither sends bookmarks or ends at its
    /// `timeoutSeconds` (a stuck server, or a proxy that lost its upstream
    /// without closing). [`drop_watches`](Self::drop_watches) and
    /// [`stop`](Self::stop) still end them; clearing the fault lets open
    /// watches go on (one past its timeout ends at once).
    pub fn stall_watches(&self, stall: bool) {
        self.shared.stall.send_replace(stall);
    }

    /// Delays every answer by `delay` (zero: none).
    pub fn set_delay(&self, delay: Duration) {
        self.shared.faults().delay = delay;
    }

    /// Makes every open watch with bookmarks send a `BOOKMARK` now.
    pub fn send_bookmarks(&self) {
        self.shared.bookmark_now.send_modify(|g| *g += 1);
    }

    /// Clears every fault.
    pub fn reset_faults(&self) {
        *self.shared.faults() = Faults::default();
        self.shared.stall.send_replace(false);
    }

    /// The API goes down: the listener closes, open connections (watches
    /// included) are dropped, new connections are refused. State is kept.
    pub async fn stop(&self) {
        let running = self
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(r) = running {
            r.accept.abort();
            let _ = r.accept.await;
            r.close.send_modify(|g| *g += 1);
        }
    }

    /// The API comes back on the same port with the same state.
    pub async fn start_again(&self) -> std::io::Result<()> {
        if self
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
        {
            return Ok(());
        }
        let listener = TcpListener::bind(self.addr).await?;
        self.serve(listener);
        Ok(())
    }

    /// Requests served so far, by kind.
    pub fn requests(&self) -> RequestCounts {
        self.shared.counters.snapshot()
    }

    /// When each `verb` request arrived, oldest first (the last 10 000
    /// requests are kept), e.g. to see a client's retry backoff grow.
    pub fn request_times(&self, verb: Verb) -> Vec<std::time::Instant> {
        self.shared
            .log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|(v, _)| *v == verb)
            .map(|(_, t)| *t)
            .collect()
    }

    /// `BOOKMARK` events queued on watches so far (a bookmark is written
    /// to its connection before anything the watch sends later, its end
    /// included).
    pub fn bookmarks_sent(&self) -> u64 {
        self.shared.bookmarks_sent.load(Ordering::Relaxed)
    }

    /// Watches being served now.
    pub fn open_watches(&self) -> usize {
        self.shared.open_watches.load(Ordering::Relaxed)
    }

    /// Stops the server for good.
    pub async fn shutdown(self) {
        self.stop().await;
    }
}

impl Drop for FakeKube {
    fn drop(&mut self) {
        if let Some(r) = self
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            r.accept.abort();
            r.close.send_modify(|g| *g += 1);
        }
    }
}
