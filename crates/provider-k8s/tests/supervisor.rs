//! The Kubernetes provider under the ProvisioningSupervisor, against the
//! fake API server over real HTTP on loopback (real clock; every wait is
//! bounded). Each test names the requirement it proves.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "support/rig.rs"]
mod rig;

use cluster_core::{ProviderHealth, ProvisioningStatus};
use fake_kube::{FakeKube, Verb};
use provider_memory::MembershipTable;
use provisioning_actors::ProvisioningConfig;
use rig::*;

/// P3: only Running, Ready, non-terminating, annotated pods of the cluster
/// are members; readiness flips, termination and phase changes reach the
/// topology; and it all runs on one list and one watch (no polling).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p3_pods_turning_ready_unready_terminating_change_the_topology() {
    let fake = FakeKube::start().await.unwrap();
    fake.create_pod(member_pod("a", "node-a", "10.0.0.1", true))
        .unwrap();
    fake.create_pod(member_pod("b", "node-b", "10.0.0.2", false))
        .unwrap();
    // Another cluster's pod, and one of ours without annotations.
    fake.create_pod(
        fake_kube::FakePod::new(NS, "other")
            .label("cluster-provisioning.io/cluster", "other")
            .annotation("cluster-provisioning.io/node-id", "x")
            .annotation("cluster-provisioning.io/port", "1")
            .ip("10.0.0.9")
            .ready(true),
    )
    .unwrap();
    fake.create_pod(
        fake_kube::FakePod::new(NS, "bare")
            .label("cluster-provisioning.io/cluster", CLUSTER)
            .ip("10.0.0.8")
            .ready(true),
    )
    .unwrap();
    let kc = kubeconfig(&fake);
    let node = node(config(None), vec![k8s("k8s", 0, &kc)], None).await;

    let t = node
        .wait_topology("only the ready member", |t| ids(t) == set(&["node-a"]))
        .await;
    assert_eq!(t.members[0].address.to_string(), "10.0.0.1:4000");
    assert_eq!(t.status, ProvisioningStatus::Active);
    // The acceptance check (R1.4) listed once, the watcher listed once; the
    // watch starts right after the first snapshot.
    wait_for("the watch", || fake.open_watches() == 1).await;
    let base = fake.requests();

    fake.set_ready(NS, "b", true).unwrap();
    node.wait_topology("b ready", |t| ids(t) == set(&["node-a", "node-b"]))
        .await;
    fake.set_ready(NS, "a", false).unwrap();
    node.wait_topology("a unready", |t| ids(t) == set(&["node-b"]))
        .await;
    fake.set_ready(NS, "a", true).unwrap();
    node.wait_topology("a ready again", |t| ids(t) == set(&["node-a", "node-b"]))
        .await;
    fake.set_terminating(NS, "b").unwrap();
    node.wait_topology("b terminating", |t| ids(t) == set(&["node-a"]))
        .await;
    fake.set_phase(NS, "a", "Failed").unwrap();
    let t = node
        .wait_topology("no member left", |t| t.members.is_empty())
        .await;
    assert_eq!(t.status, ProvisioningStatus::Empty, "R2.4");

    let r = fake.requests();
    assert_eq!((base.list, base.watch), (2, 1), "{base:?}");
    assert_eq!(r.list, base.list, "no polling: {r:?}");
    assert_eq!(r.watch, base.watch, "the same watch all along: {r:?}");
    assert_eq!(fake.open_watches(), 1);
    node.shutdown().await;
}

/// P3: pods deleted and created while the client was disconnected appear
/// in the topology once the watch resumes from its resource version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p3_changes_during_a_watch_gap_are_seen_after_reconnect() {
    let fake = FakeKube::start().await.unwrap();
    fake.create_pod(member_pod("a", "node-a", "10.0.0.1", true))
        .unwrap();
    fake.create_pod(member_pod("b", "node-b", "10.0.0.2", true))
        .unwrap();
    let kc = kubeconfig(&fake);
    let node = node(config(None), vec![k8s("k8s", 0, &kc)], None).await;
    node.wait_topology("a and b", |t| ids(t) == set(&["node-a", "node-b"]))
        .await;
    let lists = fake.requests().list;

    fake.refuse_watches(true);
    let watches = fake.requests().watch;
    fake.drop_watches();
    wait_for("a refused watch attempt", || {
        fake.requests().watch > watches
    })
    .await;
    fake.delete_pod(NS, "b").unwrap();
    fake.create_pod(member_pod("c", "node-c", "10.0.0.3", true))
        .unwrap();
    fake.refuse_watches(false);

    node.wait_topology("b gone, c there", |t| ids(t) == set(&["node-a", "node-c"]))
        .await;
    assert_eq!(
        fake.requests().list,
        lists,
        "resumed from the resource version, no relist"
    );
    node.shutdown().await;
}

/// P3: when the resource version expired during the gap (410 Gone in the
/// watch), the provider relists and rebuilds membership from the list, so a
/// pod deleted meanwhile disappears.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p3_expired_resource_version_relists_and_drops_pods_deleted_meanwhile() {
    let fake = FakeKube::start().await.unwrap();
    fake.create_pod(member_pod("a", "node-a", "10.0.0.1", true))
        .unwrap();
    fake.create_pod(member_pod("b", "node-b", "10.0.0.2", true))
        .unwrap();
    let kc = kubeconfig(&fake);
    let node = node(config(None), vec![k8s("k8s", 0, &kc)], None).await;
    node.wait_topology("a and b", |t| ids(t) == set(&["node-a", "node-b"]))
        .await;
    let lists = fake.requests().list;

    fake.refuse_watches(true);
    // A watch request accepted just before the refusal may still be
    // setting up: let it, then drop it with the others (otherwise it
    // survives, sees the changes below and no relist is needed: a flaky
    // failure seen under a loaded full run).
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    fake.drop_watches();
    fake.delete_pod(NS, "b").unwrap();
    fake.create_pod(member_pod("c", "node-c", "10.0.0.3", true))
        .unwrap();
    fake.compact();
    fake.refuse_watches(false);

    node.wait_topology("relisted: a and c", |t| {
        ids(t) == set(&["node-a", "node-c"])
    })
    .await;
    assert!(fake.requests().list > lists, "a relist happened");
    let p = node.wait_provider("k8s", "healthy", healthy).await;
    assert_eq!(p.health, ProviderHealth::Healthy);
    node.shutdown().await;
}

/// P3, R4.3, R5.5: a 403 turns the provider Degraded with `provider.auth`;
/// the last topology is kept (never replaced by an empty one); granting the
/// permission again recovers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p3_r5_5_forbidden_degrades_with_auth_code_and_keeps_the_last_topology() {
    let fake = FakeKube::start().await.unwrap();
    fake.create_pod(member_pod("a", "node-a", "10.0.0.1", true))
        .unwrap();
    fake.create_pod(member_pod("b", "node-b", "10.0.0.2", true))
        .unwrap();
    let kc = kubeconfig(&fake);
    let node = node(config(None), vec![k8s("k8s", 0, &kc)], None).await;
    node.wait_topology("a and b", |t| ids(t) == set(&["node-a", "node-b"]))
        .await;

    fake.forbid(Verb::Watch, true);
    fake.forbid(Verb::List, true);
    fake.drop_watches();
    let p = node
        .wait_provider("k8s", "degraded", |p| p.health == ProviderHealth::Degraded)
        .await;
    assert_eq!(p.last_error, Some("provider.auth"));
    let t = node
        .wait_topology("degraded status", |t| {
            t.status == ProvisioningStatus::Degraded
        })
        .await;
    assert_eq!(ids(&t), set(&["node-a", "node-b"]), "last topology kept");

    fake.forbid(Verb::Watch, false);
    fake.forbid(Verb::List, false);
    node.wait_provider("k8s", "healthy again", healthy).await;
    node.wait_topology("active again", |t| t.status == ProvisioningStatus::Active)
        .await;
    node.shutdown().await;
}

/// P3, R4.3, R5.5: a relist that keeps failing (403 on `list`, `watch`
/// still allowed) is retried with a growing delay, not at the initial
/// backoff forever (the watcher's `Init` before every list attempt must not
/// reset it); meanwhile the provider is Degraded with `provider.auth` and
/// the last topology is kept, and granting `list` again recovers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p3_r5_5_failing_relists_back_off_and_degrade_with_auth() {
    let fake = FakeKube::start().await.unwrap();
    fake.create_pod(member_pod("a", "node-a", "10.0.0.1", true))
        .unwrap();
    fake.create_pod(member_pod("b", "node-b", "10.0.0.2", true))
        .unwrap();
    let kc = kubeconfig(&fake);
    let d = k8s("k8s", 0, &kc)
        .with_setting("backoff_initial_ms", "100")
        .with_setting("backoff_max_ms", "1600");
    // R5.2 would suppress the provider after five `provider.auth` errors in
    // a row; this test wants to see it recover.
    let cfg = ProvisioningConfig {
        activation_failure_threshold: 100,
        ..config(None)
    };
    let node = node(cfg, vec![d], None).await;
    node.wait_topology("a and b", |t| ids(t) == set(&["node-a", "node-b"]))
        .await;
    wait_for("the watch", || fake.open_watches() == 1).await;

    // An unrelated write moves the resource version past the watch's; the
    // compaction then expires it, so the restarted watch gets a 410 and
    // the watcher must relist, which is forbidden.
    fake.create_pod(fake_kube::FakePod::new(NS, "other").label("app", "x"))
        .unwrap();
    fake.forbid(Verb::List, true);
    fake.compact();
    let before = fake.request_times(Verb::List).len();
    fake.drop_watches();
    wait_for("five failed relists", || {
        fake.request_times(Verb::List).len() >= before + 5
    })
    .await;
    let times = fake.request_times(Verb::List);
    let gaps: Vec<_> = times[before..before + 5]
        .windows(2)
        .map(|w| w[1] - w[0])
        .collect();
    // 100 ms doubling to 1.6 s (+ up to 25 % jitter): the first list follows
    // the 410 after the initial delay, then ~200, 400, 800, 1600 ms
    // (before the fix: ~100 ms each, forever).
    assert!(gaps.windows(2).all(|g| g[1] > g[0]), "growing: {gaps:?}");
    assert!(gaps[3] >= gaps[0] * 2, "at least doubled: {gaps:?}");

    let p = node
        .wait_provider("k8s", "degraded", |p| p.health == ProviderHealth::Degraded)
        .await;
    assert_eq!(p.last_error, Some("provider.auth"));
    let t = node
        .wait_topology("degraded status", |t| {
            t.status == ProvisioningStatus::Degraded
        })
        .await;
    assert_eq!(ids(&t), set(&["node-a", "node-b"]), "last topology kept");

    fake.forbid(Verb::List, false);
    node.wait_provider("k8s", "healthy again", healthy).await;
    let t = node
        .wait_topology("active again", |t| t.status == ProvisioningStatus::Active)
        .await;
    assert_eq!(ids(&t), set(&["node-a", "node-b"]));
    node.shutdown().await;
}

/// P3, R4.3: an API server that accepts watches and then goes silent (no
/// events, no bookmarks, no end at `timeoutSeconds`) turns the provider
/// Degraded: keepalives stop once it has been silent for `watch_timeout_s`
/// + 3 s; the last topology is kept; an answer brings it back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p3_r4_3_silent_api_server_degrades_and_keeps_the_last_topology() {
    let fake = FakeKube::start().await.unwrap();
    fake.create_pod(member_pod("a", "node-a", "10.0.0.1", true))
        .unwrap();
    let kc = kubeconfig(&fake);
    let d = k8s("k8s", 0, &kc).with_setting("watch_timeout_s", "1");
    let node = node(config(None), vec![d], None).await;
    node.wait_topology("a", |t| ids(t) == set(&["node-a"]))
        .await;
    node.wait_provider("k8s", "healthy", healthy).await;

    fake.stall_watches(true);
    let p = node
        .wait_provider("k8s", "degraded", |p| p.health == ProviderHealth::Degraded)
        .await;
    assert_eq!(p.last_error, Some("provider.connectivity"));
    let t = node
        .wait_topology("degraded status", |t| {
            t.status == ProvisioningStatus::Degraded
        })
        .await;
    assert_eq!(ids(&t), set(&["node-a"]), "last topology kept");

    fake.stall_watches(false);
    node.wait_provider("k8s", "healthy again", healthy).await;
    node.wait_topology("active again", |t| t.status == ProvisioningStatus::Active)
        .await;
    node.shutdown().await;
}

/// P3, R2.5, A4: the API going down fails over to the in-memory standby;
/// when it comes back the Kubernetes provider is healthy again and takes
/// over after the stability window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p3_r2_5_api_down_fails_over_to_memory_and_recovers() {
    let fake = FakeKube::start().await.unwrap();
    fake.create_pod(member_pod("a", "node-a", "10.0.0.1", true))
        .unwrap();
    let kc = kubeconfig(&fake);
    let standby = MembershipTable::new();
    standby.upsert(local_member("standby-view", 4000, 1));
    let mem = cluster_core::ProviderDescriptor::new(pid("standby"), "memory", 1)
        .with_setting("table", "standby")
        .with_setting("keepalive_ms", "200");
    let node = node(config(None), vec![k8s("k8s", 0, &kc), mem], Some(standby)).await;
    node.wait_topology("k8s active", |t| {
        t.active_provider == Some(pid("k8s")) && ids(t) == set(&["node-a"])
    })
    .await;

    fake.stop().await;
    let t = node
        .wait_topology("failed over", |t| t.active_provider == Some(pid("standby")))
        .await;
    assert_eq!(ids(&t), set(&["standby-view"]));
    let p = node.provider("k8s").await;
    assert_ne!(p.health, ProviderHealth::Healthy);

    fake.start_again().await.unwrap();
    node.wait_topology("failed back", |t| {
        t.active_provider == Some(pid("k8s")) && ids(t) == set(&["node-a"])
    })
    .await;
    node.shutdown().await;
}

/// P3: the local pod labels and annotates itself (merge patch) on start,
/// becomes a member at its pod IP, and removes the label and annotations on
/// graceful leave (drain).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p3_self_registration_patches_the_pod_and_drain_removes_it() {
    let fake = FakeKube::start().await.unwrap();
    fake.create_pod(
        fake_kube::FakePod::new(NS, "node-0")
            .ip("10.0.0.10")
            .ready(true),
    )
    .unwrap();
    let kc = kubeconfig(&fake);
    let local = local_member("local-node", 4100, 42).with_role("web");
    let d = k8s("k8s", 0, &kc).with_setting("pod_name", "node-0");
    let node = node(config(Some(local)), vec![d], None).await;

    let t = node
        .wait_topology("registered", |t| ids(t) == set(&["local-node"]))
        .await;
    assert_eq!(t.members[0].address.to_string(), "10.0.0.10:4100");
    assert_eq!(t.members[0].incarnation, 42);
    let pod = fake.pod(NS, "node-0").unwrap();
    let ann = &pod["metadata"]["annotations"];
    assert_eq!(ann["cluster-provisioning.io/node-id"], "local-node");
    assert_eq!(ann["cluster-provisioning.io/port"], "4100");
    assert_eq!(ann["cluster-provisioning.io/incarnation"], "42");
    assert_eq!(ann["cluster-provisioning.io/roles"], "web");
    assert_eq!(
        pod["metadata"]["labels"]["cluster-provisioning.io/cluster"],
        CLUSTER
    );

    let results = node.handle.drain().await.unwrap();
    assert!(results.iter().all(|(_, r)| r.is_ok()), "{results:?}");
    let pod = fake.pod(NS, "node-0").unwrap();
    let meta = &pod["metadata"];
    assert!(
        meta["annotations"]
            .get("cluster-provisioning.io/node-id")
            .is_none(),
        "{meta}"
    );
    assert!(
        meta["annotations"]
            .get("cluster-provisioning.io/port")
            .is_none(),
        "{meta}"
    );
    assert!(
        meta["labels"]
            .get("cluster-provisioning.io/cluster")
            .is_none(),
        "{meta}"
    );
    assert!(fake.requests().patch >= 2);
    node.shutdown().await;
}

/// The error and its sources, as a caller prints them (a Display does not
/// repeat its source).
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        next = cause.source();
    }
    s
}

/// R1.4, R1.1: a `kubernetes` provider is accepted only when the API is
/// reachable and `list pods` is permitted; bad settings name the field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r1_4_connectivity_and_list_permission_are_checked_before_acceptance() {
    let fake = FakeKube::start().await.unwrap();
    let kc = kubeconfig(&fake);
    let node = node(config(None), vec![], None).await;

    fake.forbid(Verb::List, true);
    let e = node
        .handle
        .register(k8s("forbidden", 0, &kc))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "provider.auth", "{e}");
    assert!(chain(&e).contains("list pods in namespace \"apps\""), "{e}");
    fake.forbid(Verb::List, false);

    fake.stop().await;
    let e = node.handle.register(k8s("down", 0, &kc)).await.unwrap_err();
    assert!(e.is_connectivity(), "{e}");
    fake.start_again().await.unwrap();

    let e = node
        .handle
        .register(k8s("bad", 0, &kc).with_setting("cluster", "not a label"))
        .await
        .unwrap_err();
    assert!(
        e.is_validation() && e.to_string().contains("settings.cluster"),
        "{e}"
    );
    let e = node
        .handle
        .register(k8s("nofile", 0, &kc).with_setting("kubeconfig", "/nonexistent/kubeconfig"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("settings.kubeconfig"), "{e}");

    node.handle.register(k8s("good", 0, &kc)).await.unwrap();
    node.shutdown().await;
}
