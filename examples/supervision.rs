//! The actor kernel that the provisioning subsystem runs on: supervision,
//! backoff, restart limits, death watch and ordered shutdown.
//!
//! `cargo run --release --example supervision`
//!
//! A `provisioning` system actor supervises two provider actors that publish
//! heartbeats on the EventStream; an `observer` user actor subscribes and
//! watches them. The run shows, in order: both providers publishing; the
//! primary crashing and being restarted with backoff while its ActorRef and
//! queued messages survive; the standby crashing past its restart limit and
//! being stopped, which its supervisor and the observer's death watch see;
//! and an ordered shutdown (user actors, then system actors).
//!
//! The provisioning layer (see the `quickstart` example) is built on exactly
//! these mechanisms. The program exits non-zero if any step does not happen
//! within its time.

use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actor_runtime::{
    Actor, ActorRef, ActorSystem, Backoff, Context, HandlerResult, ReplyTo, SupervisorStrategy,
    Terminated,
};
use examples::Timeline;

/// Published by providers on the EventStream.
#[derive(Clone, Debug)]
struct Heartbeat {
    provider: &'static str,
    instance: u32,
}

enum ProviderMsg {
    Tick,
    Crash,
}

impl Clone for ProviderMsg {
    fn clone(&self) -> Self {
        match self {
            ProviderMsg::Tick => ProviderMsg::Tick,
            ProviderMsg::Crash => ProviderMsg::Crash,
        }
    }
}

struct Provider {
    name: &'static str,
    instance: u32,
}

impl Actor for Provider {
    type Msg = ProviderMsg;

    async fn started(&mut self, ctx: &mut Context<Self>) -> HandlerResult {
        ctx.schedule_repeated(Duration::from_millis(50), ProviderMsg::Tick);
        Ok(())
    }

    async fn handle(&mut self, msg: ProviderMsg, ctx: &mut Context<Self>) -> HandlerResult {
        match msg {
            ProviderMsg::Tick => {
                ctx.system().event_stream().publish(Heartbeat {
                    provider: self.name,
                    instance: self.instance,
                });
                Ok(())
            }
            ProviderMsg::Crash => Err(format!("{} lost its backend", self.name).into()),
        }
    }
}

enum SupervisorMsg {
    Providers(ReplyTo<(ActorRef<ProviderMsg>, ActorRef<ProviderMsg>)>),
}

/// Restarts a failing provider after 100 ms, 200 ms, ...; three restarts in
/// ten seconds at most.
struct Provisioning {
    timeline: Timeline,
    providers: Option<(ActorRef<ProviderMsg>, ActorRef<ProviderMsg>)>,
}

fn provider_factory(name: &'static str) -> impl FnMut() -> Provider + Send + 'static {
    let mut instance = 0;
    move || {
        instance += 1;
        Provider { name, instance }
    }
}

impl Actor for Provisioning {
    type Msg = SupervisorMsg;

    async fn started(&mut self, ctx: &mut Context<Self>) -> HandlerResult {
        let primary = ctx.spawn("primary", provider_factory("primary"))?;
        let standby = ctx.spawn("standby", provider_factory("standby"))?;
        self.providers = Some((primary, standby));
        Ok(())
    }

    async fn handle(&mut self, msg: SupervisorMsg, _: &mut Context<Self>) -> HandlerResult {
        let SupervisorMsg::Providers(reply) = msg;
        if let Some(p) = self.providers.clone() {
            let _ = reply.send(p);
        }
        Ok(())
    }

    async fn on_terminated(&mut self, t: Terminated, _: &mut Context<Self>) -> HandlerResult {
        self.timeline.log(format!(
            "supervisor: child {} terminated: {}",
            t.actor.path(),
            t.reason
        ));
        Ok(())
    }

    async fn stopped(&mut self, _: &mut Context<Self>) {
        self.timeline
            .log("supervisor: stopped (system actor, after the user actors)");
    }

    fn supervisor_strategy(&self) -> SupervisorStrategy {
        SupervisorStrategy::one_for_one()
            .with_backoff(Backoff::exponential(
                Duration::from_millis(100),
                Duration::from_secs(1),
            ))
            .with_limit(3, Duration::from_secs(10))
    }
}

enum ObserverMsg {
    Beat(Heartbeat),
    Watch(actor_runtime::ActorHandle),
}

impl From<Heartbeat> for ObserverMsg {
    fn from(h: Heartbeat) -> Self {
        ObserverMsg::Beat(h)
    }
}

#[derive(Default)]
struct Seen {
    beats: Vec<(&'static str, u32)>,
    terminated: Vec<String>,
}

struct Observer {
    seen: Arc<Mutex<Seen>>,
    timeline: Timeline,
}

impl Actor for Observer {
    type Msg = ObserverMsg;

    async fn handle(&mut self, msg: ObserverMsg, ctx: &mut Context<Self>) -> HandlerResult {
        match msg {
            ObserverMsg::Beat(h) => {
                let mut seen = self.seen.lock().map_err(|_| "poisoned")?;
                if !seen.beats.contains(&(h.provider, h.instance)) {
                    self.timeline.log(format!(
                        "observer: first heartbeat from {} (instance #{})",
                        h.provider, h.instance
                    ));
                }
                seen.beats.push((h.provider, h.instance));
            }
            ObserverMsg::Watch(h) => ctx.watch(&h),
        }
        Ok(())
    }

    async fn on_terminated(&mut self, t: Terminated, _: &mut Context<Self>) -> HandlerResult {
        self.timeline.log(format!(
            "observer: death watch says {} ended: {}",
            t.actor.path(),
            t.reason
        ));
        if let Ok(mut seen) = self.seen.lock() {
            seen.terminated.push(t.actor.path().to_string());
        }
        Ok(())
    }

    async fn stopped(&mut self, _: &mut Context<Self>) {
        self.timeline.log("observer: stopped (user actor, first)");
    }
}

async fn step(
    timeline: &Timeline,
    what: &str,
    limit: Duration,
    mut done: impl FnMut() -> bool,
) -> Result<(), String> {
    let start = Instant::now();
    while !done() {
        if start.elapsed() > limit {
            return Err(format!("step did not happen within {limit:?}: {what}"));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    timeline.log(format!("ok: {what}"));
    Ok(())
}

async fn run() -> Result<(), String> {
    let timeline = Timeline::start();
    let system = ActorSystem::new("supervision");
    timeline.log("system started: /user and /system guardians");

    let t = timeline.clone();
    let provisioning = system
        .spawn_system("provisioning", move || Provisioning {
            timeline: t.clone(),
            providers: None,
        })
        .map_err(|e| e.to_string())?;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let (s, t) = (seen.clone(), timeline.clone());
    let observer = system
        .spawn("observer", move || Observer {
            seen: s.clone(),
            timeline: t.clone(),
        })
        .map_err(|e| e.to_string())?;
    system.event_stream().subscribe::<Heartbeat, _>(&observer);
    let (primary, standby) = provisioning
        .ask(SupervisorMsg::Providers, Duration::from_secs(2))
        .await
        .map_err(|e| e.to_string())?;
    observer
        .tell(ObserverMsg::Watch(standby.handle().clone()))
        .map_err(|e| e.to_string())?;
    let has = |p: &'static str, i: u32| {
        let seen = seen.clone();
        move || {
            seen.lock()
                .map(|s| s.beats.contains(&(p, i)))
                .unwrap_or(false)
        }
    };

    step(
        &timeline,
        "both providers publish on the EventStream",
        Duration::from_secs(5),
        {
            let (a, b) = (has("primary", 1), has("standby", 1));
            move || a() && b()
        },
    )
    .await?;

    timeline.log("crashing the primary provider (handler returns Err)");
    primary
        .tell(ProviderMsg::Crash)
        .map_err(|e| e.to_string())?;
    step(
        &timeline,
        "primary restarted by its supervisor after backoff; same ActorRef",
        Duration::from_secs(5),
        has("primary", 2),
    )
    .await?;

    timeline.log("crashing the standby four times (limit: 3 restarts in 10 s)");
    for _ in 0..4 {
        standby
            .tell(ProviderMsg::Crash)
            .map_err(|e| e.to_string())?;
    }
    step(
        &timeline,
        "standby stopped at its restart limit; supervisor and observer told",
        Duration::from_secs(10),
        {
            let seen = seen.clone();
            move || {
                seen.lock()
                    .map(|s| s.terminated.iter().any(|p| p.ends_with("/standby")))
                    .unwrap_or(false)
            }
        },
    )
    .await?;

    timeline.log("shutting down: user actors first, then system actors");
    let report = system.shutdown().await;
    timeline.log(format!(
        "shutdown {} in {:?} ({} aborted)",
        if report.clean { "clean" } else { "NOT clean" },
        report.elapsed,
        report.aborted
    ));
    if !report.clean {
        return Err("shutdown was not clean".into());
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    examples::finish("supervision", run().await)
}
