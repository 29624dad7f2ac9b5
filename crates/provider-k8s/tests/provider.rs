//! The Kubernetes provider's watch stream on its own, against the fake API
//! server (real HTTP on loopback, bounded waits).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "support/rig.rs"]
mod rig;

use cluster_core::{ClusterProvider, ProviderError, Snapshot};
use fake_kube::{FakeKube, Verb};
use futures::StreamExt;
use futures::stream::BoxStream;
use provider_k8s::KubernetesKind;
use rig::*;

/// The stream's items, pumped by a task (as the provider actor does), so
/// the watcher runs while the test waits on the fake.
struct Items(tokio::sync::mpsc::UnboundedReceiver<Result<Snapshot, ProviderError>>);

fn pump(mut stream: BoxStream<'static, Result<Snapshot, ProviderError>>) -> Items {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(item) = stream.next().await {
            if tx.send(item).is_err() {
                return;
            }
        }
    });
    Items(rx)
}

fn provider(kc: &tempfile::TempPath, keepalive_ms: &str) -> provider_k8s::KubernetesProvider {
    let d = k8s("k8s", 0, kc).with_setting("keepalive_ms", keepalive_ms);
    KubernetesKind::new().build(&d).unwrap()
}

async fn next(items: &mut Items) -> Result<Snapshot, ProviderError> {
    tokio::time::timeout(WAIT, items.0.recv())
        .await
        .expect("an item in time")
        .expect("the stream goes on")
}

fn node_ids(s: &Snapshot) -> Vec<String> {
    s.members.iter().map(|m| m.node_id.to_string()).collect()
}

/// P3: while healthy and unchanged, the stream re-sends the snapshot every
/// keepalive (the supervisor's sign of life), without any request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p3_keepalive_resends_the_unchanged_snapshot_without_requests() {
    let fake = FakeKube::start().await.unwrap();
    fake.create_pod(member_pod("a", "node-a", "10.0.0.1", true))
        .unwrap();
    let kc = kubeconfig(&fake);
    let p = provider(&kc, "50");
    let mut items = pump(p.watch());
    let first = next(&mut items).await.unwrap();
    assert_eq!(node_ids(&first), vec!["node-a"]);
    // The first snapshot follows the list; the watch starts right after.
    wait_for("the watch", || fake.open_watches() == 1).await;
    let before = fake.requests();
    for _ in 0..3 {
        let again = next(&mut items).await.unwrap();
        assert_eq!(again.members, first.members);
        assert!(again.observed_at >= first.observed_at);
    }
    assert_eq!(fake.requests(), before, "keepalives need no request");
}

/// P3, R5.5: a 403 on the watch is an `Auth` error naming the missing
/// permission; while it lasts the stream sends errors only (no keepalive
/// that would hide the failure); granting it again brings snapshots back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p3_forbidden_watch_is_an_auth_error_naming_the_permission() {
    let fake = FakeKube::start().await.unwrap();
    fake.create_pod(member_pod("a", "node-a", "10.0.0.1", true))
        .unwrap();
    let kc = kubeconfig(&fake);
    let p = provider(&kc, "50");
    let mut items = pump(p.watch());
    next(&mut items).await.unwrap();

    fake.forbid(Verb::Watch, true);
    fake.drop_watches();
    let mut errors = Vec::new();
    while errors.len() < 3 {
        match next(&mut items).await {
            Ok(s) if errors.is_empty() => assert_eq!(node_ids(&s), vec!["node-a"]),
            Ok(s) => panic!("a snapshot between errors: {s:?}"),
            Err(e) => errors.push(e),
        }
    }
    for e in &errors {
        assert_eq!(e.code(), "provider.auth", "{e}");
        assert!(
            e.to_string()
                .contains("missing permission: watch pods in namespace \"apps\""),
            "{e}"
        );
    }

    fake.forbid(Verb::Watch, false);
    loop {
        if let Ok(s) = next(&mut items).await {
            assert_eq!(node_ids(&s), vec!["node-a"]);
            break;
        }
    }
}

/// P3: bookmarks move the watch's resource version forward, so a watch
/// restarted after a compaction resumes without a 410 and without a relist.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p3_bookmarks_let_a_restarted_watch_resume_after_compaction() {
    let fake = FakeKube::start().await.unwrap();
    fake.create_pod(member_pod("a", "node-a", "10.0.0.1", true))
        .unwrap();
    let kc = kubeconfig(&fake);
    let p = provider(&kc, "5000");
    let mut items = pump(p.watch());
    next(&mut items).await.unwrap();
    // Unrelated writes move the resource version past the list's.
    for i in 0..3 {
        fake.create_pod(fake_kube::FakePod::new(NS, format!("other-{i}")).label("app", "x"))
            .unwrap();
    }
    wait_for("the watch", || fake.open_watches() == 1).await;
    let sent = fake.bookmarks_sent();
    fake.send_bookmarks();
    wait_for("a bookmark sent", || fake.bookmarks_sent() > sent).await;
    fake.compact();
    let lists = fake.requests().list;
    fake.drop_watches();
    fake.create_pod(member_pod("b", "node-b", "10.0.0.2", true))
        .unwrap();
    loop {
        let s = next(&mut items).await.unwrap();
        if node_ids(&s) == vec!["node-a", "node-b"] {
            break;
        }
    }
    assert_eq!(
        fake.requests().list,
        lists,
        "resumed from the bookmark, no relist"
    );
}

/// P3: the API going away mid-watch gives `Err` items (connectivity or a
/// broken stream), never an empty snapshot; it coming back resumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p3_api_down_gives_errors_never_an_empty_snapshot() {
    let fake = FakeKube::start().await.unwrap();
    fake.create_pod(member_pod("a", "node-a", "10.0.0.1", true))
        .unwrap();
    let kc = kubeconfig(&fake);
    let p = provider(&kc, "50");
    let mut items = pump(p.watch());
    next(&mut items).await.unwrap();
    fake.stop().await;
    let mut codes = Vec::new();
    while codes.len() < 3 {
        match next(&mut items).await {
            Ok(s) => assert_eq!(node_ids(&s), vec!["node-a"], "never emptied"),
            Err(e) => codes.push(e.code()),
        }
    }
    assert!(codes.contains(&"provider.connectivity"), "{codes:?}");
    fake.start_again().await.unwrap();
    fake.create_pod(member_pod("b", "node-b", "10.0.0.2", true))
        .unwrap();
    loop {
        if let Ok(s) = next(&mut items).await
            && s.members.len() == 2
        {
            break;
        }
    }
}

/// P3, R5.5: an API server that accepts watches and then sends nothing
/// (not even their end at `timeoutSeconds`) must not look healthy: once it
/// has been silent for `watch_timeout_s` + 3 s the keepalives stop and the
/// stream sends `provider.connectivity` errors, even though the watcher
/// keeps reconnecting (and each new watch is accepted); when the server
/// answers again, snapshots come back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p3_r5_5_stalled_watches_stop_keepalives_and_report_connectivity_errors() {
    let fake = FakeKube::start().await.unwrap();
    fake.create_pod(member_pod("a", "node-a", "10.0.0.1", true))
        .unwrap();
    let kc = kubeconfig(&fake);
    let d = k8s("k8s", 0, &kc)
        .with_setting("keepalive_ms", "50")
        .with_setting("watch_timeout_s", "1");
    let p = KubernetesKind::new().build(&d).unwrap();
    let mut items = pump(p.watch());
    next(&mut items).await.unwrap();
    wait_for("the watch", || fake.open_watches() == 1).await;

    fake.stall_watches(true);
    let watches = fake.requests().watch;
    // Bounded: before the fix, keepalives went on for good.
    let errors = tokio::time::timeout(WAIT, async {
        let mut errors = Vec::new();
        while errors.len() < 3 {
            match next(&mut items).await {
                Ok(s) if errors.is_empty() => assert_eq!(node_ids(&s), vec!["node-a"]),
                Ok(s) => panic!("a keepalive between silence errors: {s:?}"),
                Err(e) => errors.push(e),
            }
        }
        errors
    })
    .await
    .expect("silence errors in time");
    for e in &errors {
        assert_eq!(e.code(), "provider.connectivity", "{e}");
        assert!(
            e.to_string().contains("no answer from the API server"),
            "{e}"
        );
    }
    // Still only errors after the watcher reconnected (to an accepted,
    // silent watch): an accepted watch is no proof of life.
    wait_for("a reconnect to the stalled server", || {
        fake.requests().watch > watches
    })
    .await;
    for _ in 0..3 {
        let e = next(&mut items)
            .await
            .expect_err("no keepalive while silent");
        assert_eq!(e.code(), "provider.connectivity", "{e}");
    }

    fake.stall_watches(false);
    fake.create_pod(member_pod("b", "node-b", "10.0.0.2", true))
        .unwrap();
    loop {
        if let Ok(s) = next(&mut items).await
            && node_ids(&s) == vec!["node-a", "node-b"]
        {
            break;
        }
    }
}

/// R1.4: the connectivity check needs the API and `list pods`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r1_4_connectivity_check_reports_auth_and_unreachable_distinctly() {
    let fake = FakeKube::start().await.unwrap();
    let kc = kubeconfig(&fake);
    let p = provider(&kc, "5000");
    p.check_connectivity().await.unwrap();
    fake.forbid(Verb::List, true);
    let e = p.check_connectivity().await.unwrap_err();
    assert_eq!(e.code(), "provider.auth");
    fake.forbid(Verb::List, false);
    fake.stop().await;
    let e = p.check_connectivity().await.unwrap_err();
    assert_eq!(e.code(), "provider.connectivity", "{e}");
}

/// R1.4, P3: with a local pod name the connectivity check also reads that
/// pod (`get`): a missing pod is `provider.registration` before the
/// provider is accepted, a forbidden `get` is `provider.auth` naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r1_4_connectivity_check_reads_the_local_pod() {
    let fake = FakeKube::start().await.unwrap();
    let kc = kubeconfig(&fake);
    let d = k8s("k8s", 0, &kc).with_setting("pod_name", "node-0");
    let p = KubernetesKind::new().build(&d).unwrap();
    let e = p.check_connectivity().await.unwrap_err();
    assert_eq!(e.code(), "provider.registration", "{e}");
    assert!(e.to_string().contains("\"node-0\""), "{e}");
    fake.create_pod(fake_kube::FakePod::new(NS, "node-0"))
        .unwrap();
    let gets = fake.requests().get;
    p.check_connectivity().await.unwrap();
    assert_eq!(fake.requests().get, gets + 1);
    fake.forbid(Verb::Get, true);
    let e = p.check_connectivity().await.unwrap_err();
    assert_eq!(e.code(), "provider.auth");
    assert!(
        e.to_string().contains("get pods in namespace \"apps\""),
        "{e}"
    );
}

/// A role with a comma cannot be written to the comma-separated roles
/// annotation: registration refuses it with a clear error (nothing is
/// patched).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p3_roles_with_commas_are_refused_at_registration() {
    let fake = FakeKube::start().await.unwrap();
    fake.create_pod(fake_kube::FakePod::new(NS, "node-0"))
        .unwrap();
    let kc = kubeconfig(&fake);
    let d = k8s("k8s", 0, &kc).with_setting("pod_name", "node-0");
    let p = KubernetesKind::new().build(&d).unwrap();
    let me = local_member("x", 1, 1).with_role("a,b");
    let e = p.register(&me).await.unwrap_err();
    assert_eq!(e.code(), "provider.registration");
    assert!(e.to_string().contains("\"a,b\""), "{e}");
    assert_eq!(fake.requests().patch, 0);
}

/// P3: registering without a local pod name is a clear registration error,
/// and such a provider says it cannot register.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p3_without_pod_name_the_provider_does_not_register() {
    let fake = FakeKube::start().await.unwrap();
    let kc = kubeconfig(&fake);
    let p = provider(&kc, "5000");
    assert!(!p.capabilities().register);
    let e = p.register(&local_member("x", 1, 1)).await.unwrap_err();
    assert_eq!(e.code(), "provider.registration");
    assert!(e.to_string().contains("pod_name"), "{e}");
}

/// P3: a 403 on the registration patch is `provider.auth` naming `patch`;
/// a missing pod is `provider.registration`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p3_registration_errors_name_the_cause() {
    let fake = FakeKube::start().await.unwrap();
    let kc = kubeconfig(&fake);
    let d = k8s("k8s", 0, &kc).with_setting("pod_name", "node-0");
    let p = KubernetesKind::new().build(&d).unwrap();
    let me = local_member("x", 1, 1);
    let e = p.register(&me).await.unwrap_err();
    assert_eq!(e.code(), "provider.registration");
    assert!(e.to_string().contains("not found"), "{e}");
    p.deregister(&me).await.unwrap();
    fake.create_pod(fake_kube::FakePod::new(NS, "node-0"))
        .unwrap();
    fake.forbid(Verb::Patch, true);
    let e = p.register(&me).await.unwrap_err();
    assert_eq!(e.code(), "provider.auth");
    assert!(
        e.to_string().contains("patch pods in namespace \"apps\""),
        "{e}"
    );
}

/// A client configuration given to the kind (how embedding code or tests
/// point it at an API server without a kubeconfig file) is used, and only
/// its URL shows in `Debug`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_config_given_to_the_kind_is_used() {
    let fake = FakeKube::start().await.unwrap();
    fake.create_pod(member_pod("a", "node-a", "10.0.0.1", true))
        .unwrap();
    let config = kube::Config::new(fake.url().parse().unwrap());
    let kind = KubernetesKind::new().with_client_config(config);
    assert!(format!("{kind:?}").contains(&fake.url()));
    let d = cluster_core::ProviderDescriptor::new(pid("k8s"), "kubernetes", 0)
        .with_setting("cluster", CLUSTER)
        .with_setting("namespace", NS);
    let p = kind.build(&d).unwrap();
    p.check_connectivity().await.unwrap();
    let mut items = pump(p.watch());
    assert_eq!(node_ids(&next(&mut items).await.unwrap()), vec!["node-a"]);
}
