//! actor-runtime ("ours").

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actor_runtime::{
    Actor, ActorRef, ActorSystem, Backoff, Context, HandlerResult, ReplyTo, SupervisorStrategy,
};
use tokio::runtime::Runtime;

use crate::common::{
    ASK_N, ASK_TIMEOUT, Ev, FAN_EVENTS, FAN_SUBS, FanProbe, RESTART_N, SPAWN_N, TELL_N, drive,
    record_fanout, record_problem,
};

const PEER: &str = "ours";

// ---------------------------------------------------------------- summer

struct Summer {
    sum: u64,
}

enum SumMsg {
    Add(u64),
    Get(ReplyTo<u64>),
}

impl Actor for Summer {
    type Msg = SumMsg;

    async fn handle(&mut self, msg: SumMsg, _: &mut Context<Self>) -> HandlerResult {
        match msg {
            SumMsg::Add(n) => self.sum = self.sum.wrapping_add(n),
            SumMsg::Get(reply) => {
                let _ = reply.send(self.sum);
            }
        }
        Ok(())
    }
}

async fn ask_sum(r: &ActorRef<SumMsg>) -> Option<u64> {
    r.ask(SumMsg::Get, ASK_TIMEOUT).await.ok()
}

/// Scenario 1.
pub fn tell(rt: &Runtime, iters: u64) -> Duration {
    drive(rt, async move {
        let system = ActorSystem::new("bench");
        let r = system
            .spawn("summer", || Summer { sum: 0 })
            .expect("spawn summer");
        let start = Instant::now();
        let mut last = None;
        for _ in 0..iters {
            for i in 0..TELL_N {
                if r.tell(SumMsg::Add(i)).is_err() {
                    record_problem(PEER, "tell", "tell failed");
                    break;
                }
            }
            last = ask_sum(&r).await;
        }
        let elapsed = start.elapsed();
        let want = iters * (TELL_N * (TELL_N - 1) / 2);
        if last != Some(want) {
            record_problem(PEER, "tell", &format!("sum {last:?}, expected {want}"));
        }
        system.shutdown().await;
        elapsed
    })
}

/// Scenario 2.
pub fn ask(rt: &Runtime, iters: u64) -> Duration {
    drive(rt, async move {
        let system = ActorSystem::new("bench");
        let r = system
            .spawn("summer", || Summer { sum: 0 })
            .expect("spawn summer");
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
        system.shutdown().await;
        elapsed
    })
}

// ---------------------------------------------------------------- fan-out

struct Sub {
    probe: Arc<FanProbe>,
    idx: usize,
    seen: u64,
}

struct SubMsg(Ev);

impl From<Ev> for SubMsg {
    fn from(ev: Ev) -> Self {
        Self(ev)
    }
}

impl Actor for Sub {
    type Msg = SubMsg;

    async fn handle(&mut self, SubMsg(ev): SubMsg, _: &mut Context<Self>) -> HandlerResult {
        black_box(ev.0);
        self.seen += 1;
        self.probe.record(self.idx, self.seen);
        Ok(())
    }
}

/// Scenario 3: `system.event_stream()` subscribe/publish.
pub fn fanout(rt: &Runtime, iters: u64) -> Duration {
    drive(rt, async move {
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            let system = ActorSystem::new("bench");
            let probe = FanProbe::new(FAN_SUBS, FAN_EVENTS);
            for idx in 0..FAN_SUBS {
                let probe = Arc::clone(&probe);
                let r = system
                    .spawn(&format!("sub-{idx}"), move || Sub {
                        probe: Arc::clone(&probe),
                        idx,
                        seen: 0,
                    })
                    .expect("spawn subscriber");
                system.event_stream().subscribe::<Ev, _>(&r);
            }
            let stream = system.event_stream();
            let start = Instant::now();
            for e in 0..FAN_EVENTS {
                stream.publish(Ev(e));
            }
            let outcome = probe.wait(start).await;
            total += record_fanout(PEER, &probe, &outcome);
            system.shutdown().await;
        }
        total
    })
}

// ---------------------------------------------------------------- spawn/stop

struct Noop;

impl Actor for Noop {
    type Msg = ();

    async fn handle(&mut self, (): (), _: &mut Context<Self>) -> HandlerResult {
        Ok(())
    }
}

/// Scenario 4.
pub fn spawn_stop(rt: &Runtime, iters: u64) -> Duration {
    drive(rt, async move {
        let system = ActorSystem::new("bench");
        let names: Vec<String> = (0..SPAWN_N).map(|i| format!("a{i}")).collect();
        let start = Instant::now();
        for _ in 0..iters {
            let mut actors = Vec::with_capacity(SPAWN_N);
            for name in &names {
                actors.push(system.spawn(name, || Noop).expect("spawn"));
            }
            for r in &actors {
                r.stop();
            }
            for r in &actors {
                r.stopped().await;
            }
        }
        let elapsed = start.elapsed();
        system.shutdown().await;
        elapsed
    })
}

// ---------------------------------------------------------------- restart

struct Child;

enum ChildMsg {
    Boom,
    Ping(ReplyTo<()>),
}

impl Actor for Child {
    type Msg = ChildMsg;

    async fn handle(&mut self, msg: ChildMsg, _: &mut Context<Self>) -> HandlerResult {
        match msg {
            ChildMsg::Boom => panic!("boom"),
            ChildMsg::Ping(reply) => {
                let _ = reply.send(());
            }
        }
        Ok(())
    }
}

/// Scenario 5: the user guardian restarts its children without backoff; the
/// `ActorRef` stays valid and the queued `Ping` survives the restart.
pub fn restart(rt: &Runtime, iters: u64) -> Duration {
    drive(rt, async move {
        // The default limit (10 restarts within 60 s) would stop the child;
        // like kameo's, it is lifted here.
        let system = ActorSystem::builder("bench")
            .user_guardian_strategy(
                SupervisorStrategy::one_for_one()
                    .with_backoff(Backoff::none())
                    .with_limit(u32::MAX, Duration::from_secs(1)),
            )
            .build()
            .expect("build system");
        let child = system.spawn("child", || Child).expect("spawn child");
        let start = Instant::now();
        let mut failures = 0u64;
        let mut first_error = None;
        for _ in 0..iters * RESTART_N {
            if let Err(e) = child.tell(ChildMsg::Boom) {
                failures += 1;
                first_error.get_or_insert_with(|| format!("tell Boom: {e:?}"));
                continue;
            }
            if let Err(e) = child.ask(ChildMsg::Ping, ASK_TIMEOUT).await {
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
        system.shutdown().await;
        elapsed
    })
}
