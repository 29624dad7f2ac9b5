//! Compile-time checks that public handles and futures are `Send` (and
//! handles `Sync`), in the manner of tokio's `tests/async_send_sync.rs`. If
//! one of these stops compiling, a public type lost a property users rely on.
#![allow(clippy::unwrap_used, missing_docs, dead_code)]

use std::time::Duration;

use actor_runtime::*;

fn send<T: Send>(_: &T) {}
fn send_sync<T: Send + Sync>() {}

struct A;
enum M {
    Get(ReplyTo<u32>),
}
impl Actor for A {
    type Msg = M;
    async fn handle(&mut self, _: M, _: &mut Context<Self>) -> HandlerResult {
        Ok(())
    }
}

#[test]
fn handles_are_send_and_sync() {
    send_sync::<ActorRef<M>>();
    send_sync::<ActorHandle>();
    send_sync::<ActorSystem>();
    send_sync::<EventStream>();
    send_sync::<SupervisorStrategy>();
    send_sync::<Failure>();
    send_sync::<StopReason>();
    send_sync::<SpawnError>();
    send_sync::<AskError>();
    send_sync::<Terminated>();
}

#[tokio::test]
async fn public_futures_are_send() {
    let system = ActorSystem::new("send");
    let a = system.spawn("a", || A).unwrap();
    let ask = a.ask(M::Get, Duration::from_millis(1));
    send(&ask);
    drop(ask);
    let stopped = a.handle().stopped();
    send(&stopped);
    drop(stopped);
    let shutdown = system.shutdown();
    send(&shutdown);
    let terminated = system.terminated();
    send(&terminated);
    drop(terminated);
    shutdown.await;
}
