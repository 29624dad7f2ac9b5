//! R4.5, N2: Remoting's association, heartbeat, per-peer and quarantine
//! metrics, and the placement metrics, each node under its own `node`
//! label. One global recorder per process, installed once; each test's
//! nodes have their own names, so their series do not mix.
//!
//! The recorder keeps every series' current value ([`Current`]). The
//! debugging recorder's snapshot resets gauges to 0, so a gauge read
//! through it is 0 whenever it was not set since the previous read: the
//! assertions that a gauge is 0 (a peer that left, a partitioned peer, no
//! association up) could not fail, and a node's series was never compared
//! with another node's at one moment.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use metrics_util::registry::{AtomicStorage, Registry};
use support::nodes::*;
use tokio::io::AsyncWriteExt;

/// A recorder whose series read as their current value: a gauge as last
/// set, a counter as its total so far, a histogram as its sample count.
#[derive(Clone)]
struct Current(Arc<Registry<Key, AtomicStorage>>);

impl Recorder for Current {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        self.0
            .get_or_create_counter(key, |c| Counter::from_arc(c.clone()))
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        self.0
            .get_or_create_gauge(key, |g| Gauge::from_arc(g.clone()))
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        self.0
            .get_or_create_histogram(key, |h| Histogram::from_arc(h.clone()))
    }
}

impl Current {
    /// The sum over the series of `name` whose labels include `labels`
    /// (`None` when there is none). Assertions name the `node` label, so
    /// they read one series (or one node's series).
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let wanted = |k: &Key| {
            k.name() == name
                && labels
                    .iter()
                    .all(|(lk, lv)| k.labels().any(|l| l.key() == *lk && l.value() == *lv))
        };
        let mut found: Option<f64> = None;
        for (k, c) in self.0.get_counter_handles() {
            if wanted(&k) {
                *found.get_or_insert(0.0) += c.load(Ordering::SeqCst) as f64;
            }
        }
        for (k, g) in self.0.get_gauge_handles() {
            if wanted(&k) {
                *found.get_or_insert(0.0) += f64::from_bits(g.load(Ordering::SeqCst));
            }
        }
        for (k, h) in self.0.get_histogram_handles() {
            if wanted(&k) {
                *found.get_or_insert(0.0) += h.data().len() as f64;
            }
        }
        found
    }

    /// The association gauges of `node`: (up, failed).
    fn associations(&self, node: &str) -> (Option<f64>, Option<f64>) {
        let state = |s| self.value("remoting_associations", &[("node", node), ("state", s)]);
        (state("up"), state("failed"))
    }
}

/// The process-wide recorder, installed once (each test reads its own
/// nodes' series by their `node` label).
fn recorder() -> Current {
    static RECORDER: OnceLock<Current> = OnceLock::new();
    RECORDER
        .get_or_init(|| {
            let snap = Current(Arc::new(Registry::atomic()));
            metrics::set_global_recorder(snap.clone()).unwrap();
            cluster::metrics::describe();
            snap
        })
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r4_5_n2_remoting_metrics_follow_associations_heartbeats_peers_and_quarantines() {
    let snap = recorder();

    let backends = Backends::fast_detection();
    let a = backends.start("a").await;
    let b = backends.start("b").await;
    let c = backends.start("c").await;
    converge(&[&a, &b, &c], &["a", "b", "c"]).await;
    // N2: the nodes share one recorder but each has its own series.
    for node in ["a", "b", "c"] {
        eventually(&format!("{node}: two associations up"), || async {
            snap.value("remoting_associations", &[("node", node), ("state", "up")]) == Some(2.0)
        })
        .await;
    }
    eventually("heartbeats counted", || async {
        snap.value("remoting_heartbeats_sent_total", &[])
            .unwrap_or(0.0)
            >= 4.0
    })
    .await;
    // R4.5: per-peer health and last-heard time.
    for (node, peer) in [("a", "b"), ("a", "c"), ("b", "a"), ("c", "a")] {
        eventually(&format!("{node} sees {peer} up"), || async {
            snap.value("remoting_peer_up", &[("node", node), ("peer", peer)]) == Some(1.0)
        })
        .await;
        eventually(&format!("{node} heard {peer}"), || async {
            snap.value(
                "remoting_peer_last_heard_timestamp_seconds",
                &[("node", node), ("peer", peer)],
            )
            .unwrap_or(0.0)
                > 1.0e9
        })
        .await;
    }

    // Garbage on the listener: refused and counted by code, on a only.
    let addr = format!(
        "{}:{}",
        a.cluster.local().address.host,
        a.cluster.local().address.port
    );
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(&[0, 0, 0, 3, 0xc1, 0xc1, 0xc1]).await.unwrap();
    eventually("garbage refused", || async {
        snap.value(
            "remoting_frames_refused_total",
            &[("node", "a"), ("code", "wire.decode")],
        )
        .unwrap_or(0.0)
            >= 1.0
    })
    .await;
    for node in ["b", "c"] {
        assert_eq!(
            snap.value(
                "remoting_frames_refused_total",
                &[("node", node), ("code", "wire.decode")]
            ),
            None,
            "{node} refused nothing"
        );
    }

    // A grain request is counted on the node asked, and its activation
    // gauged on its owner only.
    let reply = a.request("x").await.unwrap();
    assert!(
        snap.value("placement_requests_total", &[("node", "a")])
            .unwrap()
            >= 1.0
    );
    let owner = reply.node.to_string();
    eventually(&format!("x activated on {owner}"), || async {
        snap.value("placement_activations", &[("node", &owner)]) == Some(1.0)
    })
    .await;
    for node in ["a", "b", "c"] {
        if node != owner {
            assert_eq!(
                snap.value("placement_activations", &[("node", node)])
                    .unwrap_or(0.0),
                0.0,
                "no activation on {node} (x lives on {owner})"
            );
        }
    }

    // A partition between a and b, c still reaching both: heartbeats go
    // unanswered, a and b report each other; c sees nothing wrong. At the
    // same moment the three nodes' series differ, each under its own label.
    backends.net.partition(&[nid("a")], &[nid("b")]);
    for node in ["a", "b"] {
        eventually(&format!("{node} reported a quarantine"), || async {
            snap.value("remoting_quarantines_reported_total", &[("node", node)])
                .unwrap_or(0.0)
                >= 1.0
        })
        .await;
    }
    eventually("a and b: one up, one failed; c: two up", || async {
        snap.associations("a") == (Some(1.0), Some(1.0))
            && snap.associations("b") == (Some(1.0), Some(1.0))
            && snap.associations("c") == (Some(2.0), Some(0.0))
    })
    .await;
    eventually(
        "a and b no longer see each other up, c sees both",
        || async {
            let up = |node, peer| snap.value("remoting_peer_up", &[("node", node), ("peer", peer)]);
            up("a", "b") == Some(0.0)
                && up("b", "a") == Some(0.0)
                && up("a", "c") == Some(1.0)
                && up("b", "c") == Some(1.0)
                && up("c", "a") == Some(1.0)
                && up("c", "b") == Some(1.0)
        },
    )
    .await;
    assert!(
        snap.value("remoting_heartbeats_missed_total", &[("node", "a")])
            .unwrap()
            >= 1.0
    );
    assert_eq!(
        snap.value("remoting_quarantines_reported_total", &[("node", "c")])
            .unwrap_or(0.0),
        0.0,
        "c reported nobody"
    );

    // c leaves: a and b drop its association, and its per-peer series are
    // set to 0 and stay there.
    c.cluster.leave(std::time::Duration::from_secs(3)).await;
    for node in ["a", "b"] {
        eventually(&format!("{node}: c's association removed"), || async {
            snap.value("remoting_associations", &[("node", node), ("state", "up")]) == Some(0.0)
                && a.cluster.remoting().association(&nid("c")).is_none()
                && b.cluster.remoting().association(&nid("c")).is_none()
        })
        .await;
    }
    // Five heartbeat intervals: while c was a peer its series were set
    // every tick (to 1 and a recent time); now they read 0.
    for _ in 0..25 {
        for node in ["a", "b"] {
            for name in [
                "remoting_peer_up",
                "remoting_peer_last_heard_timestamp_seconds",
            ] {
                assert_eq!(
                    snap.value(name, &[("node", node), ("peer", "c")]),
                    Some(0.0),
                    "{name} of c on {node} after it left"
                );
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Issue 17, ring mode: the monitoring counters and gauge, per node. Five
/// nodes (k_eff = 4, q_eff = 3); one is cut off from the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i17_ring_mode_monitoring_metrics_count_rounds_votes_and_reports() {
    use cluster::monitoring::{MonitoringConfig, MonitoringMode};
    use std::time::Duration;

    let snap = recorder();
    let backends = Backends::fast_detection();
    let names = ["ra", "rb", "rc", "rd", "re"];
    let mut nodes = Vec::new();
    for name in names {
        let config = remoting(backends.failure_timeout)
            .with_netsim(backends.net.clone())
            .with_monitoring(MonitoringConfig {
                mode: MonitoringMode::Ring,
                probe_interval: Duration::from_millis(250),
                probe_timeout: Duration::from_millis(80),
                suspicion_mult: 3.0,
                vote_ttl: Duration::from_secs(3),
                ..MonitoringConfig::default()
            });
        nodes.push(
            backends
                .start_with(name, |b| b.remoting_config(config))
                .await,
        );
    }
    let refs: Vec<&TestNode> = nodes.iter().collect();
    converge(&refs, &names).await;
    for node in names {
        eventually(&format!("{node}: answered rounds counted"), || async {
            snap.value(
                "remoting_monitor_rounds_total",
                &[("node", node), ("result", "ack")],
            )
            .unwrap_or(0.0)
                >= 4.0
        })
        .await;
        assert_eq!(
            snap.value(
                "remoting_associations_opened_total",
                &[("node", node), ("reason", "ring")]
            ),
            Some(4.0),
            "{node}: its ring set is everyone else"
        );
        assert_eq!(
            snap.value("remoting_local_health", &[("node", node)]),
            Some(0.0),
            "{node}: healthy"
        );
        assert_eq!(
            snap.value("remoting_heartbeats_sent_total", &[("node", node)])
                .unwrap_or(0.0),
            0.0,
            "{node}: no all-to-all heartbeats in ring mode"
        );
    }
    let others: Vec<_> = ["ra", "rb", "rd", "re"].iter().map(|n| nid(n)).collect();
    backends.net.partition(&[nid("rc")], &others);
    for node in ["ra", "rb", "rd", "re"] {
        eventually(&format!("{node}: reported rc"), || async {
            snap.value("remoting_monitor_reports_total", &[("node", node)])
                .unwrap_or(0.0)
                >= 1.0
        })
        .await;
        assert_eq!(
            snap.value("remoting_monitor_reports_total", &[("node", node)]),
            Some(1.0),
            "{node}: one report, of rc"
        );
        assert!(
            snap.value(
                "remoting_monitor_rounds_total",
                &[("node", node), ("result", "failed")]
            )
            .unwrap_or(0.0)
                >= 1.0,
            "{node}: its rounds of rc failed"
        );
        assert!(
            snap.value(
                "remoting_monitor_votes_sent_total",
                &[("node", node), ("suspect", "true")]
            )
            .unwrap_or(0.0)
                >= 1.0,
            "{node}: voted about rc"
        );
    }
    // rc hears nobody: its rounds fail with missed nacks, its score rises.
    eventually("rc counts missed nacks and loses confidence", || async {
        snap.value("remoting_monitor_missed_nacks_total", &[("node", "rc")])
            .unwrap_or(0.0)
            >= 1.0
            && snap
                .value("remoting_local_health", &[("node", "rc")])
                .unwrap_or(0.0)
                >= 1.0
    })
    .await;
    assert_eq!(
        snap.value("remoting_monitor_reports_total", &[("node", "rc")])
            .unwrap_or(0.0),
        0.0,
        "rc reports nobody"
    );
    for n in nodes {
        n.system.shutdown().await;
    }
}
