//! Consul provider benchmarks over the fake agent on loopback (P2, issue 5).
//!
//! - `consul/registration_to_topology_updated`: a node's provider registers
//!   its member with its agent (`PUT /v1/agent/service/register`) → an
//!   observer node, whose supervisor watches through another agent of the
//!   same fake cluster, publishes the `TopologyUpdated` that lists it.
//!   Target ≤ 50 ms. Between iterations (untimed) the member is
//!   deregistered and its leave observed. p50 / p99 / max are printed after
//!   the group.
//! - steady state (not a criterion measurement): N nodes with the default
//!   timings (wait 5 s, TTL 10 s) run for a fixed window; the fake agents'
//!   request counters give requests per node per minute. Target: one
//!   blocking query in flight per node plus the TTL passes, nothing else
//!   (expected 60/5 = 12 queries + 60/(10/3) = 18 passes = 30 per minute).
//!
//! - `consul/connectivity_check_plain` and `consul/connectivity_check_mtls`
//!   (issue 14): a new provider's connectivity check (a new connection, then
//!   `GET /v1/agent/self` and a health read) against an agent over plain
//!   HTTP and over HTTPS requiring a client certificate: the cost of the
//!   TLS handshake on loopback. Providers are built outside the timing.
//!
//! ```sh
//! cargo bench -p provider-consul --bench consul
//! CONSUL_BENCH_WINDOW_S=60 cargo bench -p provider-consul --bench consul   # a longer window
//! ```

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actor_runtime::ActorSystem;
use cluster_core::events::TopologyUpdated;
use cluster_core::{Member, MemberAddress, NodeId, ProviderDescriptor, ProviderId};
use criterion::Criterion;
use fake_consul::FakeConsul;
use provider_consul::ConsulKind;
use provisioning_actors::{
    ProviderFactory, ProviderKinds, ProvisioningConfig, ProvisioningSupervisor,
};
use tokio::sync::mpsc;

fn member(name: &str, port: u16) -> Member {
    Member::new(
        NodeId::new(name).expect("node id"),
        MemberAddress::new("127.0.0.1", port).expect("address"),
        1,
    )
}

fn descriptor(agent: &FakeConsul, extra: &[(&str, &str)]) -> ProviderDescriptor {
    let mut d = ProviderDescriptor::new(ProviderId::new("consul").expect("id"), "consul", 0)
        .with_setting("address", agent.url())
        .with_setting("service", "bench");
    for (k, v) in extra {
        d = d.with_setting(*k, *v);
    }
    d
}

async fn node(
    name: &str,
    port: u16,
    agent: &FakeConsul,
) -> (ActorSystem, provisioning_actors::ProvisioningHandle) {
    let system = ActorSystem::new(name);
    let kinds = ProviderKinds::new().with(ConsulKind::without_env());
    let config = ProvisioningConfig {
        local: Some(member(name, port)),
        ..ProvisioningConfig::default()
    };
    let handle =
        ProvisioningSupervisor::spawn(&system, config, kinds, vec![descriptor(agent, &[])])
            .await
            .expect("supervisor");
    (system, handle)
}

fn percentiles(name: &str, samples: &mut [Duration]) {
    if samples.is_empty() {
        return;
    }
    samples.sort();
    let at = |p: f64| {
        let i = ((samples.len() as f64 - 1.0) * p).round() as usize;
        samples[i]
    };
    println!(
        "{name}: n={} p50={:?} p99={:?} max={:?}",
        samples.len(),
        at(0.50),
        at(0.99),
        samples[samples.len() - 1]
    );
}

fn registration_to_topology_updated(c: &mut Criterion, rt: &tokio::runtime::Runtime) {
    let (joined_rx, left_rx, provider, _keep) = rt.block_on(async {
        let a = FakeConsul::start().await.expect("fake agent");
        let b = a.join("node-b").await.expect("second agent");
        let (observer, handle) = node("observer", 4000, &a).await;
        // Wait until the observer lists itself.
        for _ in 0..1000 {
            if handle.topology().await.expect("topology").members.len() == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let (jtx, jrx) = mpsc::unbounded_channel::<String>();
        let (ltx, lrx) = mpsc::unbounded_channel::<String>();
        let _ = observer
            .event_stream()
            .subscribe_fn(move |u: &TopologyUpdated| {
                for m in &u.diff.joined {
                    let _ = jtx.send(m.node_id.to_string());
                }
                for m in &u.diff.left {
                    let _ = ltx.send(m.node_id.to_string());
                }
            });
        // The joining node's provider, on agent b (long TTL: no passes).
        let p = ConsulKind::without_env()
            .create(&descriptor(&b, &[("ttl_s", "600")]))
            .expect("provider");
        (jrx, lrx, p, (a, b, observer, handle))
    });
    let joined_rx = Arc::new(tokio::sync::Mutex::new(joined_rx));
    let left_rx = Arc::new(tokio::sync::Mutex::new(left_rx));
    let samples = Arc::new(Mutex::new(Vec::new()));
    let mut next = 0u64;
    let mut g = c.benchmark_group("consul");
    g.sample_size(30).measurement_time(Duration::from_secs(10));
    g.bench_function("registration_to_topology_updated", |bch| {
        bch.to_async(rt).iter_custom(|iters| {
            let (provider, joined_rx, left_rx, samples) = (
                provider.clone(),
                joined_rx.clone(),
                left_rx.clone(),
                samples.clone(),
            );
            let first = next;
            next += iters;
            async move {
                let mut total = Duration::ZERO;
                let mut joined = joined_rx.lock().await;
                let mut left = left_rx.lock().await;
                for i in first..first + iters {
                    let m = member(&format!("joiner-{i}"), 5000);
                    let name = m.node_id.to_string();
                    let start = Instant::now();
                    provider.register(&m).await.expect("register");
                    while joined.recv().await.expect("observer alive") != name {}
                    let d = start.elapsed();
                    total += d;
                    samples.lock().expect("samples").push(d);
                    provider.deregister(&m).await.expect("deregister");
                    while left.recv().await.expect("observer alive") != name {}
                }
                total
            }
        });
    });
    g.finish();
    percentiles(
        "consul/registration_to_topology_updated",
        &mut samples.lock().expect("samples"),
    );
}

fn connectivity_check(c: &mut Criterion, rt: &tokio::runtime::Runtime) {
    let dir = std::env::temp_dir().join(format!("consul-bench-pki-{}", std::process::id()));
    let pki = test_pki::TestPki::generate(&dir).expect("certificates");
    let (plain, mtls) = rt.block_on(async {
        let plain = FakeConsul::start().await.expect("fake agent");
        let mtls = FakeConsul::builder()
            .tls(pki.server_config(&pki.server, true).expect("server config"))
            .start()
            .await
            .expect("fake agent");
        (plain, mtls)
    });
    let path = |p: &std::path::Path| p.to_str().expect("utf-8 path").to_owned();
    let (ca, cert, key) = (path(&pki.ca), path(&pki.client.cert), path(&pki.client.key));
    let tls_settings = [
        ("ca_file", ca.as_str()),
        ("client_cert", cert.as_str()),
        ("client_key", key.as_str()),
    ];
    let mut g = c.benchmark_group("consul");
    g.sample_size(50).measurement_time(Duration::from_secs(5));
    for (name, agent, extra) in [
        ("connectivity_check_plain", &plain, &[][..]),
        ("connectivity_check_mtls", &mtls, &tls_settings[..]),
    ] {
        let d = descriptor(agent, extra);
        g.bench_function(name, |bch| {
            bch.to_async(rt).iter_custom(|iters| {
                let d = d.clone();
                async move {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let p = ConsulKind::without_env().create(&d).expect("provider");
                        let start = Instant::now();
                        p.check_connectivity().await.expect("check");
                        total += start.elapsed();
                    }
                    total
                }
            });
        });
    }
    g.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

fn steady_state(rt: &tokio::runtime::Runtime, nodes: usize, window: Duration) {
    rt.block_on(async {
        let first = FakeConsul::start().await.expect("fake agent");
        let mut agents = vec![first.clone()];
        for i in 1..nodes {
            agents.push(first.join(format!("node-{i}")).await.expect("agent"));
        }
        let mut running = Vec::new();
        for (i, agent) in agents.iter().enumerate() {
            running.push(node(&format!("n{i}"), 4000 + i as u16, agent).await);
        }
        // Settle: everyone sees everyone.
        for (_, h) in &running {
            for _ in 0..2000 {
                if h.topology().await.expect("topology").members.len() == nodes {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        for a in &agents {
            a.reset_counters();
        }
        let mut max_in_flight = 0;
        let end = tokio::time::Instant::now() + window;
        while tokio::time::Instant::now() < end {
            for a in &agents {
                max_in_flight = max_in_flight.max(a.blocking_in_flight());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut total: BTreeMap<String, u64> = BTreeMap::new();
        for a in &agents {
            for (k, v) in a.requests() {
                *total.entry(k).or_default() += v;
            }
        }
        let per_min = |n: u64| n as f64 / nodes as f64 * 60.0 / window.as_secs_f64();
        println!(
            "consul/steady_state: {nodes} nodes, window {window:?}, max blocking queries in flight per agent {max_in_flight}"
        );
        let mut all = 0;
        for (k, v) in &total {
            all += v;
            println!("  {k}: {:.1} per node per minute ({v} in the window)", per_min(*v));
        }
        println!("  total: {:.1} per node per minute", per_min(all));
        for (s, _) in running {
            s.shutdown().await;
        }
    });
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut c = Criterion::default().configure_from_args();
    registration_to_topology_updated(&mut c, &rt);
    connectivity_check(&mut c, &rt);
    let window = std::env::var("CONSUL_BENCH_WINDOW_S")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(Duration::from_secs(30), Duration::from_secs);
    if !window.is_zero() {
        steady_state(&rt, 3, window);
    }
    c.final_summary();
}
