//! PartitionManager scenarios (R3.2, R3.3): it answers partition-map
//! requests from the tables the PlacementSupervisor computes from the
//! topologies published on the EventStream (ownership is computed in one
//! place, issue 13), or says why it cannot, and ignores ownership metadata
//! older than what it applied.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use actor_runtime::ActorSystem;
use cluster::partition::{Moved, PartitionTable};
use cluster::partition_manager::{OwnershipChanged, PartitionHandle, PartitionManager};
use cluster::placement::{GrainKinds, PlacementConfig, PlacementSupervisor};
use cluster_core::events::TopologyUpdated;
use cluster_core::{
    Member, MemberAddress, NodeId, ProvisioningStatus, Topology, TopologyDiff, TopologyHash,
};

fn member(id: &str) -> Member {
    Member::new(
        NodeId::new(id).unwrap(),
        MemberAddress::new("127.0.0.1", 4000).unwrap(),
        1,
    )
}

fn topology(seq_no: u64, status: ProvisioningStatus, ids: &[&str]) -> TopologyUpdated {
    let members: Vec<Member> = ids.iter().map(|i| member(i)).collect();
    let hash = TopologyHash::of(&members);
    TopologyUpdated {
        topology: Arc::new(Topology {
            members: Arc::from(members),
            blocked: Arc::from(Vec::new()),
            status,
            hash,
            seq_no,
            active_provider: None,
            stale: false,
        }),
        previous_hash: TopologyHash::default(),
        diff: Arc::new(TopologyDiff::default()),
    }
}

/// A PartitionManager with the PlacementSupervisor that computes its
/// tables (the node's placement runs as member "a").
fn partitions(system: &ActorSystem) -> PartitionHandle {
    let pm = PartitionManager::spawn(system, "partitions").unwrap();
    PlacementSupervisor::spawn(
        system,
        &member("a"),
        GrainKinds::new(),
        PlacementConfig::default(),
        None,
        None,
    )
    .unwrap();
    pm
}

async fn until_seq(p: &PartitionHandle, seq_no: u64) -> Arc<PartitionTable> {
    for _ in 0..500 {
        if let Ok(t) = p.partition_map().await
            && t.seq_no() >= seq_no
        {
            return t;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    panic!("seq_no {seq_no} never applied");
}

/// R3.2: before any topology, and while placement is paused, the partition
/// map request fails with a reason; otherwise it returns the latest table.
#[tokio::test]
async fn r3_2_partition_map_is_the_latest_or_says_why_not() {
    let system = ActorSystem::new("pm");
    let pm = partitions(&system);
    let e = pm.partition_map().await.unwrap_err();
    assert_eq!(e.code(), "provisioning.unavailable");
    assert!(e.to_string().contains("no topology"), "{e}");

    system
        .event_stream()
        .publish(topology(1, ProvisioningStatus::Active, &["a", "b", "c"]));
    let t = until_seq(&pm, 1).await;
    assert_eq!(t.members().len(), 3);
    let owner = pm.owner("user", "42").await.unwrap();
    assert_eq!(Some(&owner), t.owner("user", "42"));

    system
        .event_stream()
        .publish(topology(2, ProvisioningStatus::Empty, &[]));
    for _ in 0..500 {
        if pm.partition_map().await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let e = pm.partition_map().await.unwrap_err();
    assert!(e.to_string().contains("zero members"), "{e}");
    assert_eq!(
        pm.owner("user", "42").await.unwrap_err().code(),
        "provisioning.unavailable"
    );

    system
        .event_stream()
        .publish(topology(3, ProvisioningStatus::Draining, &["a"]));
    for _ in 0..500 {
        if pm
            .owner("user", "1")
            .await
            .is_err_and(|e| e.code() == "provisioning.draining")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert_eq!(
        pm.owner("user", "1").await.unwrap_err().code(),
        "provisioning.draining"
    );
    system.shutdown().await;
}

/// R3.1 input: an update older than the applied one is ignored.
#[tokio::test]
async fn r3_1_older_topology_is_ignored() {
    let system = ActorSystem::new("pm");
    let pm = partitions(&system);
    let es = system.event_stream();
    es.publish(topology(5, ProvisioningStatus::Active, &["a", "b"]));
    until_seq(&pm, 5).await;
    es.publish(topology(4, ProvisioningStatus::Active, &["z"]));
    es.publish(topology(6, ProvisioningStatus::Active, &["a", "b", "c"]));
    let t = until_seq(&pm, 6).await;
    assert_eq!(t.members().len(), 3);
    system.shutdown().await;
}

/// R3.3: ownership metadata tagged with a seq_no older than the last
/// applied is ignored; same or newer is applied.
#[tokio::test]
async fn r3_3_older_ownership_metadata_is_ignored() {
    let system = ActorSystem::new("pm");
    let pm = PartitionManager::spawn(&system, "partitions").unwrap();
    let mv = |to: &str| Moved {
        kind: "user".into(),
        id: "42".into(),
        from: None,
        to: Some(NodeId::new(to).unwrap()),
    };
    let table = |seq_no| {
        Arc::new(PartitionTable::from_members(
            [],
            seq_no,
            ProvisioningStatus::Active,
        ))
    };
    let es = system.event_stream();
    es.publish(OwnershipChanged {
        seq_no: 7,
        table: table(7),
        moves: Arc::from(vec![mv("b")]),
    });
    es.publish(OwnershipChanged {
        seq_no: 6,
        table: table(6),
        moves: Arc::from(vec![mv("stale")]),
    });
    let (lease, last) = pm.lease("user", "42").await.unwrap();
    assert_eq!(last, Some(7));
    let lease = lease.unwrap();
    assert_eq!((lease.owner.as_str(), lease.seq_no), ("b", 7));
    es.publish(OwnershipChanged {
        seq_no: 8,
        table: table(8),
        moves: Arc::from(vec![mv("c")]),
    });
    let (lease, _) = pm.lease("user", "42").await.unwrap();
    assert_eq!(lease.unwrap().owner.as_str(), "c");
    system.shutdown().await;
}
