//! Framing and handshake over real TCP on 127.0.0.1 and over
//! `tokio::io::duplex`; every test is bounded by a timeout.

use std::time::Duration;

use cluster_core::NodeId;
use futures::FutureExt;
use proptest::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, duplex};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

use super::*;

const LIMIT: Duration = Duration::from_secs(10);

async fn bounded<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(LIMIT, f)
        .await
        .expect("test exceeded its time limit")
}

async fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (dialled, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
    (dialled.unwrap(), accepted.unwrap().0)
}

fn pipe() -> (DuplexStream, DuplexStream) {
    duplex(64 * 1024)
}

fn hello(id: &str, incarnation: u64) -> Hello {
    Hello::new(
        "c1",
        NodeId::new(id).unwrap(),
        incarnation,
        format!("127.0.0.1:{}", 4000 + incarnation),
    )
}

fn allow(_: &Hello) -> Result<(), Refusal> {
    Ok(())
}

fn samples() -> Vec<Frame> {
    vec![
        Frame::Hello(hello("a", 1)),
        Frame::Challenge { nonce: [9; 32] },
        Frame::Proof {
            mac: vec![1; 32],
            nonce: [255; 32],
        },
        Frame::Welcome { mac: vec![] },
        Frame::Reject {
            code: "remoting.quarantined".into(),
            reason: "bye".into(),
        },
        Frame::Heartbeat { seq: u64::MAX },
        Frame::HeartbeatAck { seq: 0 },
        Frame::Tell {
            to: "greeter".into(),
            type_id: "app.Greet".into(),
            payload: (0..=255).collect(),
        },
        Frame::Goodbye,
    ]
}

async fn round_trip<A, B>(mut tx: A, mut rx: B)
where
    A: tokio::io::AsyncWrite + Unpin,
    B: tokio::io::AsyncRead + Unpin,
{
    for frame in samples() {
        write_frame(&mut tx, &frame, DEFAULT_MAX_FRAME)
            .await
            .unwrap();
        let back: Frame = read_frame(&mut rx, DEFAULT_MAX_FRAME).await.unwrap();
        assert_eq!(back, frame);
    }
    drop(tx);
    let end = read_frame::<Frame, _>(&mut rx, DEFAULT_MAX_FRAME).await;
    assert!(
        matches!(end, Err(WireError::Closed { mid_frame: false })),
        "{end:?}"
    );
}

#[tokio::test]
async fn frames_round_trip_over_tcp_and_duplex() {
    bounded(async {
        let (a, b) = tcp_pair().await;
        round_trip(a, b).await;
        let (a, b) = pipe();
        round_trip(a, b).await;
    })
    .await;
}

#[test]
fn the_encoding_is_pinned() {
    // Changing these bytes breaks every running node: bump
    // PROTOCOL_VERSION instead (and keep Hello readable).
    let hb = encode_frame(&Frame::Heartbeat { seq: 7 }, DEFAULT_MAX_FRAME).unwrap();
    let mut want = vec![0, 0, 0, 13, 0x81, 0xa9];
    want.extend(b"Heartbeat");
    want.extend([0x91, 0x07]);
    assert_eq!(hb, want);

    let bye = encode_frame(&Frame::Goodbye, DEFAULT_MAX_FRAME).unwrap();
    let mut want = vec![0, 0, 0, 8, 0xa7];
    want.extend(b"Goodbye");
    assert_eq!(bye, want);

    let welcome = encode_frame(&Frame::Welcome { mac: vec![1, 2] }, DEFAULT_MAX_FRAME).unwrap();
    let mut want = vec![0, 0, 0, 14, 0x81, 0xa7];
    want.extend(b"Welcome");
    want.extend([0x91, 0xc4, 0x02, 0x01, 0x02]);
    assert_eq!(welcome, want);

    let h = Hello::new("c1", NodeId::new("a").unwrap(), 3, "h:1");
    let bytes = encode_frame(&Frame::Hello(h), DEFAULT_MAX_FRAME).unwrap();
    let mut want = vec![0x81, 0xa5];
    want.extend(b"Hello");
    want.extend([0x95, 0x01, 0xa2]);
    want.extend(b"c1");
    want.push(0xa1);
    want.extend(b"a");
    want.extend([0x03, 0xa3]);
    want.extend(b"h:1");
    assert_eq!(&bytes[HEADER_LEN..], &want[..]);
    assert_eq!(bytes[..HEADER_LEN], (want.len() as u32).to_be_bytes());

    // P4/P6: the probe frames (added at the end, protocol version 1).
    let h = Hello::new("c1", NodeId::new("a").unwrap(), 3, "h:1");
    let bytes = encode_frame(&Frame::Probe(h), DEFAULT_MAX_FRAME).unwrap();
    let mut want = vec![0x81, 0xa5];
    want.extend(b"Probe");
    want.extend([0x95, 0x01, 0xa2]);
    want.extend(b"c1");
    want.push(0xa1);
    want.extend(b"a");
    want.extend([0x03, 0xa3]);
    want.extend(b"h:1");
    assert_eq!(&bytes[HEADER_LEN..], &want[..]);

    let info = Frame::ProbeInfo(ProbeInfo {
        joined: true,
        members: 5,
        roles: vec!["w".into()],
        labels: [("k".to_owned(), "v".to_owned())].into(),
    });
    let bytes = encode_frame(&info, DEFAULT_MAX_FRAME).unwrap();
    let mut want = vec![0x81, 0xa9];
    want.extend(b"ProbeInfo");
    want.extend([
        0x94, 0xc3, 0x05, 0x91, 0xa1, b'w', 0x81, 0xa1, b'k', 0xa1, b'v',
    ]);
    assert_eq!(&bytes[HEADER_LEN..], &want[..]);
}

#[tokio::test]
async fn an_oversized_header_is_refused_before_the_payload_is_read() {
    bounded(async {
        // The peer claims 4 GiB and sends nothing more: the reader must
        // refuse from the header alone (waiting for, or allocating, the
        // payload would hang this test).
        let (mut tx, mut rx) = tcp_pair().await;
        tx.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
        let e = read_frame::<Frame, _>(&mut rx, DEFAULT_MAX_FRAME)
            .await
            .unwrap_err();
        assert_eq!(e.code(), "wire.oversized");
        assert!(
            matches!(e, WireError::Oversized { len, max } if len == u64::from(u32::MAX) && max == DEFAULT_MAX_FRAME),
            "{e:?}"
        );

        // One byte over the limit, over duplex.
        let (mut tx, mut rx) = pipe();
        tx.write_all(&101u32.to_be_bytes()).await.unwrap();
        let e = read_frame::<Frame, _>(&mut rx, 100).await.unwrap_err();
        assert!(matches!(e, WireError::Oversized { len: 101, max: 100 }), "{e:?}");
        drop(tx);
    })
    .await;
}

#[tokio::test]
async fn an_oversized_value_is_not_written() {
    bounded(async {
        let (mut tx, mut rx) = pipe();
        let big = Frame::Tell {
            to: "x".into(),
            type_id: "t".into(),
            payload: vec![0; 2000],
        };
        let e = write_frame(&mut tx, &big, 1000).await.unwrap_err();
        assert_eq!(e.code(), "wire.oversized");
        drop(tx);
        let mut rest = Vec::new();
        rx.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty(), "{} bytes were written", rest.len());
    })
    .await;
}

#[tokio::test]
async fn a_zero_length_frame_is_empty() {
    bounded(async {
        let (mut tx, mut rx) = tcp_pair().await;
        tx.write_all(&[0, 0, 0, 0]).await.unwrap();
        let e = read_frame::<Frame, _>(&mut rx, DEFAULT_MAX_FRAME)
            .await
            .unwrap_err();
        assert!(matches!(e, WireError::Empty), "{e:?}");
        assert_eq!(e.code(), "wire.empty");
    })
    .await;
}

#[tokio::test]
async fn garbage_payloads_are_decode_errors() {
    bounded(async {
        let (mut tx, mut rx) = pipe();
        let cases: [&[u8]; 4] = [
            // 0xc1 is never used by MessagePack.
            &[0xc1, 0xc1, 0xc1],
            // Valid MessagePack, not a Frame.
            &[0x07],
            // An unknown variant.
            &[0x81, 0xa3, b'Z', b'a', b'p', 0x90],
            // A Challenge whose nonce is 3 bytes long.
            &[
                0x81, 0xa9, b'C', b'h', b'a', b'l', b'l', b'e', b'n', b'g', b'e', 0x91, 0xc4, 3, 1,
                2, 3,
            ],
        ];
        for payload in cases {
            tx.write_all(&(payload.len() as u32).to_be_bytes())
                .await
                .unwrap();
            tx.write_all(payload).await.unwrap();
            let e = read_frame::<Frame, _>(&mut rx, DEFAULT_MAX_FRAME)
                .await
                .unwrap_err();
            assert_eq!(e.code(), "wire.decode", "{payload:?}: {e:?}");
        }
        // A valid frame followed by trailing bytes inside the same frame.
        let mut frame = encode_frame(&Frame::Goodbye, DEFAULT_MAX_FRAME).unwrap();
        frame.push(0x00);
        let len = (frame.len() - HEADER_LEN) as u32;
        frame[..HEADER_LEN].copy_from_slice(&len.to_be_bytes());
        tx.write_all(&frame).await.unwrap();
        let e = read_frame::<Frame, _>(&mut rx, DEFAULT_MAX_FRAME)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("trailing"), "{e}");
        // The stream is still framed correctly after a decode error.
        write_frame(&mut tx, &Frame::Goodbye, DEFAULT_MAX_FRAME)
            .await
            .unwrap();
        let f: Frame = read_frame(&mut rx, DEFAULT_MAX_FRAME).await.unwrap();
        assert_eq!(f, Frame::Goodbye);
    })
    .await;
}

#[tokio::test]
async fn a_close_mid_frame_is_closed_mid_frame() {
    bounded(async {
        // Mid payload, over TCP.
        let (mut tx, mut rx) = tcp_pair().await;
        tx.write_all(&100u32.to_be_bytes()).await.unwrap();
        tx.write_all(&[0x81; 10]).await.unwrap();
        drop(tx);
        let e = read_frame::<Frame, _>(&mut rx, DEFAULT_MAX_FRAME)
            .await
            .unwrap_err();
        assert!(matches!(e, WireError::Closed { mid_frame: true }), "{e:?}");
        assert_eq!(e.code(), "wire.closed");

        // Mid header, over duplex.
        let (mut tx, mut rx) = pipe();
        tx.write_all(&[0, 0]).await.unwrap();
        drop(tx);
        let e = read_frame::<Frame, _>(&mut rx, DEFAULT_MAX_FRAME)
            .await
            .unwrap_err();
        assert!(matches!(e, WireError::Closed { mid_frame: true }), "{e:?}");
    })
    .await;
}

/// Runs both handshake drivers against each other.
async fn shake<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    (mut dialled, mut accepted): (S, S),
    connector: (&HandshakeConfig, &Hello),
    acceptor: (&HandshakeConfig, &Hello),
    check: impl FnMut(&Hello) -> Result<(), Refusal>,
) -> (Result<Hello, WireError>, Result<Hello, WireError>, S, S) {
    let (c, a) = tokio::join!(
        connect_handshake(&mut dialled, connector.0, connector.1),
        accept_handshake(&mut accepted, acceptor.0, acceptor.1, check),
    );
    (c, a, dialled, accepted)
}

#[tokio::test]
async fn handshake_succeeds_over_tcp_with_and_without_secret() {
    bounded(async {
        let (ha, hb) = (hello("a", 1), hello("b", 2));
        for cfg in [
            HandshakeConfig::new("c1"),
            HandshakeConfig::new("c1").with_secret(b"shared".to_vec()),
        ] {
            let (c, a, mut dialled, mut accepted) =
                shake(tcp_pair().await, (&cfg, &ha), (&cfg, &hb), allow).await;
            assert_eq!(c.unwrap(), hb);
            assert_eq!(a.unwrap(), ha);
            // The association's frames follow on the same stream, both ways.
            let tell = Frame::Tell {
                to: "greeter".into(),
                type_id: "app.Greet".into(),
                payload: b"hi".to_vec(),
            };
            write_frame(&mut dialled, &tell, cfg.max_frame)
                .await
                .unwrap();
            let got: Frame = read_frame(&mut accepted, cfg.max_frame).await.unwrap();
            assert_eq!(got, tell);
            write_frame(&mut accepted, &Frame::Heartbeat { seq: 1 }, cfg.max_frame)
                .await
                .unwrap();
            let got: Frame = read_frame(&mut dialled, cfg.max_frame).await.unwrap();
            assert_eq!(got, Frame::Heartbeat { seq: 1 });
        }
    })
    .await;
}

#[tokio::test]
async fn a_wrong_secret_is_wire_auth_on_both_sides() {
    bounded(async {
        let ours = HandshakeConfig::new("c1").with_secret(b"one".to_vec());
        let theirs = HandshakeConfig::new("c1").with_secret(b"two".to_vec());
        let (c, a, _, _) = shake(
            tcp_pair().await,
            (&ours, &hello("a", 1)),
            (&theirs, &hello("b", 2)),
            allow,
        )
        .await;
        assert_eq!(c.unwrap_err().code(), "wire.auth");
        assert_eq!(a.unwrap_err().code(), "wire.auth");

        // No secret on the connector against an acceptor that has one.
        let (c, a, _, _) = shake(
            pipe(),
            (&HandshakeConfig::new("c1"), &hello("a", 1)),
            (&theirs, &hello("b", 2)),
            allow,
        )
        .await;
        assert_eq!(c.unwrap_err().code(), "wire.auth");
        assert_eq!(a.unwrap_err().code(), "wire.auth");
    })
    .await;
}

#[tokio::test]
async fn a_wrong_cluster_is_wire_cluster_on_both_sides() {
    bounded(async {
        let cfg = HandshakeConfig::new("c1");
        let mut stranger = hello("a", 1);
        stranger.cluster = "other".into();
        let mut asked = false;
        let (c, a, _, _) = shake(
            tcp_pair().await,
            (&cfg, &stranger),
            (&cfg, &hello("b", 2)),
            |_: &Hello| {
                asked = true;
                Ok(())
            },
        )
        .await;
        let a = a.unwrap_err();
        assert_eq!(a.code(), "wire.cluster");
        assert!(a.to_string().contains("other"), "{a}");
        assert_eq!(c.unwrap_err().code(), "wire.cluster");
        assert!(!asked, "the check must not see a foreign cluster's Hello");
    })
    .await;
}

#[tokio::test]
async fn a_wrong_version_is_wire_version_on_both_sides() {
    bounded(async {
        let cfg = HandshakeConfig::new("c1");
        let mut future = hello("a", 1);
        future.protocol_version = PROTOCOL_VERSION + 1;
        let (c, a, _, _) = shake(pipe(), (&cfg, &future), (&cfg, &hello("b", 2)), allow).await;
        assert_eq!(c.unwrap_err().code(), "wire.version");
        assert_eq!(a.unwrap_err().code(), "wire.version");
    })
    .await;
}

#[tokio::test]
async fn a_refusal_by_the_check_reaches_the_connector_with_its_code() {
    bounded(async {
        let cfg = HandshakeConfig::new("c1").with_secret(b"k".to_vec());
        let (c, a, mut dialled, _) = shake(
            tcp_pair().await,
            (&cfg, &hello("a", 1)),
            (&cfg, &hello("b", 2)),
            |peer: &Hello| {
                Err(Refusal::new(
                    "remoting.quarantined",
                    format!(
                        "{} incarnation {} is quarantined",
                        peer.node_id, peer.incarnation
                    ),
                ))
            },
        )
        .await;
        let c = c.unwrap_err();
        assert_eq!(c.code(), "wire.refused");
        let WireError::Refused { code, reason } = &c else {
            panic!("{c:?}")
        };
        assert_eq!(code, "remoting.quarantined");
        assert_eq!(reason, "a incarnation 1 is quarantined");
        assert!(matches!(
            a.unwrap_err(),
            WireError::Refused { code, .. } if code == "remoting.quarantined"
        ));
        // The acceptor closed: nothing else follows.
        let end = read_frame::<Frame, _>(&mut dialled, cfg.max_frame).await;
        assert!(
            matches!(end, Err(WireError::Closed { mid_frame: false })),
            "{end:?}"
        );
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_stalled_peer_times_out_in_paused_time() {
    let cfg = HandshakeConfig::new("c1").with_timeout(Duration::from_secs(3));
    // The connector connects and sends nothing.
    let (_silent, mut accepted) = pipe();
    let start = Instant::now();
    let e = accept_handshake(&mut accepted, &cfg, &hello("b", 2), allow)
        .await
        .unwrap_err();
    assert_eq!(e.code(), "wire.timeout");
    assert_eq!(start.elapsed(), cfg.timeout);

    // The acceptor accepts and never answers.
    let (mut dialled, _silent) = pipe();
    let start = Instant::now();
    let e = connect_handshake(&mut dialled, &cfg, &hello("a", 1))
        .await
        .unwrap_err();
    assert!(
        matches!(e, WireError::Timeout(t) if t == cfg.timeout),
        "{e:?}"
    );
    assert_eq!(start.elapsed(), cfg.timeout);

    // A peer that stalls after its Hello, in the middle of the handshake.
    let secret = cfg.clone().with_secret(b"k".to_vec());
    let (mut dialled, mut accepted) = pipe();
    write_frame(&mut dialled, &Frame::Hello(hello("a", 1)), cfg.max_frame)
        .await
        .unwrap();
    let e = accept_handshake(&mut accepted, &secret, &hello("b", 2), allow)
        .await
        .unwrap_err();
    assert_eq!(e.code(), "wire.timeout");
}

#[tokio::test]
async fn a_stalled_peer_times_out_over_tcp() {
    bounded(async {
        let cfg = HandshakeConfig::new("c1").with_timeout(Duration::from_millis(200));
        let (_silent, mut accepted) = tcp_pair().await;
        let start = std::time::Instant::now();
        let e = accept_handshake(&mut accepted, &cfg, &hello("b", 2), allow)
            .await
            .unwrap_err();
        assert_eq!(e.code(), "wire.timeout");
        let took = start.elapsed();
        assert!(
            took >= cfg.timeout && took < Duration::from_secs(3),
            "{took:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn a_proof_captured_for_another_nonce_is_refused() {
    bounded(async {
        let cfg = HandshakeConfig::new("c1").with_secret(b"k".to_vec());
        let (ha, hb) = (hello("a", 1), hello("b", 2));

        // Session 1: a fake acceptor challenges the real connector with a
        // nonce of its choosing and records the proof.
        let (mut dialled, mut fake) = pipe();
        let recorder = async {
            let first: Frame = read_frame(&mut fake, cfg.max_frame).await.unwrap();
            assert_eq!(first, Frame::Hello(ha.clone()));
            write_frame(&mut fake, &Frame::Hello(hb.clone()), cfg.max_frame)
                .await
                .unwrap();
            write_frame(
                &mut fake,
                &Frame::Challenge { nonce: [42; 32] },
                cfg.max_frame,
            )
            .await
            .unwrap();
            let proof: Frame = read_frame(&mut fake, cfg.max_frame).await.unwrap();
            drop(fake);
            proof
        };
        let (_, captured) = tokio::join!(connect_handshake(&mut dialled, &cfg, &ha), recorder);
        assert_eq!(captured.kind(), "Proof");

        // Session 2: an attacker replays it to the real acceptor, which
        // picked a fresh nonce.
        let (mut attacker, mut accepted) = tcp_pair().await;
        let replay = async {
            write_frame(&mut attacker, &Frame::Hello(ha.clone()), cfg.max_frame)
                .await
                .unwrap();
            let h: Frame = read_frame(&mut attacker, cfg.max_frame).await.unwrap();
            assert_eq!(h, Frame::Hello(hb.clone()));
            let challenge: Frame = read_frame(&mut attacker, cfg.max_frame).await.unwrap();
            assert!(matches!(challenge, Frame::Challenge { nonce } if nonce != [42; 32]));
            write_frame(&mut attacker, &captured, cfg.max_frame)
                .await
                .unwrap();
            read_frame::<Frame, _>(&mut attacker, cfg.max_frame).await
        };
        let (a, answer) = tokio::join!(accept_handshake(&mut accepted, &cfg, &hb, allow), replay);
        assert_eq!(a.unwrap_err().code(), "wire.auth");
        assert!(
            matches!(&answer, Ok(Frame::Reject { code, .. }) if code == "wire.auth"),
            "{answer:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn bad_frames_during_the_handshake_are_answered_and_fail_it() {
    bounded(async {
        let cfg = HandshakeConfig::new("c1").with_max_frame(4096);
        for (bytes, code) in [
            (u32::MAX.to_be_bytes().to_vec(), "wire.oversized"),
            (vec![0, 0, 0, 0], "wire.empty"),
            (vec![0, 0, 0, 2, 0xc1, 0xc1], "wire.decode"),
        ] {
            let (mut peer, mut accepted) = tcp_pair().await;
            peer.write_all(&bytes).await.unwrap();
            let e = accept_handshake(&mut accepted, &cfg, &hello("b", 2), allow)
                .await
                .unwrap_err();
            assert_eq!(e.code(), code);
            let answer: Frame = read_frame(&mut peer, cfg.max_frame).await.unwrap();
            assert!(
                matches!(&answer, Frame::Reject { code: c, .. } if c == code),
                "{answer:?}"
            );
        }
        // The connector side: a Heartbeat where a Hello belongs.
        let (mut dialled, mut peer) = pipe();
        let rogue = async {
            let _: Frame = read_frame(&mut peer, cfg.max_frame).await.unwrap();
            write_frame(&mut peer, &Frame::Heartbeat { seq: 1 }, cfg.max_frame)
                .await
                .unwrap();
            read_frame::<Frame, _>(&mut peer, cfg.max_frame).await
        };
        let ha = hello("a", 1);
        let (c, answer) = tokio::join!(connect_handshake(&mut dialled, &cfg, &ha), rogue);
        assert_eq!(c.unwrap_err().code(), "wire.handshake");
        assert!(matches!(answer, Ok(Frame::Reject { code, .. }) if code == "wire.handshake"));
    })
    .await;
}

#[test]
fn error_codes_are_pinned() {
    let all = [
        (WireError::Oversized { len: 2, max: 1 }, "wire.oversized"),
        (WireError::Empty, "wire.empty"),
        (WireError::Decode(String::new()), "wire.decode"),
        (WireError::Encode(String::new()), "wire.encode"),
        (WireError::Io(std::io::Error::other("x")), "wire.io"),
        (WireError::Closed { mid_frame: false }, "wire.closed"),
        (WireError::Handshake(String::new()), "wire.handshake"),
        (WireError::Auth(String::new()), "wire.auth"),
        (WireError::Version(String::new()), "wire.version"),
        (WireError::Cluster(String::new()), "wire.cluster"),
        (
            WireError::Refused {
                code: "x".into(),
                reason: String::new(),
            },
            "wire.refused",
        ),
        (WireError::Timeout(Duration::ZERO), "wire.timeout"),
    ];
    for (e, code) in all {
        assert_eq!(e.code(), code, "{e:?}");
    }
    let r = |code: &str| WireError::from_reject(code.into(), "why".into()).code();
    assert_eq!(r("wire.auth"), "wire.auth");
    assert_eq!(r("wire.version"), "wire.version");
    assert_eq!(r("wire.cluster"), "wire.cluster");
    assert_eq!(r("wire.handshake"), "wire.handshake");
    assert_eq!(r("remoting.unknown_peer"), "wire.refused");
}

proptest! {
    #[test]
    fn random_bytes_never_panic_read_frame(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        // An in-memory reader never waits, so one poll finishes the read.
        let result = read_frame::<Frame, _>(&mut &bytes[..], 256).now_or_never();
        prop_assert!(result.is_some());
    }

    #[test]
    fn random_payloads_never_panic_read_frame(payload in proptest::collection::vec(any::<u8>(), 1..512)) {
        let mut bytes = (payload.len() as u32).to_be_bytes().to_vec();
        bytes.extend(&payload);
        let result = read_frame::<Frame, _>(&mut &bytes[..], DEFAULT_MAX_FRAME).now_or_never();
        prop_assert!(result.is_some());
    }
}
