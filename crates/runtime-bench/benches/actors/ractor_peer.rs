//! ractor 0.16: actors, `cast`/`call`, `OutputPort`, and a hand-written
//! supervisor for restarts (ractor has no restart strategies).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::rpc::CallResult;
use ractor::{Actor, ActorProcessingErr, ActorRef, OutputPort, RpcReplyPort, SupervisionEvent};
use tokio::runtime::Runtime;

use crate::common::{
    ASK_N, ASK_TIMEOUT, Ev, FAN_EVENTS, FAN_SUBS, FanProbe, RESTART_N, SPAWN_N, TELL_N, drive,
    record_fanout, record_problem,
};

const PEER: &str = "ractor";

// ---------------------------------------------------------------- summer

struct Summer;

enum SumMsg {
    Add(u64),
    Get(RpcReplyPort<u64>),
}

impl Actor for Summer {
    type Msg = SumMsg;
    type State = u64;
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<SumMsg>, (): ()) -> Result<u64, ActorProcessingErr> {
        Ok(0)
    }

    async fn handle(
        &self,
        _: ActorRef<SumMsg>,
        msg: SumMsg,
        sum: &mut u64,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SumMsg::Add(n) => *sum = sum.wrapping_add(n),
            SumMsg::Get(reply) => {
                let _ = reply.send(*sum);
            }
        }
        Ok(())
    }
}

async fn ask_sum(r: &ActorRef<SumMsg>) -> Option<u64> {
    match r.call(SumMsg::Get, Some(ASK_TIMEOUT)).await {
        Ok(CallResult::Success(v)) => Some(v),
        _ => None,
    }
}

/// Scenario 1.
pub fn tell(rt: &Runtime, iters: u64) -> Duration {
    drive(rt, async move {
        let (r, handle) = Actor::spawn(None, Summer, ()).await.expect("spawn summer");
        let start = Instant::now();
        let mut last = None;
        for _ in 0..iters {
            for i in 0..TELL_N {
                r.cast(SumMsg::Add(i)).expect("summer alive");
            }
            last = ask_sum(&r).await;
        }
        let elapsed = start.elapsed();
        let want = iters * (TELL_N * (TELL_N - 1) / 2);
        if last != Some(want) {
            record_problem(PEER, "tell", &format!("sum {last:?}, expected {want}"));
        }
        r.stop(None);
        let _ = handle.await;
        elapsed
    })
}

/// Scenario 2.
pub fn ask(rt: &Runtime, iters: u64) -> Duration {
    drive(rt, async move {
        let (r, handle) = Actor::spawn(None, Summer, ()).await.expect("spawn summer");
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
        r.stop(None);
        let _ = handle.await;
        elapsed
    })
}

// ---------------------------------------------------------------- fan-out

struct Sub;

struct SubState {
    probe: Arc<FanProbe>,
    idx: usize,
    seen: u64,
}

impl Actor for Sub {
    type Msg = Ev;
    type State = SubState;
    type Arguments = (Arc<FanProbe>, usize);

    async fn pre_start(
        &self,
        _: ActorRef<Ev>,
        (probe, idx): (Arc<FanProbe>, usize),
    ) -> Result<SubState, ActorProcessingErr> {
        Ok(SubState {
            probe,
            idx,
            seen: 0,
        })
    }

    async fn handle(
        &self,
        _: ActorRef<Ev>,
        ev: Ev,
        state: &mut SubState,
    ) -> Result<(), ActorProcessingErr> {
        black_box(ev.0);
        state.seen += 1;
        state.probe.record(state.idx, state.seen);
        Ok(())
    }
}

/// Peer label for the fan-out scenario (the OutputPort implementation differs).
pub fn fanout_label() -> &'static str {
    if cfg!(feature = "ractor-output-port-v2") {
        "ractor_output_port_v2"
    } else {
        "ractor_output_port"
    }
}

/// Scenario 3: ractor's pub/sub primitive is `OutputPort`. Without the
/// `output-port-v2` feature it is a `tokio::sync::broadcast` channel of
/// capacity 10 plus one forwarding task per subscriber; a lagging forwarder
/// skips what it missed (`RecvError::Lagged` -> continue), so losses are
/// expected when publishing in a tight loop.
pub fn fanout(rt: &Runtime, iters: u64) -> Duration {
    let label = fanout_label();
    drive(rt, async move {
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            let probe = FanProbe::new(FAN_SUBS, FAN_EVENTS);
            let port: OutputPort<Ev> = OutputPort::default();
            let mut subs = Vec::with_capacity(FAN_SUBS);
            for idx in 0..FAN_SUBS {
                let (r, h) = Actor::spawn(None, Sub, (Arc::clone(&probe), idx))
                    .await
                    .expect("spawn subscriber");
                port.subscribe(r.clone(), Some);
                subs.push((r, h));
            }
            let start = Instant::now();
            for e in 0..FAN_EVENTS {
                port.send(Ev(e));
            }
            let outcome = probe.wait(start).await;
            total += record_fanout(label, &probe, &outcome);
            drop(port);
            for (r, _) in &subs {
                r.stop(None);
            }
            for (_, h) in subs {
                let _ = h.await;
            }
        }
        total
    })
}

// ---------------------------------------------------------------- spawn/stop

struct Noop;

impl Actor for Noop {
    type Msg = ();
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<()>, (): ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }
}

/// Scenario 4: `Actor::spawn` awaits each actor's `pre_start`; `stop` then
/// awaiting the `JoinHandle`s waits for termination.
pub fn spawn_stop(rt: &Runtime, iters: u64) -> Duration {
    drive(rt, async move {
        let start = Instant::now();
        for _ in 0..iters {
            let mut actors = Vec::with_capacity(SPAWN_N);
            for _ in 0..SPAWN_N {
                actors.push(Actor::spawn(None, Noop, ()).await.expect("spawn"));
            }
            for (r, _) in &actors {
                r.stop(None);
            }
            for (_, h) in actors {
                let _ = h.await;
            }
        }
        start.elapsed()
    })
}

// ---------------------------------------------------------------- restart

struct Child;

enum ChildMsg {
    Boom,
    Ping(RpcReplyPort<()>),
}

impl Actor for Child {
    type Msg = ChildMsg;
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<ChildMsg>, (): ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle(
        &self,
        _: ActorRef<ChildMsg>,
        msg: ChildMsg,
        (): &mut (),
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ChildMsg::Boom => panic!("boom"),
            ChildMsg::Ping(reply) => {
                let _ = reply.send(());
            }
        }
        Ok(())
    }
}

/// ractor has no restart strategies: a ractor user writes a supervisor that
/// respawns the child when it receives `SupervisionEvent::ActorFailed`. The
/// respawned child is a new actor with a new `ActorRef` (messages queued in
/// the dead child are lost), so callers must get the current ref from the
/// supervisor. Here the `Boom` goes through the supervisor, which marks the
/// child as restarting and parks `GetChild` requests until the replacement
/// is up, so each cycle is: tell Boom (via supervisor), ask GetChild, ask Ping.
struct Sup;

enum SupMsg {
    Boom,
    GetChild(RpcReplyPort<ActorRef<ChildMsg>>),
}

struct SupState {
    child: ActorRef<ChildMsg>,
    restarting: bool,
    waiting: Vec<RpcReplyPort<ActorRef<ChildMsg>>>,
}

impl Actor for Sup {
    type Msg = SupMsg;
    type State = SupState;
    type Arguments = ();

    async fn pre_start(
        &self,
        myself: ActorRef<SupMsg>,
        (): (),
    ) -> Result<SupState, ActorProcessingErr> {
        let (child, _) = Actor::spawn_linked(None, Child, (), myself.get_cell()).await?;
        Ok(SupState {
            child,
            restarting: false,
            waiting: Vec::new(),
        })
    }

    async fn handle(
        &self,
        _: ActorRef<SupMsg>,
        msg: SupMsg,
        state: &mut SupState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SupMsg::Boom => {
                state.restarting = true;
                let _ = state.child.cast(ChildMsg::Boom);
            }
            SupMsg::GetChild(reply) => {
                if state.restarting {
                    state.waiting.push(reply);
                } else {
                    let _ = reply.send(state.child.clone());
                }
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<SupMsg>,
        evt: SupervisionEvent,
        state: &mut SupState,
    ) -> Result<(), ActorProcessingErr> {
        if let SupervisionEvent::ActorFailed(cell, _) = evt
            && cell.get_id() == state.child.get_id()
        {
            let (child, _) = Actor::spawn_linked(None, Child, (), myself.get_cell()).await?;
            state.child = child;
            state.restarting = false;
            for reply in state.waiting.drain(..) {
                let _ = reply.send(state.child.clone());
            }
        }
        Ok(())
    }
}

/// Scenario 5.
pub fn restart(rt: &Runtime, iters: u64) -> Duration {
    drive(rt, async move {
        let (sup, sup_handle) = Actor::spawn(None, Sup, ()).await.expect("spawn supervisor");
        let start = Instant::now();
        let mut failures = 0u64;
        for _ in 0..iters * RESTART_N {
            let _ = sup.cast(SupMsg::Boom);
            let child = match sup.call(SupMsg::GetChild, Some(ASK_TIMEOUT)).await {
                Ok(CallResult::Success(child)) => child,
                _ => {
                    failures += 1;
                    continue;
                }
            };
            match child.call(ChildMsg::Ping, Some(ASK_TIMEOUT)).await {
                Ok(CallResult::Success(())) => {}
                _ => failures += 1,
            }
        }
        let elapsed = start.elapsed();
        if failures > 0 {
            record_problem(PEER, "restart", &format!("{failures} cycles failed"));
        }
        if let Ok(CallResult::Success(child)) = sup.call(SupMsg::GetChild, Some(ASK_TIMEOUT)).await
        {
            let _ = child.stop_and_wait(None, Some(ASK_TIMEOUT)).await;
        }
        sup.stop(None);
        let _ = sup_handle.await;
        elapsed
    })
}
