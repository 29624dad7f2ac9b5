//! Registry, store, reload and drain scenarios (R1.1–R1.5, R5.4, R3.5), and
//! the quarantine API (R4.2, R4.4), through the ProvisioningSupervisor.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "support/harness.rs"]
mod harness;

use std::sync::Arc;
use std::time::Duration;

use cluster_core::{
    Capabilities, ClusterProvider, Member, ProviderDescriptor, ProviderError, ProviderHealth,
    ProvisioningStatus, Snapshot,
};
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use harness::*;
use provider_memory::MemoryKind;
use provider_memory::{FaultHandle, MembershipTable};
use provisioning_actors::{ProviderFactory, ProviderKinds, ProvisioningSupervisor};

/// A provider kind for acceptance tests: configurable capabilities and
/// connectivity.
struct Stub {
    caps: Capabilities,
    reachable: bool,
}

impl ClusterProvider for Stub {
    fn capabilities(&self) -> Capabilities {
        self.caps
    }
    fn check_connectivity(&self) -> BoxFuture<'_, Result<(), ProviderError>> {
        let ok = self.reachable;
        Box::pin(async move {
            if ok {
                Ok(())
            } else {
                Err(ProviderError::Connectivity(
                    "connection refused (stub)".into(),
                ))
            }
        })
    }
    fn register(&self, _: &Member) -> BoxFuture<'_, Result<(), ProviderError>> {
        Box::pin(async { Ok(()) })
    }
    fn deregister(&self, _: &Member) -> BoxFuture<'_, Result<(), ProviderError>> {
        Box::pin(async { Ok(()) })
    }
    fn watch(&self) -> BoxStream<'static, Result<Snapshot, ProviderError>> {
        Box::pin(futures::stream::pending())
    }
}

struct StubKind;
impl ProviderFactory for StubKind {
    fn kind(&self) -> &str {
        "stub"
    }
    fn create(&self, d: &ProviderDescriptor) -> Result<Arc<dyn ClusterProvider>, ProviderError> {
        let flag = |k: &str| d.settings.get(k).is_some_and(|v| v == "true");
        Ok(Arc::new(Stub {
            caps: Capabilities {
                watch: !flag("no_watch"),
                register: true,
                external: true,
            },
            reachable: !flag("unreachable"),
        }))
    }
}

async fn stub_node(
    table: &MembershipTable,
    store: Option<std::path::PathBuf>,
) -> cluster_core::Result<Node> {
    let system = actor_runtime::ActorSystem::new("n");
    let events = Events::record(&system);
    let kind = MemoryKind::new().with_table("t", table.clone());
    let kinds = ProviderKinds::new().with(kind.clone()).with(StubKind);
    let mut config = test_config(Some(member("local", 1)));
    config.store_path = store;
    let handle =
        ProvisioningSupervisor::spawn(&system, config, kinds, vec![memory("mem", 0, "t")]).await?;
    Ok(Node {
        system,
        handle,
        events,
        kind,
    })
}

fn stub(id: &str, setting: Option<&str>) -> ProviderDescriptor {
    let d = ProviderDescriptor::new(pid(id), "stub", 5);
    match setting {
        Some(k) => d.with_setting(k, "true"),
        None => d,
    }
}

/// R1.1: missing or invalid fields are rejected with the field named.
#[tokio::test(start_paused = true)]
async fn r1_1_invalid_definitions_are_rejected_per_field() {
    let t = MembershipTable::new();
    let node = stub_node(&t, None).await.unwrap();
    let no_table = ProviderDescriptor::new(pid("m2"), "memory", 1);
    let e = node.handle.register(no_table).await.unwrap_err();
    assert_eq!(e.code(), "validation.invalid_field");
    assert!(e.to_string().contains("settings.table"), "{e}");
    let bad_kind = ProviderDescriptor::new(pid("x"), "Not A Kind", 1);
    let e = node.handle.register(bad_kind).await.unwrap_err();
    assert!(e.to_string().contains("kind"), "{e}");
    let unknown = ProviderDescriptor::new(pid("y"), "zookeeper", 1);
    assert_eq!(
        node.handle.register(unknown).await.unwrap_err().code(),
        "registry.unknown_kind"
    );
    let bad_keepalive = memory("m3", 1, "t").with_setting("keepalive_ms", "soon");
    let e = node.handle.register(bad_keepalive).await.unwrap_err();
    assert!(e.to_string().contains("settings.keepalive_ms"), "{e}");
    assert_eq!(
        node.handle.definitions().await.unwrap().len(),
        1,
        "nothing added"
    );
    node.shutdown().await;
}

/// R1.2: a name collision is rejected and the existing provider kept.
#[tokio::test(start_paused = true)]
async fn r1_2_duplicate_name_is_rejected_and_existing_kept() {
    let t = MembershipTable::new();
    let node = stub_node(&t, None).await.unwrap();
    let again = memory("mem", 9, "t");
    assert_eq!(
        node.handle.register(again).await.unwrap_err().code(),
        "registry.duplicate"
    );
    let defs = node.handle.definitions().await.unwrap();
    assert_eq!(defs.len(), 1);
    assert_eq!(defs[0].priority, 0, "the existing definition is untouched");
    node.shutdown().await;
}

/// R1.3: a provider that cannot watch is kept but Disabled, with the reason.
#[tokio::test(start_paused = true)]
async fn r1_3_missing_capability_is_kept_disabled_with_reason() {
    let t = MembershipTable::new();
    let node = stub_node(&t, None).await.unwrap();
    node.handle
        .register(stub("blind", Some("no_watch")))
        .await
        .unwrap();
    let st = node.handle.providers().await.unwrap();
    let blind = st.iter().find(|p| p.id == pid("blind")).unwrap();
    assert_eq!(blind.health, ProviderHealth::Disabled);
    assert_eq!(
        blind.disabled_reason.as_deref(),
        Some("missing capability: watch")
    );
    node.shutdown().await;
}

/// R1.4: an external backend is checked before acceptance; an unreachable
/// one is rejected with the connectivity code, a reachable one accepted.
#[tokio::test(start_paused = true)]
async fn r1_4_external_connectivity_is_verified_before_acceptance() {
    let t = MembershipTable::new();
    let node = stub_node(&t, None).await.unwrap();
    let e = node
        .handle
        .register(stub("down", Some("unreachable")))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "provider.connectivity");
    assert!(e.is_connectivity());
    node.handle.register(stub("up", None)).await.unwrap();
    let ids: Vec<_> = node
        .handle
        .definitions()
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(ids, vec![pid("mem"), pid("up")]);
    node.shutdown().await;
}

/// R1.5: accepted definitions persist; a restarted node restores the same
/// set (and its last topology, stale until confirmed). A corrupt store fails
/// fast with its code and is left untouched.
#[tokio::test(start_paused = true)]
async fn r1_5_definitions_persist_and_corrupt_store_fails_fast() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("providers.store");
    let t = MembershipTable::new();
    let node = stub_node(&t, Some(path.clone())).await.unwrap();
    node.handle
        .register(memory("second", 3, "t"))
        .await
        .unwrap();
    node.wait_topology("local listed", |x| x.members.len() == 1)
        .await;
    tokio::time::sleep(Duration::from_millis(100)).await; // topology persisted
    node.shutdown().await;

    let again = stub_node(&t, Some(path.clone())).await.unwrap();
    // The first answer is the restored topology, marked stale until a
    // provider confirms it.
    let restored = again.topology().await;
    assert!(restored.stale, "restored topology is stale");
    assert!(restored.seq_no > 0, "restored with its seq_no");
    assert_eq!(restored.members.len(), 1);
    let confirmed = again.wait_topology("confirmed", |x| !x.stale).await;
    assert_eq!(confirmed.members.len(), 1);
    assert!(
        confirmed.seq_no > restored.seq_no,
        "seq_no continues after a restart"
    );
    let ids: Vec<_> = again
        .handle
        .definitions()
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(ids, vec![pid("mem"), pid("second")], "same set restored");
    again.shutdown().await;

    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    let e = stub_node(&t, Some(path.clone()))
        .await
        .err()
        .expect("corrupt store must fail");
    assert_eq!(e.code(), "store.corrupt");
    assert_eq!(std::fs::read(&path).unwrap(), bytes, "not overwritten");
}

/// R5.4: a reload with any invalid definition changes nothing; a valid one
/// replaces the whole set in one step.
#[tokio::test(start_paused = true)]
async fn r5_4_reload_is_all_or_nothing() {
    let t = MembershipTable::new();
    let node = stub_node(&t, None).await.unwrap();
    node.wait_topology("active", |x| x.status == ProvisioningStatus::Active)
        .await;
    let bad = vec![
        memory("new-a", 0, "t"),
        ProviderDescriptor::new(pid("new-b"), "memory", 1),
    ];
    let e = node.handle.reload(bad).await.unwrap_err();
    assert_eq!(e.code(), "validation.invalid_field");
    let ids: Vec<_> = node
        .handle
        .definitions()
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(ids, vec![pid("mem")], "old set intact");
    let unreachable = vec![memory("new-a", 0, "t"), stub("new-b", Some("unreachable"))];
    assert!(node.handle.reload(unreachable).await.is_err());
    assert_eq!(
        node.handle.definitions().await.unwrap().len(),
        1,
        "old set intact"
    );

    node.handle
        .reload(vec![memory("new-a", 0, "t"), memory("new-b", 1, "t")])
        .await
        .unwrap();
    let ids: Vec<_> = node
        .handle
        .definitions()
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(ids, vec![pid("new-a"), pid("new-b")]);
    let topo = node
        .wait_topology("new-a active", |x| x.active_provider == Some(pid("new-a")))
        .await;
    assert_eq!(topo.status, ProvisioningStatus::Active);
    let c = node.events.changes().into_iter().last().unwrap();
    assert_eq!(c.reason, cluster_core::events::ChangeReason::Reload);
    node.shutdown().await;
}

/// R3.5: draining publishes Draining, refuses new snapshots (the last
/// topology is kept) and deregisters the local member everywhere.
#[tokio::test(start_paused = true)]
async fn r3_5_drain_refuses_snapshots_keeps_last_and_deregisters() {
    let (p, s) = (MembershipTable::new(), MembershipTable::new());
    p.upsert(member("b", 1));
    let node = two_provider_node(&p, &s).await;
    node.wait_topology("two members", |x| x.members.len() == 2)
        .await;
    let results = node.handle.drain().await.unwrap();
    assert_eq!(results.len(), 2);
    assert!(results.iter().all(|(_, r)| r.is_ok()));
    assert!(
        p.get(&nid("local")).is_none() && s.get(&nid("local")).is_none(),
        "deregistered"
    );
    let t = node.topology().await;
    assert_eq!(t.status, ProvisioningStatus::Draining);
    assert_eq!(t.members.len(), 2, "last topology kept for draining");
    let before = node.events.updates().len();
    p.upsert(member("c", 1));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(node.events.updates().len(), before, "new snapshots refused");
    assert_eq!(
        node.handle
            .register(memory("late", 5, "primary"))
            .await
            .unwrap_err()
            .code(),
        "provisioning.draining"
    );
    node.shutdown().await;
}

/// R4.2: a quarantine removes the node incarnation from the members, lists
/// it as blocked, and publishes RemoteNodeQuarantined then TopologyUpdated
/// with the same seq_no. R4.4: Remoting reaching it again is not enough; the
/// next healthy refresh that still lists it reactivates it.
#[tokio::test(start_paused = true)]
async fn r4_2_r4_4_quarantine_blocks_until_reachable_and_refreshed() {
    let (p, s) = (MembershipTable::new(), MembershipTable::new());
    p.upsert(member("b", 1));
    let node = two_provider_node(&p, &s).await;
    node.wait_topology("b listed", |x| x.member(&nid("b")).is_some())
        .await;
    node.handle.quarantine(nid("b"), 1, "heartbeat timeout");
    let t = node
        .wait_topology("b blocked", |x| x.is_blocked(&nid("b"), 1))
        .await;
    assert!(t.member(&nid("b")).is_none());
    let q = node.events.quarantines();
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].seq_no, t.seq_no, "same logical tick");
    let all = node.events.all();
    let qi = all
        .iter()
        .position(|e| matches!(e, Ev::Quarantined(_)))
        .unwrap();
    assert!(
        matches!(all[qi + 1], Ev::Topology(_)),
        "RemoteNodeQuarantined, then TopologyUpdated"
    );

    // A refresh alone does not reactivate it.
    p.upsert(member("x", 1));
    node.wait_topology("x joined", |x| x.member(&nid("x")).is_some())
        .await;
    assert!(
        node.topology().await.member(&nid("b")).is_none(),
        "still blocked"
    );
    // Reachable, then a healthy refresh that lists it: back.
    node.handle.reachable(nid("b"), 1);
    p.upsert(member("y", 1));
    let t = node
        .wait_topology("b back", |x| x.member(&nid("b")).is_some())
        .await;
    assert!(!t.is_blocked(&nid("b"), 1));
    node.shutdown().await;
}

/// R4.4: a new incarnation of a quarantined node is not blocked; an operator
/// can clear a quarantine; clearing one that does not exist is an error.
#[tokio::test(start_paused = true)]
async fn r4_4_new_incarnation_supersedes_and_operator_clears() {
    let (p, s) = (MembershipTable::new(), MembershipTable::new());
    p.upsert(member("b", 1));
    p.upsert(member("c", 1));
    let node = two_provider_node(&p, &s).await;
    node.wait_topology("listed", |x| x.members.len() == 3).await;
    node.handle.quarantine(nid("b"), 1, "unreachable");
    node.handle.quarantine(nid("c"), 1, "unreachable");
    node.wait_topology("blocked", |x| x.blocked.len() == 2)
        .await;
    p.upsert(member("b", 2)); // b restarted
    let t = node
        .wait_topology("b#2 listed", |x| {
            x.member(&nid("b")).is_some_and(|m| m.incarnation == 2)
        })
        .await;
    assert!(!t.is_blocked(&nid("b"), 1), "superseded block dropped");
    node.handle.clear_quarantine(nid("c"), 1).await.unwrap();
    node.wait_topology("c back", |x| x.member(&nid("c")).is_some())
        .await;
    let e = node.handle.clear_quarantine(nid("c"), 1).await.unwrap_err();
    assert_eq!(e.code(), "quarantine.not_quarantined");
    node.shutdown().await;
}

/// R4.2: a quarantine with a time to live expires by itself.
#[tokio::test(start_paused = true)]
async fn r4_2_quarantine_expires_after_its_ttl() {
    let p = MembershipTable::new();
    p.upsert(member("b", 1));
    let mut config = test_config(None);
    config.quarantine_ttl = Some(Duration::from_secs(30));
    let node = node_with(
        "n",
        &[("t", p.clone())],
        config,
        vec![memory("only", 0, "t")],
    )
    .await
    .unwrap();
    node.wait_topology("b listed", |x| x.member(&nid("b")).is_some())
        .await;
    node.handle.quarantine(nid("b"), 1, "unreachable");
    node.wait_topology("blocked", |x| x.is_blocked(&nid("b"), 1))
        .await;
    let t0 = tokio::time::Instant::now();
    node.wait_topology("expired", |x| x.member(&nid("b")).is_some())
        .await;
    assert!(
        t0.elapsed() >= Duration::from_secs(29),
        "{:?}",
        t0.elapsed()
    );
    node.shutdown().await;
}

/// Regression (review of issue 3), R5.4: reloading a changed definition of
/// the same id replaces it (its old actor may still be stopping) and the
/// consumers see one change, not the sets in between.
#[tokio::test(start_paused = true)]
async fn r5_4_reload_of_a_changed_definition_publishes_once() {
    let (p, s) = (MembershipTable::new(), MembershipTable::new());
    s.upsert(member("only-in-standby", 1));
    let node = two_provider_node(&p, &s).await;
    node.wait_topology("primary active", |x| {
        x.active_provider == Some(pid("primary"))
    })
    .await;
    let before = node.events.updates().len();
    // Swap the priorities: same ids, changed definitions.
    node.handle
        .reload(vec![
            memory("primary", 5, "primary"),
            memory("standby", 1, "standby"),
        ])
        .await
        .unwrap();
    let t = node
        .wait_topology("standby active", |x| {
            x.active_provider == Some(pid("standby"))
        })
        .await;
    assert_eq!(t.members.len(), 2);
    let after: Vec<_> = node.events.updates()[before..].to_vec();
    assert!(
        after.iter().all(|u| u.topology.members.len() == 2
            || u.topology.members.len() == 1 && u.topology.active_provider == Some(pid("primary"))),
        "no mixed set published: {:?}",
        after
            .iter()
            .map(|u| (u.topology.seq_no, u.topology.members.len()))
            .collect::<Vec<_>>()
    );
    assert_eq!(node.handle.providers().await.unwrap().len(), 2);
    node.shutdown().await;
}

/// Regression (review of issue 3), R5.2 / R5.4: a provider stopped for good
/// (suppressed) is revived by reloading the same definition.
#[tokio::test(start_paused = true)]
async fn r5_4_reloading_the_same_definition_revives_a_failed_provider() {
    let (p, s) = (MembershipTable::new(), MembershipTable::new());
    // Suppressed at activation (a running provider never is, issue 19);
    // the reloaded provider shares the fault handle, its errors used up.
    let faults = FaultHandle::new();
    faults.fail_next(5, ProviderError::Auth("403".into()));
    let node = two_provider_node_failing_primary(&p, &s, faults).await;
    node.wait_events("suppressed", |e| !e.suppressed().is_empty())
        .await;
    node.handle
        .reload(vec![
            memory("primary", 0, "primary"),
            memory("standby", 1, "standby"),
        ])
        .await
        .unwrap();
    node.wait_topology("primary back", |x| {
        x.active_provider == Some(pid("primary"))
    })
    .await;
    node.shutdown().await;
}

/// Regression (review of issue 3): a quarantine must not cancel the
/// failover timers; silence is still detected afterwards.
#[tokio::test(start_paused = true)]
async fn quarantine_keeps_silence_detection_armed() {
    let (p, s) = (MembershipTable::new(), MembershipTable::new());
    p.upsert(member("b", 1));
    s.upsert(member("b", 1));
    let node = two_provider_node(&p, &s).await;
    node.wait_topology("b listed", |x| x.member(&nid("b")).is_some())
        .await;
    node.handle.quarantine(nid("b"), 1, "unreachable");
    node.wait_topology("blocked", |x| x.is_blocked(&nid("b"), 1))
        .await;
    node.faults("primary").silence(true);
    node.wait_topology("standby after silence", |x| {
        x.active_provider == Some(pid("standby"))
    })
    .await;
    node.shutdown().await;
}

/// Regression (review of issue 3), R3.5: after a drain, a provider whose
/// stream ends is not restarted and does not register the node again.
#[tokio::test(start_paused = true)]
async fn r3_5_drained_node_does_not_register_again() {
    let (p, s) = (MembershipTable::new(), MembershipTable::new());
    let node = two_provider_node(&p, &s).await;
    node.wait_topology("registered", |x| x.members.len() == 1)
        .await;
    node.handle.drain().await.unwrap();
    assert!(p.get(&nid("local")).is_none());
    node.faults("primary").end_stream();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(p.get(&nid("local")).is_none(), "not registered again");
    assert!(s.get(&nid("local")).is_none());
    node.shutdown().await;
}

/// N1: with `definitions_from_config`, the given definitions are the source
/// of truth over the store: a stored definition that differs is replaced,
/// one the configuration no longer defines is dropped (both logged), and the
/// store is rewritten with the configuration's set.
#[tokio::test(start_paused = true)]
async fn n1_r1_5_the_configuration_wins_over_a_store_that_differs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("providers.store");
    let t = MembershipTable::new();
    let node = stub_node(&t, Some(path.clone())).await.unwrap();
    node.handle.register(memory("old", 3, "t")).await.unwrap();
    node.shutdown().await;

    let system = actor_runtime::ActorSystem::new("n");
    let kinds = ProviderKinds::new().with(MemoryKind::new().with_table("t", t.clone()));
    let mut config = test_config(Some(member("local", 2)));
    config.store_path = Some(path.clone());
    config.definitions_from_config = true;
    // "mem" changes priority; "old" is gone from the configuration.
    let handle = ProvisioningSupervisor::spawn(&system, config, kinds, vec![memory("mem", 7, "t")])
        .await
        .unwrap();
    let defs = handle.definitions().await.unwrap();
    let got: Vec<(String, u32)> = defs
        .iter()
        .map(|d| (d.id.to_string(), d.priority))
        .collect();
    assert_eq!(got, vec![("mem".to_owned(), 7)]);
    system.shutdown().await;

    // Without the flag, the store wins (the default, R1.5).
    let system = actor_runtime::ActorSystem::new("n");
    let kinds = ProviderKinds::new().with(MemoryKind::new().with_table("t", t.clone()));
    let mut config = test_config(Some(member("local", 3)));
    config.store_path = Some(path);
    let handle = ProvisioningSupervisor::spawn(&system, config, kinds, vec![memory("mem", 9, "t")])
        .await
        .unwrap();
    let defs = handle.definitions().await.unwrap();
    assert_eq!(defs[0].priority, 7, "the stored definition is kept");
    system.shutdown().await;
}
