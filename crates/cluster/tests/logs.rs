//! N3: Remoting's log lines at the default level (INFO), over real TCP on
//! 127.0.0.1: a refused handshake is a WARN with its reason on both sides,
//! and a healthy start and a clean leave log nothing above INFO. The tests
//! run on one thread, so that the capture sees every node's tasks.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::time::Duration;

use cluster::wire::{HandshakeConfig, Hello, connect_handshake};
use support::logs::{Line, Logs};
use support::nodes::*;
use tokio::net::TcpStream;
use tracing::Level;

fn refusals(logs: &Logs, side: &str, node: &str) -> Vec<Line> {
    logs.with_message("remoting handshake refused")
        .into_iter()
        .filter(|l| l.field("side") == Some(side) && l.field("node") == Some(node))
        .collect()
}

/// N3: a node with another shared secret is refused: the dialing node and
/// the accepting node each log a WARN naming the peer, the code and the
/// reason.
#[tokio::test]
async fn n3_refused_handshake_logs_a_warn_with_the_reason_on_both_sides() {
    let (logs, _guard) = Logs::capture();
    let backends = Backends::new();
    let a = backends.start("a").await;
    let b = backends
        .start_with("b", |c| {
            c.remoting_config(remoting(Duration::from_secs(3)).with_secret("not a's secret"))
        })
        .await;
    // a dials b and is refused: on a (the dialer) about b, on b (the
    // acceptor) about a.
    eventually("both sides logged the refusal", || async {
        !refusals(&logs, "dial", "b").is_empty() && !refusals(&logs, "accept", "a").is_empty()
    })
    .await;
    for l in refusals(&logs, "dial", "b")
        .iter()
        .chain(&refusals(&logs, "accept", "a"))
    {
        assert_eq!(l.level, Level::WARN, "{l}");
        assert_eq!(l.field("code"), Some("wire.auth"), "{l}");
        assert!(l.field("reason").unwrap().contains("shared secret"), "{l}");
    }
    a.system.shutdown().await;
    b.system.shutdown().await;
}

/// N3: on the accepting node, a connection from another cluster is a WARN
/// with the reason; a node that is not a member is a DEBUG the first time
/// (it may be a peer whose join this node has not seen yet) and a WARN
/// when it dials again.
#[tokio::test]
async fn n3_wrong_cluster_and_repeated_not_member_log_a_warn_on_the_acceptor() {
    let (logs, _guard) = Logs::capture();
    let backends = Backends::new();
    let a = backends.start("a").await;
    converge(&[&a], &["a"]).await;
    let addr = a.cluster.remoting().local_addr();
    let dial = async |cluster: &str, node: &str| {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let hello = Hello::new(cluster, nid(node), 1, "127.0.0.1:1");
        connect_handshake(&mut stream, &HandshakeConfig::new(cluster), &hello).await
    };
    let refused = |code: &str| -> Vec<Line> {
        logs.all()
            .into_iter()
            .filter(|l| l.message.starts_with("remoting handshake refused"))
            .filter(|l| l.field("side") == Some("accept") && l.field("code") == Some(code))
            .collect()
    };

    assert!(dial("other", "x").await.is_err());
    eventually("wrong cluster logged", || async {
        !refused("wire.cluster").is_empty()
    })
    .await;
    let l = &refused("wire.cluster")[0];
    assert_eq!(l.level, Level::WARN, "{l}");
    assert!(l.field("reason").unwrap().contains("other"), "{l}");

    assert!(dial(CLUSTER, "zz").await.is_err());
    eventually("first refusal logged", || async {
        refused("remoting.not_member").len() == 1
    })
    .await;
    assert!(dial(CLUSTER, "zz").await.is_err());
    eventually("second refusal logged", || async {
        refused("remoting.not_member").len() == 2
    })
    .await;
    let l = refused("remoting.not_member");
    assert_eq!(l[0].level, Level::DEBUG, "{}", Logs::dump(&l));
    assert_eq!(l[1].level, Level::WARN, "{}", Logs::dump(&l));
    assert_eq!(l[1].field("node"), Some("zz"));
    assert!(l[1].field("reason").unwrap().contains("not a member"));
    a.system.shutdown().await;
}

/// N3: a healthy start of three nodes, a few seconds of steady state and a
/// clean leave log nothing above INFO (a peer that dials before the
/// acceptor's topology lists it is a normal race: DEBUG the first time),
/// and the steady state nothing at INFO or above.
#[tokio::test]
async fn n3_healthy_start_steady_state_and_leave_log_nothing_above_info() {
    let (logs, _guard) = Logs::capture();
    let backends = Backends::new();
    let a = backends.start("a").await;
    let b = backends.start("b").await;
    let c = backends.start("c").await;
    converge(&[&a, &b, &c], &["a", "b", "c"]).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mark = logs.mark();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let steady: Vec<Line> = logs.since(mark).into_iter().filter(Line::shown).collect();
    assert!(steady.is_empty(), "steady state: {}", Logs::dump(&steady));
    let report = c.cluster.leave(Duration::from_secs(3)).await;
    assert!(report.deregistered.iter().all(|(_, r)| r.is_ok()));
    converge(&[&a, &b], &["a", "b"]).await;
    let loud: Vec<Line> = logs
        .all()
        .into_iter()
        .filter(|l| l.level < Level::INFO)
        .collect();
    assert!(loud.is_empty(), "above INFO: {}", Logs::dump(&loud));
    a.system.shutdown().await;
    b.system.shutdown().await;
    c.system.shutdown().await;
}
