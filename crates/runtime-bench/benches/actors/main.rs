//! Criterion benchmarks comparing `actor-runtime` ("ours") with ractor 0.16,
//! kameo 0.22 and raw tokio channels (the floor).
//!
//! Every scenario is one criterion group measuring all peers in the same run,
//! each on a multi-thread tokio runtime with two workers built once per group.
//! Routines use `iter_custom`: setup and teardown are not timed.
//!
//! 1. `tell_1M`: 1,000,000 `u64` told to one summing actor, then one ask.
//! 2. `ask_100k`: 100,000 sequential request/replies.
//! 3. `fanout_100k_x100`: 100,000 events to 100 subscribers through each
//!    peer's default pub/sub; losses go to stderr and `target/bench-losses.txt`.
//! 4. `spawn_stop_10k`: spawn 10,000 actors, stop them all, wait for all.
//! 5. `restart_1k`: 1,000 x (panic in a handler, then a ping answered by the
//!    restarted actor).

mod common;
mod kameo_peer;
mod ours;
mod ractor_peer;
mod raw;

use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{
    BenchmarkGroup, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};

use crate::common::{ASK_N, FAN_EVENTS, FAN_SUBS, RESTART_N, SPAWN_N, TELL_N};

fn configure(group: &mut BenchmarkGroup<'_, WallTime>, elements: u64) {
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sampling_mode(SamplingMode::Flat)
        .throughput(Throughput::Elements(elements));
}

fn tell(c: &mut Criterion) {
    let rt = common::runtime();
    let mut g = c.benchmark_group("tell_1M");
    configure(&mut g, TELL_N);
    g.bench_function("ours", |b| b.iter_custom(|iters| ours::tell(&rt, iters)));
    g.bench_function("ractor", |b| {
        b.iter_custom(|iters| ractor_peer::tell(&rt, iters))
    });
    g.bench_function("kameo", |b| {
        b.iter_custom(|iters| kameo_peer::tell(&rt, iters, false))
    });
    g.bench_function("kameo_unbounded", |b| {
        b.iter_custom(|iters| kameo_peer::tell(&rt, iters, true));
    });
    g.bench_function("raw_tokio", |b| {
        b.iter_custom(|iters| raw::tell(&rt, iters))
    });
    g.finish();
}

fn ask(c: &mut Criterion) {
    let rt = common::runtime();
    let mut g = c.benchmark_group("ask_100k");
    configure(&mut g, ASK_N);
    g.bench_function("ours", |b| b.iter_custom(|iters| ours::ask(&rt, iters)));
    g.bench_function("ractor", |b| {
        b.iter_custom(|iters| ractor_peer::ask(&rt, iters))
    });
    g.bench_function("kameo", |b| {
        b.iter_custom(|iters| kameo_peer::ask(&rt, iters))
    });
    g.bench_function("raw_tokio", |b| b.iter_custom(|iters| raw::ask(&rt, iters)));
    g.finish();
}

fn fanout(c: &mut Criterion) {
    let rt = common::runtime();
    let mut g = c.benchmark_group("fanout_100k_x100");
    configure(&mut g, FAN_EVENTS * FAN_SUBS as u64);
    g.bench_function("ours", |b| b.iter_custom(|iters| ours::fanout(&rt, iters)));
    g.bench_function(ractor_peer::fanout_label(), |b| {
        b.iter_custom(|iters| ractor_peer::fanout(&rt, iters));
    });
    g.bench_function("kameo_pubsub_default", |b| {
        b.iter_custom(|iters| kameo_peer::fanout(&rt, iters, false));
    });
    g.bench_function("kameo_pubsub_guaranteed", |b| {
        b.iter_custom(|iters| kameo_peer::fanout(&rt, iters, true));
    });
    g.bench_function("raw_tokio", |b| {
        b.iter_custom(|iters| raw::fanout(&rt, iters))
    });
    g.finish();
    common::report_fanout_losses("fanout_100k_x100");
}

fn spawn_stop(c: &mut Criterion) {
    let rt = common::runtime();
    let mut g = c.benchmark_group("spawn_stop_10k");
    configure(&mut g, SPAWN_N as u64);
    g.bench_function("ours", |b| {
        b.iter_custom(|iters| ours::spawn_stop(&rt, iters))
    });
    g.bench_function("ractor", |b| {
        b.iter_custom(|iters| ractor_peer::spawn_stop(&rt, iters))
    });
    g.bench_function("kameo", |b| {
        b.iter_custom(|iters| kameo_peer::spawn_stop(&rt, iters))
    });
    g.bench_function("raw_tokio", |b| {
        b.iter_custom(|iters| raw::spawn_stop(&rt, iters))
    });
    g.finish();
}

fn restart(c: &mut Criterion) {
    let rt = common::runtime();
    let quiet = common::QuietPanics::install();
    let mut g = c.benchmark_group("restart_1k");
    configure(&mut g, RESTART_N);
    g.bench_function("ours", |b| b.iter_custom(|iters| ours::restart(&rt, iters)));
    g.bench_function("ractor_supervisor", |b| {
        b.iter_custom(|iters| ractor_peer::restart(&rt, iters));
    });
    g.bench_function("kameo_supervise", |b| {
        b.iter_custom(|iters| kameo_peer::restart(&rt, iters));
    });
    g.bench_function("raw_tokio", |b| {
        b.iter_custom(|iters| raw::restart(&rt, iters))
    });
    g.finish();
    drop(quiet);
}

criterion_group!(benches, tell, ask, fanout, spawn_stop, restart);
criterion_main!(benches);
