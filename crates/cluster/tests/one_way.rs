//! The one-way flow after provisioning (issue 13, item 3; A6, R3.4): the
//! PlacementSupervisor and the PartitionManager follow the provisioning
//! events through the topology follower, ownership is computed by the
//! PlacementSupervisor only and handed to the PartitionManager, a
//! quarantine takes effect before the topology that follows it, and a
//! provider change ahead of its topology pauses both. The events are
//! published by the test on the EventStream, exactly as the
//! ProvisioningSupervisor publishes them (no provisioning runs here, and
//! nothing is pulled).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actor_runtime::ActorSystem;
use cluster::follower::TopologySource;
use cluster::partition::PartitionTable;
use cluster::partition_manager::{
    OwnershipChanged, PartitionHandle, PartitionManager, PartitionMsg, STALE_TABLE, WAIT_BOUND,
};
use cluster::placement::{
    Grain, GrainKinds, PlacementConfig, PlacementHandle, PlacementSupervisor,
};
use cluster_core::events::{ChangeReason, ProviderChanged, RemoteNodeQuarantined, TopologyUpdated};
use cluster_core::{
    BlockedMember, Member, MemberAddress, NodeId, ProviderId, ProvisioningStatus, Topology,
    TopologyDiff, TopologyHash,
};

fn nid(id: &str) -> NodeId {
    NodeId::new(id).unwrap()
}

fn member(id: &str) -> Member {
    Member::new(nid(id), MemberAddress::new("127.0.0.1", 4000).unwrap(), 1)
}

fn topology(seq_no: u64, ids: &[&str], blocked: &[&str]) -> TopologyUpdated {
    let members: Vec<Member> = ids.iter().map(|i| member(i)).collect();
    let hash = TopologyHash::of(&members);
    TopologyUpdated {
        topology: Arc::new(Topology {
            members: Arc::from(members),
            blocked: blocked
                .iter()
                .map(|b| BlockedMember {
                    node_id: nid(b),
                    incarnation: 1,
                })
                .collect(),
            status: ProvisioningStatus::Active,
            hash,
            seq_no,
            active_provider: None,
            stale: false,
        }),
        previous_hash: TopologyHash::default(),
        diff: Arc::new(TopologyDiff::default()),
    }
}

fn quarantined(node: &str, seq_no: u64) -> RemoteNodeQuarantined {
    RemoteNodeQuarantined {
        node: nid(node),
        incarnation: 1,
        reason: "heartbeat timeout".into(),
        seq_no,
    }
}

fn provider_changed(seq_no: u64) -> ProviderChanged {
    ProviderChanged {
        from: Some(ProviderId::new("primary").unwrap()),
        to: Some(ProviderId::new("standby").unwrap()),
        reason: ChangeReason::StreamEnded,
        seq_no,
        hash: TopologyHash::default(),
    }
}

struct Echo(String);

impl Grain for Echo {
    type Request = u32;
    type Response = String;
    async fn handle(&mut self, _req: u32) -> String {
        self.0.clone()
    }
}

/// A node "a" with a PartitionManager and a PlacementSupervisor (no
/// remoting: a grain owned elsewhere fails with `placement.remote`), and
/// the `OwnershipChanged` batches it publishes.
struct Node {
    system: ActorSystem,
    pm: PartitionHandle,
    placement: PlacementHandle,
    ownership: Arc<Mutex<Vec<OwnershipChanged>>>,
    _sub: actor_runtime::Subscription,
}

fn node() -> Node {
    let system = ActorSystem::new("a");
    let ownership: Arc<Mutex<Vec<OwnershipChanged>>> = Arc::default();
    let seen = ownership.clone();
    let sub = system
        .event_stream()
        .subscribe_fn(move |o: &OwnershipChanged| seen.lock().unwrap().push(o.clone()));
    let pm = PartitionManager::spawn(&system, "partitions").unwrap();
    let placement = PlacementSupervisor::spawn(
        &system,
        &member("a"),
        GrainKinds::new().with("echo", |id: &str| Echo(id.to_owned())),
        PlacementConfig {
            request_timeout: Duration::from_secs(2),
            ..PlacementConfig::default()
        },
        None,
        None,
    )
    .unwrap();
    Node {
        system,
        pm,
        placement,
        ownership,
        _sub: sub,
    }
}

async fn eventually(what: &str, mut f: impl AsyncFnMut() -> bool) {
    for _ in 0..500 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(4)).await;
    }
    panic!("never: {what}");
}

/// An identity of kind "echo" that `owner` owns among `members`.
fn owned_by(members: &[&str], owner: &str) -> String {
    let t = PartitionTable::from_members(
        members.iter().map(|m| member(m)),
        1,
        ProvisioningStatus::Active,
    );
    (0..10_000)
        .map(|i| format!("g-{i}"))
        .find(|id| t.owner("echo", id).unwrap().node_id.as_str() == owner)
        .unwrap()
}

/// A6: on `RemoteNodeQuarantined`, placement stops routing to the node at
/// once, before the `TopologyUpdated` that follows it: a grain the node
/// owned is placed on the next owner (here, this node), and the
/// PartitionManager's owner answer follows.
#[tokio::test]
async fn a6_placement_stops_routing_to_a_quarantined_node_at_once() {
    let n = node();
    let es = n.system.event_stream();
    es.publish(topology(1, &["a", "b"], &[]));
    let id = owned_by(&["a", "b"], "b");
    // Owned by b, and this node has no remoting: not placeable here.
    let e = n
        .placement
        .request::<Echo>("echo", &id, &1)
        .await
        .unwrap_err();
    assert_eq!(e.code(), "placement.remote", "{e}");
    // The quarantine of b, and no topology after it.
    es.publish(quarantined("b", 2));
    let answer = n.placement.request::<Echo>("echo", &id, &1).await.unwrap();
    assert_eq!(answer, id, "placed here at once");
    eventually("the partition manager names a as the owner", async || {
        n.pm.owner("echo", &id)
            .await
            .is_ok_and(|m| m.node_id.as_str() == "a")
    })
    .await;
    // Its topology (b blocked) changes nothing more; a duplicate of the
    // quarantine is dropped.
    es.publish(topology(2, &["a"], &["b"]));
    es.publish(quarantined("b", 2));
    let answer = n.placement.request::<Echo>("echo", &id, &1).await.unwrap();
    assert_eq!(answer, id);
    n.system.shutdown().await;
}

/// A6: the PartitionManager never answers a quarantined incarnation as the
/// owner, whether or not the PlacementSupervisor's new table has arrived.
#[tokio::test]
async fn a6_partition_manager_never_names_a_quarantined_owner() {
    let system = ActorSystem::new("pm");
    // No placement: the table of seq_no 1 is handed by hand and no new one
    // comes after the quarantine.
    let pm = PartitionManager::spawn(&system, "partitions").unwrap();
    let es = system.event_stream();
    let t = topology(1, &["a", "b"], &[]);
    es.publish(t.clone());
    es.publish(OwnershipChanged {
        seq_no: 1,
        table: Arc::new(PartitionTable::from_topology(&t.topology)),
        moves: Arc::from(Vec::new()),
    });
    let id = owned_by(&["a", "b"], "b");
    eventually("b owns the identity", async || {
        pm.owner("echo", &id)
            .await
            .is_ok_and(|m| m.node_id.as_str() == "b")
    })
    .await;
    es.publish(quarantined("b", 2));
    eventually("b is not named any more", async || {
        pm.owner("echo", &id).await.is_err()
    })
    .await;
    let e = pm.owner("echo", &id).await.unwrap_err();
    assert_eq!(e.code(), "provisioning.unavailable");
    assert!(e.to_string().contains("quarantined"), "{e}");
    system.shutdown().await;
}

/// R3.4: the PartitionManager receives `ProviderChanged`; its answers wait
/// while its table is older than the change, until the table of the new
/// provider's topology arrives, and placement does not place on the older
/// view either (no pull: the topology comes on the EventStream).
#[tokio::test]
async fn r3_4_partition_manager_receives_provider_changed_and_waits_for_its_topology() {
    let n = node();
    let es = n.system.event_stream();
    es.publish(topology(1, &["a"], &[]));
    es.publish(provider_changed(1));
    eventually("the change reached the partition manager", async || {
        n.pm.provider_change()
            .await
            .unwrap()
            .is_some_and(|c| c.seq_no == 1)
    })
    .await;
    eventually("the table of seq_no 1", async || {
        n.pm.partition_map().await.is_ok_and(|t| t.seq_no() == 1)
    })
    .await;
    // A change whose topology (seq_no 3) has not arrived: the partition
    // map waits for it (no answer from the older table), placement refuses.
    es.publish(provider_changed(3));
    eventually("the change reached the partition manager", async || {
        n.pm.provider_change()
            .await
            .unwrap()
            .is_some_and(|c| c.seq_no == 3)
    })
    .await;
    let pm = n.pm.clone();
    let waiting = tokio::spawn(async move { pm.partition_map().await });
    let e = n
        .placement
        .request::<Echo>("echo", "x", &1)
        .await
        .unwrap_err();
    assert_eq!(e.code(), "provisioning.unavailable", "{e}");
    assert!(e.to_string().contains("provider changed"), "{e}");
    eventually("the partition map waits", async || {
        n.pm.waiting().await.unwrap() == 1
    })
    .await;
    // An older topology does not end the wait; the change's own does.
    es.publish(topology(2, &["a"], &[]));
    // Placement's table of seq_no 2 is published to the partition manager
    // and to the test's subscription at once: a query after it is handled
    // after the table.
    eventually("placement's table of seq_no 2", async || {
        n.ownership.lock().unwrap().iter().any(|o| o.seq_no == 2)
    })
    .await;
    assert_eq!(
        n.pm.waiting().await.unwrap(),
        1,
        "answered from a table older than the change"
    );
    es.publish(topology(3, &["a", "c"], &[]));
    let t = tokio::time::timeout(Duration::from_secs(2), waiting)
        .await
        .expect("answered once the table arrived")
        .unwrap()
        .unwrap();
    assert_eq!((t.seq_no(), t.members().len()), (3, 2));
    let change = n.pm.provider_change().await.unwrap().unwrap();
    assert_eq!((change.seq_no, change.to.unwrap().as_str()), (3, "standby"));
    assert_eq!(
        n.placement
            .request::<Echo>("echo", &owned_by(&["a", "c"], "a"), &1)
            .await
            .unwrap(),
        owned_by(&["a", "c"], "a")
    );
    n.system.shutdown().await;
}

/// Ownership is computed in one place (issue 13): the PartitionManager
/// serves exactly the tables the PlacementSupervisor hands it, one per
/// topology in order, and a stale topology produces none.
#[tokio::test]
async fn r3_3_ownership_is_computed_once_and_handed_to_the_partition_manager() {
    let n = node();
    let es = n.system.event_stream();
    es.publish(topology(1, &["a", "b"], &[]));
    es.publish(topology(2, &["a", "b", "c"], &[]));
    es.publish(topology(1, &["z"], &[]));
    eventually("the table of seq_no 2", async || {
        n.pm.partition_map().await.is_ok_and(|t| t.seq_no() == 2)
    })
    .await;
    let served = n.pm.partition_map().await.unwrap();
    let batches = n.ownership.lock().unwrap().clone();
    let seqs: Vec<u64> = batches.iter().map(|o| o.seq_no).collect();
    assert_eq!(seqs, vec![1, 2], "one per topology, none for the stale one");
    let last = batches.last().unwrap();
    assert!(
        Arc::ptr_eq(&last.table, &served),
        "the partition manager serves the table placement computed"
    );
    n.system.shutdown().await;
}

/// A partition manager alone (no placement: tables are handed by hand).
fn lone_pm(system: &ActorSystem) -> PartitionHandle {
    PartitionManager::spawn(system, "partitions").unwrap()
}

/// The table of `t`, as placement would hand it.
fn ownership_of(t: &TopologyUpdated) -> OwnershipChanged {
    OwnershipChanged {
        seq_no: t.topology.seq_no,
        table: Arc::new(PartitionTable::from_topology(&t.topology)),
        moves: Arc::from(Vec::new()),
    }
}

/// Issue 13 (one-way flow): a failed catch-up pull (an ask timeout, a
/// supervisor restarting) is not a pull: it is tried again while no view
/// is applied, until one succeeds, and never after.
#[tokio::test]
async fn a_failed_catch_up_pull_is_retried_until_one_succeeds() {
    use std::sync::atomic::{AtomicU32, Ordering};
    let system = ActorSystem::new("pm");
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    let source = TopologySource::from_fn(move || {
        let n = c.fetch_add(1, Ordering::SeqCst);
        async move {
            if n < 2 {
                Err(cluster_core::ProvisioningError::Supervisor(
                    "provisioning supervisor: ask timed out".into(),
                ))
            } else {
                Ok(topology(4, &["a"], &[]).topology)
            }
        }
    });
    let pm = PartitionManager::spawn_with_source(&system, "partitions", Some(source)).unwrap();
    // 100 ms, then 200 ms: the third pull succeeds.
    for _ in 0..100 {
        if calls.load(Ordering::SeqCst) >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "pulled again after failures"
    );
    // The view of seq_no 4 is applied: a table of seq_no 4 is served.
    system
        .event_stream()
        .publish(ownership_of(&topology(4, &["a"], &[])));
    eventually("the table of the pulled view", async || {
        pm.partition_map().await.is_ok_and(|t| t.seq_no() == 4)
    })
    .await;
    // Exactly one successful pull: nothing more is pulled.
    let _ = pm.waiting().await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    system.shutdown().await;
}

/// R3.2, R3.4: a query waiting for the table of a provider change whose
/// table never comes (placement dead, stopped first) is answered
/// `provisioning.unavailable` within [`WAIT_BOUND`], before the caller's
/// ask times out (which would say `provisioning.supervisor`).
#[tokio::test]
async fn r3_2_a_table_that_never_arrives_is_answered_unavailable() {
    let system = ActorSystem::new("pm");
    let pm = lone_pm(&system);
    let es = system.event_stream();
    let t = topology(1, &["a"], &[]);
    es.publish(t.clone());
    es.publish(ownership_of(&t));
    eventually("the table of seq_no 1", async || {
        pm.partition_map().await.is_ok_and(|t| t.seq_no() == 1)
    })
    .await;
    es.publish(provider_changed(2));
    let started = tokio::time::Instant::now();
    let (map, owner) = tokio::join!(pm.partition_map(), pm.owner("echo", "x"));
    for e in [map.unwrap_err(), owner.unwrap_err()] {
        assert_eq!(e.code(), "provisioning.unavailable", "{e}");
        assert!(e.to_string().contains("provider changed"), "{e}");
    }
    assert!(
        started.elapsed() >= WAIT_BOUND,
        "waited for the table first"
    );
    assert_eq!(pm.waiting().await.unwrap(), 0);
    system.shutdown().await;
}

/// R3.4: callers that gave up (their ask timed out) do not count against
/// the 1024 waiting queries: the 1025th query still waits and is answered
/// from the table of the change.
#[tokio::test]
async fn r3_4_the_1025th_query_waits_when_earlier_callers_gave_up() {
    let system = ActorSystem::new("pm");
    let pm = lone_pm(&system);
    let es = system.event_stream();
    let t = topology(1, &["a"], &[]);
    es.publish(t.clone());
    es.publish(ownership_of(&t));
    es.publish(provider_changed(2));
    eventually("the change reached the partition manager", async || {
        pm.provider_change()
            .await
            .unwrap()
            .is_some_and(|c| c.seq_no == 2)
    })
    .await;
    // 1024 callers that give up after 1 ms.
    let gave_up = futures::future::join_all(
        (0..1024).map(|_| pm.actor().ask(PartitionMsg::Map, Duration::from_millis(1))),
    )
    .await;
    assert!(gave_up.iter().all(Result::is_err));
    let p = pm.clone();
    let last = tokio::spawn(async move { p.partition_map().await });
    eventually("the 1025th query waits", async || {
        pm.waiting().await.unwrap() == 1
    })
    .await;
    let t2 = topology(2, &["a", "b"], &[]);
    es.publish(t2.clone());
    es.publish(ownership_of(&t2));
    let table = last.await.unwrap().unwrap();
    assert_eq!(table.seq_no(), 2);
    system.shutdown().await;
}

/// The partition manager serves only what placement computes: a table that
/// stays older than the view for [`STALE_TABLE`] (no placement, or it
/// stopped) is not served silently; answers say why.
#[tokio::test]
async fn r3_2_a_table_older_than_the_view_is_not_served_for_long() {
    let system = ActorSystem::new("pm");
    let pm = lone_pm(&system);
    let es = system.event_stream();
    let t = topology(1, &["a"], &[]);
    es.publish(t.clone());
    es.publish(ownership_of(&t));
    eventually("the table of seq_no 1", async || {
        pm.partition_map().await.is_ok_and(|t| t.seq_no() == 1)
    })
    .await;
    // A topology no table follows.
    es.publish(topology(2, &["a", "b"], &[]));
    let started = tokio::time::Instant::now();
    let e = loop {
        match pm.partition_map().await {
            Ok(t) => assert_eq!(t.seq_no(), 1),
            Err(e) => break e,
        }
        assert!(
            started.elapsed() < STALE_TABLE * 3,
            "an old table served for good"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(e.code(), "provisioning.unavailable", "{e}");
    assert!(e.to_string().contains("placement"), "{e}");
    let e = pm.owner("echo", "x").await.unwrap_err();
    assert_eq!(e.code(), "provisioning.unavailable", "{e}");
    // The table of the view arrives: served again.
    es.publish(ownership_of(&topology(2, &["a", "b"], &[])));
    eventually("the table of seq_no 2", async || {
        pm.partition_map().await.is_ok_and(|t| t.seq_no() == 2)
    })
    .await;
    system.shutdown().await;
}

/// A6: a quarantine before the first topology publishes no table (there is
/// no view to take the node out of; a table of seq_no 0 would say
/// "Starting"); the first topology's table is the first one.
#[tokio::test]
async fn a6_a_quarantine_before_the_first_topology_publishes_no_table() {
    let n = node();
    let es = n.system.event_stream();
    es.publish(quarantined("b", 1));
    es.publish(topology(1, &["a"], &["b"]));
    eventually("the table of seq_no 1", async || {
        n.ownership.lock().unwrap().iter().any(|o| o.seq_no == 1)
    })
    .await;
    let seqs: Vec<u64> = n
        .ownership
        .lock()
        .unwrap()
        .iter()
        .map(|o| o.seq_no)
        .collect();
    assert_eq!(seqs, vec![1]);
    n.system.shutdown().await;
}
