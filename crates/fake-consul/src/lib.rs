//! **A fake Consul agent for tests. It is not Consul.** An HTTP/1.1 server on
//! loopback, written from Consul's HTTP API documentation, that implements
//! the subset a membership provider uses, so that tests (and any standard
//! client: `curl`, the `consul` CLI) can talk to it like to a dev agent.
//!
//! # What it implements
//!
//! | endpoint | behaviour |
//! |---|---|
//! | `PUT /v1/agent/service/register` | `Name`, `ID` (default: the name), `Address`, `Port`, `Tags`, `Meta` (validated like Consul: ≤ 64 pairs, keys `[A-Za-z0-9_-]` ≤ 128, values ≤ 512, no `consul-` prefix), `Check` / `Checks` with `TTL`, `CheckID`, `Name`, `Status` (default `critical`), `Notes`, `DeregisterCriticalServiceAfter`. Keys case-insensitive, `snake_case` accepted. Re-registering an ID replaces it. Only TTL checks (others: 400). |
//! | `PUT /v1/agent/service/deregister/:id` | 404 `Unknown service ID` when absent |
//! | `PUT /v1/agent/check/pass|warn|fail/:id` (`?note=`) and `PUT /v1/agent/check/update/:id` (`{"Status","Output"}`) | resets the TTL; 404 `Unknown check ID` when absent. A status change bumps the index; an unchanged status does not (like the agent, which does not sync unchanged checks) |
//! | `GET /v1/health/service/:name` | `?passing`, `?tag`, blocking `?index` + `?wait` (Go durations, default 5m, max 10m, plus up to wait/16 of jitter), `X-Consul-Index`, `X-Consul-KnownLeader`; entries `{Node, Service, Checks}` with the node's `serfHealth` check |
//! | `GET /v1/agent/self`, `GET /v1/agent/services`, `GET /v1/agent/checks`, `GET /v1/status/leader` | connectivity and inspection |
//!
//! TTLs lapse (the check turns `critical`, output `TTL expired`); a service
//! whose check stays critical longer than its `DeregisterCriticalServiceAfter`
//! is deregistered by a reaper that runs every `reap_interval` (Consul: 30 s,
//! and the timeout is rounded up to 1 minute; both are settings of the fake
//! so tests can be fast).
//!
//! ACLs: when tokens are configured, a request carries one in
//! `X-Consul-Token`, `Authorization: Bearer` or `?token=`; an unknown token
//! gets 403 `ACL not found`, a missing or read-only one 403
//! `Permission denied: ... lacks permission '...'`. `/v1/status/leader` needs
//! no token.
//!
//! # Several agents, one catalog
//!
//! [`FakeConsul::start`] starts a cluster with one agent (node `node-1`).
//! [`FakeConsul::join`] starts another agent (its own port, node name,
//! faults and counters) over the same catalog, so each simulated node can
//! talk to "its" agent and every node sees every registration. Services
//! belong to the agent they were registered with.
//!
//! # Faults (per agent)
//!
//! [`fail_next`](FakeConsul::fail_next) (500s), [`drop_next`](FakeConsul::drop_next)
//! (connection closed without an answer), [`set_delay`](FakeConsul::set_delay)
//! (slow answers), [`malformed_next`](FakeConsul::malformed_next) (truncated
//! JSON from `/v1/health/service`), [`refuse_check_updates`](FakeConsul::refuse_check_updates)
//! (TTL updates answered 500, so the TTL lapses),
//! [`reset_index`](FakeConsul::reset_index) (every index goes backwards),
//! [`restart`](FakeConsul::restart) (the agent forgets its services, keeps its
//! port), [`set_token`](FakeConsul::set_token) (a token's access changed or
//! revoked while clients use it), [`stop`](FakeConsul::stop) / [`start_again`](FakeConsul::start_again)
//! (agent down: connections refused, its node's `serfHealth` critical).
//! [`requests`](FakeConsul::requests) counts requests per endpoint.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
//! let consul = fake_consul::FakeConsul::start().await?;
//! println!("a fake Consul agent at {}", consul.url());
//! consul.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! # What it does not model
//!
//! Raft, servers and leader elections, gossip (an agent's liveness is its
//! `stop`/`start`), datacenters other than its own (`?dc` is ignored),
//! anti-entropy delays (registrations are in the catalog at once), script /
//! HTTP / TCP / gRPC checks, node checks other than `serfHealth`, consistency
//! modes, agent caching, filtering expressions, namespaces and partitions,
//! ACL policies (a token is read-only or read-write for everything), TLS
//! settings other than the certificate and client-certificate check,
//! persistence across a [`restart`](FakeConsul::restart) (it behaves like a
//! `-dev` agent), and every endpoint not listed above.

mod agent;
mod catalog;
mod http;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

pub use agent::TLS_HANDSHAKE_FAILED;
use agent::{AgentState, Faults, Shared};
use catalog::Catalog;
pub use catalog::{ApiError, CheckStatus};

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What a token may do when ACLs are on.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Access {
    /// `agent:read` only: the agent endpoints answer, but catalog and health
    /// reads are filtered to nothing (200 with
    /// `X-Consul-Results-Filtered-By-ACLs: true`, as Consul filters results
    /// a token may not see).
    AgentRead,
    /// Reads only (`agent:read`, `service:read`, `node:read`).
    Read,
    /// Reads and writes (`service:write` too).
    Write,
}

/// Options of a fake cluster; [`FakeConsul::builder`].
#[derive(Clone, Debug)]
pub struct FakeConsulBuilder {
    bind: SocketAddr,
    node: String,
    datacenter: String,
    tokens: Option<BTreeMap<String, Access>>,
    tick: Duration,
    reap_interval: Duration,
    min_deregister_after: Duration,
    tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
}

impl Default for FakeConsulBuilder {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            node: "node-1".into(),
            datacenter: "dc1".into(),
            tokens: None,
            tick: Duration::from_millis(20),
            reap_interval: Duration::from_secs(30),
            min_deregister_after: Duration::from_secs(60),
            tls: None,
        }
    }
}

impl FakeConsulBuilder {
    /// Where the first agent listens (default `127.0.0.1:0`, a free port).
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.bind = addr;
        self
    }

    /// The first agent's node name (default `node-1`).
    pub fn node(mut self, name: impl Into<String>) -> Self {
        self.node = name.into();
        self
    }

    /// Turns ACLs on and accepts `token` with `access`.
    pub fn token(mut self, token: impl Into<String>, access: Access) -> Self {
        self.tokens
            .get_or_insert_with(BTreeMap::new)
            .insert(token.into(), access);
        self
    }

    /// How often TTLs are checked (default 20 ms).
    pub fn tick(mut self, tick: Duration) -> Self {
        self.tick = tick.max(Duration::from_millis(1));
        self
    }

    /// How often the reaper runs (default 30 s, like Consul).
    pub fn reap_interval(mut self, d: Duration) -> Self {
        self.reap_interval = d.max(Duration::from_millis(1));
        self
    }

    /// DeregisterCriticalServiceAfter is rounded up to this (default 1 min,
    /// like Consul; tests lower it).
    pub fn min_deregister_after(mut self, d: Duration) -> Self {
        self.min_deregister_after = d;
        self
    }

    /// Serves HTTPS with `config` (every agent of the cluster): the
    /// certificate it presents and, if the configuration has a client
    /// certificate verifier, the client certificates it accepts, as an
    /// agent with `verify_incoming`. [`url`](FakeConsul::url) is then
    /// `https://`. A handshake that fails or stalls (5 s) closes the
    /// connection and counts under [`TLS_HANDSHAKE_FAILED`] in
    /// [`requests`](FakeConsul::requests).
    pub fn tls(mut self, config: Arc<tokio_rustls::rustls::ServerConfig>) -> Self {
        self.tls = Some(config);
        self
    }

    /// Starts the cluster and its first agent. Needs a tokio runtime.
    pub async fn start(self) -> std::io::Result<FakeConsul> {
        let (notify, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            catalog: Mutex::new(Catalog::new(self.datacenter, self.min_deregister_after)),
            notify,
            acl: Mutex::new(self.tokens),
        });
        Shared::spawn_ticker(&shared, self.tick, self.reap_interval);
        FakeConsul::start_agent(shared, self.bind, self.node, self.tls).await
    }
}

/// A handle on one fake agent (cheap to clone; every clone is the same
/// agent). See the [crate docs](crate).
#[derive(Clone, Debug)]
pub struct FakeConsul {
    agent: Arc<AgentState>,
}

impl FakeConsul {
    /// Options.
    pub fn builder() -> FakeConsulBuilder {
        FakeConsulBuilder::default()
    }

    /// A cluster with one agent on a free loopback port, ACLs off.
    pub async fn start() -> std::io::Result<Self> {
        Self::builder().start().await
    }

    async fn start_agent(
        shared: Arc<Shared>,
        bind: SocketAddr,
        node: String,
        tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(bind).await?;
        let addr = listener.local_addr()?;
        let node_id = format!(
            "{:08x}-0000-4000-8000-{:012x}",
            fastrand::u32(..),
            fastrand::u64(..) & 0xffff_ffff_ffff
        );
        lock(&shared.catalog).add_node(&node, &node_id, &addr.ip().to_string());
        shared.changed();
        let agent = Arc::new(AgentState {
            shared,
            node,
            node_id,
            addr,
            faults: Faults::default(),
            counters: Mutex::new(BTreeMap::new()),
            blocking: Default::default(),
            server: Mutex::new(None),
            tls,
        });
        AgentState::serve(&agent, listener);
        Ok(Self { agent })
    }

    /// Starts another agent, node `node`, on a free loopback port, over the
    /// same catalog.
    pub async fn join(&self, node: impl Into<String>) -> std::io::Result<Self> {
        Self::start_agent(
            self.agent.shared.clone(),
            SocketAddr::from(([127, 0, 0, 1], 0)),
            node.into(),
            self.agent.tls.clone(),
        )
        .await
    }

    /// The agent's address.
    pub fn addr(&self) -> SocketAddr {
        self.agent.addr
    }

    /// `http://127.0.0.1:<port>`, or `https://` with [`tls`](FakeConsulBuilder::tls).
    pub fn url(&self) -> String {
        let scheme = if self.agent.tls.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.agent.addr)
    }

    /// The agent's node name.
    pub fn node(&self) -> &str {
        &self.agent.node
    }

    /// The next `n` requests are answered 500.
    pub fn fail_next(&self, n: u64) {
        self.agent.faults.fail_next.store(n, Ordering::SeqCst);
    }

    /// The next `n` requests get their connection closed without an answer.
    pub fn drop_next(&self, n: u64) {
        self.agent.faults.drop_next.store(n, Ordering::SeqCst);
    }

    /// Every request waits `d` before it is handled (zero: off).
    pub fn set_delay(&self, d: Duration) {
        *lock(&self.agent.faults.delay) = d;
    }

    /// The next `n` answers of `/v1/health/service` carry truncated JSON.
    pub fn malformed_next(&self, n: u64) {
        self.agent.faults.malformed_next.store(n, Ordering::SeqCst);
    }

    /// While on, TTL updates (`/v1/agent/check/*`) are answered 500 and
    /// change nothing, so the checks lapse.
    pub fn refuse_check_updates(&self, on: bool) {
        self.agent.faults.refuse_checks.store(on, Ordering::SeqCst);
    }

    /// Every index of the cluster drops to `to` (at least 1): blocking
    /// clients see X-Consul-Index go backwards.
    pub fn reset_index(&self, to: u64) {
        lock(&self.agent.shared.catalog).reset_index(to.max(1));
        self.agent.shared.changed();
    }

    /// Changes what `token` may do, for every agent of the cluster, from the
    /// next request on: `Some(access)` grants (or adds the token), `None`
    /// revokes it (unknown: 403 `ACL not found`), as when an operator edits
    /// the token's policy or deletes the token. Turns ACLs on if they were
    /// off (every other token then unknown).
    pub fn set_token(&self, token: &str, access: Option<Access>) {
        let mut acl = lock(&self.agent.shared.acl);
        let tokens = acl.get_or_insert_with(BTreeMap::new);
        match access {
            Some(a) => {
                tokens.insert(token.to_owned(), a);
            }
            None => {
                tokens.remove(token);
            }
        }
    }

    /// Agent restart: it forgets its services and checks, keeps its port.
    pub fn restart(&self) {
        lock(&self.agent.shared.catalog).forget_node(&self.agent.node);
        self.agent.shared.changed();
    }

    /// Agent down: the port refuses connections, open ones are closed, and
    /// its node's `serfHealth` check turns critical (its services leave
    /// `?passing` results of the other agents).
    pub async fn stop(&self) {
        self.agent.stop_serving().await;
        lock(&self.agent.shared.catalog).set_alive(&self.agent.node, false);
        self.agent.shared.changed();
    }

    /// Agent up again on the same port after [`stop`](Self::stop).
    pub async fn start_again(&self) -> std::io::Result<()> {
        let listener = TcpListener::bind(self.agent.addr).await?;
        AgentState::serve(&self.agent, listener);
        lock(&self.agent.shared.catalog).set_alive(&self.agent.node, true);
        self.agent.shared.changed();
        Ok(())
    }

    /// Stops serving for good (also done when the last handle is dropped).
    pub async fn shutdown(&self) {
        self.agent.stop_serving().await;
    }

    /// Requests received per endpoint (`"GET /v1/health/service"`,
    /// `"PUT /v1/agent/check/pass"`, ...), faulted ones included.
    pub fn requests(&self) -> BTreeMap<String, u64> {
        lock(&self.agent.counters).clone()
    }

    /// Requests received for one endpoint label.
    pub fn request_count(&self, label: &str) -> u64 {
        lock(&self.agent.counters).get(label).copied().unwrap_or(0)
    }

    /// Zeroes the request counters.
    pub fn reset_counters(&self) {
        lock(&self.agent.counters).clear();
    }

    /// Blocking queries waiting on this agent right now.
    pub fn blocking_in_flight(&self) -> u64 {
        self.agent.blocking.load(Ordering::SeqCst)
    }

    /// The IDs of the services registered with this agent.
    pub fn service_ids(&self) -> Vec<String> {
        lock(&self.agent.shared.catalog)
            .nodes
            .get(&self.agent.node)
            .map(|n| n.services.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// The status of one of this agent's checks.
    pub fn check_status(&self, check_id: &str) -> Option<CheckStatus> {
        lock(&self.agent.shared.catalog)
            .nodes
            .get(&self.agent.node)
            .and_then(|n| n.checks.get(check_id))
            .map(|c| c.status)
    }

    /// The current X-Consul-Index of `/v1/health/service/<name>`.
    pub fn health_index(&self, name: &str) -> u64 {
        lock(&self.agent.shared.catalog).health_index(name)
    }
}
