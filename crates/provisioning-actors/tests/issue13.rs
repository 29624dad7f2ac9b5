//! Issue 13 through the supervisor actor: what the driver adds to the
//! core (persisting before applying, start-up checks, restarts of the
//! actor itself, the operator's way back from R5.2). The core's own rules
//! and laws are tested in `src/supervisor/provisioning_core_tests.rs`.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

#[path = "support/harness.rs"]
mod harness;
#[path = "support/logs.rs"]
mod logs;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use cluster_core::{
    Capabilities, ClusterProvider, Member, ProviderDescriptor, ProviderError, ProviderHealth,
    ProvisioningError, Snapshot,
};
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use harness::*;
use provider_memory::MembershipTable;
use provisioning_actors::{ProviderFactory, ProviderKinds, ProvisioningSupervisor};

/// Issue 13: `register`, `remove` and `reload` applied first and persisted
/// after, so a failed save told the caller "failed" while the new set ran.
/// Now the new set is persisted first: a failed save changes nothing.
#[tokio::test(start_paused = true)]
async fn i13_r1_5_a_definition_change_that_cannot_be_persisted_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("state");
    std::fs::create_dir(&store_dir).unwrap();
    let table = MembershipTable::new();
    let mut config = test_config(Some(member("local", 1)));
    config.store_path = Some(store_dir.join("provisioning.store"));
    let node = node_with(
        "n",
        &[("t", table.clone())],
        config,
        vec![memory("a", 0, "t")],
    )
    .await
    .unwrap();
    node.wait_topology("a active", |t| t.active_provider == Some(pid("a")))
        .await;

    // The store's directory becomes a file: every save fails.
    std::fs::remove_dir_all(&store_dir).unwrap();
    std::fs::write(&store_dir, b"not a directory").unwrap();

    let e = node.handle.register(memory("b", 1, "t")).await.unwrap_err();
    assert!(e.code().starts_with("store."), "{e}: {}", e.code());
    let ids = |defs: Vec<ProviderDescriptor>| -> Vec<String> {
        defs.into_iter().map(|d| d.id.to_string()).collect()
    };
    assert_eq!(ids(node.handle.definitions().await.unwrap()), ["a"]);
    assert_eq!(
        node.handle.providers().await.unwrap().len(),
        1,
        "b never ran"
    );

    let e = node.handle.remove(&pid("a")).await.unwrap_err();
    assert!(e.code().starts_with("store."), "{e}");
    assert_eq!(ids(node.handle.definitions().await.unwrap()), ["a"]);

    let e = node
        .handle
        .reload(vec![memory("c", 0, "t")])
        .await
        .unwrap_err();
    assert!(e.code().starts_with("store."), "{e}");
    assert_eq!(ids(node.handle.definitions().await.unwrap()), ["a"]);
    let t = node.topology().await;
    assert_eq!(t.active_provider, Some(pid("a")), "a still runs");
    node.shutdown().await;
}

/// Issue 13: two given definitions with one id were skipped silently.
#[tokio::test(start_paused = true)]
async fn i13_r1_2_two_given_definitions_with_one_id_are_refused_at_start() {
    let table = MembershipTable::new();
    let e = node_with(
        "n",
        &[("t", table)],
        test_config(None),
        vec![memory("a", 0, "t"), memory("a", 1, "t")],
    )
    .await
    .err()
    .expect("refused");
    assert!(
        matches!(e, ProvisioningError::Duplicate(ref id) if id.as_str() == "a"),
        "{e}"
    );
}

/// Issue 13: a stored definition silently overrode a given one with the
/// same id; the override is logged with the fields that differ.
#[tokio::test(start_paused = true)]
async fn i13_r1_5_a_stored_definition_overriding_a_given_one_is_logged() {
    let (logs, _guard) = logs::Logs::capture();
    let dir = tempfile::tempdir().unwrap();
    let table = MembershipTable::new();
    let mut config = test_config(None);
    config.store_path = Some(dir.path().join("provisioning.store"));
    let first = node_with(
        "n",
        &[("t", table.clone())],
        config.clone(),
        vec![memory("a", 0, "t")],
    )
    .await
    .unwrap();
    first.shutdown().await;
    let mark = logs.mark();
    let second = node_with("n", &[("t", table)], config, vec![memory("a", 7, "t")])
        .await
        .unwrap();
    let defs = second.handle.definitions().await.unwrap();
    assert_eq!(defs[0].priority, 0, "the store wins");
    let lines = logs.since(mark);
    let warn = lines
        .iter()
        .find(|l| l.message.contains("overrides the one given in code"))
        .unwrap_or_else(|| panic!("no warning: {}", logs::Logs::dump(&lines)));
    assert_eq!(warn.level, tracing::Level::WARN);
    assert_eq!(warn.field("differs"), Some("priority"));
    second.shutdown().await;
}

/// A provider whose backend answers 403 until `fixed` is set.
struct Forbidden {
    fixed: Arc<AtomicBool>,
}

impl ClusterProvider for Forbidden {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            watch: true,
            register: false,
            external: false,
        }
    }
    fn check_connectivity(&self) -> BoxFuture<'_, Result<(), ProviderError>> {
        Box::pin(async { Ok(()) })
    }
    fn register(&self, _: &Member) -> BoxFuture<'_, Result<(), ProviderError>> {
        Box::pin(async { Ok(()) })
    }
    fn deregister(&self, _: &Member) -> BoxFuture<'_, Result<(), ProviderError>> {
        Box::pin(async { Ok(()) })
    }
    fn watch(&self) -> BoxStream<'static, Result<Snapshot, ProviderError>> {
        let fixed = self.fixed.clone();
        Box::pin(futures::stream::unfold((), move |()| {
            let fixed = fixed.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let item = if fixed.load(Ordering::SeqCst) {
                    Ok(Snapshot {
                        members: vec![member("x", 1)].into(),
                        observed_at: SystemTime::now(),
                    })
                } else {
                    Err(ProviderError::Auth("403 Forbidden".into()))
                };
                Some((item, ()))
            }
        }))
    }
}

struct ForbiddenKind(Arc<AtomicBool>);

impl ProviderFactory for ForbiddenKind {
    fn kind(&self) -> &str {
        "forbidden"
    }
    fn create(&self, _: &ProviderDescriptor) -> Result<Arc<dyn ClusterProvider>, ProviderError> {
        Ok(Arc::new(Forbidden {
            fixed: self.0.clone(),
        }))
    }
}

/// Issue 13 (R5.2): a suppressed provider stayed Failed until a reload. An
/// operator who fixed the permission lifts the suppression; a provider
/// left alone is probed again, half-open, after the re-probe delay.
#[tokio::test(start_paused = true)]
async fn i13_r5_2_a_suppression_is_lifted_by_the_operator_or_by_a_timed_probe() {
    let fixed = Arc::new(AtomicBool::new(false));
    let system = actor_runtime::ActorSystem::new("n");
    let events = Events::record(&system);
    let kinds = ProviderKinds::new().with(ForbiddenKind(fixed.clone()));
    let mut config = test_config(None);
    config.activation_failure_threshold = 3;
    config.suppression_reprobe =
        actor_runtime::Backoff::exponential(Duration::from_secs(60), Duration::from_secs(600));
    let d = ProviderDescriptor::new(pid("k"), "forbidden", 0);
    let handle = ProvisioningSupervisor::spawn(&system, config, kinds, vec![d])
        .await
        .unwrap();
    let status = || async { handle.providers().await.unwrap().remove(0) };
    for _ in 0..500 {
        if !events.suppressed().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(events.suppressed().len(), 1, "suppressed after 3 failures");
    assert_eq!(status().await.health, ProviderHealth::Failed);

    // A timed probe, half-open: still forbidden, suppressed again at once.
    tokio::time::sleep(Duration::from_secs(61)).await;
    assert_eq!(
        events.suppressed().len(),
        2,
        "probed after 60 s, suppressed again"
    );
    assert_eq!(status().await.health, ProviderHealth::Failed);

    // The operator fixes the permission and lifts the suppression.
    fixed.store(true, Ordering::SeqCst);
    handle.lift_suppression(&pid("k")).await.unwrap();
    for _ in 0..500 {
        if status().await.health == ProviderHealth::Healthy {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let s = status().await;
    assert_eq!(s.health, ProviderHealth::Healthy);
    assert!(s.disabled_reason.is_none());
    let e = handle.lift_suppression(&pid("k")).await.unwrap_err();
    assert_eq!(e.code(), "registry.not_suppressed");
    system.shutdown().await;
}

/// A kind whose factory panics: a bug that crashes the supervisor actor
/// while it accepts a definition.
struct PanickingKind;

impl ProviderFactory for PanickingKind {
    fn kind(&self) -> &str {
        "panicking"
    }
    fn create(&self, _: &ProviderDescriptor) -> Result<Arc<dyn ClusterProvider>, ProviderError> {
        panic!("a bug in a provider factory");
    }
}

/// Issue 13: a restarted supervisor actor forgot its quarantines (and its
/// draining state, tested on the core). It resumes from its checkpoint:
/// the quarantined incarnation stays blocked and seq_no never goes back.
#[tokio::test(start_paused = true)]
async fn i13_r4_2_a_restarted_supervisor_actor_keeps_its_quarantines_and_seq_no() {
    let table = MembershipTable::new();
    table.upsert(member("b", 1));
    let system = actor_runtime::ActorSystem::new("n");
    let events = Events::record(&system);
    let kind = provider_memory::MemoryKind::new().with_table("t", table.clone());
    let kinds = ProviderKinds::new().with(kind.clone()).with(PanickingKind);
    let handle = ProvisioningSupervisor::spawn(
        &system,
        test_config(Some(member("local", 1))),
        kinds,
        vec![memory("a", 0, "t")],
    )
    .await
    .unwrap();
    let node = Node {
        system,
        handle,
        events,
        kind,
    };
    node.wait_topology("b and local", |t| t.members.len() == 2)
        .await;
    node.handle.quarantine(nid("b"), 1, "unreachable");
    let before = node
        .wait_topology("b blocked", |t| {
            t.blocked.iter().any(|b| b.node_id == nid("b"))
        })
        .await;

    let crash = ProviderDescriptor::new(pid("boom"), "panicking", 1);
    assert!(
        node.handle.register(crash).await.is_err(),
        "the actor crashed"
    );
    // The restarted actor answers again, with what it had published.
    let after = node.wait_topology("answering", |_| true).await;
    assert!(after.seq_no >= before.seq_no, "seq_no never goes back");
    assert!(after.blocked.iter().any(|b| b.node_id == nid("b")));
    assert!(after.members.iter().all(|m| m.node_id != nid("b")));
    // And keeps it blocked when its provider reports b again.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let later = node.topology().await;
    assert!(
        later.members.iter().all(|m| m.node_id != nid("b")),
        "{later:?}"
    );
    assert!(later.seq_no >= after.seq_no);
    node.shutdown().await;
}

/// Review of issue 13: a subscriber callback runs inside `publish`; if it
/// panics, the supervisor actor restarts. It must resume from a checkpoint
/// taken before the publication, so that it never reuses a seq_no some
/// consumers already applied.
#[tokio::test(start_paused = true)]
async fn i13_a5_a_panic_while_publishing_never_reuses_a_seq_no() {
    use cluster_core::events::TopologyUpdated;
    use std::sync::Mutex;
    let table = MembershipTable::new();
    let node = node_with(
        "n",
        &[("t", table.clone())],
        test_config(Some(member("local", 1))),
        vec![memory("a", 0, "t")],
    )
    .await
    .unwrap();
    node.wait_topology("local", |t| t.members.len() == 1).await;
    let seen: Arc<Mutex<Vec<u64>>> = Arc::default();
    let panicked = Arc::new(AtomicBool::new(false));
    let (seen2, panicked2) = (seen.clone(), panicked.clone());
    let _sub = node
        .system
        .event_stream()
        .subscribe_fn::<TopologyUpdated>(move |u| {
            seen2.lock().unwrap().push(u.topology.seq_no);
            let boom = u.topology.members.iter().any(|m| m.node_id == nid("boom"));
            if boom && !panicked2.swap(true, Ordering::SeqCst) {
                panic!("a subscriber's bug");
            }
        });
    table.upsert(member("boom", 1));
    for _ in 0..500 {
        if panicked.load(Ordering::SeqCst) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(panicked.load(Ordering::SeqCst), "the callback ran");
    table.upsert(member("after", 1));
    node.wait_topology("after the restart", |t| {
        t.members.iter().any(|m| m.node_id == nid("after"))
    })
    .await;
    let seen = seen.lock().unwrap().clone();
    let mut sorted = seen.clone();
    sorted.dedup();
    assert_eq!(sorted.len(), seen.len(), "a seq_no was reused: {seen:?}");
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
    node.shutdown().await;
}
