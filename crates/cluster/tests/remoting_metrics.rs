//! R4.5, N2: Remoting's association, heartbeat, per-peer and quarantine
//! metrics, and the placement metrics, read from a debugging recorder, each
//! node under its own `node` label. One global recorder per process, so
//! this file holds one test.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::collections::HashMap;
use std::sync::Mutex;

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use support::nodes::*;
use tokio::io::AsyncWriteExt;

/// Accumulates the recorder's snapshots: taking a snapshot drains
/// counters and histograms and resets gauges to 0, so counters are summed
/// across snapshots and gauges keep the value of the last snapshot.
struct Metrics {
    snap: Snapshotter,
    seen: Mutex<HashMap<SeriesId, f64>>,
}

/// A series: its name and labels.
type SeriesId = (String, Vec<(String, String)>);

impl Metrics {
    /// The sum over the series of `name` whose labels include `labels`
    /// (`None` when there is none).
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut seen = self.seen.lock().unwrap();
        for (key, _, _, v) in self.snap.snapshot().into_vec() {
            let k = key.key();
            let id = (
                k.name().to_owned(),
                k.labels()
                    .map(|l| (l.key().to_owned(), l.value().to_owned()))
                    .collect::<Vec<_>>(),
            );
            match v {
                DebugValue::Counter(c) => *seen.entry(id).or_default() += c as f64,
                DebugValue::Gauge(g) => {
                    seen.insert(id, g.into_inner());
                }
                DebugValue::Histogram(h) => *seen.entry(id).or_default() += h.len() as f64,
            }
        }
        seen.iter()
            .filter(|((n, ls), _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| ls.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|(_, v)| *v)
            .reduce(|a, b| a + b)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r4_5_n2_remoting_metrics_follow_associations_heartbeats_peers_and_quarantines() {
    let recorder = DebuggingRecorder::new();
    let snap = Metrics {
        snap: recorder.snapshotter(),
        seen: Mutex::default(),
    };
    recorder.install().unwrap();
    cluster::metrics::describe();

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

    // c leaves: a and b drop its association, and its per-peer series are
    // zeroed and no longer updated.
    c.cluster.leave(std::time::Duration::from_secs(3)).await;
    for node in ["a", "b"] {
        eventually(&format!("{node}: c's association removed"), || async {
            snap.value("remoting_associations", &[("node", node), ("state", "up")]) == Some(1.0)
                && a.cluster.remoting().association(&nid("c")).is_none()
                && b.cluster.remoting().association(&nid("c")).is_none()
        })
        .await;
    }
    // Five heartbeat intervals: while c was a peer its series were set
    // every tick; now every snapshot reads 0.
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

    // Garbage on the listener: refused and counted by code.
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

    // A grain request is counted, and its activation gauged on its owner.
    a.request("x").await.unwrap();
    assert!(
        snap.value("placement_requests_total", &[("node", "a")])
            .unwrap()
            >= 1.0
    );

    // A partition: heartbeats go unanswered, the failure detectors report.
    backends.net.partition(&[nid("a")], &[nid("b")]);
    eventually("quarantine reported", || async {
        snap.value("remoting_quarantines_reported_total", &[])
            .unwrap_or(0.0)
            >= 2.0
    })
    .await;
    for node in ["a", "b"] {
        eventually(&format!("{node}: association failed gauge"), || async {
            snap.value(
                "remoting_associations",
                &[("node", node), ("state", "failed")],
            ) == Some(1.0)
                && snap.value("remoting_associations", &[("node", node), ("state", "up")])
                    == Some(0.0)
        })
        .await;
    }
    // Quarantined, b may next leave a's topology (absent rather than
    // blocked), and its series are then zeroed with the association: only
    // `peer_up` is asserted here (last-heard was checked above, while up).
    eventually("a no longer sees b up", || async {
        snap.value("remoting_peer_up", &[("node", "a"), ("peer", "b")]) == Some(0.0)
    })
    .await;
    assert!(snap.value("remoting_heartbeats_missed_total", &[]).unwrap() >= 1.0);
}
