//! A test actor that records what happens to it in a shared journal, so a
//! scenario can check the order of starts, stops, failures and messages
//! across restarts.
#![allow(dead_code, missing_docs)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actor_runtime::{
    Actor, ActorHandle, ActorRef, Context, Directive, HandlerResult, ReplyTo, SupervisorStrategy,
    Terminated,
};

/// Shared, ordered record of what every probe did.
#[derive(Clone, Default)]
pub struct Journal(Arc<Mutex<Vec<String>>>);

impl Journal {
    pub fn push(&self, s: impl Into<String>) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(s.into());
    }
    pub fn entries(&self) -> Vec<String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
    pub fn count(&self, prefix: &str) -> usize {
        self.entries()
            .iter()
            .filter(|e| e.starts_with(prefix))
            .count()
    }
    pub fn position(&self, entry: &str) -> Option<usize> {
        self.entries().iter().position(|e| e == entry)
    }
}

pub enum Cmd {
    Record(u32),
    Panic,
    Fail,
    /// Replies with (instance number, values recorded by this instance).
    State(ReplyTo<(u32, Vec<u32>)>),
    Spawn(String, ReplyTo<ActorRef<Cmd>>),
    Watch(ActorHandle),
    Unwatch(ActorHandle),
    Block(Arc<tokio::sync::Notify>),
    Tick,
    StopSelf,
}

impl Clone for Cmd {
    fn clone(&self) -> Self {
        match self {
            Cmd::Record(n) => Cmd::Record(*n),
            Cmd::Tick => Cmd::Tick,
            Cmd::Panic => Cmd::Panic,
            Cmd::Fail => Cmd::Fail,
            _ => Cmd::Tick,
        }
    }
}

/// Behaviour knobs shared by all instances built by one factory.
#[derive(Clone)]
pub struct Knobs {
    pub name: String,
    pub journal: Journal,
    pub instances: Arc<AtomicU32>,
    /// Panic in `started` while this is > 0 (decremented each time).
    pub start_failures: Arc<AtomicU32>,
    pub start_delay: Duration,
    pub strategy: Option<SupervisorStrategy>,
    pub child_knobs: Option<Box<Knobs>>,
    pub hang_in_stopped: bool,
}

impl Knobs {
    pub fn new(name: &str, journal: &Journal) -> Self {
        Self {
            name: name.to_owned(),
            journal: journal.clone(),
            instances: Arc::new(AtomicU32::new(0)),
            start_failures: Arc::new(AtomicU32::new(0)),
            start_delay: Duration::ZERO,
            strategy: None,
            child_knobs: None,
            hang_in_stopped: false,
        }
    }

    pub fn strategy(mut self, s: SupervisorStrategy) -> Self {
        self.strategy = Some(s);
        self
    }

    pub fn factory(&self) -> impl FnMut() -> Probe + Send + 'static {
        let knobs = self.clone();
        move || Probe {
            instance: knobs.instances.fetch_add(1, Ordering::SeqCst) + 1,
            seen: Vec::new(),
            knobs: knobs.clone(),
        }
    }

    pub fn instances(&self) -> u32 {
        self.instances.load(Ordering::SeqCst)
    }
}

pub struct Probe {
    pub instance: u32,
    pub seen: Vec<u32>,
    pub knobs: Knobs,
}

#[derive(Debug, thiserror::Error)]
#[error("deliberate failure")]
pub struct Deliberate;

impl Actor for Probe {
    type Msg = Cmd;

    async fn started(&mut self, _ctx: &mut Context<Self>) -> HandlerResult {
        if !self.knobs.start_delay.is_zero() {
            tokio::time::sleep(self.knobs.start_delay).await;
        }
        let left = self.knobs.start_failures.load(Ordering::SeqCst);
        if left > 0 {
            self.knobs.start_failures.store(left - 1, Ordering::SeqCst);
            self.knobs
                .journal
                .push(format!("start-failed {}", self.knobs.name));
            panic!("start failure");
        }
        self.knobs
            .journal
            .push(format!("started {} #{}", self.knobs.name, self.instance));
        Ok(())
    }

    async fn handle(&mut self, msg: Cmd, ctx: &mut Context<Self>) -> HandlerResult {
        match msg {
            Cmd::Record(n) => {
                self.seen.push(n);
                self.knobs
                    .journal
                    .push(format!("record {} {n}", self.knobs.name));
            }
            Cmd::Panic => panic!("deliberate panic"),
            Cmd::Fail => return Err(Box::new(Deliberate)),
            Cmd::State(r) => {
                let _ = r.send((self.instance, self.seen.clone()));
            }
            Cmd::Spawn(name, r) => {
                let knobs = match &self.knobs.child_knobs {
                    Some(k) => (**k).clone(),
                    None => Knobs::new(&name, &self.knobs.journal),
                };
                let child = ctx.spawn(&name, knobs.factory())?;
                let _ = r.send(child);
            }
            Cmd::Watch(h) => ctx.watch(&h),
            Cmd::Unwatch(h) => ctx.unwatch(&h),
            Cmd::Block(n) => n.notified().await,
            Cmd::Tick => self.knobs.journal.push(format!("tick {}", self.knobs.name)),
            Cmd::StopSelf => ctx.stop(),
        }
        Ok(())
    }

    async fn on_terminated(&mut self, t: Terminated, _ctx: &mut Context<Self>) -> HandlerResult {
        self.knobs.journal.push(format!(
            "terminated {} saw {} {}",
            self.knobs.name,
            t.actor.path().name(),
            reason_tag(&t.reason)
        ));
        Ok(())
    }

    async fn on_child_failed(
        &mut self,
        child: ActorHandle,
        _failure: actor_runtime::Failure,
        directive: Directive,
        _ctx: &mut Context<Self>,
    ) {
        self.knobs.journal.push(format!(
            "child-failed {} saw {} {directive:?}",
            self.knobs.name,
            child.path().name()
        ));
    }

    async fn stopped(&mut self, _ctx: &mut Context<Self>) {
        if self.knobs.hang_in_stopped {
            std::future::pending::<()>().await;
        }
        self.knobs
            .journal
            .push(format!("stopped {} #{}", self.knobs.name, self.instance));
    }

    fn supervisor_strategy(&self) -> SupervisorStrategy {
        self.knobs.strategy.clone().unwrap_or_else(|| {
            SupervisorStrategy::one_for_one().with_backoff(actor_runtime::Backoff::none())
        })
    }
}

pub fn reason_tag(r: &actor_runtime::StopReason) -> &'static str {
    match r {
        actor_runtime::StopReason::Stopped => "stopped",
        actor_runtime::StopReason::Failed(_) => "failed",
        actor_runtime::StopReason::RestartLimitExceeded { .. } => "restart-limit",
        actor_runtime::StopReason::Aborted => "aborted",
    }
}

pub fn restart_now() -> SupervisorStrategy {
    SupervisorStrategy::one_for_one()
        .with_backoff(actor_runtime::Backoff::none())
        .with_limit(u32::MAX, Duration::from_secs(60))
}

pub fn decide(d: Directive) -> SupervisorStrategy {
    restart_now().with_decider(move |_| d)
}

pub const T: Duration = Duration::from_secs(5);

pub async fn state(r: &actor_runtime::ActorRef<Cmd>) -> (u32, Vec<u32>) {
    r.ask(Cmd::State, T).await.expect("state reply")
}

pub async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
}
