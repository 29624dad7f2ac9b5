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
use cluster::partition::PartitionTable;
use cluster::partition_manager::{OwnershipChanged, PartitionHandle, PartitionManager};
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
    // An older topology does not end the wait; the change's own does.
    es.publish(topology(2, &["a"], &[]));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        !waiting.is_finished(),
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
