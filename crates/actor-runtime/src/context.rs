//! [`Context`]: what an actor can do besides handling its message.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use crate::actor::{Actor, Props};
use crate::actor_ref::{ActorHandle, ActorId, ActorRef};
use crate::mailbox::SystemMsg;
use crate::path::ActorPath;
use crate::supervision::RestartWindow;
use crate::system::{ActorSystem, SpawnError};
use crate::timers::{TimerKey, Timers};

/// Handed to every hook and handler of an actor. It outlives instances: a
/// restarted actor gets the same context, with its watches kept and its
/// timers cancelled.
pub struct Context<A: Actor> {
    pub(crate) myself: ActorRef<A::Msg>,
    pub(crate) system: ActorSystem,
    pub(crate) timers: Timers,
    pub(crate) watching: HashMap<ActorId, ActorHandle>,
    pub(crate) stop_requested: bool,
    pub(crate) restart_windows: HashMap<u64, RestartWindow>,
    pub(crate) pending_escalation: Option<ActorHandle>,
    pub(crate) backlog: VecDeque<SystemMsg>,
    pub(crate) restarts: u32,
}

impl<A: Actor> Context<A> {
    pub(crate) fn new(myself: ActorRef<A::Msg>, system: ActorSystem) -> Self {
        Self {
            myself,
            system,
            timers: Timers::new(),
            watching: HashMap::new(),
            stop_requested: false,
            restart_windows: HashMap::new(),
            pending_escalation: None,
            backlog: VecDeque::new(),
            restarts: 0,
        }
    }

    /// A reference to this actor.
    pub fn myself(&self) -> &ActorRef<A::Msg> {
        &self.myself
    }

    /// This actor's path.
    pub fn path(&self) -> &ActorPath {
        self.myself.path()
    }

    /// The system this actor lives in.
    pub fn system(&self) -> &ActorSystem {
        &self.system
    }

    /// How many times this actor has been restarted.
    pub fn restart_count(&self) -> u32 {
        self.restarts
    }

    /// Spawns a child called `name`, built by `factory` (again at each
    /// restart). Fails if a live sibling has that name.
    pub fn spawn<B: Actor>(
        &mut self,
        name: &str,
        factory: impl FnMut() -> B + Send + 'static,
    ) -> Result<ActorRef<B::Msg>, SpawnError> {
        self.spawn_props(name, Props::new(factory))
    }

    /// Spawns a child from [`Props`].
    pub fn spawn_props<B: Actor>(
        &mut self,
        name: &str,
        props: Props<B>,
    ) -> Result<ActorRef<B::Msg>, SpawnError> {
        crate::system::spawn_child(&self.system, &self.myself.handle, Some(name), props)
    }

    /// Spawns a child with a generated name (`$<id>`).
    pub fn spawn_anonymous<B: Actor>(
        &mut self,
        factory: impl FnMut() -> B + Send + 'static,
    ) -> Result<ActorRef<B::Msg>, SpawnError> {
        crate::system::spawn_child(&self.system, &self.myself.handle, None, Props::new(factory))
    }

    /// The live children.
    pub fn children(&self) -> Vec<ActorHandle> {
        self.myself.handle.children()
    }

    /// Watches `target`: when it terminates, [`Actor::on_terminated`] runs
    /// with its reason. Watching an actor that already terminated delivers
    /// the notification at once. Watching twice is the same as once.
    pub fn watch(&mut self, target: &ActorHandle) {
        if target.id() == self.myself.id() {
            return;
        }
        let me = self.myself.handle.clone();
        self.watching.insert(target.id(), target.clone());
        let is_my_child = target.0.parent.as_ref().is_some_and(|p| p.id() == me.id());
        if let Err(reason) = target.0.watchers.add(me.id().0, me.clone())
            // A child's termination is always reported to its parent; do not
            // report it twice.
            && !is_my_child
        {
            me.send_system(SystemMsg::Terminated {
                actor: target.clone(),
                reason,
            });
        }
    }

    /// Stops watching `target`; a notification already queued is dropped.
    pub fn unwatch(&mut self, target: &ActorHandle) {
        if self.watching.remove(&target.id()).is_some() {
            target.0.watchers.remove(self.myself.id().0);
        }
    }

    /// Stops this actor once the current hook or handler returns.
    pub fn stop(&mut self) {
        self.stop_requested = true;
    }

    /// Sends `msg` to this actor once, after `delay`.
    pub fn schedule_once(&mut self, delay: Duration, msg: A::Msg) -> TimerKey {
        self.timers.once(self.myself.tx.clone(), delay, msg)
    }

    /// Sends a clone of `msg` to this actor every `interval` (at least 1 ms),
    /// first after one interval. Ticks missed while the actor was busy are
    /// delayed, not bunched.
    pub fn schedule_repeated(&mut self, interval: Duration, msg: A::Msg) -> TimerKey
    where
        A::Msg: Clone,
    {
        self.timers.repeat(self.myself.tx.clone(), interval, msg)
    }

    /// Cancels a timer; its message is not delivered even if already queued.
    /// `false` if it had already fired (one-shot) or was cancelled.
    pub fn cancel_timer(&mut self, key: TimerKey) -> bool {
        self.timers.cancel(key)
    }

    /// Number of scheduled timers.
    pub fn timer_count(&self) -> usize {
        self.timers.len()
    }
}
