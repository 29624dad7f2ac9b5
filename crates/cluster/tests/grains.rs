//! Grains an application can build on (issue 18): lifecycle hooks, state
//! that survives graceful moves (join, leave) and crashes through a
//! `GrainStorage`, and bad input (storage down, a state that no longer
//! decodes, another schema, a deactivation over its deadline, a second
//! activation's conflicting write). Three nodes in one process over real
//! TCP on 127.0.0.1, each its own `ActorSystem`. Every wait is bounded.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cluster::grain::{
    DeactivationReason, Grain, GrainContext, GrainError, GrainOptions, PersistentState,
};
use cluster_core::{GrainKey, GrainStorage, MemoryGrainStorage, StoredState};
use support::nodes::*;

const ORDERS: usize = 10;

/// An order: a list of items, saved either on every request
/// (write-through) or only when it is deactivated (which proves that a new
/// owner waits for the old owner's deactivation before it loads).
struct Order {
    items: PersistentState<Vec<String>>,
    write_through: bool,
    log: Arc<Mutex<Vec<String>>>,
    slow_deactivate: Option<Duration>,
}

impl Grain for Order {
    type Request = Option<String>;
    type Response = Result<Vec<String>, String>;

    async fn on_activate(&mut self, ctx: &GrainContext) -> Result<(), GrainError> {
        self.items.load(ctx).await?;
        self.log
            .lock()
            .unwrap()
            .push(format!("activate {}", ctx.id()));
        Ok(())
    }

    async fn handle(&mut self, item: Option<String>) -> Self::Response {
        if let Some(item) = item {
            self.items.get_mut().push(item);
            if self.write_through {
                self.items.save().await.map_err(|e| e.code().to_owned())?;
            }
        }
        Ok(self.items.get().clone())
    }

    async fn on_deactivate(&mut self, reason: DeactivationReason) -> Result<(), GrainError> {
        if let Some(d) = self.slow_deactivate {
            tokio::time::sleep(d).await;
        }
        self.log
            .lock()
            .unwrap()
            .push(format!("deactivate {}", reason.as_str()));
        if self.write_through {
            Ok(())
        } else {
            self.items.save().await
        }
    }
}

#[derive(Clone)]
struct Setup {
    storage: MemoryGrainStorage,
    write_through: bool,
    log: Arc<Mutex<Vec<String>>>,
    options: GrainOptions,
    slow_deactivate: Option<Duration>,
}

impl Setup {
    fn new(write_through: bool) -> Self {
        let storage = MemoryGrainStorage::new();
        Self {
            options: GrainOptions::new().storage(storage.clone()),
            storage,
            write_through,
            log: Arc::default(),
            slow_deactivate: None,
        }
    }

    async fn start(&self, backends: &Backends, name: &str) -> TestNode {
        let s = self.clone();
        backends
            .start_with(name, move |b| {
                let s2 = s.clone();
                b.grain_with("order", s.options.clone(), move |_id| Order {
                    items: PersistentState::new(),
                    write_through: s2.write_through,
                    log: s2.log.clone(),
                    slow_deactivate: s2.slow_deactivate,
                })
            })
            .await
    }
}

async fn order(n: &TestNode, id: &str, item: Option<&str>) -> Result<Vec<String>, String> {
    match n
        .cluster
        .request::<Order>("order", id, &item.map(str::to_owned))
        .await
    {
        Ok(r) => r,
        Err(e) => Err(e.code().to_owned()),
    }
}

async fn fill(n: &TestNode) {
    for i in 0..ORDERS {
        for item in ["apple", "pear"] {
            let got = order(n, &format!("o-{i}"), Some(item)).await.unwrap();
            assert_eq!(got.last().map(String::as_str), Some(item));
        }
    }
}

async fn all_orders_intact(n: &TestNode) -> usize {
    let mut intact = 0;
    for i in 0..ORDERS {
        let got = order(n, &format!("o-{i}"), None).await;
        if got == Ok(vec!["apple".to_owned(), "pear".to_owned()]) {
            intact += 1;
        } else {
            eprintln!("o-{i} from {}: {got:?}", n.id);
        }
    }
    intact
}

/// Issue 18: with state saved only in `on_deactivate`, a graceful leave
/// keeps 10 of 10 orders: the leaving node deactivates (saves) every grain
/// before it deregisters, and the new owners load what it saved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g18_state_survives_a_graceful_leave() {
    let b = Backends::new();
    let s = Setup::new(false);
    let (x, y, z) = (
        s.start(&b, "a").await,
        s.start(&b, "b").await,
        s.start(&b, "c").await,
    );
    converge(&[&x, &y, &z], &["a", "b", "c"]).await;
    fill(&x).await;
    z.cluster.leave(Duration::from_secs(5)).await;
    converge(&[&x, &y], &["a", "b"]).await;
    assert_eq!(
        all_orders_intact(&x).await,
        ORDERS,
        "every order kept across the leave"
    );
    assert_eq!(all_orders_intact(&y).await, ORDERS);
    let log = s.log.lock().unwrap().clone();
    assert!(log.iter().any(|l| l == "deactivate leaving"), "{log:?}");
}

/// Issue 18: a join moves grains to the new node; the old owner
/// deactivates (saves) each before the new owner activates (loads) it,
/// even with state saved only on deactivation and a slow deactivation: the
/// new owner asks the previous one to release the grain and waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g18_r3_1_state_survives_a_join_that_moves_grains() {
    let b = Backends::new();
    let mut s = Setup::new(false);
    s.slow_deactivate = Some(Duration::from_millis(300));
    let (x, y) = (s.start(&b, "a").await, s.start(&b, "b").await);
    converge(&[&x, &y], &["a", "b"]).await;
    fill(&x).await;
    let z = s.start(&b, "c").await;
    converge(&[&x, &y, &z], &["a", "b", "c"]).await;
    // Ask from the new node right away: some grains moved to it.
    assert_eq!(
        all_orders_intact(&z).await,
        ORDERS,
        "every order kept across the join"
    );
    let moved = z.cluster.placement().activations().await.unwrap();
    assert!(!moved.is_empty(), "the join moved some orders to c");
    let log = s.log.lock().unwrap().clone();
    assert!(log.iter().any(|l| l == "deactivate hand_off"), "{log:?}");
}

/// Issue 18: after a crash, the next activation loads the last saved state
/// (write-through).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g18_r4_2_state_survives_a_crash_from_storage() {
    let b = Backends::fast_detection();
    let s = Setup::new(true);
    let (x, y, z) = (
        s.start(&b, "a").await,
        s.start(&b, "b").await,
        s.start(&b, "c").await,
    );
    converge(&[&x, &y, &z], &["a", "b", "c"]).await;
    fill(&x).await;
    z.cluster.crash().await;
    eventually("c quarantined or gone", || async {
        !ids(&*x.topology().await).contains("c") && !ids(&*y.topology().await).contains("c")
    })
    .await;
    // Requests in flight to c when it crashed time out; the answers that
    // follow come from the new owners, loaded from storage.
    eventually("every order answers from storage", || async {
        all_orders_intact(&x).await == ORDERS
    })
    .await;
}

/// Issue 18, bad input: a storage that is down fails the activation with
/// `storage.unavailable` (never an empty grain), and works with the saved
/// state once it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g18_a_storage_down_fails_activation_and_never_starts_empty() {
    let b = Backends::new();
    let s = Setup::new(true);
    let x = s.start(&b, "a").await;
    converge(&[&x], &["a"]).await;
    assert_eq!(
        order(&x, "o-1", Some("apple")).await,
        Ok(vec!["apple".to_owned()])
    );
    x.cluster.leave(Duration::from_secs(2)).await;
    let b2 = Backends::new();
    let y = s.start(&b2, "b").await;
    converge(&[&y], &["b"]).await;
    s.storage.set_unavailable(true);
    assert_eq!(
        order(&y, "o-1", None).await,
        Err("storage.unavailable".to_owned())
    );
    s.storage.set_unavailable(false);
    assert_eq!(order(&y, "o-1", None).await, Ok(vec!["apple".to_owned()]));
}

/// Issue 18, bad input: a stored state of another schema version, or one
/// that no longer decodes, fails activation with its code; nothing is
/// silently reset (the stored row is unchanged).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g18_a_state_of_another_schema_or_that_does_not_decode_is_refused() {
    let b = Backends::new();
    let s = Setup::new(true);
    let x = s.start(&b, "a").await;
    converge(&[&x], &["a"]).await;
    let old = StoredState {
        version: 3,
        schema: 2,
        data: vec![1, 2, 3],
    };
    s.storage
        .put_raw(&GrainKey::new(CLUSTER, "order", "v2"), old.clone());
    assert_eq!(
        order(&x, "v2", None).await,
        Err("storage.schema_mismatch".to_owned())
    );
    let garbage = StoredState {
        version: 1,
        schema: 1,
        data: vec![0xc1, 0xff],
    };
    s.storage
        .put_raw(&GrainKey::new(CLUSTER, "order", "bad"), garbage.clone());
    assert_eq!(
        order(&x, "bad", Some("x")).await,
        Err("storage.decode".to_owned())
    );
    assert_eq!(
        s.storage.get_raw(&GrainKey::new(CLUSTER, "order", "v2")),
        Some(old)
    );
    assert_eq!(
        s.storage.get_raw(&GrainKey::new(CLUSTER, "order", "bad")),
        Some(garbage)
    );
}

/// Issue 18, bad input: a second activation of the same grain (what a
/// partition can produce) cannot overwrite the first one's write: the
/// stale writer gets `storage.conflict`.
#[tokio::test]
async fn g18_a_second_activation_s_stale_write_is_a_conflict() {
    let storage = MemoryGrainStorage::new();
    let options = GrainOptions::new().storage(storage.clone());
    let key = GrainKey::new(CLUSTER, "order", "o-1");
    let ctx = GrainContext::new(key.clone(), &options);
    let mut first: PersistentState<Vec<String>> = PersistentState::new();
    let mut second: PersistentState<Vec<String>> = PersistentState::new();
    first.load(&ctx).await.unwrap();
    second.load(&ctx).await.unwrap();
    first.get_mut().push("a".into());
    first.save().await.unwrap();
    second.get_mut().push("b".into());
    let e = second.save().await.unwrap_err();
    assert_eq!(e.code(), "storage.conflict");
    let stored = storage.read(&key).await.unwrap().unwrap();
    let items: Vec<String> = rmp_serde::from_slice(&stored.data).unwrap();
    assert_eq!(items, vec!["a".to_owned()], "the first write stands");
}

/// Issue 18: a deactivation over its deadline is cut off (logged, counted)
/// and the leave still ends in bounded time; an idle activation is
/// deactivated with the reason `idle`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g18_deactivation_deadline_and_idle_timeout() {
    let b = Backends::new();
    let mut s = Setup::new(true);
    s.slow_deactivate = Some(Duration::from_secs(30));
    s.options = s
        .options
        .clone()
        .deactivation_deadline(Duration::from_millis(200))
        .idle_timeout(Duration::from_millis(300));
    let x = s.start(&b, "a").await;
    converge(&[&x], &["a"]).await;
    assert_eq!(order(&x, "idle", Some("x")).await, Ok(vec!["x".to_owned()]));
    eventually("the idle order is deactivated", || async {
        x.cluster
            .placement()
            .activations()
            .await
            .unwrap()
            .is_empty()
    })
    .await;
    // Its deactivation ran (and was cut off at the deadline, before it
    // could log), and the next request activates it again from storage.
    assert_eq!(order(&x, "idle", None).await, Ok(vec!["x".to_owned()]));
    let started = tokio::time::Instant::now();
    x.cluster.leave(Duration::from_secs(5)).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the leave is bounded by the deadline"
    );
    let activations = s
        .log
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.starts_with("activate"))
        .count();
    assert_eq!(activations, 2, "activated, idled out, activated again");
}

/// A grain whose kind is carried by its type.
#[derive(Default)]
struct Visits(u64);

impl Grain for Visits {
    type Request = u64;
    type Response = u64;
    async fn handle(&mut self, add: u64) -> u64 {
        self.0 += add;
        self.0
    }
}

impl cluster::grain::NamedGrain for Visits {
    const KIND: &'static str = "visits";
}

/// Issue 18, an API without traps: the kind comes from the type
/// (`named_grain` / `call`), `ready` and `wait_for_members` replace
/// polling the topology, and the secret is set on the builder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g18_named_grains_ready_wait_for_members_and_the_secret_on_the_builder() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "s3cret\n").unwrap();
    let b = Backends::new();
    let start = |name: &'static str| {
        let secret = secret.clone();
        let b = b.clone();
        async move {
            b.start_with(name, move |builder| {
                builder
                    .secret_file(&secret)
                    .unwrap()
                    .named_grain(GrainOptions::new(), |_| Visits::default())
            })
            .await
        }
    };
    let (x, y) = (start("a").await, start("b").await);
    x.cluster.ready(Duration::from_secs(10)).await.unwrap();
    let t = x
        .cluster
        .wait_for_members(2, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(t.members.len(), 2);
    y.cluster
        .wait_for_members(2, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(x.cluster.call::<Visits>("home", &2).await.unwrap(), 2);
    assert_eq!(
        y.cluster.call::<Visits>("home", &3).await.unwrap(),
        5,
        "one grain, wherever it lives"
    );
    let e = x
        .cluster
        .wait_for_members(3, Duration::from_millis(100))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "provisioning.unavailable");

    std::fs::write(&secret, "\n").unwrap();
    let system = actor_runtime::ActorSystem::new("z");
    let e = cluster::Cluster::builder(&system, CLUSTER, nid("z"))
        .secret_file(&secret)
        .unwrap_err();
    assert!(e.to_string().contains("is empty"), "{e}");
    system.shutdown().await;
}

/// A grain that answers only after a long pause on node `b`.
struct Slow {
    node: String,
}

impl Grain for Slow {
    type Request = ();
    type Response = String;
    async fn handle(&mut self, (): ()) -> String {
        if self.node == "b" {
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
        self.node.clone()
    }
}

/// Regression (found by the leave benchmark): a request in flight to a
/// member that then leaves the topology (here: cut off and quarantined)
/// got no answer and waited out the whole request timeout. It now fails at
/// once as `placement.owner_left` (not retried: it may have run there, and
/// delivery is at most once), and the next request goes to the new owner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g18_a_request_in_flight_to_a_departed_member_is_placed_again() {
    let b = Backends::fast_detection();
    let start = |name: &'static str| {
        let b = b.clone();
        async move {
            b.start_with(name, move |builder| {
                builder.grain("slow", move |_| Slow {
                    node: name.to_owned(),
                })
            })
            .await
        }
    };
    let (x, y) = (start("a").await, start("b").await);
    converge(&[&x, &y], &["a", "b"]).await;
    // A grain owned by b.
    let t = x.topology().await;
    let table = cluster::partition::PartitionTable::from_topology(&t);
    let id = (0..1000)
        .map(|i| format!("s-{i}"))
        .find(|id| {
            table
                .owner("slow", id)
                .is_some_and(|m| m.node_id.as_str() == "b")
        })
        .expect("some id is owned by b");
    let request = {
        let cluster = x.cluster.clone();
        let id = id.clone();
        tokio::spawn(async move { cluster.request::<Slow>("slow", &id, &()).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    b.net.partition(&[nid("a")], &[nid("b")]);
    let answer = request.await.unwrap();
    assert_eq!(
        answer.map_err(|e| e.code().to_owned()),
        Err("placement.owner_left".to_owned())
    );
    assert_eq!(
        x.cluster.request::<Slow>("slow", &id, &()).await.unwrap(),
        "a"
    );
}

/// Issue 18: a member this node cannot authenticate with (another secret)
/// is reported (WARN on the dialing side) and quarantined by the nodes that
/// dial it, so their placement sends its grains to members they can reach
/// instead of failing with `remoting.not_associated`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g18_r4_2_grains_avoid_a_member_this_node_cannot_authenticate_with() {
    let b = Backends::new();
    let with_secret =
        |secret: &'static str| move |builder: cluster::ClusterBuilder| builder.secret(secret);
    let x = b.start_with("a", with_secret("ours")).await;
    let y = b.start_with("b", with_secret("ours")).await;
    let z = b.start_with("c", with_secret("another")).await;
    // a and b dial c (the smaller id dials), are refused, and quarantine it.
    for n in [&x, &y] {
        eventually(&format!("{} quarantines c", n.id), || async {
            let t = n.topology().await;
            t.blocked.iter().any(|m| m.node_id.as_str() == "c")
                && ids(&t) == ["a", "b"].iter().map(|s| (*s).to_owned()).collect()
        })
        .await;
    }
    for i in 0..30 {
        let r = x.request(&format!("g-{i}")).await.unwrap();
        assert_ne!(
            r.node.as_str(),
            "c",
            "g-{i} placed on the member a cannot reach"
        );
    }
    drop(z);
}

/// Issue 18: a topology watch starts with the current topology (nothing
/// published before the subscription is missed) and follows later ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g18_a_topology_watch_starts_with_the_current_topology() {
    let b = Backends::new();
    let x = b.start("a").await;
    x.cluster.ready(Duration::from_secs(10)).await.unwrap();
    // Subscribed after a's topology was published: it is there at once.
    let mut watch = x.cluster.watch_topology().await.unwrap();
    let first = watch.current();
    assert_eq!(ids(&first), ["a".to_owned()].into_iter().collect());
    assert!(first.seq_no > 0);
    let y = b.start("b").await;
    let t = tokio::time::timeout(
        Duration::from_secs(10),
        watch.wait_for(|t| t.members.len() == 2),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(t.seq_no > first.seq_no);
    drop(y);
}

/// A node whose own secret is wrong must not quarantine the healthy
/// members it dials (it has authenticated with nobody: the fault may be its
/// own), or it would own every grain by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g18_r4_2_a_node_with_the_wrong_secret_does_not_quarantine_the_healthy_ones() {
    let b = Backends::new();
    // a has the smallest id: it dials b and c, and is refused.
    let x = b.start_with("a", |c| c.secret("wrong")).await;
    let y = b.start_with("b", |c| c.secret("ours")).await;
    let z = b.start_with("c", |c| c.secret("ours")).await;
    eventually("b and c see three members", || async {
        y.topology().await.members.len() == 3 && z.topology().await.members.len() == 3
    })
    .await;
    // Long enough for several refused dials from a.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let t = x.topology().await;
    assert!(t.blocked.is_empty(), "a quarantined {:?}", t.blocked);
    assert_eq!(t.members.len(), 3);
    drop((y, z));
}
