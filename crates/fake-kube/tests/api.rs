//! The fake API server through standard clients: `kube`'s `Client` (list,
//! watch, patch, discovery) and, when installed, `kubectl`. Real HTTP on
//! loopback; every wait is bounded.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use fake_kube::{FakeKube, FakePod, Verb};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, Patch, PatchParams, WatchEvent, WatchParams};
use kube::{Api, Client};
use serde_json::json;

const NS: &str = "apps";
const WAIT: Duration = Duration::from_secs(10);

fn client(fake: &FakeKube) -> Client {
    let config = kube::Config::new(fake.url().parse().unwrap());
    Client::try_from(config).unwrap()
}

fn pods(fake: &FakeKube) -> Api<Pod> {
    Api::namespaced(client(fake), NS)
}

async fn seed(fake: &FakeKube, n: usize) {
    for i in 0..n {
        fake.create_pod(
            FakePod::new(NS, format!("p-{i}"))
                .label("app", if i % 2 == 0 { "even" } else { "odd" })
                .ip(format!("10.0.0.{i}"))
                .ready(true),
        )
        .unwrap();
    }
    fake.create_pod(FakePod::new("elsewhere", "x").label("app", "even"))
        .unwrap();
}

/// Lists page with `limit` and `continue`, report `remainingItemCount`,
/// select by label, and stay in their namespace.
#[tokio::test]
async fn lists_paginate_and_select_by_label() {
    let fake = FakeKube::start().await.unwrap();
    seed(&fake, 5).await;
    let api = pods(&fake);
    let first = api.list(&ListParams::default().limit(2)).await.unwrap();
    assert_eq!(first.items.len(), 2);
    assert_eq!(first.metadata.remaining_item_count, Some(3));
    let token = first.metadata.continue_.clone().unwrap();
    let second = api
        .list(&ListParams::default().limit(2).continue_token(&token))
        .await
        .unwrap();
    let third = api
        .list(
            &ListParams::default()
                .limit(2)
                .continue_token(second.metadata.continue_.as_ref().unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(third.items.len(), 1);
    assert!(third.metadata.continue_.is_none());
    assert_eq!(
        first.metadata.resource_version, third.metadata.resource_version,
        "pages carry the list's resource version"
    );
    let even = api
        .list(&ListParams::default().labels("app=even"))
        .await
        .unwrap();
    assert_eq!(
        even.items.len(),
        3,
        "p-0, p-2, p-4; not the other namespace's"
    );
    let none = api
        .list(&ListParams::default().labels("app in (none)"))
        .await
        .unwrap();
    assert!(none.items.is_empty());
    // A continue token older than the compaction point is 410 Expired.
    fake.delete_pod(NS, "p-4").unwrap();
    fake.compact();
    let e = api
        .list(&ListParams::default().limit(2).continue_token(&token))
        .await
        .unwrap_err();
    assert!(
        matches!(e, kube::Error::Api(ref s) if s.code == 410 && s.reason == "Expired"),
        "{e:?}"
    );
}

/// A watch from a list's resource version gets ADDED / MODIFIED / DELETED
/// in order; a pod leaving the selector is DELETED for that watch.
#[tokio::test]
async fn watches_stream_changes_in_order() {
    let fake = FakeKube::start().await.unwrap();
    seed(&fake, 2).await;
    let api = pods(&fake);
    let list = api
        .list(&ListParams::default().labels("app=even"))
        .await
        .unwrap();
    let rv = list.metadata.resource_version.unwrap();
    let mut stream = api
        .watch(&WatchParams::default().labels("app=even").timeout(30), &rv)
        .await
        .unwrap()
        .boxed();
    fake.create_pod(FakePod::new(NS, "p-9").label("app", "even"))
        .unwrap();
    fake.set_ready(NS, "p-0", false).unwrap();
    fake.update_pod(NS, "p-9", |p| p["metadata"]["labels"]["app"] = json!("odd"))
        .unwrap();
    fake.delete_pod(NS, "p-0").unwrap();
    let mut seen = Vec::new();
    while seen.len() < 4 {
        let ev = tokio::time::timeout(WAIT, stream.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        seen.push(match ev {
            WatchEvent::Added(p) => format!("ADDED {}", p.metadata.name.unwrap()),
            WatchEvent::Modified(p) => format!("MODIFIED {}", p.metadata.name.unwrap()),
            WatchEvent::Deleted(p) => format!("DELETED {}", p.metadata.name.unwrap()),
            other => panic!("unexpected {other:?}"),
        });
    }
    assert_eq!(
        seen,
        vec!["ADDED p-9", "MODIFIED p-0", "DELETED p-9", "DELETED p-0"]
    );
}

/// A watch from a compacted resource version gets an in-stream ERROR event
/// with a 410 Expired Status, then the stream ends.
#[tokio::test]
async fn watch_from_an_expired_resource_version_gets_410_in_the_stream() {
    let fake = FakeKube::start().await.unwrap();
    seed(&fake, 1).await;
    let api = pods(&fake);
    let rv = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    fake.create_pod(FakePod::new(NS, "later")).unwrap();
    fake.compact();
    let mut stream = api
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    let ev = tokio::time::timeout(WAIT, stream.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    match ev {
        WatchEvent::Error(s) => {
            assert_eq!(s.code, 410);
            assert_eq!(s.reason, "Expired");
        }
        other => panic!("expected a 410 ERROR event, got {other:?}"),
    }
    let end = tokio::time::timeout(WAIT, stream.next()).await.unwrap();
    assert!(end.is_none(), "the watch ends after the error");
}

/// `restore_backup` changes every pod in one step under one new resource
/// version, expires the earlier ones (a watch from them gets 410) and ends
/// the open watches.
#[tokio::test]
async fn a_restored_backup_expires_old_versions_and_ends_watches() {
    let fake = FakeKube::start().await.unwrap();
    seed(&fake, 2).await;
    let api = pods(&fake);
    let rv = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut open = api
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    fake.restore_backup(|p| {
        p["metadata"]["labels"]
            .as_object_mut()
            .unwrap()
            .remove("app");
    });
    // (It may send what it had before it ends.)
    tokio::time::timeout(WAIT, async { while open.next().await.is_some() {} })
        .await
        .expect("open watches end");
    let listed = api.list(&ListParams::default()).await.unwrap();
    assert_eq!(listed.items.len(), 2);
    assert!(listed.items.iter().all(|p| {
        p.metadata
            .labels
            .as_ref()
            .is_none_or(|l| !l.contains_key("app"))
    }));
    let versions: Vec<_> = listed
        .items
        .iter()
        .map(|p| p.metadata.resource_version.clone().unwrap())
        .collect();
    assert_eq!(versions[0], versions[1], "one step");
    let mut old = api
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    match tokio::time::timeout(WAIT, old.try_next()).await.unwrap() {
        Ok(Some(WatchEvent::Error(s))) => assert_eq!(s.code, 410),
        other => panic!("expected a 410 ERROR event, got {other:?}"),
    }
}

/// Bookmarks (kube asks for them by default) carry the current resource
/// version; `timeoutSeconds` ends the watch.
#[tokio::test]
async fn bookmarks_and_watch_timeouts() {
    let fake = FakeKube::start().await.unwrap();
    seed(&fake, 1).await;
    let api = pods(&fake);
    let mut stream = api
        .watch(&WatchParams::default().timeout(2), "0")
        .await
        .unwrap()
        .boxed();
    let first = tokio::time::timeout(WAIT, stream.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        matches!(first, WatchEvent::Added(_)),
        "state first: {first:?}"
    );
    fake.send_bookmarks();
    let bm = tokio::time::timeout(WAIT, stream.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    match bm {
        WatchEvent::Bookmark(b) => assert_eq!(
            b.metadata.resource_version,
            fake.resource_version().to_string()
        ),
        other => panic!("expected a bookmark, got {other:?}"),
    }
    let end = tokio::time::timeout(WAIT, stream.next()).await.unwrap();
    assert!(end.is_none(), "timeoutSeconds=2 ended the watch");
    assert_eq!(fake.open_watches(), 0);
}

/// Merge patches change metadata; the API's errors are Status objects:
/// 404, 403 naming the verb, 422 for an invalid label, 409 for a stale
/// resourceVersion, 415 for an unsupported patch type.
#[tokio::test]
async fn merge_patches_and_status_errors() {
    let fake = FakeKube::start().await.unwrap();
    seed(&fake, 1).await;
    let rv = fake.resource_version();
    fake.set_ready(NS, "p-0", true).unwrap();
    assert_eq!(
        fake.resource_version(),
        rv,
        "an unchanged condition writes nothing"
    );
    let api = pods(&fake);
    let patched = api
        .patch(
            "p-0",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"labels": {"role": "leader"}, "annotations": {"a/b": "c"}}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(patched.metadata.labels.unwrap()["role"], "leader");
    let removed = api
        .patch(
            "p-0",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"role": null}}})),
        )
        .await
        .unwrap();
    assert!(!removed.metadata.labels.unwrap().contains_key("role"));
    let code = |e: kube::Error| match e {
        kube::Error::Api(s) => (s.code, s.reason, s.message),
        other => panic!("not an API error: {other:?}"),
    };
    let (c, r, _) = code(api.get("nope").await.unwrap_err());
    assert_eq!((c, r.as_str()), (404, "NotFound"));
    let (c, r, _) = code(
        api.patch(
            "p-0",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"bad": "not valid!"}}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!((c, r.as_str()), (422, "Invalid"));
    let (c, r, _) = code(
        api.patch(
            "p-0",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"resourceVersion": "1", "labels": {"x": "y"}}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!((c, r.as_str()), (409, "Conflict"));
    let (c, _, _) = code(
        api.patch("p-0", &PatchParams::apply("me"), &Patch::Apply(json!({})))
            .await
            .unwrap_err(),
    );
    assert_eq!(c, 415);
    fake.forbid(Verb::List, true);
    let (c, r, m) = code(api.list(&ListParams::default()).await.unwrap_err());
    assert_eq!((c, r.as_str()), (403, "Forbidden"));
    assert!(m.contains("cannot list resource \"pods\""), "{m}");
    assert!(m.contains("in the namespace \"apps\""), "{m}");
}

/// Discovery answers what clients ask before anything else.
#[tokio::test]
async fn discovery_endpoints() {
    let fake = FakeKube::start().await.unwrap();
    let c = client(&fake);
    let v = c.apiserver_version().await.unwrap();
    assert_eq!(v.major, "1");
    let core = c.list_core_api_versions().await.unwrap();
    assert_eq!(core.versions, vec!["v1"]);
    let res = c.list_core_api_resources("v1").await.unwrap();
    assert!(
        res.resources
            .iter()
            .any(|r| r.name == "pods" && r.namespaced)
    );
    assert!(c.list_api_groups().await.unwrap().groups.is_empty());
}

/// Faults: a slowed answer still arrives; a stopped server refuses
/// connections and comes back with its state.
#[tokio::test]
async fn slow_answers_and_stop_start() {
    let fake = FakeKube::start().await.unwrap();
    seed(&fake, 2).await;
    let api = pods(&fake);
    fake.set_delay(Duration::from_millis(50));
    assert_eq!(
        api.list(&ListParams::default()).await.unwrap().items.len(),
        2
    );
    fake.set_delay(Duration::ZERO);
    fake.stop().await;
    assert!(api.list(&ListParams::default()).await.is_err());
    fake.start_again().await.unwrap();
    assert_eq!(
        api.list(&ListParams::default()).await.unwrap().items.len(),
        2
    );
}

/// Any standard client: `kubectl get pods` and `kubectl label` work against
/// the fake through the kubeconfig it prints. Needs `kubectl` on PATH; when
/// it is missing, the test says so and checks nothing, unless
/// `CI_REQUIRE_KUBECTL=1` makes that a failure (see the README).
#[tokio::test]
async fn kubectl_get_and_label_pods() {
    let Ok(out) = std::process::Command::new("kubectl")
        .args(["version", "--client"])
        .output()
    else {
        assert!(
            std::env::var("CI_REQUIRE_KUBECTL").as_deref() != Ok("1"),
            "CI_REQUIRE_KUBECTL=1 but kubectl is not installed"
        );
        eprintln!("kubectl not installed: skipping the kubectl check");
        return;
    };
    assert!(out.status.success());
    let fake = FakeKube::start().await.unwrap();
    seed(&fake, 2).await;
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("config");
    std::fs::write(&kc, fake.kubeconfig(NS)).unwrap();
    let kubectl = |args: &'static [&'static str]| {
        let mut cmd = tokio::process::Command::new("kubectl");
        cmd.env("KUBECONFIG", &kc)
            .arg("--cache-dir")
            .arg(dir.path().join("cache"))
            .args(args);
        async move {
            let out = tokio::time::timeout(WAIT, cmd.output())
                .await
                .unwrap()
                .unwrap();
            assert!(
                out.status.success(),
                "kubectl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap()
        }
    };
    let table = kubectl(&["get", "pods"]).await;
    assert!(
        table.contains("p-0") && table.contains("p-1") && table.contains("Running"),
        "{table}"
    );
    let names = kubectl(&["get", "pods", "-l", "app=odd", "-o", "name"]).await;
    assert_eq!(names.trim(), "pod/p-1");
    kubectl(&["label", "pod", "p-0", "tier=front"]).await;
    assert_eq!(
        fake.pod(NS, "p-0").unwrap()["metadata"]["labels"]["tier"],
        "front"
    );
}

/// `stall_watches`: a watch is accepted (status and headers) and then gets
/// nothing, not even its end at `timeoutSeconds`; `drop_watches` still ends
/// it, and new watches work again once the fault is cleared.
#[tokio::test]
async fn stalled_watches_are_accepted_and_then_silent() {
    let fake = FakeKube::start().await.unwrap();
    seed(&fake, 1).await;
    let api = pods(&fake);
    fake.stall_watches(true);
    let mut stream = tokio::time::timeout(WAIT, api.watch(&WatchParams::default().timeout(1), "0"))
        .await
        .expect("the stalled watch is accepted in time")
        .unwrap()
        .boxed();
    assert_eq!(fake.open_watches(), 1);
    // Past its one-second timeout it has neither sent its state nor ended.
    let nothing = tokio::time::timeout(Duration::from_secs(2), stream.next()).await;
    assert!(nothing.is_err(), "a stalled watch sent {nothing:?}");
    fake.drop_watches();
    let end = tokio::time::timeout(WAIT, stream.next()).await.unwrap();
    assert!(end.is_none(), "drop_watches ends a stalled watch");

    fake.stall_watches(false);
    let mut stream = api
        .watch(&WatchParams::default().timeout(5), "0")
        .await
        .unwrap()
        .boxed();
    let first = tokio::time::timeout(WAIT, stream.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(matches!(first, WatchEvent::Added(_)), "{first:?}");
}

/// An absurd `timeoutSeconds` is capped instead of overflowing (which
/// would panic the connection's task), and `request_times` records when
/// each request of a verb arrived.
#[tokio::test]
async fn huge_watch_timeouts_are_capped_and_request_times_are_logged() {
    let fake = FakeKube::start().await.unwrap();
    seed(&fake, 1).await;
    let client = client(&fake);
    let req = http::Request::get(format!(
        "/api/v1/namespaces/{NS}/pods?watch=true&timeoutSeconds={}",
        u64::MAX
    ))
    .body(Vec::new())
    .unwrap();
    let mut events = tokio::time::timeout(WAIT, client.request_events::<Pod>(req))
        .await
        .unwrap()
        .unwrap()
        .boxed();
    let first = tokio::time::timeout(WAIT, events.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(matches!(first, WatchEvent::Added(_)), "{first:?}");
    assert_eq!(fake.open_watches(), 1);
    let api = pods(&fake);
    api.list(&ListParams::default()).await.unwrap();
    api.list(&ListParams::default()).await.unwrap();
    let lists = fake.request_times(Verb::List);
    assert_eq!(lists.len(), 2);
    assert!(lists[0] <= lists[1]);
    assert_eq!(fake.request_times(Verb::Watch).len(), 1);
    assert!(fake.request_times(Verb::Patch).is_empty());
}
