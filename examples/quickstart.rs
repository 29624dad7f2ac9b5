//! Quickstart: a cluster of three nodes in one process, connected by real
//! TCP on 127.0.0.1, on the in-memory provider: topology, stateful grains,
//! failover, a crash detected by heartbeats, a graceful leave, and a clean
//! shutdown; the grains keep their state through all of it.
//!
//! `cargo run --release --example quickstart`
//!
//! Each node is its own `ActorSystem` started with [`Cluster::builder`]:
//! a ProvisioningSupervisor running two in-memory providers, `primary`
//! (priority 0) and `standby` (priority 1), each over a table shared by the
//! three nodes (as a real deployment shares a Kubernetes API or a Consul
//! catalog); Remoting over TCP; a PartitionManager; a PlacementSupervisor
//! hosting `counter` grains whose value is saved on every change in a grain
//! storage shared by the nodes (an in-memory one here; SQLite or PostgreSQL
//! in a deployment). The timeline shows, as node `a` sees it:
//!
//! 1. the topology forming and the TCP associations coming up;
//! 2. grains placed on their owners and answering, from any node;
//! 3. the primary backend failing and the standby taking over without a gap
//!    (the grains keep answering, with their state);
//! 4. node `c` crashing (no deregistration, no goodbye): the heartbeats stop,
//!    the failure detectors of `a` and `b` report it, it is quarantined
//!    (`RemoteNodeQuarantined`) and its grains answer again from their new
//!    owners, with the value they had (loaded from the storage);
//! 5. a graceful leave of `b`: it deactivates its grains (their state is
//!    saved) before it deregisters, and they answer from `a` with their
//!    values;
//! 6. a clean shutdown: `a` leaves (hand off, deregister, goodbye).
//!
//! It ends by itself in a few seconds and exits non-zero if any step does
//! not happen in time.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actor_runtime::{ActorSystem, Backoff};
use cluster::Cluster;
use cluster::grain::{GrainContext, GrainError, GrainOptions, PersistentState};
use cluster::placement::{Grain, PlacementConfig};
use cluster::remoting::{AssociationState, RemotingConfig};
use cluster_core::events::{
    ProviderChanged, ProvisioningStatusChanged, RemoteNodeQuarantined, TopologyUpdated,
};
use cluster_core::{MemoryGrainStorage, NodeId, ProviderDescriptor, ProviderId, Topology};
use examples::Timeline;
use provider_memory::MembershipTable;
use provider_memory::MemoryKind;
use provisioning_actors::failover::FailoverConfig;
use provisioning_actors::{ProviderKinds, ProvisioningConfig};

type Error = Box<dyn std::error::Error>;

/// A grain: a counter per id that knows which node hosts it; its value is
/// saved on every change (write-through) and loaded when it is activated.
struct Counter {
    node: String,
    value: PersistentState<u64>,
}

impl Grain for Counter {
    type Request = u64;
    type Response = (String, u64);

    async fn on_activate(&mut self, ctx: &GrainContext) -> Result<(), GrainError> {
        self.value.load(ctx).await
    }

    async fn handle(&mut self, add: u64) -> (String, u64) {
        *self.value.get_mut() += add;
        if let Err(e) = self.value.save().await {
            // Not saved (a conflict: a second activation wrote first): drop
            // the change and say so.
            let _ = self.value.reload().await;
            return (format!("{} ({})", self.node, e.code()), *self.value.get());
        }
        (self.node.clone(), *self.value.get())
    }
}

struct Node {
    name: &'static str,
    system: ActorSystem,
    cluster: Cluster,
    kind: MemoryKind,
}

fn names(t: &Topology) -> String {
    let n: Vec<&str> = t.members.iter().map(|m| m.node_id.as_str()).collect();
    format!("[{}]", n.join(", "))
}

async fn start_node(
    name: &'static str,
    primary: &MembershipTable,
    standby: &MembershipTable,
    storage: &MemoryGrainStorage,
) -> Result<Node, Error> {
    let system = ActorSystem::new(name);
    let kind = MemoryKind::new()
        .with_table("primary", primary.clone())
        .with_table("standby", standby.clone());
    let provider = |id: &str, priority| -> Result<ProviderDescriptor, Error> {
        Ok(
            ProviderDescriptor::new(ProviderId::new(id)?, "memory", priority)
                .with_setting("table", id)
                .with_setting("keepalive_ms", "500"),
        )
    };
    let cluster = Cluster::builder(&system, "quickstart", NodeId::new(name)?)
        .bind("127.0.0.1:0")
        .kinds(ProviderKinds::new().with(kind.clone()))
        .provider(provider("primary", 0)?)
        .provider(provider("standby", 1)?)
        .provisioning_config(ProvisioningConfig {
            failover: FailoverConfig {
                silence_timeout: Duration::from_secs(3),
                error_threshold: 3,
                stability_window: Duration::from_secs(2),
                max_snapshot_lag: Duration::from_secs(10),
                startup_grace: Duration::from_millis(300),
            },
            provider_backoff: Backoff::exponential(
                Duration::from_millis(100),
                Duration::from_secs(1),
            ),
            provider_max_restarts: 1_000,
            ..ProvisioningConfig::default()
        })
        .remoting_config(
            RemotingConfig::new("quickstart")
                .with_heartbeat_interval(Duration::from_millis(200))
                .with_failure_timeout(Duration::from_secs(1)),
        )
        .placement_config(PlacementConfig::default())
        .grain_with(
            "counter",
            GrainOptions::new().storage(storage.clone()),
            move |_id| Counter {
                node: name.to_owned(),
                value: PersistentState::new(),
            },
        )
        .start()
        .await?;
    Ok(Node {
        name,
        system,
        cluster,
        kind,
    })
}

async fn step<F>(timeline: &Timeline, what: &str, limit: Duration, mut done: F) -> Result<(), Error>
where
    F: AsyncFnMut() -> bool,
{
    let start = Instant::now();
    while !done().await {
        if start.elapsed() > limit {
            return Err(format!("step did not happen within {limit:?}: {what}").into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    timeline.log(format!("ok: {what}"));
    Ok(())
}

async fn topology(n: &Node) -> Arc<Topology> {
    n.cluster
        .topology()
        .await
        .unwrap_or_else(|_| Arc::new(Topology::starting()))
}

fn watch_events(tl: &Timeline, a: &Node, gaps: &Arc<Mutex<u32>>) {
    let es = a.system.event_stream();
    let (t, g) = (tl.clone(), gaps.clone());
    let _ = es.subscribe_fn(move |e: &TopologyUpdated| {
        let topo = &e.topology;
        if topo.seq_no > 1
            && !topo.status.allows_placement()
            && let Ok(mut g) = g.lock()
        {
            *g += 1;
        }
        t.log(format!(
            "a: TopologyUpdated seq {} {} members {} via {} (joined {}, left {}, blocked {})",
            topo.seq_no,
            topo.status.as_str(),
            names(topo),
            topo.active_provider.as_ref().map_or("-", |p| p.as_str()),
            e.diff.joined.len(),
            e.diff.left.len(),
            e.diff.blocked.len()
        ));
    });
    let t = tl.clone();
    let _ = es.subscribe_fn(move |e: &ProviderChanged| {
        t.log(format!(
            "a: ProviderChanged {} -> {} ({})",
            e.from.as_ref().map_or("-", |p| p.as_str()),
            e.to.as_ref().map_or("-", |p| p.as_str()),
            e.reason.as_str()
        ));
    });
    let t = tl.clone();
    let _ = es.subscribe_fn(move |e: &RemoteNodeQuarantined| {
        t.log(format!(
            "a: RemoteNodeQuarantined {} incarnation {} ({})",
            e.node, e.incarnation, e.reason
        ));
    });
    let t = tl.clone();
    let _ = es.subscribe_fn(move |e: &ProvisioningStatusChanged| {
        t.log(format!(
            "a: status {} -> {}",
            e.previous.as_str(),
            e.status.as_str()
        ));
    });
}

const GRAINS: [&str; 6] = ["alice", "bob", "carol", "dave", "erin", "frank"];

/// Sends `add` to every grain from `from`; returns where each answered and
/// its value.
async fn ask_all(from: &Node, add: u64) -> Result<BTreeMap<&'static str, (String, u64)>, Error> {
    let mut out = BTreeMap::new();
    for g in GRAINS {
        let r = from.cluster.request::<Counter>("counter", g, &add).await?;
        out.insert(g, r);
    }
    Ok(out)
}

fn show(tl: &Timeline, label: &str, answers: &BTreeMap<&'static str, (String, u64)>) {
    let line: Vec<String> = answers
        .iter()
        .map(|(g, (node, v))| format!("{g}@{node}={v}"))
        .collect();
    tl.log(format!("{label}: {}", line.join(" ")));
}

async fn run() -> Result<(), Error> {
    let tl = Timeline::start();
    let primary = MembershipTable::new();
    let standby = MembershipTable::new();
    let storage = MemoryGrainStorage::new();
    let a = start_node("a", &primary, &standby, &storage).await?;
    let gaps = Arc::new(Mutex::new(0u32));
    watch_events(&tl, &a, &gaps);
    let b = start_node("b", &primary, &standby, &storage).await?;
    let c = start_node("c", &primary, &standby, &storage).await?;
    for n in [&a, &b, &c] {
        tl.log(format!(
            "node {} listening on {} (incarnation {})",
            n.name,
            n.cluster.local().address,
            n.cluster.local().incarnation
        ));
    }

    // 1. Topology and associations.
    let nodes = [&a, &b, &c];
    step(
        &tl,
        "every node sees a, b and c via primary",
        Duration::from_secs(5),
        async || {
            for n in nodes {
                let t = topology(n).await;
                if t.members.len() != 3
                    || t.active_provider.as_ref().map(|p| p.as_str()) != Some("primary")
                {
                    return false;
                }
            }
            true
        },
    )
    .await?;
    step(
        &tl,
        "TCP associations up between every pair (handshake, heartbeats)",
        Duration::from_secs(5),
        async || {
            nodes.iter().all(|n| {
                let up = n.cluster.remoting().associations();
                up.len() == 2 && up.iter().all(|(_, _, s)| *s == AssociationState::Up)
            })
        },
    )
    .await?;
    *gaps.lock().map_err(|_| "poisoned")? = 0;

    // 2. Grains.
    let first = ask_all(&a, 1).await?;
    show(&tl, "grains asked from a", &first);
    let second = ask_all(&b, 1).await?;
    show(&tl, "grains asked from b", &second);
    for g in GRAINS {
        if first[g].0 != second[g].0 || second[g].1 != 2 {
            return Err(format!("grain {g} is not a single activation").into());
        }
    }
    let hosts: std::collections::BTreeSet<&str> = first.values().map(|(n, _)| n.as_str()).collect();
    tl.log(format!(
        "ok: one activation per grain, spread over {hosts:?}, reached over TCP from any node"
    ));
    let on_c: Vec<&str> = GRAINS
        .iter()
        .copied()
        .filter(|g| first[g].0 == "c")
        .collect();

    // 3. Failover.
    tl.log("the primary backend fails (every node's primary stream ends for good)");
    for n in nodes {
        if let Some(f) = n.kind.faults("primary") {
            f.end_all_streams_forever(true);
            f.end_stream();
        }
    }
    step(
        &tl,
        "every node fails over to standby, still listing a, b and c",
        Duration::from_secs(5),
        async || {
            for n in nodes {
                let t = topology(n).await;
                if t.members.len() != 3
                    || t.active_provider.as_ref().map(|p| p.as_str()) != Some("standby")
                {
                    return false;
                }
            }
            true
        },
    )
    .await?;
    if *gaps.lock().map_err(|_| "poisoned")? > 0 {
        return Err("placement was paused during failover".into());
    }
    let third = ask_all(&c, 1).await?;
    show(&tl, "grains asked from c", &third);
    for g in GRAINS {
        if third[g] != (first[g].0.clone(), 3) {
            return Err(format!("grain {g} lost its place or state in the failover").into());
        }
    }
    tl.log("ok: no gap: placement never paused, every grain kept its owner and state");

    // 4. Crash.
    tl.log(format!(
        "node c crashes (no goodbye, no deregistration); its grains: {on_c:?}"
    ));
    c.cluster.crash().await;
    c.system.shutdown().await;
    step(
        &tl,
        "a and b detect c by missing heartbeats and quarantine it",
        Duration::from_secs(10),
        async || {
            for n in [&a, &b] {
                let t = topology(n).await;
                if t.members.len() != 2 || !t.blocked.iter().any(|x| x.node_id.as_str() == "c") {
                    return false;
                }
            }
            true
        },
    )
    .await?;
    let fourth = ask_all(&a, 1).await?;
    show(&tl, "grains asked from a", &fourth);
    for g in GRAINS {
        let (node, v) = &fourth[g];
        if on_c.contains(&g) {
            if node == "c" || *v != 4 {
                return Err(format!("grain {g} did not move off c with its value").into());
            }
        } else if (node, *v) != (&first[g].0, 4) {
            return Err(format!("grain {g} moved although its owner lives").into());
        }
    }
    tl.log(format!(
        "ok: c's grains {on_c:?} answer from their new owners with the value they had (loaded from the storage); the others kept theirs"
    ));

    // 5. A graceful leave.
    let on_b: Vec<&str> = GRAINS
        .iter()
        .copied()
        .filter(|g| fourth[g].0 == "b")
        .collect();
    tl.log(format!(
        "b leaves gracefully (its grains {on_b:?} are deactivated and saved before it deregisters)"
    ));
    let report = b.cluster.leave(Duration::from_secs(5)).await;
    tl.log(format!(
        "b: left: {} activations handed off",
        report.handed_off
    ));
    step(&tl, "a sees b leave", Duration::from_secs(5), async || {
        topology(&a).await.members.len() == 1
    })
    .await?;
    let fifth = ask_all(&a, 1).await?;
    show(&tl, "grains asked from a", &fifth);
    for g in GRAINS {
        if fifth[g] != ("a".to_owned(), 5) {
            return Err(format!("grain {g} lost its value in b's leave").into());
        }
    }
    tl.log("ok: every grain answers from a with its value: none lost in the failover, the crash or the leave");

    // 6. Shutdown.
    tl.log("graceful shutdown: a leaves (hand off, deregister, goodbye)");
    for n in [&a] {
        let report = n.cluster.leave(Duration::from_secs(5)).await;
        let ok = report
            .deregistered
            .iter()
            .filter(|(_, r)| r.is_ok())
            .count();
        tl.log(format!(
            "{}: left: {} activations handed off, deregistered from {ok} of {} providers",
            n.name,
            report.handed_off,
            report.deregistered.len()
        ));
    }
    let left: Vec<String> = standby
        .members()
        .iter()
        .map(|m| m.node_id.to_string())
        .collect();
    tl.log(format!(
        "standby table now lists {left:?} (c crashed without deregistering)"
    ));
    for n in [a, b] {
        let report = n.system.shutdown().await;
        if !report.clean {
            return Err(format!("{} did not shut down cleanly", n.name).into());
        }
    }
    tl.log("all nodes stopped");
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    examples::finish("quickstart", run().await)
}
