//! A1 supervision scenarios: every directive, the restart limit, backoff,
//! escalation, all-for-one, and what a restart keeps.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "support/probe.rs"]
mod probe;

use std::sync::atomic::Ordering;
use std::time::Duration;

use actor_runtime::{ActorRef, ActorSystem, Backoff, Directive, StopReason, SupervisorStrategy};
use probe::*;

fn system_with(strategy: SupervisorStrategy) -> ActorSystem {
    ActorSystem::builder("test")
        .user_guardian_strategy(strategy)
        .build()
        .unwrap()
}

async fn spawn_child(parent: &ActorRef<Cmd>, name: &str) -> ActorRef<Cmd> {
    let name = name.to_owned();
    parent.ask(|r| Cmd::Spawn(name, r), T).await.unwrap()
}

/// A1: a panic in a handler is caught and reported to the parent; with
/// Restart the actor is rebuilt, its ActorRef stays valid, and every message
/// queued behind the failing one is kept (only the failed one is dropped).
#[tokio::test]
async fn a1_restart_keeps_ref_and_queued_messages() {
    let system = system_with(restart_now());
    let j = Journal::default();
    let p = system.spawn("p", Knobs::new("p", &j).factory()).unwrap();
    p.tell(Cmd::Record(1)).unwrap();
    p.tell(Cmd::Panic).unwrap();
    for n in 2..=100 {
        p.tell(Cmd::Record(n)).unwrap();
    }
    let (instance, seen) = state(&p).await;
    assert_eq!(instance, 2, "rebuilt from the factory once");
    assert_eq!(
        seen,
        (2..=100).collect::<Vec<_>>(),
        "nothing queued was lost"
    );
    assert_eq!(
        j.count("stopped p #1"),
        1,
        "old instance's stopped hook ran"
    );
    assert!(system.shutdown().await.clean);
}

/// A1: an Err returned by a handler is a failure like a panic; the decider
/// sees it as an error, and Resume keeps the actor's state.
#[tokio::test]
async fn a1_err_is_a_failure_and_resume_keeps_state() {
    let strategy = restart_now().with_decider(|f| {
        if f.is_panic() {
            Directive::Restart
        } else if f.error_ref().is_some() {
            Directive::Resume
        } else {
            Directive::Stop
        }
    });
    let system = system_with(strategy);
    let p = system
        .spawn("p", Knobs::new("p", &Journal::default()).factory())
        .unwrap();
    p.tell(Cmd::Record(1)).unwrap();
    p.tell(Cmd::Fail).unwrap();
    p.tell(Cmd::Record(2)).unwrap();
    assert_eq!(state(&p).await, (1, vec![1, 2]), "resumed, same instance");
    p.tell(Cmd::Panic).unwrap();
    p.tell(Cmd::Record(3)).unwrap();
    assert_eq!(state(&p).await, (2, vec![3]), "the panic restarted it");
    system.shutdown().await;
}

/// A1: Stop ends the child with the failure as its reason; the parent is
/// told through on_terminated, and the child's mailbox is closed.
#[tokio::test]
async fn a1_stop_directive_stops_child_and_tells_parent() {
    let system = system_with(restart_now());
    let j = Journal::default();
    let parent = system
        .spawn(
            "parent",
            Knobs::new("parent", &j)
                .strategy(decide(Directive::Stop))
                .factory(),
        )
        .unwrap();
    let child = spawn_child(&parent, "child").await;
    child.tell(Cmd::Panic).unwrap();
    child.stopped().await;
    assert!(matches!(child.handle().stop_reason(), Some(StopReason::Failed(f)) if f.is_panic()));
    let _ = state(&parent).await;
    assert_eq!(
        j.count("terminated parent saw child failed"),
        1,
        "{:?}",
        j.entries()
    );
    assert!(child.tell(Cmd::Record(1)).is_err(), "mailbox closed");
    assert_eq!(parent.handle().children().len(), 0, "name released");
    system.shutdown().await;
}

/// A1: Escalate fails the parent; the grandparent (here /user) restarts the
/// parent, which stops the old child, and the parent's new instance starts.
#[tokio::test]
async fn a1_escalate_fails_the_parent_and_grandparent_decides() {
    let system = system_with(restart_now());
    let j = Journal::default();
    let parent_knobs = Knobs::new("parent", &j).strategy(decide(Directive::Escalate));
    let parent = system.spawn("parent", parent_knobs.factory()).unwrap();
    let child = spawn_child(&parent, "child").await;
    child.tell(Cmd::Panic).unwrap();
    child.stopped().await;
    let (instance, _) = state(&parent).await;
    assert_eq!(instance, 2, "parent restarted by /user");
    assert_eq!(parent_knobs.instances(), 2);
    // Children stop before the parent's old instance ends.
    let child_stop = j.position("stopped child #1").unwrap();
    let parent_stop = j.position("stopped parent #1").unwrap();
    assert!(child_stop < parent_stop, "{:?}", j.entries());
    system.shutdown().await;
}

/// A1: escalation that the grandparent resumes resumes the child too.
#[tokio::test]
async fn a1_escalate_then_resume_resumes_the_child() {
    let system = system_with(decide(Directive::Resume));
    let j = Journal::default();
    let parent = system
        .spawn(
            "parent",
            Knobs::new("parent", &j)
                .strategy(decide(Directive::Escalate))
                .factory(),
        )
        .unwrap();
    let child = spawn_child(&parent, "child").await;
    child.tell(Cmd::Record(7)).unwrap();
    child.tell(Cmd::Fail).unwrap();
    child.tell(Cmd::Record(8)).unwrap();
    assert_eq!(state(&child).await, (1, vec![7, 8]));
    assert_eq!(state(&parent).await.0, 1);
    system.shutdown().await;
}

/// A1: all-for-one restarts every sibling when one fails.
#[tokio::test]
async fn a1_all_for_one_restarts_all_siblings() {
    let system = system_with(restart_now());
    let j = Journal::default();
    let afo = SupervisorStrategy::all_for_one().with_backoff(Backoff::none());
    let parent = system
        .spawn("parent", Knobs::new("parent", &j).strategy(afo).factory())
        .unwrap();
    let a = spawn_child(&parent, "a").await;
    let b = spawn_child(&parent, "b").await;
    let c = spawn_child(&parent, "c").await;
    b.tell(Cmd::Record(1)).unwrap();
    a.tell(Cmd::Panic).unwrap();
    for r in [&a, &b, &c] {
        // Each sibling is on its second instance.
        let mut n = 0;
        for _ in 0..100 {
            n = state(r).await.0;
            if n == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(n, 2, "{} not restarted", r.path());
    }
    assert!(state(&b).await.1.is_empty(), "b's state was rebuilt");
    system.shutdown().await;
}

/// A1: one-for-one restarts only the failed child.
#[tokio::test]
async fn a1_one_for_one_leaves_siblings_alone() {
    let system = system_with(restart_now());
    let parent = system
        .spawn(
            "parent",
            Knobs::new("parent", &Journal::default()).factory(),
        )
        .unwrap();
    let a = spawn_child(&parent, "a").await;
    let b = spawn_child(&parent, "b").await;
    b.tell(Cmd::Record(5)).unwrap();
    a.tell(Cmd::Panic).unwrap();
    assert_eq!(state(&a).await.0, 2);
    assert_eq!(state(&b).await, (1, vec![5]));
    system.shutdown().await;
}

/// A1 (at most N restarts within a window): the (N+1)-th failure in the
/// window stops the child with RestartLimitExceeded and the parent is told.
#[tokio::test(start_paused = true)]
async fn a1_restart_limit_stops_child_and_tells_parent() {
    let system = system_with(restart_now());
    let j = Journal::default();
    let limited = SupervisorStrategy::one_for_one()
        .with_backoff(Backoff::none())
        .with_limit(3, Duration::from_secs(10));
    let parent = system
        .spawn(
            "parent",
            Knobs::new("parent", &j).strategy(limited).factory(),
        )
        .unwrap();
    let child = spawn_child(&parent, "child").await;
    for _ in 0..3 {
        child.tell(Cmd::Panic).unwrap();
    }
    child.tell(Cmd::Record(1)).unwrap();
    assert_eq!(state(&child).await, (4, vec![1]), "three restarts allowed");
    child.tell(Cmd::Panic).unwrap();
    child.stopped().await;
    match child.handle().stop_reason() {
        Some(StopReason::RestartLimitExceeded {
            failures, within, ..
        }) => {
            assert_eq!(failures, 4);
            assert_eq!(within, Duration::from_secs(10));
        }
        other => panic!("unexpected reason {other:?}"),
    }
    let _ = state(&parent).await;
    assert_eq!(j.count("terminated parent saw child restart-limit"), 1);
    system.shutdown().await;
}

/// A1: failures spread wider than the window never hit the limit.
#[tokio::test(start_paused = true)]
async fn a1_restart_window_reopens_after_quiet_period() {
    let limited = SupervisorStrategy::one_for_one()
        .with_backoff(Backoff::none())
        .with_limit(1, Duration::from_secs(1));
    let system = system_with(limited);
    let p = system
        .spawn("p", Knobs::new("p", &Journal::default()).factory())
        .unwrap();
    for round in 0..5 {
        p.tell(Cmd::Panic).unwrap();
        assert_eq!(state(&p).await.0, round + 2);
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    assert!(!p.handle().is_terminated());
    system.shutdown().await;
}

/// A1 (exponential backoff): restart n waits min * factor^n, capped.
#[tokio::test(start_paused = true)]
async fn a1_restart_backoff_grows_exponentially() {
    let backoff = Backoff::exponential(Duration::from_millis(100), Duration::from_millis(400));
    let strategy = SupervisorStrategy::one_for_one()
        .with_backoff(backoff)
        .with_limit(10, Duration::from_secs(60));
    let system = system_with(strategy);
    let p = system
        .spawn("p", Knobs::new("p", &Journal::default()).factory())
        .unwrap();
    let _ = state(&p).await;
    let mut waited = Vec::new();
    for _ in 0..4 {
        let t0 = tokio::time::Instant::now();
        p.tell(Cmd::Panic).unwrap();
        let _ = state(&p).await;
        waited.push(t0.elapsed().as_millis());
    }
    assert_eq!(waited, vec![100, 200, 400, 400]);
    system.shutdown().await;
}

/// A1: a stop request cuts a restart backoff short.
#[tokio::test(start_paused = true)]
async fn a1_stop_during_backoff_stops_promptly() {
    let slow = SupervisorStrategy::one_for_one().with_backoff(Backoff::exponential(
        Duration::from_secs(3600),
        Duration::from_secs(3600),
    ));
    let system = system_with(slow);
    let p = system
        .spawn("p", Knobs::new("p", &Journal::default()).factory())
        .unwrap();
    p.tell(Cmd::Panic).unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    let t0 = tokio::time::Instant::now();
    p.stop();
    p.stopped().await;
    assert!(t0.elapsed() < Duration::from_secs(1));
    system.shutdown().await;
}

/// A1: a message sent before the actor finished starting is never lost
/// because an earlier one failed, nor because the start itself failed.
#[tokio::test(start_paused = true)]
async fn a1_messages_sent_before_start_survive_failures() {
    let system = system_with(restart_now());
    let mut k = Knobs::new("p", &Journal::default());
    k.start_delay = Duration::from_millis(50);
    k.start_failures.store(2, Ordering::SeqCst);
    let p = system.spawn("p", k.factory()).unwrap();
    // All of these are queued while `started` is still sleeping.
    p.tell(Cmd::Record(1)).unwrap();
    p.tell(Cmd::Panic).unwrap();
    p.tell(Cmd::Record(2)).unwrap();
    p.tell(Cmd::Record(3)).unwrap();
    let (instance, seen) = state(&p).await;
    assert_eq!(instance, 4, "two failed starts, one failed message");
    assert_eq!(seen, vec![2, 3]);
    assert_eq!(k.instances(), 4);
    system.shutdown().await;
}

/// A1: a Resume decided for a failed start is a restart (there is no state to
/// resume), still counted against the limit.
#[tokio::test]
async fn a1_resume_on_start_failure_restarts() {
    let system = system_with(decide(Directive::Resume).with_limit(5, Duration::from_secs(60)));
    let k = Knobs::new("p", &Journal::default());
    k.start_failures.store(1, Ordering::SeqCst);
    let p = system.spawn("p", k.factory()).unwrap();
    assert_eq!(state(&p).await.0, 2);
    system.shutdown().await;
}

/// A1: 1,000 crashes in a row, each restarted; the actor still answers and
/// the process never unwinds.
#[tokio::test(start_paused = true)]
async fn a1_thousand_crashes_are_each_restarted() {
    std::panic::set_hook(Box::new(|_| {}));
    let system = system_with(restart_now());
    let k = Knobs::new("p", &Journal::default());
    let p = system.spawn("p", k.factory()).unwrap();
    for _ in 0..1000 {
        p.tell(Cmd::Panic).unwrap();
    }
    p.tell(Cmd::Record(42)).unwrap();
    assert_eq!(state(&p).await, (1001, vec![42]));
    let _ = std::panic::take_hook();
    system.shutdown().await;
}

/// A1: an escalation that reaches a guardian stops that child only; the
/// system and its other actors go on.
#[tokio::test]
async fn a1_escalation_to_guardian_stops_only_that_child() {
    let system = system_with(decide(Directive::Escalate));
    let j = Journal::default();
    let a = system.spawn("a", Knobs::new("a", &j).factory()).unwrap();
    let b = system.spawn("b", Knobs::new("b", &j).factory()).unwrap();
    a.tell(Cmd::Panic).unwrap();
    a.stopped().await;
    b.tell(Cmd::Record(1)).unwrap();
    assert_eq!(state(&b).await, (1, vec![1]));
    assert!(!system.is_shutting_down());
    system.shutdown().await;
}

/// A1: a panic in the `stopped` hook is caught and logged; the actor still
/// terminates normally and shutdown stays clean.
#[tokio::test]
async fn a1_panicking_stopped_hook_does_not_stop_shutdown() {
    struct Bad;
    impl actor_runtime::Actor for Bad {
        type Msg = ();
        async fn handle(
            &mut self,
            _: (),
            _: &mut actor_runtime::Context<Self>,
        ) -> actor_runtime::HandlerResult {
            Ok(())
        }
        async fn stopped(&mut self, _: &mut actor_runtime::Context<Self>) {
            panic!("stopped hook panics");
        }
    }
    let system = ActorSystem::new("test");
    let a = system.spawn("bad", || Bad).unwrap();
    a.stop();
    a.stopped().await;
    assert!(a.handle().stop_reason().is_some_and(|r| r.is_normal()));
    assert!(system.shutdown().await.clean);
}

/// Regression (review of issue 2): a supervisor decider that panics must not
/// kill the parent's task (which would orphan its children); the failing
/// child is stopped instead and the parent goes on.
#[tokio::test]
async fn a1_panicking_decider_stops_the_child_not_the_parent() {
    let system = system_with(restart_now());
    let j = Journal::default();
    let bad = restart_now().with_decider(|_| panic!("decider bug"));
    let parent = system
        .spawn("parent", Knobs::new("parent", &j).strategy(bad).factory())
        .unwrap();
    let child = spawn_child(&parent, "child").await;
    let sibling = spawn_child(&parent, "sibling").await;
    child.tell(Cmd::Panic).unwrap();
    child.stopped().await;
    assert_eq!(
        state(&parent).await.0,
        1,
        "parent not restarted, still alive"
    );
    assert_eq!(state(&sibling).await.0, 1);
    system.shutdown().await;
    assert!(sibling.handle().is_terminated());
}

/// Regression (review of issue 2): a hook whose synchronous part panics
/// (before its future is first polled) is caught like any other failure.
#[tokio::test]
async fn a1_panic_before_the_first_await_is_caught() {
    struct Eager;
    impl actor_runtime::Actor for Eager {
        type Msg = u8;
        #[allow(unreachable_code, clippy::manual_async_fn)]
        fn handle(
            &mut self,
            msg: u8,
            _: &mut actor_runtime::Context<Self>,
        ) -> impl std::future::Future<Output = actor_runtime::HandlerResult> + Send {
            if msg == 0 {
                panic!("synchronous panic in handle");
            }
            async { Ok(()) }
        }
    }
    let system = system_with(restart_now());
    let mut instances = 0;
    let counter = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let c = counter.clone();
    let a = system
        .spawn("eager", move || {
            instances += 1;
            c.store(instances, Ordering::SeqCst);
            Eager
        })
        .unwrap();
    a.tell(0).unwrap();
    a.tell(1).unwrap();
    for _ in 0..100 {
        if counter.load(Ordering::SeqCst) == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert_eq!(counter.load(Ordering::SeqCst), 2, "restarted once");
    assert!(!a.handle().is_terminated());
    system.shutdown().await;
}

/// A1: the parent actor learns of each child failure and the directive it
/// got (`on_child_failed`), so a supervisor can track its children's health.
#[tokio::test]
async fn a1_parent_is_told_of_child_failures_and_directives() {
    let system = system_with(restart_now());
    let j = Journal::default();
    let parent = system
        .spawn("parent", Knobs::new("parent", &j).factory())
        .unwrap();
    let child = spawn_child(&parent, "child").await;
    child.tell(Cmd::Panic).unwrap();
    child.tell(Cmd::Fail).unwrap();
    assert_eq!(state(&child).await.0, 3);
    let _ = state(&parent).await;
    assert_eq!(
        j.count("child-failed parent saw child Restart"),
        2,
        "{:?}",
        j.entries()
    );
    system.shutdown().await;
}
