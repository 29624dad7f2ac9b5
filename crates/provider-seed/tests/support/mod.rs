//! Shared helpers of the provider-seed scenario tests: cluster nodes in one
//! process over real TCP on 127.0.0.1, a metrics recorder, and a dnsmasq
//! harness.
#![allow(dead_code, missing_docs, clippy::unwrap_used, clippy::expect_used)]

pub mod dnsmasq;

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actor_runtime::ActorSystem;
use cluster::Cluster;
use cluster::remoting::RemotingConfig;
use cluster_core::{NodeId, ProviderDescriptor, ProviderId, Topology};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use provider_seed::{DnsKind, Identity, StaticKind};
use provisioning_actors::failover::FailoverConfig;
use provisioning_actors::{ProviderKinds, ProvisioningConfig};

pub const CLUSTER: &str = "seeds";
pub const SECRET: &[u8] = b"seed-test-secret";
pub const WAIT: Duration = Duration::from_secs(30);

/// A free port on 127.0.0.1 (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `n` distinct free ports, sorted.
pub fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let mut ports: Vec<u16> = held
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect();
    ports.sort_unstable();
    ports
}

pub fn seeds(ports: &[u16]) -> String {
    ports
        .iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// A `static` descriptor over `ports` with fast test timings.
pub fn static_descriptor(ports: &[u16]) -> ProviderDescriptor {
    fast(ProviderDescriptor::new(
        ProviderId::new("seeds").unwrap(),
        "static",
        0,
    ))
    .with_setting("seeds", seeds(ports))
}

/// A `dns` descriptor for `name` on the nameserver `ns`.
pub fn dns_descriptor(settings: &[(&str, String)], ns: std::net::SocketAddr) -> ProviderDescriptor {
    let mut d = fast(ProviderDescriptor::new(
        ProviderId::new("dns").unwrap(),
        "dns",
        0,
    ))
    .with_setting("nameserver", ns.to_string())
    .with_setting("interval_ms", "1000")
    .with_setting("dns_timeout_ms", "500");
    for (k, v) in settings {
        d = d.with_setting(*k, v.clone());
    }
    d
}

fn fast(d: ProviderDescriptor) -> ProviderDescriptor {
    d.with_setting("probe_interval_ms", "200")
        .with_setting("probe_timeout_ms", "1000")
        .with_setting("stable_margin_ms", "600")
        .with_setting("unreachable_timeout_ms", "1500")
}

pub fn identity(cluster: &str, secret: &[u8]) -> Identity {
    Identity::new(cluster).with_secret(secret.to_vec())
}

pub struct Node {
    pub id: NodeId,
    pub port: u16,
    pub system: ActorSystem,
    pub cluster: Cluster,
}

impl Node {
    pub async fn topology(&self) -> Arc<Topology> {
        self.cluster.topology().await.unwrap()
    }

    pub async fn stop(self) {
        self.cluster.leave(Duration::from_secs(3)).await;
        self.system.shutdown().await;
    }

    pub async fn crash(self) {
        self.cluster.crash().await;
        self.system.shutdown().await;
    }
}

/// Starts node `name` on 127.0.0.1:`port` of `cluster` (with `secret`),
/// whose only provider is `descriptor`.
pub async fn start_in(
    cluster: &str,
    secret: &[u8],
    name: &str,
    port: u16,
    descriptor: ProviderDescriptor,
) -> Node {
    start_on(cluster, secret, name, "127.0.0.1", port, descriptor, None).await
}

/// [`start`] with Remoting and the probes over mutual TLS with `tls` (and
/// the shared secret as well).
pub async fn start_tls(
    name: &str,
    port: u16,
    descriptor: ProviderDescriptor,
    tls: cluster::remoting::TlsConfig,
) -> Node {
    start_on(
        CLUSTER,
        SECRET,
        name,
        "127.0.0.1",
        port,
        descriptor,
        Some(tls),
    )
    .await
}

/// [`start`] on another loopback IP.
pub async fn start_bound(name: &str, ip: &str, port: u16, descriptor: ProviderDescriptor) -> Node {
    start_on(CLUSTER, SECRET, name, ip, port, descriptor, None).await
}

async fn start_on(
    cluster: &str,
    secret: &[u8],
    name: &str,
    ip: &str,
    port: u16,
    descriptor: ProviderDescriptor,
    tls: Option<cluster::remoting::TlsConfig>,
) -> Node {
    let id = NodeId::new(name).unwrap();
    let system = ActorSystem::builder(name)
        .shutdown_timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    let mut identity = identity(cluster, secret);
    if let Some(tls) = &tls {
        identity = identity.with_tls(cluster::remoting::ProbeTls::load(tls.clone(), name).unwrap());
    }
    let kinds = ProviderKinds::new()
        .with(StaticKind::new(identity.clone()))
        .with(DnsKind::new(identity));
    let mut remoting = RemotingConfig::new(cluster)
        .with_heartbeat_interval(Duration::from_millis(100))
        .with_failure_timeout(Duration::from_secs(2))
        .with_handshake_timeout(Duration::from_secs(2));
    if let Some(tls) = tls {
        remoting = remoting.with_tls(tls);
    }
    let built = Cluster::builder(&system, cluster, id.clone())
        .bind(format!("{ip}:{port}"))
        .kinds(kinds)
        .provider(descriptor)
        .secret(secret.to_vec())
        .provisioning_config(ProvisioningConfig {
            failover: FailoverConfig {
                silence_timeout: Duration::from_secs(5),
                error_threshold: 3,
                stability_window: Duration::from_millis(500),
                max_snapshot_lag: Duration::from_secs(30),
                startup_grace: Duration::from_millis(50),
            },
            ..ProvisioningConfig::default()
        })
        .remoting_config(remoting)
        .start()
        .await
        .unwrap_or_else(|e| panic!("{name} failed to start: {e} ({})", e.code()));
    Node {
        id,
        port,
        system,
        cluster: built,
    }
}

pub async fn start(name: &str, port: u16, descriptor: ProviderDescriptor) -> Node {
    start_in(CLUSTER, SECRET, name, port, descriptor).await
}

/// Polls `check` every 50 ms until it is true; panics with `what` after
/// [`WAIT`].
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if check().await {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn ids(t: &Topology) -> BTreeSet<String> {
    t.members.iter().map(|m| m.node_id.to_string()).collect()
}

/// Waits until every node lists exactly `names`, then returns the one
/// topology hash they all agree on (asserting there is just one).
pub async fn converge(nodes: &[&Node], names: &[&str]) -> u64 {
    let want: BTreeSet<String> = names.iter().map(|s| (*s).to_owned()).collect();
    for n in nodes {
        let want = want.clone();
        eventually(&format!("{} lists {:?}", n.id, want), || {
            let want = want.clone();
            async move { ids(&*n.topology().await) == want }
        })
        .await;
    }
    // The same ids may still differ in an incarnation for a moment (a
    // restart seen by one node before the other): wait for one hash.
    let hashes = || async {
        let mut hashes = BTreeSet::new();
        for n in nodes {
            hashes.insert(n.topology().await.hash.0);
        }
        hashes
    };
    eventually("one topology hash everywhere", || async {
        hashes().await.len() == 1
    })
    .await;
    let hashes = hashes().await;
    assert_eq!(hashes.len(), 1, "one topology hash everywhere: {hashes:?}");
    hashes.into_iter().next().unwrap()
}

/// A counter series seen so far: name, labels, accumulated value.
type Series = (String, Vec<(String, String)>, f64);

/// A metrics recorder for this test process.
pub struct Metrics {
    snap: Snapshotter,
    seen: Mutex<Vec<Series>>,
}

impl Metrics {
    pub fn install() -> Self {
        let recorder = DebuggingRecorder::new();
        let snap = recorder.snapshotter();
        recorder.install().unwrap();
        provider_seed::describe();
        Self {
            snap,
            seen: Mutex::default(),
        }
    }

    /// The sum of the counter `name` over the series whose labels include
    /// `labels`.
    pub fn counter(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        let mut seen = self.seen.lock().unwrap();
        for (key, _, _, value) in self.snap.snapshot().into_vec() {
            let key = key.key();
            let v = match value {
                DebugValue::Counter(c) => c as f64,
                _ => continue,
            };
            let l: Vec<(String, String)> = key
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            let name = key.name().to_owned();
            // Counters in a snapshot are deltas: accumulate.
            match seen.iter_mut().find(|(n, ls, _)| *n == name && *ls == l) {
                Some(entry) => entry.2 += v,
                None => seen.push((name, l, v)),
            }
        }
        seen.iter()
            .filter(|(n, ls, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| ls.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|(_, _, v)| *v as u64)
            .sum()
    }
}
