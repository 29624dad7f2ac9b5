//! Issue 14: mutual TLS on Remoting, over real TCP on 127.0.0.1 with
//! certificates generated per test (`test-pki`, rcgen). A cluster forms and
//! serves grains over TLS; each bad peer (a certificate from another CA, an
//! expired one, one for another node id or cluster, a plaintext client, a
//! peer that stops mid-handshake, a rotated CA that no longer trusts a
//! peer) is refused with a `remoting.tls.*` code and a WARN naming the
//! reason, while the node keeps serving its good peers. The tests run on
//! one thread, so that the log capture sees every node's tasks.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::path::Path;
use std::time::Duration;

use cluster::remoting::AssociationState;
use cluster::remoting::tls::{self, TlsConfig, identity_uri};
use support::logs::{Line, Logs};
use support::nodes::*;
use test_pki::{NodeCert, NodePki, Pair};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::Level;

fn config(pki: &NodePki, pair: &Pair) -> TlsConfig {
    TlsConfig::new(&pair.cert, &pair.key, &pki.ca).with_reload_check(Duration::from_millis(100))
}

/// A certificate for `node` of the test cluster.
fn cert(pki: &NodePki, node: &str, which: NodeCert) -> Pair {
    pki.node(
        &format!("{node}-{which:?}"),
        &identity_uri(CLUSTER, node),
        which,
    )
    .unwrap()
}

async fn start_tls(backends: &Backends, name: &str, tls: TlsConfig) -> TestNode {
    backends.start_with(name, move |b| b.tls(tls)).await
}

/// The WARN lines "remoting handshake refused" on `side` about `node`.
fn refusals(logs: &Logs, side: &str, node: &str) -> Vec<Line> {
    logs.with_message("remoting handshake refused")
        .into_iter()
        .filter(|l| {
            l.field("side") == Some(side)
                && (l.field("node") == Some(node)
                    || (side == "accept" && l.field("node") == Some("unknown")))
        })
        .collect()
}

/// Waits until both sides logged a refusal with `code` (the dialer `a`
/// about `b`; the acceptor `b`, which knows the dialer by name only when
/// the refusal came after its Hello), and checks they are WARNs.
async fn refused_on_both_sides(logs: &Logs, code: &str) {
    let both = || {
        refusals(logs, "dial", "b")
            .iter()
            .any(|l| l.field("code") == Some(code))
            && refusals(logs, "accept", "a")
                .iter()
                .any(|l| l.field("code") == Some(code))
    };
    let deadline = tokio::time::Instant::now() + WAIT;
    while !both() {
        let warns: Vec<Line> = logs
            .all()
            .into_iter()
            .filter(|l| l.level <= Level::WARN)
            .collect();
        assert!(
            tokio::time::Instant::now() < deadline,
            "{code} not logged by both sides; warnings:{}",
            Logs::dump(&warns)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for l in refusals(logs, "dial", "b")
        .iter()
        .chain(&refusals(logs, "accept", "a"))
    {
        assert_eq!(l.level, Level::WARN, "{l}");
        assert!(l.field("code").unwrap().starts_with("remoting.tls."), "{l}");
        assert!(!l.field("reason").unwrap_or("").is_empty(), "{l}");
    }
}

/// Issue 14 (item 1): three nodes with certificates from the cluster's CA
/// form a cluster over mutual TLS and serve grains from every node.
#[tokio::test]
async fn i14_cluster_forms_and_serves_grains_over_mutual_tls() {
    let dir = tempfile::tempdir().unwrap();
    let pki = NodePki::generate(dir.path()).unwrap();
    let backends = Backends::new();
    let mut nodes = Vec::new();
    for name in ["a", "b", "c"] {
        let pair = cert(&pki, name, NodeCert::Valid);
        nodes.push(start_tls(&backends, name, config(&pki, &pair)).await);
    }
    let refs: Vec<&TestNode> = nodes.iter().collect();
    converge(&refs, &["a", "b", "c"]).await;
    for n in &nodes {
        assert!(n.cluster.remoting().tls_enabled());
        for g in ["g1", "g2", "g3", "g4"] {
            let reply = n.request(g).await.unwrap();
            assert_eq!(reply.id, g);
        }
    }
    for n in nodes {
        n.system.shutdown().await;
    }
}

/// Issue 14 (bad input): `b` presents a bad certificate; `a` (the dialer:
/// the smaller id) refuses it and `b` learns why, both with a WARN and a
/// `remoting.tls.*` code; no association comes up, and `a` keeps serving
/// its good peer `c`.
async fn bad_peer_is_refused(bad: impl FnOnce(&NodePki) -> Pair, code: &str) {
    let (logs, _guard) = Logs::capture();
    let dir = tempfile::tempdir().unwrap();
    let pki = NodePki::generate(dir.path()).unwrap();
    let backends = Backends::new();
    let a = start_tls(
        &backends,
        "a",
        config(&pki, &cert(&pki, "a", NodeCert::Valid)),
    )
    .await;
    let bad = bad(&pki);
    let b = start_tls(&backends, "b", config(&pki, &bad)).await;
    // Only a and b so far (a dials b): every accept-side line is b's.
    refused_on_both_sides(&logs, code).await;
    let c = start_tls(
        &backends,
        "c",
        config(&pki, &cert(&pki, "c", NodeCert::Valid)),
    )
    .await;
    assert_ne!(
        a.cluster.remoting().association(&b.id),
        Some(AssociationState::Up)
    );
    // a still serves its good peer.
    eventually("a and c associated", || async {
        a.cluster.remoting().association(&c.id) == Some(AssociationState::Up)
    })
    .await;
    assert_eq!(
        a.cluster.remoting().association(&c.id),
        Some(AssociationState::Up)
    );
    for n in [a, b, c] {
        n.system.shutdown().await;
    }
}

#[tokio::test]
async fn i14_certificate_from_another_ca_is_refused_on_both_sides() {
    bad_peer_is_refused(|pki| cert(pki, "b", NodeCert::OtherCa), tls::TLS_UNKNOWN_CA).await;
}

#[tokio::test]
async fn i14_expired_certificate_is_refused_on_both_sides() {
    bad_peer_is_refused(|pki| cert(pki, "b", NodeCert::Expired), tls::TLS_EXPIRED).await;
}

#[tokio::test]
async fn i14_certificate_for_another_node_id_is_refused_on_both_sides() {
    bad_peer_is_refused(
        |pki| {
            pki.node("b-as-z", &identity_uri(CLUSTER, "z"), NodeCert::Valid)
                .unwrap()
        },
        tls::TLS_IDENTITY,
    )
    .await;
}

#[tokio::test]
async fn i14_certificate_for_another_cluster_is_refused_on_both_sides() {
    bad_peer_is_refused(
        |pki| {
            pki.node(
                "b-other",
                &identity_uri("another-cluster", "b"),
                NodeCert::Valid,
            )
            .unwrap()
        },
        tls::TLS_IDENTITY,
    )
    .await;
}

/// The acceptor's side of the identity rule: a connector whose
/// certificate names another node than its Hello claims is refused with
/// `remoting.tls.identity` (here `b` dials `c`, so `c` checks `b`).
#[tokio::test]
async fn i14_acceptor_refuses_a_connector_whose_certificate_names_another_node() {
    let (logs, _guard) = Logs::capture();
    let dir = tempfile::tempdir().unwrap();
    let pki = NodePki::generate(dir.path()).unwrap();
    let backends = Backends::new();
    let wrong = pki
        .node("b-as-z", &identity_uri(CLUSTER, "z"), NodeCert::Valid)
        .unwrap();
    let b = start_tls(&backends, "b", config(&pki, &wrong)).await;
    let c = start_tls(
        &backends,
        "c",
        config(&pki, &cert(&pki, "c", NodeCert::Valid)),
    )
    .await;
    eventually("c refused b's certificate", || async {
        logs.with_message("remoting handshake refused")
            .iter()
            .any(|l| {
                l.field("side") == Some("accept")
                    && l.field("node") == Some("b")
                    && l.field("code") == Some(tls::TLS_IDENTITY)
            })
    })
    .await;
    assert_ne!(
        c.cluster.remoting().association(&b.id),
        Some(AssociationState::Up)
    );
    // b was told at its start that its certificate does not name it.
    assert!(logs.all().iter().any(|l| l.level == Level::WARN
        && l.message
            == "this node's TLS certificate does not carry its identity: every peer will refuse it"
        && l.field("wanted") == Some("cluster://test/b")));
    b.system.shutdown().await;
    c.system.shutdown().await;
}

/// A plaintext client on a TLS port, and a peer that stops in the middle
/// of the TLS handshake: each connection is closed (the stalled one after
/// the handshake timeout), nothing panics, and the node keeps serving: a
/// good peer associates afterwards.
#[tokio::test]
async fn i14_plaintext_client_and_stalled_handshake_are_cut_off() {
    let (logs, _guard) = Logs::capture();
    let dir = tempfile::tempdir().unwrap();
    let pki = NodePki::generate(dir.path()).unwrap();
    let backends = Backends::new();
    let a = start_tls(
        &backends,
        "a",
        config(&pki, &cert(&pki, "a", NodeCert::Valid)),
    )
    .await;
    let addr = a.cluster.remoting().local_addr();

    // A plaintext Hello frame.
    let mut plain = TcpStream::connect(addr).await.unwrap();
    let hello = cluster::wire::Hello {
        protocol_version: cluster::wire::PROTOCOL_VERSION,
        cluster: CLUSTER.to_owned(),
        node_id: nid("p"),
        incarnation: 1,
        address: "127.0.0.1:1".to_owned(),
    };
    cluster::wire::write_frame(&mut plain, &cluster::wire::Frame::Hello(hello), 1 << 20)
        .await
        .unwrap();
    assert_closed(&mut plain).await;
    eventually("the plaintext client was logged", || async {
        logs.all()
            .iter()
            .any(|l| l.level == Level::WARN && l.field("code") == Some(tls::TLS_REQUIRED))
    })
    .await;

    // The first bytes of a TLS record, then silence.
    let mut stalled = TcpStream::connect(addr).await.unwrap();
    stalled.write_all(&[0x16, 0x03, 0x01, 0x02]).await.unwrap();
    assert_closed(&mut stalled).await;
    eventually("the stalled handshake was logged", || async {
        logs.all().iter().any(|l| {
            l.level == Level::WARN
                && l.field("code") == Some(tls::TLS_HANDSHAKE)
                && l.field("reason")
                    .is_some_and(|r| r.contains("did not finish the TLS handshake"))
        })
    })
    .await;

    // Still serving: a good peer associates.
    let b = start_tls(
        &backends,
        "b",
        config(&pki, &cert(&pki, "b", NodeCert::Valid)),
    )
    .await;
    converge(&[&a, &b], &["a", "b"]).await;
    a.system.shutdown().await;
    b.system.shutdown().await;
}

/// Reads until the peer closes (or resets); fails after 10 s.
async fn assert_closed(stream: &mut TcpStream) {
    let mut buf = [0u8; 1024];
    let closed = tokio::time::timeout(WAIT, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the node did not close the connection");
}

fn write_atomically(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Issue 14 (item 2): rotation without restart. `a`'s CA file is replaced
/// by another CA's: the open association with `b` keeps working, and a new
/// node `c` (certificate from the old CA) is refused with
/// `remoting.tls.unknown_ca`. Adding the old CA back to the file lets `c`
/// in, without a restart of anyone.
#[tokio::test]
async fn i14_rotated_ca_applies_to_new_associations_and_open_ones_keep_working() {
    let (logs, _guard) = Logs::capture();
    let dir = tempfile::tempdir().unwrap();
    let pki = NodePki::generate(dir.path()).unwrap();
    let backends = Backends::new();
    // a's own copy of the CA file, to rotate.
    let a_ca = dir.path().join("a-ca.pem");
    std::fs::copy(&pki.ca, &a_ca).unwrap();
    let a_pair = cert(&pki, "a", NodeCert::Valid);
    let a_tls = TlsConfig::new(&a_pair.cert, &a_pair.key, &a_ca)
        .with_reload_check(Duration::from_millis(100));
    let a = start_tls(&backends, "a", a_tls).await;
    let b = start_tls(
        &backends,
        "b",
        config(&pki, &cert(&pki, "b", NodeCert::Valid)),
    )
    .await;
    converge(&[&a, &b], &["a", "b"]).await;

    // Rotate a's CA to the other CA only: a no longer trusts b or c.
    let other = std::fs::read(&pki.other_ca).unwrap();
    write_atomically(&a_ca, &other);
    eventually("a reloaded its TLS files", || async {
        !logs
            .with_message(
                "remoting TLS certificate, key and CA reloaded: new associations use them",
            )
            .is_empty()
    })
    .await;
    let c = start_tls(
        &backends,
        "c",
        config(&pki, &cert(&pki, "c", NodeCert::Valid)),
    )
    .await;
    eventually("a refused c (unknown CA)", || async {
        logs.with_message("remoting handshake refused")
            .iter()
            .any(|l| l.field("node") == Some("c") && l.field("code") == Some(tls::TLS_UNKNOWN_CA))
    })
    .await;
    // The open association with b still carries grain traffic (grains
    // that c owns cannot be reached from a: c is a member a refuses).
    assert_eq!(
        a.cluster.remoting().association(&b.id),
        Some(AssociationState::Up)
    );
    let mut on_b = 0;
    for i in 0..24 {
        if let Ok(reply) = a.request(&format!("r{i}")).await
            && reply.node == b.id
        {
            on_b += 1;
            break;
        }
    }
    assert!(
        on_b > 0,
        "no grain answered from b over the open association"
    );
    assert_ne!(
        a.cluster.remoting().association(&c.id),
        Some(AssociationState::Up)
    );

    // Both CAs: c comes in, forced by a reload (a SIGHUP) rather than the
    // watcher.
    let mut both = std::fs::read(&pki.ca).unwrap();
    both.extend_from_slice(&other);
    write_atomically(&a_ca, &both);
    a.cluster.remoting().reload_tls().unwrap();
    eventually(
        "a and c associated after the CA was trusted again",
        || async { a.cluster.remoting().association(&c.id) == Some(AssociationState::Up) },
    )
    .await;
    for n in [a, b, c] {
        n.system.shutdown().await;
    }
}

/// Issue 14 (item 2): a node whose own certificate has expired warns at
/// start (it still starts: peers decide, and say why), and a TLS file that
/// cannot be used refuses the start with `remoting.tls.config` naming the
/// file.
#[tokio::test]
async fn i14_expired_own_certificate_warns_and_unusable_files_refuse_the_start() {
    let (logs, _guard) = Logs::capture();
    let dir = tempfile::tempdir().unwrap();
    let pki = NodePki::generate(dir.path()).unwrap();
    let backends = Backends::new();
    let a = start_tls(
        &backends,
        "a",
        config(&pki, &cert(&pki, "a", NodeCert::Expired)),
    )
    .await;
    assert!(
        logs.all().iter().any(|l| l.level == Level::WARN
            && l.field("code") == Some(tls::TLS_EXPIRED)
            && l.message.contains("has expired")),
        "{}",
        Logs::dump(&logs.all())
    );
    a.system.shutdown().await;

    let good = cert(&pki, "b", NodeCert::Valid);
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate").unwrap();
    let missing = dir.path().join("missing.pem");
    let other_key = cert(&pki, "x", NodeCert::Valid).key;
    for (tls, file) in [
        (TlsConfig::new(&garbage, &good.key, &pki.ca), &garbage),
        (TlsConfig::new(&good.cert, &missing, &pki.ca), &missing),
        // A key that is not the certificate's.
        (TlsConfig::new(&good.cert, &other_key, &pki.ca), &other_key),
        (TlsConfig::new(&good.cert, &good.key, &garbage), &garbage),
    ] {
        let e = tls.check().unwrap_err();
        assert_eq!(e.code(), "remoting.tls.config");
        assert_eq!(&e.path, file, "{e}");
        let system = actor_runtime::ActorSystem::new("refused");
        let started = cluster::Cluster::builder(&system, CLUSTER, nid("b"))
            .bind("127.0.0.1:0")
            .tls(tls)
            .start()
            .await;
        let Err(e) = started else {
            panic!("started with unusable TLS files")
        };
        assert_eq!(e.code(), "remoting.tls.config", "{e}");
        system.shutdown().await;
    }
}

/// Issue 14 (item 3): Remoting off loopback with neither TLS nor a secret
/// is refused at start (`cluster.insecure`) unless `insecure(true)` allows
/// it, and then with a WARN at the start.
#[tokio::test]
async fn i14_insecure_bind_is_refused_unless_allowed_explicitly() {
    let (logs, _guard) = Logs::capture();
    let system = actor_runtime::ActorSystem::new("insecure");
    let refused = cluster::Cluster::builder(&system, CLUSTER, nid("a"))
        .bind("0.0.0.0:0")
        .advertise_host("127.0.0.1")
        .start()
        .await;
    let Err(refused) = refused else {
        panic!("started off loopback with neither TLS nor a secret")
    };
    assert_eq!(refused.code(), "cluster.insecure");
    let allowed = cluster::Cluster::builder(&system, CLUSTER, nid("a"))
        .bind("0.0.0.0:0")
        .advertise_host("127.0.0.1")
        .insecure(true)
        .start()
        .await
        .unwrap();
    assert!(logs.all().iter().any(|l| {
        l.level == Level::WARN
            && l.message
                .starts_with("insecure: Remoting listens off loopback")
    }));
    drop(allowed);
    system.shutdown().await;
}

/// Issue 14 with P4/P6: a probe (the contact-point providers' question
/// "who are you?") runs inside TLS when TLS is on: a prober with a good
/// certificate gets the answer, one whose certificate names another node
/// than it claims is refused with `remoting.tls.identity`, and a plaintext
/// prober gets `remoting.tls.*` too.
#[tokio::test]
async fn i14_probes_run_inside_tls_and_check_identities() {
    use cluster::remoting::{ProbeConfig, ProbeTls, probe};
    let dir = tempfile::tempdir().unwrap();
    let pki = NodePki::generate(dir.path()).unwrap();
    let backends = Backends::new();
    let a = start_tls(
        &backends,
        "a",
        config(&pki, &cert(&pki, "a", NodeCert::Valid)),
    )
    .await;
    let addr = a.cluster.remoting().local_addr().to_string();
    let hello = |node: &str| cluster::wire::Hello {
        protocol_version: cluster::wire::PROTOCOL_VERSION,
        cluster: CLUSTER.to_owned(),
        node_id: nid(node),
        incarnation: 7,
        address: "127.0.0.1:1".to_owned(),
    };
    let handshake =
        cluster::wire::HandshakeConfig::new(CLUSTER).with_timeout(Duration::from_secs(2));

    let good = ProbeTls::load(config(&pki, &cert(&pki, "p", NodeCert::Valid)), "p").unwrap();
    let answer = probe(
        &addr,
        &ProbeConfig::new(handshake.clone(), hello("p")).with_tls(good),
    )
    .await
    .unwrap();
    assert_eq!(answer.peer.node_id, a.id);

    let liar = ProbeTls::load(config(&pki, &cert(&pki, "q", NodeCert::Valid)), "q").unwrap();
    let refused = probe(
        &addr,
        &ProbeConfig::new(handshake.clone(), hello("p")).with_tls(liar),
    )
    .await
    .unwrap_err();
    assert_eq!(refused.code(), "wire.refused", "{refused}");
    assert!(refused.to_string().contains(tls::TLS_IDENTITY), "{refused}");

    let plain = probe(&addr, &ProbeConfig::new(handshake, hello("p")))
        .await
        .unwrap_err();
    assert_eq!(plain.code(), tls::TLS_REQUIRED, "{plain}");
    a.system.shutdown().await;
}

/// Issue 14 (bounded memory): connections that never finish their TLS
/// handshake take at most `max_pending_handshakes` slots; the excess is
/// closed at once, and once the stalled ones time out a good peer
/// associates.
#[tokio::test]
async fn i14_a_flood_of_stalled_handshakes_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let pki = NodePki::generate(dir.path()).unwrap();
    let backends = Backends::new();
    let tls_a = config(&pki, &cert(&pki, "a", NodeCert::Valid));
    let a = backends
        .start_with("a", move |b| {
            b.remoting_config(
                remoting(Duration::from_secs(3))
                    .with_tls(tls_a)
                    .with_max_pending_handshakes(4),
            )
        })
        .await;
    let addr = a.cluster.remoting().local_addr();
    let mut stalled = Vec::new();
    for _ in 0..4 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(&[0x16, 0x03, 0x01]).await.unwrap();
        stalled.push(s);
    }
    // Let the listener take the four.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut extra = TcpStream::connect(addr).await.unwrap();
    let mut buf = [0u8; 16];
    let closed_at_once = tokio::time::timeout(Duration::from_secs(1), extra.read(&mut buf)).await;
    assert!(
        matches!(closed_at_once, Ok(Ok(0) | Err(_))),
        "the fifth connection is closed at once: {closed_at_once:?}"
    );
    for s in &mut stalled {
        assert_closed(s).await;
    }
    let b = start_tls(
        &backends,
        "b",
        config(&pki, &cert(&pki, "b", NodeCert::Valid)),
    )
    .await;
    converge(&[&a, &b], &["a", "b"]).await;
    a.system.shutdown().await;
    b.system.shutdown().await;
}

/// Issue 14 (no resumption): a prober whose certificate expires after a
/// full TLS handshake with `a` is refused at its next connection, with the
/// same client configuration (a resumed session would reuse the checked
/// certificate and let it in). The prober, the dialing side, gets the
/// `remoting.tls.expired` code from `a`'s alert, not a bare I/O error. Then
/// the same after a CA rotation on `a`.
#[tokio::test]
async fn i14_no_session_resumption_an_expired_or_distrusted_peer_is_refused() {
    use cluster::remoting::{ProbeConfig, ProbeTls, probe};
    let dir = tempfile::tempdir().unwrap();
    let pki = NodePki::generate(dir.path()).unwrap();
    let backends = Backends::new();
    let a_ca = dir.path().join("a-ca.pem");
    std::fs::copy(&pki.ca, &a_ca).unwrap();
    let a_pair = cert(&pki, "a", NodeCert::Valid);
    let a = start_tls(
        &backends,
        "a",
        TlsConfig::new(&a_pair.cert, &a_pair.key, &a_ca)
            .with_reload_check(Duration::from_secs(3600)),
    )
    .await;
    let addr = a.cluster.remoting().local_addr().to_string();
    let hello = cluster::wire::Hello {
        protocol_version: cluster::wire::PROTOCOL_VERSION,
        cluster: CLUSTER.to_owned(),
        node_id: nid("p"),
        incarnation: 7,
        address: "127.0.0.1:1".to_owned(),
    };
    let prober = ProbeConfig::new(
        cluster::wire::HandshakeConfig::new(CLUSTER).with_timeout(Duration::from_secs(2)),
        hello,
    )
    .with_tls(ProbeTls::load(config(&pki, &cert(&pki, "p", NodeCert::Valid)), "p").unwrap());
    let short = ProbeConfig::new(prober.handshake.clone(), prober.local.clone()).with_tls(
        ProbeTls::load(
            config(
                &pki,
                &cert(&pki, "p", NodeCert::ExpiresIn(Duration::from_secs(2))),
            ),
            "p",
        )
        .unwrap(),
    );
    for _ in 0..3 {
        probe(&addr, &prober).await.unwrap();
        probe(&addr, &short).await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let expired = probe(&addr, &short).await.unwrap_err();
    assert_eq!(expired.code(), tls::TLS_EXPIRED, "{expired}");
    probe(&addr, &prober).await.unwrap();

    write_atomically(&a_ca, &std::fs::read(&pki.other_ca).unwrap());
    assert!(a.cluster.remoting().reload_tls().unwrap());
    let refused = probe(&addr, &prober).await.unwrap_err();
    assert_eq!(refused.code(), tls::TLS_UNKNOWN_CA, "{refused}");
    a.system.shutdown().await;
}
