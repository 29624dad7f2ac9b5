//! A1 scenarios outside supervision: tell and ask, mailboxes, identity and
//! names, death watch, timers and ordered shutdown.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "support/probe.rs"]
mod probe;

use std::collections::HashSet;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use actor_runtime::{
    Actor, ActorSystem, AskError, Context, HandlerResult, Mailbox, Props, ReplyTo, SpawnError,
    StopReason, TellError,
};
use probe::*;

/// A1 tell: a full bounded mailbox hands the message back at once instead of
/// blocking the caller.
#[tokio::test]
async fn a1_tell_on_full_bounded_mailbox_returns_the_message() {
    let system = ActorSystem::new("t");
    let props = Props::new(Knobs::new("p", &Journal::default()).factory())
        .with_mailbox(Mailbox::Bounded(NonZeroUsize::new(2).unwrap()));
    let p = system.spawn_props("p", props).unwrap();
    let gate = Arc::new(tokio::sync::Notify::new());
    p.tell(Cmd::Block(gate.clone())).unwrap();
    settle().await; // the actor takes Block and waits
    p.tell(Cmd::Record(1)).unwrap();
    p.tell(Cmd::Record(2)).unwrap();
    match p.tell(Cmd::Record(3)) {
        Err(TellError::Full(Cmd::Record(3))) => {}
        other => panic!(
            "expected Full(Record(3)), got {:?}",
            other.map_err(|e| format!("{e:?}"))
        ),
    }
    gate.notify_one();
    settle().await; // room again once the backlog drains
    assert_eq!(
        state(&p).await.1,
        vec![1, 2],
        "the refused message was not queued"
    );
    system.shutdown().await;
}

/// A1 tell: a stopped actor hands the message back as Closed.
#[tokio::test]
async fn a1_tell_to_stopped_actor_returns_closed() {
    let system = ActorSystem::new("t");
    let p = system
        .spawn("p", Knobs::new("p", &Journal::default()).factory())
        .unwrap();
    p.stop();
    p.stopped().await;
    assert!(matches!(
        p.tell(Cmd::Record(9)),
        Err(TellError::Closed(Cmd::Record(9)))
    ));
    assert_eq!(p.ask(Cmd::State, T).await, Err(AskError::ActorStopped));
    system.shutdown().await;
}

struct Silent;
enum SilentMsg {
    Ignore(ReplyTo<u32>),
    Drop(ReplyTo<u32>),
}
impl Actor for Silent {
    type Msg = SilentMsg;
    async fn handle(&mut self, msg: SilentMsg, _: &mut Context<Self>) -> HandlerResult {
        match msg {
            SilentMsg::Ignore(r) => std::mem::forget(r),
            SilentMsg::Drop(r) => drop(r),
        }
        Ok(())
    }
}

/// A1 ask: a timeout when no reply comes, NoReply when the reply handle is
/// dropped.
#[tokio::test(start_paused = true)]
async fn a1_ask_times_out_or_reports_no_reply() {
    let system = ActorSystem::new("t");
    let s = system.spawn("silent", || Silent).unwrap();
    let t0 = tokio::time::Instant::now();
    let r = s.ask(SilentMsg::Ignore, Duration::from_millis(250)).await;
    assert_eq!(r, Err(AskError::Timeout(Duration::from_millis(250))));
    assert_eq!(t0.elapsed(), Duration::from_millis(250));
    let r = s.ask(SilentMsg::Drop, T).await;
    assert_eq!(r, Err(AskError::NoReply));
    system.shutdown().await;
}

/// A1 identity: refs compare and hash by actor, not by name; names are
/// unique among siblings while the sibling lives, and reusable after.
#[tokio::test]
async fn a1_identity_and_sibling_name_uniqueness() {
    let system = ActorSystem::new("t");
    let j = Journal::default();
    let a = system.spawn("a", Knobs::new("a", &j).factory()).unwrap();
    let a2 = a.clone();
    assert_eq!(a, a2);
    let dup = system.spawn("a", Knobs::new("a", &j).factory());
    assert!(matches!(dup, Err(SpawnError::DuplicateName { .. })));
    assert_eq!(dup.unwrap_err().code(), "actor.duplicate_name");
    // The same name under another parent is fine.
    let child = a.ask(|r| Cmd::Spawn("a".into(), r), T).await.unwrap();
    assert_eq!(child.path().as_str(), "/user/a/a");
    assert_ne!(child, a);
    let set: HashSet<_> = [a.clone(), a2, child.clone()].into_iter().collect();
    assert_eq!(set.len(), 2);
    // Invalid names are refused with the reason.
    for bad in ["", "x/y", "$x", "sp ace"] {
        let e = system
            .spawn(bad, Knobs::new("x", &j).factory())
            .unwrap_err();
        assert_eq!(e.code(), "actor.invalid_name", "{bad:?}");
    }
    // After the first `a` stops, its name is free again; the new actor is a
    // different identity.
    a.stop();
    a.stopped().await;
    let again = system.spawn("a", Knobs::new("a", &j).factory()).unwrap();
    assert_ne!(again, a);
    assert!(
        child.handle().is_terminated(),
        "children stop with their parent"
    );
    system.shutdown().await;
}

/// A1 death watch: a watcher is told once when the watched actor stops, with
/// the reason; watching a dead actor notifies at once; unwatch cancels.
#[tokio::test]
async fn a1_death_watch_notifies_with_reason() {
    let system = ActorSystem::builder("t")
        .user_guardian_strategy(decide(actor_runtime::Directive::Stop))
        .build()
        .unwrap();
    let j = Journal::default();
    let watcher = system.spawn("w", Knobs::new("w", &j).factory()).unwrap();
    let a = system.spawn("a", Knobs::new("a", &j).factory()).unwrap();
    let b = system.spawn("b", Knobs::new("b", &j).factory()).unwrap();
    let c = system.spawn("c", Knobs::new("c", &j).factory()).unwrap();
    watcher.tell(Cmd::Watch(a.handle().clone())).unwrap();
    watcher.tell(Cmd::Watch(a.handle().clone())).unwrap(); // twice = once
    watcher.tell(Cmd::Watch(b.handle().clone())).unwrap();
    watcher.tell(Cmd::Unwatch(b.handle().clone())).unwrap();
    let _ = state(&watcher).await;
    a.stop();
    b.stop();
    a.stopped().await;
    b.stopped().await;
    c.tell(Cmd::Panic).unwrap();
    c.stopped().await;
    // Watching an actor that already died notifies at once.
    watcher.tell(Cmd::Watch(c.handle().clone())).unwrap();
    let _ = state(&watcher).await;
    settle().await;
    let _ = state(&watcher).await;
    assert_eq!(
        j.count("terminated w saw a stopped"),
        1,
        "{:?}",
        j.entries()
    );
    assert_eq!(j.count("terminated w saw b"), 0, "unwatched");
    assert_eq!(j.count("terminated w saw c failed"), 1, "{:?}", j.entries());
    system.shutdown().await;
}

/// A1 timers: a one-shot timer fires once after its delay; a repeating one
/// fires every interval; a cancelled one never delivers.
#[tokio::test(start_paused = true)]
async fn a1_timers_once_repeat_and_cancel() {
    struct Timed {
        j: Journal,
        cancel_me: Option<actor_runtime::TimerKey>,
    }
    #[derive(Clone)]
    enum M {
        Once,
        Rep,
        Cancelled,
    }
    impl Actor for Timed {
        type Msg = M;
        async fn started(&mut self, ctx: &mut Context<Self>) -> HandlerResult {
            ctx.schedule_once(Duration::from_millis(100), M::Once);
            ctx.schedule_repeated(Duration::from_millis(30), M::Rep);
            self.cancel_me = Some(ctx.schedule_once(Duration::from_millis(50), M::Cancelled));
            Ok(())
        }
        async fn handle(&mut self, m: M, ctx: &mut Context<Self>) -> HandlerResult {
            match m {
                M::Once => self.j.push("once"),
                M::Rep => {
                    self.j.push("rep");
                    // The first tick (30 ms) cancels the 50 ms timer.
                    if let Some(k) = self.cancel_me.take() {
                        assert!(ctx.cancel_timer(k));
                    }
                }
                M::Cancelled => self.j.push("cancelled-fired"),
            }
            Ok(())
        }
    }
    let system = ActorSystem::new("t");
    let j = Journal::default();
    let j2 = j.clone();
    let a = system
        .spawn("timed", move || Timed {
            j: j2.clone(),
            cancel_me: None,
        })
        .unwrap();
    tokio::time::sleep(Duration::from_millis(40)).await;
    assert_eq!(j.count("rep"), 1);
    tokio::time::sleep(Duration::from_millis(205)).await;
    assert_eq!(j.count("once"), 1);
    assert!(j.count("rep") >= 7, "{:?}", j.entries());
    assert_eq!(
        j.count("cancelled-fired"),
        0,
        "a cancelled timer never delivers"
    );
    a.stop();
    a.stopped().await;
    let reps = j.count("rep");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        j.count("rep"),
        reps,
        "timers cancelled when the actor stops"
    );
    system.shutdown().await;
}

/// A1 timers: a timer cancelled after its message was already queued does
/// not deliver it.
#[tokio::test(start_paused = true)]
async fn a1_cancelled_timer_message_already_queued_is_dropped() {
    struct T2 {
        j: Journal,
        key: Option<actor_runtime::TimerKey>,
    }
    enum M {
        Arm,
        /// Busy past the timer's deadline (so its message queues behind),
        /// then cancel it.
        BlockThenCancel,
        Fired,
    }
    impl Actor for T2 {
        type Msg = M;
        async fn handle(&mut self, m: M, ctx: &mut Context<Self>) -> HandlerResult {
            match m {
                M::Arm => self.key = Some(ctx.schedule_once(Duration::from_millis(10), M::Fired)),
                M::BlockThenCancel => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    let k = self.key.take().unwrap();
                    self.j.push(format!("cancel {}", ctx.cancel_timer(k)));
                }
                M::Fired => self.j.push("fired"),
            }
            Ok(())
        }
    }
    let system = ActorSystem::new("t");
    let j = Journal::default();
    let j2 = j.clone();
    let _a = system
        .spawn("t2", move || T2 {
            j: j2.clone(),
            key: None,
        })
        .unwrap();
    _a.tell(M::Arm).unwrap();
    _a.tell(M::BlockThenCancel).unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(j.entries(), vec!["cancel true".to_string()]);
    system.shutdown().await;
}

/// A1 shutdown: children before parents, user actors before system actors,
/// every stopped hook run, and a clean report.
#[tokio::test]
async fn a1_shutdown_order_children_first_user_before_system() {
    let system = ActorSystem::new("t");
    let j = Journal::default();
    let sys = system
        .spawn_system("svc", Knobs::new("svc", &j).factory())
        .unwrap();
    let parent = system
        .spawn("parent", Knobs::new("parent", &j).factory())
        .unwrap();
    let child = parent
        .ask(|r| Cmd::Spawn("child".into(), r), T)
        .await
        .unwrap();
    let _grandchild = child
        .ask(|r| Cmd::Spawn("grand".into(), r), T)
        .await
        .unwrap();
    assert_eq!(sys.path().as_str(), "/system/svc");
    let report = system.shutdown().await;
    assert!(report.clean);
    assert_eq!(report.aborted, 0);
    let order: Vec<_> = j
        .entries()
        .into_iter()
        .filter(|e| e.starts_with("stopped"))
        .collect();
    assert_eq!(
        order,
        vec![
            "stopped grand #1",
            "stopped child #1",
            "stopped parent #1",
            "stopped svc #1"
        ]
    );
    assert_eq!(system.live_actors(), 0, "every task ended");
}

/// A1 shutdown is idempotent: concurrent callers get the same report, and
/// spawning afterwards is refused.
#[tokio::test]
async fn a1_shutdown_is_idempotent() {
    let system = ActorSystem::new("t");
    let j = Journal::default();
    for i in 0..10 {
        system
            .spawn(&format!("a{i}"), Knobs::new("a", &j).factory())
            .unwrap();
    }
    let (r1, r2) = tokio::join!(system.shutdown(), system.shutdown());
    assert_eq!(r1, r2);
    assert_eq!(system.shutdown().await, r1);
    assert_eq!(j.count("stopped a"), 10);
    let late = system.spawn("late", Knobs::new("late", &j).factory());
    assert!(matches!(late, Err(SpawnError::ParentStopping { .. })));
}

/// A1 shutdown deadline: an actor whose stopped hook hangs is aborted when
/// the deadline passes; its watchers see Aborted.
#[tokio::test(start_paused = true)]
async fn a1_shutdown_deadline_aborts_the_rest() {
    let system = ActorSystem::new("t");
    let j = Journal::default();
    let mut k = Knobs::new("stuck", &j);
    k.hang_in_stopped = true;
    let stuck = system.spawn("stuck", k.factory()).unwrap();
    let fine = system
        .spawn_system("fine", Knobs::new("fine", &j).factory())
        .unwrap();
    let t0 = tokio::time::Instant::now();
    let report = system.shutdown_within(Duration::from_millis(500)).await;
    assert!(!report.clean);
    assert!(report.aborted >= 1);
    assert!(t0.elapsed() <= Duration::from_millis(600));
    stuck.stopped().await;
    fine.stopped().await;
    assert!(matches!(
        stuck.handle().stop_reason(),
        Some(StopReason::Aborted)
    ));
}

/// A1: an actor can stop itself from a handler; queued messages are then
/// dropped (dead letters) and the stop hook runs once.
#[tokio::test]
async fn a1_self_stop_runs_stopped_hook_once() {
    let system = ActorSystem::new("t");
    let j = Journal::default();
    let p = system.spawn("p", Knobs::new("p", &j).factory()).unwrap();
    p.tell(Cmd::Record(1)).unwrap();
    p.tell(Cmd::StopSelf).unwrap();
    p.tell(Cmd::Record(2)).unwrap();
    p.stopped().await;
    assert_eq!(j.count("record p 1"), 1);
    assert_eq!(j.count("record p 2"), 0);
    assert_eq!(j.count("stopped p"), 1);
    system.shutdown().await;
}

/// A1: building a system outside a tokio runtime is an error, not a panic.
#[test]
fn a1_system_outside_runtime_is_an_error() {
    let e = ActorSystem::builder("t").build().unwrap_err();
    assert_eq!(e.code(), "actor.no_runtime");
}

/// Regression (review of issue 2): a child that already terminated when its
/// parent watches it is reported once, not twice.
#[tokio::test]
async fn a1_watching_a_dead_child_reports_once() {
    let system = ActorSystem::new("t");
    let j = Journal::default();
    let parent = system.spawn("p", Knobs::new("p", &j).factory()).unwrap();
    let child = parent.ask(|r| Cmd::Spawn("c".into(), r), T).await.unwrap();
    child.tell(Cmd::StopSelf).unwrap();
    child.stopped().await;
    parent.tell(Cmd::Watch(child.handle().clone())).unwrap();
    let _ = state(&parent).await;
    settle().await;
    let _ = state(&parent).await;
    assert_eq!(j.count("terminated p saw c"), 1, "{:?}", j.entries());
    system.shutdown().await;
}

/// Regression (review of issue 2): cancelling the first shutdown call does
/// not cancel the shutdown; later calls get its report.
#[tokio::test(start_paused = true)]
async fn a1_cancelled_shutdown_call_still_completes() {
    let system = ActorSystem::new("t");
    let j = Journal::default();
    let mut k = Knobs::new("slow", &j);
    k.hang_in_stopped = true;
    system.spawn("slow", k.factory()).unwrap();
    let first = tokio::time::timeout(
        Duration::from_millis(1),
        system.shutdown_within(Duration::from_secs(2)),
    )
    .await;
    assert!(first.is_err(), "the first caller gave up");
    let report = tokio::time::timeout(Duration::from_secs(10), system.shutdown()).await;
    let report = report.expect("shutdown finished");
    assert!(!report.clean);
    assert_eq!(report.aborted, 3, "the stuck actor and both guardians");
    let late = system.spawn_system("late", Knobs::new("late", &j).factory());
    assert!(matches!(late, Err(SpawnError::ParentStopping { .. })));
}

/// A1 termination is always told: an actor whose task is dropped before it
/// ever ran (its runtime shut down right after the spawn) still ends, as
/// Aborted, leaves its parent's registry and releases `stopped()`.
#[test]
fn a1_actor_dropped_before_it_ran_still_ends_aborted() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (system, never_ran) = rt.block_on(async {
        let system = ActorSystem::new("t");
        let j = Journal::default();
        // No await after the spawn: the actor's task is never polled.
        let a = system.spawn("a", Knobs::new("a", &j).factory()).unwrap();
        (system, a)
    });
    assert!(!never_ran.handle().is_terminated());
    drop(rt);
    assert!(never_ran.handle().is_terminated());
    assert!(matches!(
        never_ran.handle().stop_reason(),
        Some(StopReason::Aborted)
    ));
    assert!(never_ran.is_closed(), "its mailbox is closed");
    let user = system.user_guardian().unwrap();
    assert!(user.child("a").is_none(), "it left its parent's registry");
}
