//! The handshake state machines (`cluster::wire::Connector`, `Acceptor`)
//! fed arbitrary frame sequences.
//!
//! Input: one flag byte ([`cluster_fuzz::Flags`]: who holds the secret,
//! which side the input plays, whether the acceptor's check refuses,
//! whether the real connector opens a probe instead of a Hello), then
//! a stream of frames in wire encoding that the input's side "sends" to a
//! real state machine of the other side. The fixture (hellos, nonces,
//! secret) is fixed, so a transcript recorded by the `seed_corpus` tool
//! replays with valid proofs and the fuzzer starts from handshakes that
//! succeed.
//!
//! Invariants besides "no panic":
//! - a step that continues or succeeds sends only frames that fit the frame
//!   limit; a failing step sends at most one frame, a Reject;
//! - success means the peer's Hello passed the checks (version, cluster,
//!   not our own id), the acceptor's membership check was asked once and
//!   allowed it (or, for a probe, was not asked: a probe skips it and never
//!   becomes an association), and, when the real side holds the secret, the peer's
//!   proof is the one a genuine party holding the secret would have sent
//!   (authentication cannot be bypassed);
//! - after success or failure the machine refuses any further frame,
//!   quietly.
#![no_main]

use std::cell::Cell;

use cluster::wire::{
    Acceptor, Connector, Frame, HandshakeConfig, Hello, Nonce, Outcome, PROTOCOL_VERSION, Refusal,
    Step, encode_frame, read_frame,
};
use cluster_fuzz::{
    ACCEPTOR_NONCE, CONNECTOR_NONCE, Flags, MAX_FRAME, acceptor_hello, config, connector_hello,
};
use libfuzzer_sys::fuzz_target;

/// More frames than any handshake needs (three), plus room for frames after
/// the end.
const MAX_FRAMES: usize = 8;

fn frames(mut data: &[u8]) -> Vec<Frame> {
    futures::executor::block_on(async {
        let mut out = Vec::new();
        while out.len() < MAX_FRAMES {
            match read_frame::<Frame, _>(&mut data, MAX_FRAME).await {
                Ok(frame) => out.push(frame),
                Err(_) => break,
            }
        }
        out
    })
}

fn check_sent(step: &Step) {
    match &step.outcome {
        Outcome::Continue | Outcome::Done(_) => {
            for frame in &step.send {
                encode_frame(frame, MAX_FRAME).expect("a handshake frame fits the frame limit");
            }
        }
        Outcome::Failed(_) => {
            assert!(step.send.len() <= 1, "a failure sends at most one frame");
            if let Some(frame) = step.send.first() {
                assert!(
                    matches!(frame, Frame::Reject { .. }),
                    "a failure sends a Reject, not {frame:?}"
                );
            }
        }
    }
}

fn check_peer(config: &HandshakeConfig, local: &Hello, peer: &Hello) {
    assert_eq!(peer.protocol_version, PROTOCOL_VERSION);
    assert_eq!(peer.cluster, config.cluster);
    assert_ne!(peer.node_id, local.node_id);
}

/// The Proof a genuine connector `peer` (with the secret) sends to the
/// acceptor whose challenge was [`ACCEPTOR_NONCE`], for its nonce `nonce`.
fn genuine_proof(peer: &Hello, nonce: Nonce) -> Option<Vec<u8>> {
    let config = config(true);
    let mut connector = Connector::new(&config, peer.clone(), nonce);
    let step = connector.on_frame(Frame::Hello(acceptor_hello()));
    if !matches!(step.outcome, Outcome::Continue) {
        return None;
    }
    let step = connector.on_frame(Frame::Challenge {
        nonce: ACCEPTOR_NONCE,
    });
    match step.send.as_slice() {
        [Frame::Proof { mac, .. }] => Some(mac.clone()),
        _ => None,
    }
}

/// The Welcome mac a genuine acceptor `peer` (with the secret) sends after
/// challenging with `nonce` and getting the real connector's proof.
fn genuine_welcome(peer: &Hello, nonce: Nonce) -> Option<Vec<u8>> {
    let config = config(true);
    let mut acceptor = Acceptor::new(&config, peer.clone(), nonce);
    let mut allow = |_: &Hello| Ok(());
    let step = acceptor.on_frame(Frame::Hello(connector_hello()), &mut allow);
    if !matches!(step.outcome, Outcome::Continue) {
        return None;
    }
    // The real connector's proof for this challenge.
    let mut connector = Connector::new(&config, connector_hello(), CONNECTOR_NONCE);
    connector.on_frame(Frame::Hello(peer.clone()));
    let proof = connector.on_frame(Frame::Challenge { nonce }).send.pop()?;
    let step = acceptor.on_frame(proof, &mut allow);
    match (step.outcome, step.send.as_slice()) {
        (Outcome::Done(_), [Frame::Welcome { mac }]) => Some(mac.clone()),
        _ => None,
    }
}

/// Plays the input's frames as the acceptor against a real connector.
fn against_connector(flags: Flags, input: Vec<Frame>) {
    let config = config(flags.connector_secret);
    let local = connector_hello();
    let mut connector = if flags.probe {
        Connector::probe(&config, local.clone(), CONNECTOR_NONCE)
    } else {
        Connector::new(&config, local.clone(), CONNECTOR_NONCE)
    };
    let _hello = connector.hello();
    let mut peer_hello = None;
    let mut challenge = None;
    let mut frames = input.into_iter();
    for frame in frames.by_ref() {
        match &frame {
            Frame::Hello(h) if peer_hello.is_none() => peer_hello = Some(h.clone()),
            Frame::Challenge { nonce } if challenge.is_none() => challenge = Some(*nonce),
            _ => {}
        }
        let welcome = match &frame {
            Frame::Welcome { mac } => Some(mac.clone()),
            _ => None,
        };
        let step = connector.on_frame(frame);
        check_sent(&step);
        match step.outcome {
            Outcome::Continue => continue,
            Outcome::Done(peer) => {
                check_peer(&config, &local, &peer);
                assert_eq!(
                    Some(&peer),
                    peer_hello.as_ref(),
                    "done with another Hello than received"
                );
                if config.secret.is_some() {
                    let nonce = challenge.expect("with a secret, done only after a Challenge");
                    let genuine = genuine_welcome(&peer, nonce);
                    assert!(
                        genuine.is_some(),
                        "with a secret, done only with a genuine acceptor"
                    );
                    assert_eq!(
                        welcome, genuine,
                        "a Welcome proof that a genuine acceptor would not send was accepted"
                    );
                }
            }
            Outcome::Failed(e) => {
                let _ = e.code();
            }
        }
        break;
    }
    if let Some(frame) = frames.next() {
        let step = connector.on_frame(frame);
        assert!(step.send.is_empty() && matches!(step.outcome, Outcome::Failed(_)));
    }
}

/// Plays the input's frames as the connector against a real acceptor.
fn against_acceptor(flags: Flags, input: Vec<Frame>) {
    let config = config(flags.acceptor_secret);
    let local = acceptor_hello();
    let mut acceptor = Acceptor::new(&config, local.clone(), ACCEPTOR_NONCE);
    let checked = Cell::new(0u32);
    let mut check = |_: &Hello| {
        checked.set(checked.get() + 1);
        if flags.check_refuses {
            Err(Refusal::new("fuzz.refused", "the fuzz check refuses"))
        } else {
            Ok(())
        }
    };
    let mut peer_hello = None;
    let mut frames = input.into_iter();
    for frame in frames.by_ref() {
        if let Frame::Hello(h) | Frame::Probe(h) = &frame
            && peer_hello.is_none()
        {
            peer_hello = Some(h.clone());
        }
        let proof = match &frame {
            Frame::Proof { mac, nonce } => Some((mac.clone(), *nonce)),
            _ => None,
        };
        let step = acceptor.on_frame(frame, &mut check);
        check_sent(&step);
        match step.outcome {
            Outcome::Continue => continue,
            Outcome::Done(peer) => {
                check_peer(&config, &local, &peer);
                assert_eq!(
                    Some(&peer),
                    peer_hello.as_ref(),
                    "done with another Hello than received"
                );
                if acceptor.is_probe() {
                    assert_eq!(checked.get(), 0, "a probe skips the membership check");
                } else {
                    assert_eq!(checked.get(), 1, "done without the membership check");
                    assert!(!flags.check_refuses, "done although the check refuses");
                }
                if config.secret.is_some() {
                    let (mac, nonce) = proof.expect("with a secret, done only on a Proof");
                    assert_eq!(
                        Some(mac),
                        genuine_proof(&peer, nonce),
                        "a proof that a genuine connector would not send was accepted"
                    );
                }
            }
            Outcome::Failed(e) => {
                let _ = e.code();
            }
        }
        break;
    }
    assert!(
        checked.get() <= 1,
        "the check was asked {} times",
        checked.get()
    );
    if let Some(frame) = frames.next() {
        let step = acceptor.on_frame(frame, &mut check);
        assert!(step.send.is_empty() && matches!(step.outcome, Outcome::Failed(_)));
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let flags = Flags::from_byte(flags);
    let input = frames(rest);
    if flags.input_is_connector {
        against_acceptor(flags, input);
    } else {
        against_connector(flags, input);
    }
});
