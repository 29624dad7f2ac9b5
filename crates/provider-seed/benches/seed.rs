//! Benchmarks of the `static` and `dns` providers (issue 15), a bench
//! script (`harness = false`): real nodes over TCP on loopback, a real
//! dnsmasq. Results go to `docs/performance.md`.
//!
//! ```text
//! cargo bench -p provider-seed --bench seed
//! ```
//!
//! 1. Probes per node per minute at 10 and 100 contact points: one joined
//!    node whose seed list holds itself and 9 / 99 other addresses (TCP
//!    listeners that accept and close: every round probes each of them),
//!    `probe_interval = 1s`, counted with `provider_seed_probes_total` over
//!    30 s.
//! 2. No storm on a restart: ten real nodes over one seed list, probes
//!    per node per minute in the steady state, then in the 30 s after all
//!    ten crashed and restarted at once.
//! 3. A DNS change to `TopologyUpdated`: two nodes behind the A records of
//!    one name, a third joined node whose record is added (then removed);
//!    the time from the record change (file rewritten, SIGHUP) until the
//!    first node's topology lists (no longer lists) it, with
//!    `interval = 1s` and `probe_interval = 1s`, 5 times each.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use provider_seed::metrics_names::PROBES_TOTAL;
use support::dnsmasq::Dnsmasq;
use support::*;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let metrics = Metrics::install();
        for n in [10, 100] {
            probes_per_minute(&metrics, n).await;
        }
        restart_storm(&metrics).await;
        dns_change_latency().await;
    });
}

async fn probes_per_minute(metrics: &Metrics, contacts: usize) {
    let ports = free_ports(contacts);
    let mut listeners = Vec::new();
    for p in &ports[1..] {
        let l = tokio::net::TcpListener::bind(("127.0.0.1", *p))
            .await
            .unwrap();
        listeners.push(tokio::spawn(async move {
            loop {
                if let Ok((s, _)) = l.accept().await {
                    drop(s);
                }
            }
        }));
    }
    let name = format!("p{contacts}");
    let d = static_descriptor(&ports)
        .with_setting("probe_interval_ms", "1000")
        .with_setting("stable_margin_ms", "500");
    let node = start(&name, ports[0], d).await;
    eventually("joined", || async {
        !node.topology().await.members.is_empty()
    })
    .await;
    let c0 = metrics.counter(PROBES_TOTAL, &[("node", name.as_str())]);
    let window = Duration::from_secs(30);
    tokio::time::sleep(window).await;
    let c1 = metrics.counter(PROBES_TOTAL, &[("node", name.as_str())]);
    let per_minute = (c1 - c0) as f64 * 60.0 / window.as_secs_f64();
    println!(
        "probes per node per minute, {contacts} contacts (itself + {} others), probe_interval 1s: {per_minute:.0} ({:.1} per contact)",
        contacts - 1,
        per_minute / (contacts - 1) as f64
    );
    node.stop().await;
    for l in listeners {
        l.abort();
    }
}

async fn restart_storm(metrics: &Metrics) {
    const N: usize = 10;
    let ports = free_ports(N);
    let d = static_descriptor(&ports)
        .with_setting("probe_interval_ms", "1000")
        .with_setting("stable_margin_ms", "1000")
        .with_setting("unreachable_timeout_ms", "3000");
    let names: Vec<String> = (0..N).map(|i| format!("r{i}")).collect();
    let start_all = || {
        let d = d.clone();
        let names = names.clone();
        let ports = ports.clone();
        async move {
            futures::future::join_all((0..N).map(|i| start(&names[i], ports[i], d.clone()))).await
        }
    };
    let total = || -> u64 {
        names
            .iter()
            .map(|n| metrics.counter(PROBES_TOTAL, &[("node", n.as_str())]))
            .sum()
    };
    let window = Duration::from_secs(30);
    let nodes = start_all().await;
    let refs: Vec<&Node> = nodes.iter().collect();
    let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
    converge(&refs, &name_refs).await;
    let c0 = total();
    tokio::time::sleep(window).await;
    let steady = (total() - c0) as f64 * 60.0 / window.as_secs_f64() / N as f64;
    for n in nodes {
        n.crash().await;
    }
    let c0 = total();
    let t0 = Instant::now();
    let nodes = start_all().await;
    let refs: Vec<&Node> = nodes.iter().collect();
    converge(&refs, &name_refs).await;
    let reformed = t0.elapsed();
    let rest = window.saturating_sub(t0.elapsed());
    tokio::time::sleep(rest).await;
    let after = (total() - c0) as f64 * 60.0 / t0.elapsed().as_secs_f64() / N as f64;
    println!(
        "restart of all {N} nodes at once, probe_interval 1s: probes per node per minute {steady:.0} steady, {after:.0} in the 30 s after the restart (one cluster again after {:.1} s)",
        reformed.as_secs_f64()
    );
    for n in nodes {
        n.stop().await;
    }
}

async fn dns_change_latency() {
    let Some(dns) = Dnsmasq::start() else {
        println!("dns change → TopologyUpdated: skipped (no dnsmasq)");
        return;
    };
    let port = free_port();
    let two = [("127.0.0.31", "bench.test"), ("127.0.0.32", "bench.test")];
    let three = [
        ("127.0.0.31", "bench.test"),
        ("127.0.0.32", "bench.test"),
        ("127.0.0.33", "bench.test"),
    ];
    dns.set_hosts(&two);
    let d = dns_descriptor(
        &[("name", "bench.test".into()), ("port", port.to_string())],
        dns.addr(),
    )
    .with_setting("probe_interval_ms", "1000");
    let (a, b) = tokio::join!(
        start_bound("a", "127.0.0.31", port, d.clone()),
        start_bound("b", "127.0.0.32", port, d.clone())
    );
    converge(&[&a, &b], &["a", "b"]).await;
    let c = start_bound("c", "127.0.0.33", port, d.clone()).await;
    eventually("c joined", || async {
        c.topology().await.members.len() == 3
    })
    .await;
    let lists_c = |a: &Node| {
        let a = a.cluster.clone();
        async move {
            a.topology()
                .await
                .unwrap()
                .members
                .iter()
                .any(|m| m.node_id.as_str() == "c")
        }
    };
    let (mut added, mut removed) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        let t0 = Instant::now();
        dns.set_hosts(&three);
        while !lists_c(&a).await {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        added.push(t0.elapsed());
        tokio::time::sleep(Duration::from_millis(1300)).await;
        let t0 = Instant::now();
        dns.set_hosts(&two);
        while lists_c(&a).await {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        removed.push(t0.elapsed());
        tokio::time::sleep(Duration::from_millis(1300)).await;
    }
    let show = |mut v: Vec<Duration>| {
        v.sort();
        format!(
            "median {:.0} ms, max {:.0} ms ({})",
            v[v.len() / 2].as_secs_f64() * 1e3,
            v[v.len() - 1].as_secs_f64() * 1e3,
            v.iter()
                .map(|d| format!("{:.0}", d.as_secs_f64() * 1e3))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    println!(
        "dns record added → listed (interval 1s, probe_interval 1s): {}",
        show(added)
    );
    println!(
        "dns record removed → dropped (interval 1s, probe_interval 1s): {}",
        show(removed)
    );
    for n in [a, b, c] {
        n.stop().await;
    }
}
