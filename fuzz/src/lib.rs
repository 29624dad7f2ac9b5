//! What the fuzz targets and the seed-corpus writer share: the fixed
//! handshake parties (so that a transcript recorded by `seed_corpus` is a
//! valid transcript for the `handshake` target, proofs included).

use cluster::wire::{HandshakeConfig, Hello, Nonce};
use cluster_core::NodeId;

/// The frame limit of the fuzz targets: small, so that a header promising
/// more is refused as in production (where it is 1 MiB).
pub const MAX_FRAME: usize = 64 * 1024;

/// The cluster both parties belong to.
pub const CLUSTER: &str = "fuzz";

/// The shared secret, when a party has one.
pub const SECRET: &[u8] = b"fuzz-secret";

/// The connector's nonce.
pub const CONNECTOR_NONCE: Nonce = [0xc0; 32];

/// The acceptor's nonce.
pub const ACCEPTOR_NONCE: Nonce = [0xa0; 32];

/// The handshake configuration, with or without [`SECRET`].
pub fn config(secret: bool) -> HandshakeConfig {
    let config = HandshakeConfig::new(CLUSTER).with_max_frame(MAX_FRAME);
    if secret {
        config.with_secret(SECRET.to_vec())
    } else {
        config
    }
}

fn hello(id: &str, incarnation: u64, address: &str) -> Hello {
    let id = NodeId::new(id).unwrap_or_else(|e| panic!("fixture node id {id:?}: {e}"));
    Hello::new(CLUSTER, id, incarnation, address)
}

/// The connector's Hello.
pub fn connector_hello() -> Hello {
    hello("node-c", 1, "127.0.0.1:4001")
}

/// The acceptor's Hello.
pub fn acceptor_hello() -> Hello {
    hello("node-a", 2, "127.0.0.1:4002")
}

/// The first byte of a `handshake` input: which parties have the secret,
/// which side the input plays, whether the acceptor's check refuses.
#[derive(Clone, Copy, Debug)]
pub struct Flags {
    /// The connector holds [`SECRET`].
    pub connector_secret: bool,
    /// The acceptor holds [`SECRET`].
    pub acceptor_secret: bool,
    /// The input plays the connector against a real [`cluster::wire::Acceptor`];
    /// otherwise it plays the acceptor against a real [`cluster::wire::Connector`].
    pub input_is_connector: bool,
    /// The acceptor's check refuses every peer.
    pub check_refuses: bool,
    /// The real connector opens a probe (`Frame::Probe`) instead of a Hello.
    pub probe: bool,
}

impl Flags {
    /// Decodes the flag byte (higher bits are ignored).
    pub fn from_byte(b: u8) -> Self {
        Self {
            connector_secret: b & 1 != 0,
            acceptor_secret: b & 2 != 0,
            input_is_connector: b & 4 != 0,
            check_refuses: b & 8 != 0,
            probe: b & 16 != 0,
        }
    }

    /// The flag byte.
    pub fn to_byte(self) -> u8 {
        u8::from(self.connector_secret)
            | u8::from(self.acceptor_secret) << 1
            | u8::from(self.input_is_connector) << 2
            | u8::from(self.check_refuses) << 3
            | u8::from(self.probe) << 4
    }
}
