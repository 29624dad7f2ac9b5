//! The floor: plain tokio tasks and channels, no actor framework.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::runtime::Runtime;
use tokio::sync::{mpsc, oneshot};

use crate::common::{
    ASK_N, ASK_TIMEOUT, Ev, FAN_EVENTS, FAN_SUBS, FanProbe, RESTART_N, SPAWN_N, TELL_N, drive,
    record_fanout, record_problem,
};

const PEER: &str = "raw_tokio";

enum SumMsg {
    Add(u64),
    Get(oneshot::Sender<u64>),
}

fn spawn_summer() -> mpsc::UnboundedSender<SumMsg> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut sum = 0u64;
        while let Some(msg) = rx.recv().await {
            match msg {
                SumMsg::Add(n) => sum = sum.wrapping_add(n),
                SumMsg::Get(reply) => {
                    let _ = reply.send(sum);
                }
            }
        }
    });
    tx
}

async fn ask_sum(tx: &mpsc::UnboundedSender<SumMsg>) -> Option<u64> {
    let (reply, rx) = oneshot::channel();
    tx.send(SumMsg::Get(reply)).ok()?;
    tokio::time::timeout(ASK_TIMEOUT, rx).await.ok()?.ok()
}

/// Scenario 1.
pub fn tell(rt: &Runtime, iters: u64) -> Duration {
    drive(rt, async move {
        let tx = spawn_summer();
        let start = Instant::now();
        let mut last = None;
        for _ in 0..iters {
            for i in 0..TELL_N {
                tx.send(SumMsg::Add(i)).expect("summer alive");
            }
            last = ask_sum(&tx).await;
        }
        let elapsed = start.elapsed();
        let want = iters * (TELL_N * (TELL_N - 1) / 2);
        if last != Some(want) {
            record_problem(PEER, "tell", &format!("sum {last:?}, expected {want}"));
        }
        elapsed
    })
}

/// Scenario 2.
pub fn ask(rt: &Runtime, iters: u64) -> Duration {
    drive(rt, async move {
        let tx = spawn_summer();
        let start = Instant::now();
        let mut failures = 0u64;
        for _ in 0..iters * ASK_N {
            if black_box(ask_sum(&tx).await).is_none() {
                failures += 1;
            }
        }
        let elapsed = start.elapsed();
        if failures > 0 {
            record_problem(PEER, "ask", &format!("{failures} asks failed"));
        }
        elapsed
    })
}

/// Scenario 3: one unbounded channel per subscriber, the publisher clones
/// every event into each of them.
pub fn fanout(rt: &Runtime, iters: u64) -> Duration {
    drive(rt, async move {
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            let probe = FanProbe::new(FAN_SUBS, FAN_EVENTS);
            let mut txs = Vec::with_capacity(FAN_SUBS);
            let mut handles = Vec::with_capacity(FAN_SUBS);
            for idx in 0..FAN_SUBS {
                let (tx, mut rx) = mpsc::unbounded_channel::<Ev>();
                let probe = Arc::clone(&probe);
                handles.push(tokio::spawn(async move {
                    let mut seen = 0u64;
                    while let Some(ev) = rx.recv().await {
                        black_box(ev.0);
                        seen += 1;
                        probe.record(idx, seen);
                    }
                }));
                txs.push(tx);
            }
            let start = Instant::now();
            for e in 0..FAN_EVENTS {
                for tx in &txs {
                    let _ = tx.send(Ev(e));
                }
            }
            let outcome = probe.wait(start).await;
            total += record_fanout(PEER, &probe, &outcome);
            drop(txs);
            for h in handles {
                let _ = h.await;
            }
        }
        total
    })
}

/// Scenario 4: a task with a mailbox per "actor"; stop is a message.
pub fn spawn_stop(rt: &Runtime, iters: u64) -> Duration {
    enum Msg {
        Stop,
    }
    drive(rt, async move {
        let start = Instant::now();
        for _ in 0..iters {
            let mut actors = Vec::with_capacity(SPAWN_N);
            for _ in 0..SPAWN_N {
                let (tx, mut rx) = mpsc::unbounded_channel::<Msg>();
                let handle = tokio::spawn(async move {
                    // The only message is Stop: the first one ends the task.
                    if let Some(Msg::Stop) = rx.recv().await {}
                });
                actors.push((tx, handle));
            }
            for (tx, _) in &actors {
                let _ = tx.send(Msg::Stop);
            }
            for (_, handle) in actors {
                let _ = handle.await;
            }
        }
        start.elapsed()
    })
}

/// Scenario 5: the handler runs under `catch_unwind`; on a panic the state is
/// rebuilt from its "factory" and the loop goes on with the same mailbox.
pub fn restart(rt: &Runtime, iters: u64) -> Duration {
    enum Msg {
        Boom,
        Ping(oneshot::Sender<u64>),
    }
    struct State {
        generation: u64,
    }
    fn handle(state: &mut State, msg: Msg) {
        match msg {
            Msg::Boom => panic!("boom"),
            Msg::Ping(reply) => {
                let _ = reply.send(state.generation);
            }
        }
    }
    drive(rt, async move {
        let (tx, mut rx) = mpsc::unbounded_channel::<Msg>();
        tokio::spawn(async move {
            let mut generation = 0;
            let mut state = State { generation };
            while let Some(msg) = rx.recv().await {
                let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    handle(&mut state, msg)
                }));
                if outcome.is_err() {
                    generation += 1;
                    state = State { generation };
                }
            }
        });
        let start = Instant::now();
        let mut failures = 0u64;
        for _ in 0..iters * RESTART_N {
            let _ = tx.send(Msg::Boom);
            let (reply, rx) = oneshot::channel();
            let _ = tx.send(Msg::Ping(reply));
            match tokio::time::timeout(ASK_TIMEOUT, rx).await {
                Ok(Ok(_)) => {}
                _ => failures += 1,
            }
        }
        let elapsed = start.elapsed();
        if failures > 0 {
            record_problem(PEER, "restart", &format!("{failures} pings unanswered"));
        }
        elapsed
    })
}
