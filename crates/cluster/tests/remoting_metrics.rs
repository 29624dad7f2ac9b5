//! R4.5: Remoting's association, heartbeat and quarantine metrics, and the
//! placement metrics, read from a debugging recorder. One global recorder
//! per process, so this file holds one test.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::collections::HashMap;
use std::sync::Mutex;

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use support::nodes::*;
use tokio::io::AsyncWriteExt;

/// Accumulates the recorder's snapshots: taking a snapshot drains
/// counters and histograms, so counters are summed across snapshots and
/// gauges keep their last value.
struct Metrics {
    snap: Snapshotter,
    seen: Mutex<HashMap<String, f64>>,
}

impl Metrics {
    fn value(&self, name: &str, label: Option<(&str, &str)>) -> Option<f64> {
        let mut seen = self.seen.lock().unwrap();
        for (key, _, _, v) in self.snap.snapshot().into_vec() {
            let k = key.key();
            let mut id = k.name().to_owned();
            for l in k.labels() {
                id.push_str(&format!("|{}={}", l.key(), l.value()));
            }
            match v {
                DebugValue::Counter(c) => *seen.entry(id).or_default() += c as f64,
                DebugValue::Gauge(g) => {
                    seen.insert(id, g.into_inner());
                }
                DebugValue::Histogram(h) => *seen.entry(id).or_default() += h.len() as f64,
            }
        }
        let want = match label {
            Some((k, v)) => format!("{name}|{k}={v}"),
            None => name.to_owned(),
        };
        seen.get(&want).copied()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r4_5_remoting_metrics_follow_associations_heartbeats_and_quarantines() {
    let recorder = DebuggingRecorder::new();
    let snap = Metrics {
        snap: recorder.snapshotter(),
        seen: Mutex::default(),
    };
    recorder.install().unwrap();

    let backends = Backends::fast_detection();
    let a = backends.start("a").await;
    let b = backends.start("b").await;
    converge(&[&a, &b], &["a", "b"]).await;
    // Both nodes report into the same recorder: two `up` associations.
    eventually("associations up gauge", || async {
        snap.value("remoting_associations", Some(("state", "up"))) == Some(1.0)
    })
    .await;
    eventually("heartbeats counted", || async {
        snap.value("remoting_heartbeats_sent_total", None)
            .unwrap_or(0.0)
            >= 4.0
    })
    .await;

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
            Some(("code", "wire.decode")),
        )
        .unwrap_or(0.0)
            >= 1.0
    })
    .await;

    // A grain request is counted, and its activation gauged.
    a.request("x").await.unwrap();
    assert!(snap.value("placement_requests_total", None).unwrap() >= 1.0);
    // (`placement_activations` is a gauge both nodes of this process write,
    // so its value here says nothing about one node.)

    // A partition: heartbeats go unanswered, the failure detectors report.
    backends.net.partition(&[nid("a")], &[nid("b")]);
    eventually("quarantine reported", || async {
        snap.value("remoting_quarantines_reported_total", None)
            .unwrap_or(0.0)
            >= 2.0
    })
    .await;
    eventually("association failed gauge", || async {
        snap.value("remoting_associations", Some(("state", "failed"))) == Some(1.0)
            && snap.value("remoting_associations", Some(("state", "up"))) == Some(0.0)
    })
    .await;
    assert!(
        snap.value("remoting_heartbeats_missed_total", None)
            .unwrap()
            >= 1.0
    );
}
