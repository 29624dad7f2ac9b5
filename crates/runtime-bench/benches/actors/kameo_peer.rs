//! kameo 0.22 (+ kameo_actors 0.8 for PubSub): actors, `tell`/`ask`, PubSub
//! and kameo's own supervision (`Spawn::supervise`).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kameo::actor::{Actor, ActorRef, Spawn};
use kameo::error::Infallible;
use kameo::mailbox;
use kameo::message::{Context, Message};
use kameo::supervision::RestartPolicy;
use kameo_actors::DeliveryStrategy;
use kameo_actors::pubsub::PubSub;
use tokio::runtime::Runtime;

use crate::common::{
    ASK_N, ASK_TIMEOUT, Ev, FAN_EVENTS, FAN_SUBS, FanProbe, RESTART_N, SPAWN_N, TELL_N, drive,
    record_fanout, record_problem,
};

const PEER: &str = "kameo";

// ---------------------------------------------------------------- summer

struct Summer {
    sum: u64,
}

impl Actor for Summer {
    type Args = Self;
    type Error = Infallible;

    async fn on_start(args: Self, _: ActorRef<Self>) -> Result<Self, Infallible> {
        Ok(args)
    }
}

struct Add(u64);
struct Get;

impl Message<Add> for Summer {
    type Reply = ();

    async fn handle(&mut self, Add(n): Add, _: &mut Context<Self, ()>) {
        self.sum = self.sum.wrapping_add(n);
    }
}

impl Message<Get> for Summer {
    type Reply = u64;

    async fn handle(&mut self, _: Get, _: &mut Context<Self, u64>) -> u64 {
        self.sum
    }
}

async fn ask_sum(r: &ActorRef<Summer>) -> Option<u64> {
    r.ask(Get).reply_timeout(ASK_TIMEOUT).await.ok()
}

/// Scenario 1. `Spawn::spawn` gives the default bounded mailbox (64), so
/// `tell(..).await` applies backpressure; `unbounded` uses
/// `mailbox::unbounded()` instead.
pub fn tell(rt: &Runtime, iters: u64, unbounded: bool) -> Duration {
    let peer = if unbounded { "kameo_unbounded" } else { PEER };
    drive(rt, async move {
        let r = if unbounded {
            Summer::spawn_with_mailbox(Summer { sum: 0 }, mailbox::unbounded())
        } else {
            Summer::spawn(Summer { sum: 0 })
        };
        let start = Instant::now();
        let mut last = None;
        for _ in 0..iters {
            for i in 0..TELL_N {
                r.tell(Add(i)).await.expect("summer alive");
            }
            last = ask_sum(&r).await;
        }
        let elapsed = start.elapsed();
        let want = iters * (TELL_N * (TELL_N - 1) / 2);
        if last != Some(want) {
            record_problem(peer, "tell", &format!("sum {last:?}, expected {want}"));
        }
        let _ = r.stop_gracefully().await;
        r.wait_for_shutdown().await;
        elapsed
    })
}

/// Scenario 2.
pub fn ask(rt: &Runtime, iters: u64) -> Duration {
    drive(rt, async move {
        let r = Summer::spawn(Summer { sum: 0 });
        let start = Instant::now();
        let mut failures = 0u64;
        for _ in 0..iters * ASK_N {
            if black_box(ask_sum(&r).await).is_none() {
                failures += 1;
            }
        }
        let elapsed = start.elapsed();
        if failures > 0 {
            record_problem(PEER, "ask", &format!("{failures} asks failed"));
        }
        let _ = r.stop_gracefully().await;
        r.wait_for_shutdown().await;
        elapsed
    })
}

// ---------------------------------------------------------------- fan-out

struct Sub {
    probe: Arc<FanProbe>,
    idx: usize,
    seen: u64,
}

impl Actor for Sub {
    type Args = Self;
    type Error = Infallible;

    async fn on_start(args: Self, _: ActorRef<Self>) -> Result<Self, Infallible> {
        Ok(args)
    }
}

impl Message<Ev> for Sub {
    type Reply = ();

    async fn handle(&mut self, ev: Ev, _: &mut Context<Self, ()>) {
        black_box(ev.0);
        self.seen += 1;
        self.probe.record(self.idx, self.seen);
    }
}

/// Scenario 3: kameo 0.22 has no pub/sub in its core crate; its PubSub lives
/// in `kameo_actors::pubsub`. It is used here as a plain object owned by the
/// publisher (`PubSub::publish(..).await`), subscribers spawned with the
/// default bounded mailbox (64). `DeliveryStrategy::default()` is
/// `BestEffort`, i.e. `try_send`: an event for a full mailbox is dropped
/// silently. `guaranteed` uses `DeliveryStrategy::Guaranteed` (awaits
/// capacity in every subscriber's mailbox, one after the other).
pub fn fanout(rt: &Runtime, iters: u64, guaranteed: bool) -> Duration {
    let (peer, strategy) = if guaranteed {
        ("kameo_pubsub_guaranteed", DeliveryStrategy::Guaranteed)
    } else {
        ("kameo_pubsub_default", DeliveryStrategy::default())
    };
    drive(rt, async move {
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            let probe = FanProbe::new(FAN_SUBS, FAN_EVENTS);
            let mut pubsub = PubSub::<Ev>::new(strategy);
            let mut subs = Vec::with_capacity(FAN_SUBS);
            for idx in 0..FAN_SUBS {
                let r = Sub::spawn(Sub {
                    probe: Arc::clone(&probe),
                    idx,
                    seen: 0,
                });
                r.wait_for_startup().await;
                pubsub.subscribe(r.clone());
                subs.push(r);
            }
            let start = Instant::now();
            for e in 0..FAN_EVENTS {
                pubsub.publish(Ev(e)).await;
            }
            let outcome = probe.wait(start).await;
            total += record_fanout(peer, &probe, &outcome);
            drop(pubsub);
            for r in &subs {
                let _ = r.stop_gracefully().await;
            }
            for r in subs {
                r.wait_for_shutdown().await;
            }
        }
        total
    })
}

// ---------------------------------------------------------------- spawn/stop

struct Noop;

impl Actor for Noop {
    type Args = Self;
    type Error = Infallible;

    async fn on_start(args: Self, _: ActorRef<Self>) -> Result<Self, Infallible> {
        Ok(args)
    }
}

/// Scenario 4: `spawn` is synchronous (the actor starts in the background);
/// `stop_gracefully` enqueues a stop signal, `wait_for_shutdown` waits for
/// the mailbox to close.
pub fn spawn_stop(rt: &Runtime, iters: u64) -> Duration {
    drive(rt, async move {
        let start = Instant::now();
        for _ in 0..iters {
            let mut actors = Vec::with_capacity(SPAWN_N);
            for _ in 0..SPAWN_N {
                actors.push(Noop::spawn(Noop));
            }
            for r in &actors {
                let _ = r.stop_gracefully().await;
            }
            for r in actors {
                r.wait_for_shutdown().await;
            }
        }
        start.elapsed()
    })
}

// ---------------------------------------------------------------- restart

#[derive(Clone)]
struct Child;

impl Actor for Child {
    type Args = Self;
    type Error = Infallible;

    async fn on_start(args: Self, _: ActorRef<Self>) -> Result<Self, Infallible> {
        Ok(args)
    }
}

#[derive(Debug)]
struct Boom;
#[derive(Debug)]
struct Ping;

impl Message<Boom> for Child {
    type Reply = ();

    async fn handle(&mut self, _: Boom, _: &mut Context<Self, ()>) {
        panic!("boom");
    }
}

impl Message<Ping> for Child {
    type Reply = ();

    async fn handle(&mut self, _: Ping, _: &mut Context<Self, ()>) {}
}

struct Sup;

impl Actor for Sup {
    type Args = Self;
    type Error = Infallible;

    async fn on_start(args: Self, _: ActorRef<Self>) -> Result<Self, Infallible> {
        Ok(args)
    }
}

/// Scenario 5: kameo 0.22 has Erlang-style supervision: a child spawned with
/// `Child::supervise(&supervisor, args)` is rebuilt from its args (here
/// `RestartPolicy::Permanent`, OneForOne) with the same `ActorId`, the same
/// `ActorRef` and the same mailbox, so messages queued behind the panicking
/// one survive. That is the closest match to our `Directive::Restart`.
/// (`Actor::on_panic` returning `ControlFlow::Continue` would merely keep the
/// old state and carry on: no rebuild, so not a restart.) The default restart
/// limit is 5 within 5 s; it is raised so 1000s of restarts are allowed.
pub fn restart(rt: &Runtime, iters: u64) -> Duration {
    drive(rt, async move {
        let sup = Sup::spawn(Sup);
        let child = Child::supervise(&sup, Child)
            .restart_policy(RestartPolicy::Permanent)
            .restart_limit(u32::MAX, Duration::from_millis(1))
            .spawn()
            .await;
        let start = Instant::now();
        let mut failures = 0u64;
        let mut first_error = None;
        for _ in 0..iters * RESTART_N {
            if let Err(e) = child.tell(Boom).await {
                failures += 1;
                first_error.get_or_insert_with(|| format!("tell Boom: {e:?}"));
                continue;
            }
            if let Err(e) = child.ask(Ping).reply_timeout(ASK_TIMEOUT).await {
                failures += 1;
                first_error.get_or_insert_with(|| format!("ask Ping: {e:?}"));
            }
        }
        let elapsed = start.elapsed();
        if failures > 0 {
            record_problem(
                PEER,
                "restart",
                &format!(
                    "{failures} of {} cycles failed, first: {first_error:?}",
                    iters * RESTART_N
                ),
            );
        }
        let _ = sup.stop_gracefully().await;
        sup.wait_for_shutdown().await;
        elapsed
    })
}
