//! A small, supervised actor kernel on tokio.
//!
//! This is the runtime under the cluster provisioning subsystem: providers
//! run as supervised child actors, and topology changes travel on the
//! [`EventStream`]. It does a few things and does them without losing
//! messages:
//!
//! - **Actors** ([`Actor`]) own their state and handle one message at a time
//!   from a mailbox (unbounded by default, or [`Mailbox::Bounded`]).
//!   [`ActorRef::tell`] never blocks; [`ActorRef::ask`] waits for a reply with
//!   a timeout.
//! - **Supervision** ([`SupervisorStrategy`]): a panic or an `Err` in any hook
//!   is caught and reported to the parent, which resumes, restarts (with
//!   exponential [`Backoff`] and a [`RestartLimit`]), stops or escalates. A
//!   restarted actor is rebuilt from its factory and keeps its mailbox and its
//!   [`ActorRef`]: nothing queued is lost, only the message that failed.
//! - **Death watch** ([`Context::watch`]) and **timers**
//!   ([`Context::schedule_once`], [`Context::schedule_repeated`]).
//! - **[`ActorSystem`]** with a user guardian (`/user`) and a system guardian
//!   (`/system`) for cluster services, and ordered, idempotent
//!   [`shutdown`](ActorSystem::shutdown) with a deadline.
//! - **[`EventStream`]**: typed publish/subscribe with per-publisher order and
//!   no loss while a subscriber lives.
//!
//! # A first actor
//!
//! ```
//! use std::time::Duration;
//! use actor_runtime::{Actor, ActorSystem, Context, HandlerResult, ReplyTo};
//!
//! #[derive(Default)]
//! struct Counter { n: u64 }
//!
//! enum Msg { Add(u64), Get(ReplyTo<u64>) }
//!
//! impl Actor for Counter {
//!     type Msg = Msg;
//!     async fn handle(&mut self, msg: Msg, _ctx: &mut Context<Self>) -> HandlerResult {
//!         match msg {
//!             Msg::Add(k) => self.n += k,
//!             Msg::Get(reply) => { let _ = reply.send(self.n); }
//!         }
//!         Ok(())
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let system = ActorSystem::new("example");
//! let counter = system.spawn("counter", Counter::default).unwrap();
//! counter.tell(Msg::Add(2)).unwrap();
//! counter.tell(Msg::Add(3)).unwrap();
//! let n = counter.ask(Msg::Get, Duration::from_secs(1)).await.unwrap();
//! assert_eq!(n, 5);
//! let report = system.shutdown().await;
//! assert!(report.clean);
//! # }
//! ```
//!
//! # Mailbox and system-message priority
//!
//! Each actor has two queues: user messages (FIFO) and system messages
//! (stop, restart, resume, child failures, terminations), which are always
//! taken first. So `stop()` overtakes a backlog; the backlog is then dropped
//! and counted as dead letters.
//!
//! # What a restart keeps and loses
//!
//! | kept | lost |
//! |---|---|
//! | the mailbox and everything queued in it | the actor's state (rebuilt by the factory) |
//! | the [`ActorRef`] and path | the message whose handler failed |
//! | watches made with [`Context::watch`] | timers (cancelled) |
//! | event-stream subscriptions | children (stopped; `started` usually spawns them anew) |
//!
//! See `docs/actor-runtime.md` in the repository for the whole model.

mod actor;
mod actor_ref;
mod children;
mod context;
mod event_stream;
mod latch;
mod loom;
mod mailbox;
pub mod metrics;
mod path;
mod registry;
mod runner;
mod supervision;
mod sysqueue;
mod system;
mod timers;
mod watch;

pub use actor::{Actor, BoxError, HandlerResult, Props};
pub use actor_ref::{ActorHandle, ActorId, ActorRef, AskError, ReplyTo, TellError, Terminated};
pub use context::Context;
pub use event_stream::{EventStream, SubscriberId, Subscription};
pub use mailbox::Mailbox;
pub use path::ActorPath;
pub use supervision::{
    Backoff, Directive, Failure, FailureCause, RestartLimit, Scope, Stage, StopReason,
    SupervisorStrategy,
};
pub use system::{ActorSystem, ActorSystemBuilder, Never, ShutdownReport, SpawnError};
pub use timers::TimerKey;

/// The guide in `docs/actor-runtime.md`, compiled so that its examples run
/// as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/actor-runtime.md")]
pub struct ActorRuntimeGuide;
