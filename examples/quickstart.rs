//! Quickstart: an in-process cluster of three nodes on the in-memory
//! provider, showing topology, failover and quarantine.
//!
//! `cargo run --release --example quickstart`
//!
//! Each node is its own `ActorSystem` with a `ProvisioningSupervisor` (a
//! system actor) running two in-memory providers: `primary` (priority 0) and
//! `standby` (priority 1), each over a table shared by the three nodes, as a
//! real deployment would share a Kubernetes API and a Consul catalog. The
//! timeline shows, as node `a` sees it:
//!
//! 1. the topology forming as the nodes register themselves;
//! 2. the primary backend failing and every node's standby taking over,
//!    without a gap in the topology (hot standby: no backend round trip);
//! 3. node `c` crashing (no deregistration), a failure report quarantining
//!    it (`RemoteNodeQuarantined`, then `TopologyUpdated` without it);
//! 4. the primary backend recovering and the nodes failing back after the
//!    stability window;
//! 5. a graceful shutdown: drain, deregister, stop.
//!
//! Remoting's failure detector (TCP heartbeats) lands with the `cluster`
//! crate; until then step 3's report is made through the same
//! `ProvisioningHandle::quarantine` call Remoting will use. The program ends
//! by itself and exits non-zero if any step does not happen in time.

use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actor_runtime::{ActorSystem, Backoff};
use cluster_core::events::{
    ProviderChanged, ProvisioningStatusChanged, RemoteNodeQuarantined, TopologyUpdated,
};
use cluster_core::{
    Member, MemberAddress, NodeId, ProviderDescriptor, ProviderId, ProvisioningStatus, Topology,
};
use examples::Timeline;
use provider_memory::MembershipTable;
use provisioning_actors::failover::FailoverConfig;
use provisioning_actors::{
    MemoryKind, ProviderKinds, ProvisioningConfig, ProvisioningHandle, ProvisioningSupervisor,
};

type Error = Box<dyn std::error::Error>;

struct Node {
    name: &'static str,
    system: ActorSystem,
    provisioning: ProvisioningHandle,
    kind: MemoryKind,
}

fn names(t: &Topology) -> String {
    let n: Vec<&str> = t.members.iter().map(|m| m.node_id.as_str()).collect();
    format!("[{}]", n.join(", "))
}

async fn start_node(
    name: &'static str,
    port: u16,
    primary: &MembershipTable,
    standby: &MembershipTable,
) -> Result<Node, Error> {
    let system = ActorSystem::new(name);
    let kind = MemoryKind::new()
        .with_table("primary", primary.clone())
        .with_table("standby", standby.clone());
    let local = Member::new(
        NodeId::new(name)?,
        MemberAddress::new("127.0.0.1", port)?,
        1,
    );
    let config = ProvisioningConfig {
        local: Some(local),
        failover: FailoverConfig {
            silence_timeout: Duration::from_secs(3),
            error_threshold: 3,
            stability_window: Duration::from_secs(2),
            max_snapshot_lag: Duration::from_secs(10),
            startup_grace: Duration::from_secs(1),
        },
        provider_backoff: Backoff::exponential(Duration::from_millis(100), Duration::from_secs(1)),
        provider_max_restarts: 1_000,
        ..ProvisioningConfig::default()
    };
    let defs = vec![
        ProviderDescriptor::new(ProviderId::new("primary")?, "memory", 0)
            .with_setting("table", "primary")
            .with_setting("keepalive_ms", "500"),
        ProviderDescriptor::new(ProviderId::new("standby")?, "memory", 1)
            .with_setting("table", "standby")
            .with_setting("keepalive_ms", "500"),
    ];
    let kinds = ProviderKinds::new().with(kind.clone());
    let provisioning = ProvisioningSupervisor::spawn(&system, config, kinds, defs).await?;
    Ok(Node {
        name,
        system,
        provisioning,
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
    match n.provisioning.topology().await {
        Ok(t) => t,
        Err(_) => Arc::new(Topology::starting()),
    }
}

async fn run() -> Result<(), Error> {
    let tl = Timeline::start();
    let primary = MembershipTable::new();
    let standby = MembershipTable::new();
    let a = start_node("a", 7001, &primary, &standby).await?;
    let b = start_node("b", 7002, &primary, &standby).await?;
    let c = start_node("c", 7003, &primary, &standby).await?;
    tl.log("three nodes started, each with providers primary (0) and standby (1)");

    // Node a's view, as a consumer (placement, remoting) sees it.
    let es = a.system.event_stream();
    let gaps = Arc::new(Mutex::new(0u32));
    let t = tl.clone();
    let g = gaps.clone();
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
    *gaps.lock().map_err(|_| "poisoned")? = 0;

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
    tl.log("no gap: placement never paused during the failover");

    tl.log("node c crashes (its registrations stay in both tables)");
    let c_member = topology(&a).await.member(&NodeId::new("c")?).cloned();
    c.system.shutdown().await;
    let inc = c_member.map_or(1, |m| m.incarnation);
    tl.log("a and b report c unreachable (what Remoting's failure detector will do)");
    for n in [&a, &b] {
        n.provisioning
            .quarantine(NodeId::new("c")?, inc, "heartbeat timeout");
    }
    step(
        &tl,
        "a and b quarantine c: blocked and out of the members",
        Duration::from_secs(5),
        async || {
            for n in [&a, &b] {
                let t = topology(n).await;
                if t.members.len() != 2
                    || !t.is_blocked(&NodeId::new("c").unwrap_or_else(|_| unreachable!()), inc)
                {
                    return false;
                }
            }
            true
        },
    )
    .await?;

    tl.log("the primary backend recovers");
    for n in [&a, &b] {
        if let Some(f) = n.kind.faults("primary") {
            f.end_all_streams_forever(false);
        }
    }
    step(
        &tl,
        "a and b fail back to primary after the 2 s stability window",
        Duration::from_secs(10),
        async || {
            for n in [&a, &b] {
                let t = topology(n).await;
                if t.active_provider.as_ref().map(|p| p.as_str()) != Some("primary")
                    || t.status != ProvisioningStatus::Active
                {
                    return false;
                }
            }
            true
        },
    )
    .await?;

    tl.log("graceful shutdown: drain (deregister), then stop");
    for n in [&a, &b] {
        let results = n.provisioning.drain().await?;
        let ok = results.iter().filter(|(_, r)| r.is_ok()).count();
        tl.log(format!(
            "{}: drained, deregistered from {ok} of {} providers",
            n.name,
            results.len()
        ));
    }
    let left: Vec<String> = primary
        .members()
        .iter()
        .map(|m| m.node_id.to_string())
        .collect();
    tl.log(format!(
        "primary table now lists {left:?} (c crashed without deregistering)"
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
