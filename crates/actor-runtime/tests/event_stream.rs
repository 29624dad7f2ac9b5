//! A2 EventStream scenarios: typed delivery, per-publisher order, removal of
//! stopped subscribers, no loss while alive (also across restarts), a slow
//! subscriber that blocks nobody, and the counted drop policy of bounded
//! mailboxes.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actor_runtime::{
    Actor, ActorRef, ActorSystem, Backoff, Context, HandlerResult, Mailbox, Props, ReplyTo,
    SupervisorStrategy,
};

const T: Duration = Duration::from_secs(10);

#[derive(Clone, Debug, PartialEq)]
struct Seq {
    publisher: u32,
    n: u32,
}

#[derive(Clone, Debug)]
struct Other;

enum Msg {
    Seq(Seq),
    Other,
    Seen(ReplyTo<Vec<Seq>>),
    Block(Arc<tokio::sync::Notify>),
}
impl From<Seq> for Msg {
    fn from(s: Seq) -> Self {
        Msg::Seq(s)
    }
}
impl From<Other> for Msg {
    fn from(_: Other) -> Self {
        Msg::Other
    }
}

/// Records events in a log shared across restarts; panics on `n == panic_at`.
struct Listener {
    log: Arc<Mutex<Vec<Seq>>>,
    others: Arc<AtomicUsize>,
    panic_at: Option<u32>,
}

impl Actor for Listener {
    type Msg = Msg;
    async fn handle(&mut self, msg: Msg, _: &mut Context<Self>) -> HandlerResult {
        match msg {
            Msg::Seq(s) => {
                if Some(s.n) == self.panic_at {
                    self.panic_at = None;
                    panic!("listener fails on {}", s.n);
                }
                self.log.lock().unwrap().push(s);
            }
            Msg::Other => {
                self.others.fetch_add(1, Ordering::SeqCst);
            }
            Msg::Seen(r) => {
                let _ = r.send(self.log.lock().unwrap().clone());
            }
            Msg::Block(n) => n.notified().await,
        }
        Ok(())
    }
}

struct Spawned {
    r: ActorRef<Msg>,
    log: Arc<Mutex<Vec<Seq>>>,
    others: Arc<AtomicUsize>,
}

fn listener(system: &ActorSystem, name: &str, panic_at: Option<u32>, mailbox: Mailbox) -> Spawned {
    let log = Arc::new(Mutex::new(Vec::new()));
    let others = Arc::new(AtomicUsize::new(0));
    let (l, o) = (log.clone(), others.clone());
    let shared_panic = Arc::new(Mutex::new(panic_at));
    let props = Props::new(move || Listener {
        log: l.clone(),
        others: o.clone(),
        // Fail only in the first instance.
        panic_at: shared_panic.lock().unwrap().take(),
    })
    .with_mailbox(mailbox);
    Spawned {
        r: system.spawn_props(name, props).unwrap(),
        log,
        others,
    }
}

async fn wait_for(log: &Arc<Mutex<Vec<Seq>>>, n: usize) {
    for _ in 0..10_000 {
        if log.lock().unwrap().len() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("only {} of {n} events arrived", log.lock().unwrap().len());
}

fn system() -> ActorSystem {
    ActorSystem::builder("es")
        .user_guardian_strategy(SupervisorStrategy::one_for_one().with_backoff(Backoff::none()))
        .build()
        .unwrap()
}

/// A2 typed: a subscriber of one event type receives that type only.
#[tokio::test]
async fn a2_delivery_is_typed() {
    let system = system();
    let a = listener(&system, "a", None, Mailbox::Unbounded);
    let b = listener(&system, "b", None, Mailbox::Unbounded);
    let es = system.event_stream();
    assert!(es.subscribe::<Seq, _>(&a.r));
    assert!(!es.subscribe::<Seq, _>(&a.r), "subscribing twice is once");
    assert!(es.subscribe::<Other, _>(&b.r));
    assert_eq!(es.publish(Seq { publisher: 0, n: 1 }), 1);
    assert_eq!(es.publish(Other), 1);
    assert_eq!(a.r.ask(Msg::Seen, T).await.unwrap().len(), 1);
    let _ = b.r.ask(Msg::Seen, T).await.unwrap();
    assert_eq!(a.others.load(Ordering::SeqCst), 0);
    assert_eq!(b.others.load(Ordering::SeqCst), 1);
    assert!(b.log.lock().unwrap().is_empty());
    system.shutdown().await;
}

/// A2 order: each subscriber sees each publisher's events in publish order,
/// with several publishers racing on a multi-threaded runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a2_each_publishers_events_arrive_in_order() {
    let system = system();
    let subs: Vec<_> = (0..4)
        .map(|i| listener(&system, &format!("s{i}"), None, Mailbox::Unbounded))
        .collect();
    for s in &subs {
        system.event_stream().subscribe::<Seq, _>(&s.r);
    }
    const N: u32 = 5_000;
    let publishers: Vec<_> = (0..3)
        .map(|p| {
            let es = system.event_stream().clone();
            tokio::spawn(async move {
                for n in 0..N {
                    es.publish(Seq { publisher: p, n });
                    if n % 512 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
            })
        })
        .collect();
    for p in publishers {
        p.await.unwrap();
    }
    for s in &subs {
        wait_for(&s.log, 3 * N as usize).await;
        let log = s.log.lock().unwrap().clone();
        for p in 0..3 {
            let mine: Vec<u32> = log
                .iter()
                .filter(|e| e.publisher == p)
                .map(|e| e.n)
                .collect();
            assert_eq!(
                mine,
                (0..N).collect::<Vec<_>>(),
                "publisher {p} out of order"
            );
        }
    }
    system.shutdown().await;
}

/// A2: a subscriber that stops is removed by itself, without a publish.
#[tokio::test]
async fn a2_stopped_subscriber_is_removed() {
    let system = system();
    let a = listener(&system, "a", None, Mailbox::Unbounded);
    let b = listener(&system, "b", None, Mailbox::Unbounded);
    let es = system.event_stream();
    es.subscribe::<Seq, _>(&a.r);
    es.subscribe::<Seq, _>(&b.r);
    es.subscribe::<Other, _>(&a.r);
    assert_eq!(es.subscriber_count::<Seq>(), 2);
    a.r.stop();
    a.r.stopped().await;
    assert_eq!(es.subscriber_count::<Seq>(), 1);
    assert_eq!(es.subscriber_count::<Other>(), 0);
    assert_eq!(es.publish(Seq { publisher: 0, n: 0 }), 1);
    assert!(
        !es.subscribe::<Seq, _>(&a.r),
        "a dead actor cannot subscribe"
    );
    system.shutdown().await;
}

/// A2 no loss while alive: a subscriber that fails and restarts in the
/// middle of a burst still receives every later event (its mailbox is kept);
/// only the event whose handler failed is lost, as for any message.
#[tokio::test]
async fn a2_no_event_lost_across_subscriber_restart() {
    let system = system();
    let s = listener(&system, "s", Some(500), Mailbox::Unbounded);
    system.event_stream().subscribe::<Seq, _>(&s.r);
    for n in 0..10_000 {
        system.event_stream().publish(Seq { publisher: 0, n });
    }
    wait_for(&s.log, 9_999).await;
    let got: Vec<u32> = s.log.lock().unwrap().iter().map(|e| e.n).collect();
    let expected: Vec<u32> = (0..10_000).filter(|n| *n != 500).collect();
    assert_eq!(got, expected);
    assert_eq!(system.event_stream().dropped_total(), 0);
    system.shutdown().await;
}

/// A2: a slow subscriber blocks neither the publisher nor other subscribers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a2_slow_subscriber_blocks_nobody() {
    let system = system();
    let slow = listener(&system, "slow", None, Mailbox::Unbounded);
    let fast = listener(&system, "fast", None, Mailbox::Unbounded);
    let gate = Arc::new(tokio::sync::Notify::new());
    slow.r.tell(Msg::Block(gate.clone())).unwrap();
    let es = system.event_stream();
    es.subscribe::<Seq, _>(&slow.r);
    es.subscribe::<Seq, _>(&fast.r);
    for n in 0..20_000 {
        assert_eq!(es.publish(Seq { publisher: 0, n }), 2);
    }
    wait_for(&fast.log, 20_000).await;
    assert!(slow.log.lock().unwrap().is_empty(), "slow is still blocked");
    gate.notify_one();
    wait_for(&slow.log, 20_000).await;
    system.shutdown().await;
}

/// A2 memory policy: a subscriber with a bounded mailbox that is full loses
/// the event, for itself only, and the drop is counted.
#[tokio::test]
async fn a2_full_bounded_subscriber_drops_are_counted() {
    let system = system();
    let bounded = listener(
        &system,
        "b",
        None,
        Mailbox::Bounded(NonZeroUsize::new(4).unwrap()),
    );
    let free = listener(&system, "f", None, Mailbox::Unbounded);
    let gate = Arc::new(tokio::sync::Notify::new());
    bounded.r.tell(Msg::Block(gate.clone())).unwrap();
    tokio::task::yield_now().await;
    let es = system.event_stream();
    es.subscribe::<Seq, _>(&bounded.r);
    es.subscribe::<Seq, _>(&free.r);
    let mut delivered = 0;
    for n in 0..10 {
        delivered += es.publish(Seq { publisher: 0, n });
    }
    let dropped = es.dropped_total();
    assert!(dropped >= 5, "dropped {dropped}");
    assert_eq!(delivered as u64 + dropped, 20);
    gate.notify_one();
    wait_for(&free.log, 10).await;
    system.shutdown().await;
}

/// A2: callback subscribers run on publish and stop after cancel.
#[tokio::test]
async fn a2_callback_subscription_and_cancel() {
    let es = actor_runtime::EventStream::new();
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let sub = es.subscribe_fn(move |e: &Seq| {
        h.fetch_add(e.n as usize, Ordering::SeqCst);
    });
    es.publish(Seq { publisher: 0, n: 2 });
    es.publish(Seq { publisher: 0, n: 3 });
    assert!(sub.cancel());
    es.publish(Seq {
        publisher: 0,
        n: 100,
    });
    assert_eq!(hits.load(Ordering::SeqCst), 5);
    assert_eq!(es.publish(Other), 0, "no subscriber, nothing delivered");
}
