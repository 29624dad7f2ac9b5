//! Writes the generated part of the seed corpus (real encoded frames, real
//! handshake transcripts, a real store file) into `fuzz/corpus/<target>/`.
//! The JSON and TOML seeds are checked in by hand. Run by
//! `scripts/fuzz-smoke --seeds` (after `cargo fuzz build`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cluster::wire::{
    Acceptor, Connector, DEFAULT_MAX_FRAME, Frame, HandshakeConfig, Hello, Outcome, Refusal,
    encode_frame,
};
use cluster_core::{
    BlockedMember, Member, MemberAddress, NodeId, ProviderDescriptor, ProviderId,
    ProvisioningStatus, Topology, TopologyHash,
};
use cluster_fuzz::{
    ACCEPTOR_NONCE, CONNECTOR_NONCE, Flags, acceptor_hello, config, connector_hello,
};
use provisioning_actors::store::Stored;
use provisioning_actors::store::fuzzing::encode;

type Error = Box<dyn std::error::Error>;

fn write(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), Error> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join(name), bytes)?;
    Ok(())
}

fn frames(list: &[Frame]) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    for f in list {
        out.extend(encode_frame(f, DEFAULT_MAX_FRAME)?);
    }
    Ok(out)
}

fn sample_frames() -> Vec<(&'static str, Frame)> {
    vec![
        ("hello", Frame::Hello(connector_hello())),
        ("probe", Frame::Probe(connector_hello())),
        (
            "challenge",
            Frame::Challenge {
                nonce: ACCEPTOR_NONCE,
            },
        ),
        (
            "proof",
            Frame::Proof {
                mac: vec![7; 32],
                nonce: CONNECTOR_NONCE,
            },
        ),
        ("welcome", Frame::Welcome { mac: vec![9; 32] }),
        ("welcome-empty", Frame::Welcome { mac: Vec::new() }),
        (
            "reject",
            Frame::Reject {
                code: "wire.auth".into(),
                reason: "no".into(),
            },
        ),
        ("heartbeat", Frame::Heartbeat { seq: 42 }),
        ("heartbeat-ack", Frame::HeartbeatAck { seq: u64::MAX }),
        (
            "tell",
            Frame::Tell {
                to: "grain/counter".into(),
                type_id: "counter.add".into(),
                payload: vec![0x93, 1, 2, 3],
            },
        ),
        ("goodbye", Frame::Goodbye),
    ]
}

/// What a genuine handshake in memory sent: the connector's frames, the
/// acceptor's frames, and whether each side finished with success.
struct Transcript {
    by_connector: Vec<Frame>,
    by_acceptor: Vec<Frame>,
    connector_done: bool,
    acceptor_done: bool,
}

fn transcript(
    connector_config: &HandshakeConfig,
    acceptor_config: &HandshakeConfig,
    refuse: bool,
    probe: bool,
) -> Transcript {
    let mut connector = if probe {
        Connector::probe(connector_config, connector_hello(), CONNECTOR_NONCE)
    } else {
        Connector::new(connector_config, connector_hello(), CONNECTOR_NONCE)
    };
    let mut acceptor = Acceptor::new(acceptor_config, acceptor_hello(), ACCEPTOR_NONCE);
    let mut check = |_: &Hello| {
        if refuse {
            Err(Refusal::new("fuzz.refused", "no"))
        } else {
            Ok(())
        }
    };
    let mut by_connector = vec![connector.hello()];
    let mut by_acceptor = Vec::new();
    let mut to_acceptor = by_connector.clone();
    let (mut connector_done, mut acceptor_done) = (false, false);
    for _ in 0..4 {
        let mut to_connector = Vec::new();
        let mut over = false;
        for f in to_acceptor.drain(..) {
            let step = acceptor.on_frame(f, &mut check);
            over |= !matches!(step.outcome, Outcome::Continue);
            acceptor_done |= matches!(step.outcome, Outcome::Done(_));
            to_connector.extend(step.send);
        }
        by_acceptor.extend(to_connector.iter().cloned());
        for f in to_connector {
            let step = connector.on_frame(f);
            over |= !matches!(step.outcome, Outcome::Continue);
            connector_done |= matches!(step.outcome, Outcome::Done(_));
            to_acceptor.extend(step.send);
        }
        by_connector.extend(to_acceptor.iter().cloned());
        if over || to_acceptor.is_empty() {
            break;
        }
    }
    Transcript {
        by_connector,
        by_acceptor,
        connector_done,
        acceptor_done,
    }
}

fn store_contents() -> Result<Stored, Error> {
    let a = Member::new(
        NodeId::new("node-a")?,
        MemberAddress::new("10.0.0.1", 4000)?,
        3,
    )
    .with_role("frontend")
    .with_label("zone", "eu-1");
    let b = Member::new(NodeId::new("node-b")?, MemberAddress::new("::1", 4001)?, 1);
    let members = vec![a, b];
    let mut topology = Topology::starting();
    topology.hash = TopologyHash::of_sorted(&members);
    topology.members = Arc::from(members);
    topology.blocked = Arc::from(vec![BlockedMember {
        node_id: NodeId::new("node-c")?,
        incarnation: 7,
    }]);
    topology.status = ProvisioningStatus::Active;
    topology.seq_no = 12;
    topology.active_provider = Some(ProviderId::new("consul-main")?);
    Ok(Stored {
        definitions: vec![
            ProviderDescriptor::new(ProviderId::new("consul-main")?, "consul", 10)
                .with_setting("address", "http://127.0.0.1:8500")
                .with_setting("service", "cluster"),
            ProviderDescriptor::new(ProviderId::new("memory-fallback")?, "memory", 100),
        ],
        last_topology: Some(topology),
    })
}

fn main() -> Result<(), Error> {
    let root: PathBuf = std::env::args_os()
        .nth(1)
        .map_or_else(|| "corpus".into(), PathBuf::from);

    let dir = root.join("frame_decode");
    let samples = sample_frames();
    for (name, f) in &samples {
        write(&dir, name, &frames(std::slice::from_ref(f))?)?;
    }
    let all: Vec<Frame> = samples.into_iter().map(|(_, f)| f).collect();
    write(&dir, "stream-all", &frames(&all)?)?;

    let dir = root.join("handshake");
    for (connector_secret, acceptor_secret, check_refuses, probe) in [
        (false, false, false, false),
        (true, true, false, false),
        (true, false, false, false),
        (false, true, false, false),
        (true, true, true, false),
        (false, false, false, true),
        // A probe skips the membership check: it succeeds although the
        // check refuses.
        (true, true, true, true),
    ] {
        let t = transcript(
            &config(connector_secret),
            &config(acceptor_secret),
            check_refuses,
            probe,
        );
        // The seeds must hold the real thing: a handshake that succeeds on
        // both sides when the secrets match and the check allows. The
        // target replays them against the same parties with the same
        // nonces, so it reaches success (and its proof checks) too.
        let allowed = !check_refuses || probe;
        let should_succeed = connector_secret == acceptor_secret && allowed;
        assert_eq!(
            (t.connector_done, t.acceptor_done),
            (
                should_succeed,
                should_succeed || (connector_secret && !acceptor_secret && allowed)
            ),
            "transcript {connector_secret} {acceptor_secret} {check_refuses} {probe}"
        );
        for input_is_connector in [false, true] {
            let flags = Flags {
                connector_secret,
                acceptor_secret,
                input_is_connector,
                check_refuses,
                probe,
            };
            let sent = if input_is_connector {
                &t.by_connector
            } else {
                &t.by_acceptor
            };
            let mut bytes = vec![flags.to_byte()];
            bytes.extend(frames(sent)?);
            write(&dir, &format!("transcript-{:02x}", flags.to_byte()), &bytes)?;
        }
    }

    let dir = root.join("store_decode");
    let file = encode(&store_contents()?)?;
    write(&dir, "store-v1", &file)?;
    write(
        &dir,
        "store-v1-payload",
        &file[provisioning_actors::store::HEADER_LEN..],
    )?;
    write(&dir, "store-v1-empty", &encode(&Stored::default())?)?;

    println!("seed corpus written under {}", root.display());
    Ok(())
}
