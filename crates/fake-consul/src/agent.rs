//! One fake agent: an HTTP/1.1 server on loopback over the shared catalog,
//! with its own node name, faults and request counters.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use crate::catalog::Catalog;
use crate::{Access, lock};

/// What every agent of one fake cluster shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub catalog: Mutex<Catalog>,
    /// Bumped after every change; blocking queries wait on it.
    pub notify: watch::Sender<u64>,
    /// `None`: ACLs off. Otherwise the accepted tokens (changed at run time
    /// by [`FakeConsul::set_token`](crate::FakeConsul::set_token)).
    pub acl: Mutex<Option<BTreeMap<String, Access>>>,
}

impl Shared {
    pub fn changed(&self) {
        self.notify.send_modify(|g| *g = g.wrapping_add(1));
    }

    /// Spawns the task that lapses TTLs (every `tick`) and reaps critical
    /// services (every `reap_interval`). It ends when the cluster is dropped.
    pub fn spawn_ticker(me: &Arc<Self>, tick: Duration, reap_interval: Duration) {
        let weak: Weak<Self> = Arc::downgrade(me);
        tokio::spawn(async move {
            let mut next_reap = Instant::now() + reap_interval;
            let mut interval = tokio::time::interval(tick);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                let Some(shared) = weak.upgrade() else { return };
                let now = Instant::now();
                let before = lock(&shared.catalog).index;
                lock(&shared.catalog).expire_ttls(now);
                if now >= next_reap {
                    next_reap = now + reap_interval;
                    let reaped = lock(&shared.catalog).reap(now);
                    for (node, id) in reaped {
                        tracing::info!(node, id, "fake-consul: reaped critical service");
                    }
                }
                if lock(&shared.catalog).index != before {
                    shared.changed();
                }
            }
        });
    }
}

/// Fault knobs of one agent.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    pub delay: Mutex<Duration>,
    pub drop_next: AtomicU64,
    pub fail_next: AtomicU64,
    pub malformed_next: AtomicU64,
    pub refuse_checks: AtomicBool,
}

/// One agent.
#[derive(Debug)]
pub(crate) struct AgentState {
    pub shared: Arc<Shared>,
    pub node: String,
    pub node_id: String,
    pub addr: SocketAddr,
    pub faults: Faults,
    pub counters: Mutex<BTreeMap<String, u64>>,
    /// Blocking queries waiting right now.
    pub blocking: AtomicU64,
    pub server: Mutex<Option<JoinHandle<()>>>,
    /// Serve HTTPS with this configuration (issue 14).
    pub tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
}

impl AgentState {
    pub fn count(&self, label: String) {
        *lock(&self.counters).entry(label).or_insert(0) += 1;
    }

    /// Starts serving on `listener`.
    pub fn serve(me: &Arc<Self>, listener: TcpListener) {
        let weak = Arc::downgrade(me);
        let task = tokio::spawn(accept_loop(listener, weak));
        if let Some(old) = lock(&me.server).replace(task) {
            old.abort();
        }
    }

    /// Stops serving: closes the listener and every open connection.
    pub async fn stop_serving(&self) {
        let task = lock(&self.server).take();
        if let Some(task) = task {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for AgentState {
    fn drop(&mut self) {
        if let Some(task) = lock(&self.server).take() {
            task.abort();
        }
    }
}

/// How long a TLS client may take to finish its handshake.
const TLS_HANDSHAKE_BOUND: Duration = Duration::from_secs(5);

/// The [`requests`](crate::FakeConsul::requests) label counting refused or
/// stalled TLS handshakes.
pub const TLS_HANDSHAKE_FAILED: &str = "TLS handshake failed";

async fn accept_loop(listener: TcpListener, agent: Weak<AgentState>) {
    // Dropping this set (when the task is aborted) aborts every connection.
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let Some(agent) = agent.upgrade() else { return };
                conns.spawn(async move {
                    let tls = agent.tls.clone();
                    let counted = agent.clone();
                    let svc = service_fn(move |req| crate::http::serve(agent.clone(), req));
                    match tls {
                        None => {
                            let _ = http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), svc)
                                .await;
                        }
                        Some(config) => {
                            let acceptor = tokio_rustls::TlsAcceptor::from(config);
                            // A client that stalls mid-handshake is dropped.
                            match tokio::time::timeout(TLS_HANDSHAKE_BOUND, acceptor.accept(stream)).await {
                                Ok(Ok(tls)) => {
                                    let _ = http1::Builder::new()
                                        .serve_connection(TokioIo::new(tls), svc)
                                        .await;
                                }
                                Ok(Err(e)) => {
                                    tracing::debug!(error = %e, "fake-consul: TLS handshake failed");
                                    counted.count(TLS_HANDSHAKE_FAILED.to_owned());
                                }
                                Err(_) => counted.count(TLS_HANDSHAKE_FAILED.to_owned()),
                            }
                        }
                    }
                });
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}
