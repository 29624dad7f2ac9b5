//! The wire format of Remoting: how two cluster nodes talk over one TCP
//! connection (issue 4, R4.1–R4.5). Framing, the messages, and the
//! handshake that opens an association; no actors, no retries, no policy
//! beyond what the protocol itself demands (Remoting decides whom to refuse
//! through the handshake's check).
//!
//! # Frames
//!
//! A connection carries a sequence of frames in each direction:
//!
//! ```text
//! +----------------------+-------------------------------+
//! | length: u32, big end | payload: `length` bytes       |
//! +----------------------+-------------------------------+
//! ```
//!
//! - The payload is one [`Frame`] encoded with `rmp-serde`'s default
//!   (compact) MessagePack encoding: structs as arrays of their fields in
//!   declaration order, enum variants as a one-entry map from the variant's
//!   *name* to its data (a variant without data, [`Frame::Goodbye`], as the
//!   bare name), byte fields (`mac`, `nonce`, `payload`) as MessagePack
//!   `bin`. Variant names and field order are therefore part of the
//!   protocol; a pinned test keeps them stable.
//! - `length` is at least 1 and at most the receiver's limit
//!   ([`DEFAULT_MAX_FRAME`], 1 MiB, unless configured). The reader checks
//!   the header before it allocates anything, so a peer cannot make it
//!   allocate more than the limit per connection.
//! - A payload must decode to exactly one value that spans all `length`
//!   bytes; trailing bytes are a decode error.
//!
//! # Handshake
//!
//! The side that dials is the *connector*, the side that listens the
//! *acceptor*. Frames in order (`C` and `A` are the connector's and the
//! acceptor's [`Hello`]):
//!
//! ```text
//! connector                                         acceptor
//!  1 ── Hello(C) ─────────────────────────────────────►  version, cluster, node id, check(&C)
//!  2 ◄──────────────────────────── Reject{code, reason}  if any of them fails; closes
//!  2 ◄───────────────────────────────────────── Hello(A)
//!    without a shared secret:
//!  3 ◄───────────────────────────────── Welcome{mac: []}  the acceptor is done
//!    the connector checks A's version and cluster: done
//!    with a shared secret:
//!  3 ◄────────────────────────────── Challenge{nonce_a}
//!  4 ── Proof{mac_c, nonce_c} ────────────────────────►  verifies mac_c in constant time
//!  5 ◄─────────────────────────── Reject{"wire.auth", …}  if it does not match; closes
//!  5 ◄──────────────────────────────── Welcome{mac_a}    the acceptor is done
//!    the connector verifies mac_a: done (or Reject{"wire.auth", …} and close)
//! ```
//!
//! Hello(A) and the Challenge (or the Welcome) are written back to back, so
//! the handshake costs one round trip without a secret and two with one.
//! Frames 2–3 are sent only once Hello(C) passed every check: a refused peer
//! learns nothing about the acceptor but the Reject.
//!
//! **Checks on a Hello.** The acceptor checks, in this order: the protocol
//! version equals [`PROTOCOL_VERSION`] (`wire.version`), the cluster name
//! equals [`HandshakeConfig::cluster`] (`wire.cluster`), the node id is not
//! its own (`wire.handshake`: a node dialled itself or two nodes share an
//! id), then the caller's check, whose [`Refusal`] code and reason go into
//! the Reject verbatim. The connector checks the acceptor's Hello for the
//! same version, cluster and node id; whether it is the node it meant to
//! dial is the caller's business (compare the returned [`Hello`]).
//!
//! **Proofs.** With a shared secret both sides prove they hold it, each over
//! a fresh nonce chosen by the other side (32 bytes from the OS, via
//! `getrandom`), so neither a recorded proof nor an impostor acceptor gets
//! through. Each proof is HMAC-SHA256 keyed with the secret over
//!
//! ```text
//! "cluster-handshake/v1" ‖ field(role) ‖ nonce_a ‖ nonce_c ‖ hello(C) ‖ hello(A)
//! field(x) = len(x) as u32 big-endian ‖ x
//! hello(h) = version as u16 BE ‖ field(cluster) ‖ field(node_id) ‖ incarnation as u64 BE ‖ field(address)
//! ```
//!
//! with role `"connector"` for `mac_c` and `"acceptor"` for `mac_a` (so one
//! side's proof cannot be reflected as the other's). Binding both Hellos
//! means a proof made for one pair of `(node id, incarnation)` is worthless
//! for any other pair, and binding both nonces that it is worthless in any
//! other handshake. Proofs are compared with `hmac`'s constant-time
//! `verify_slice`. Both sides must agree on whether there is a secret: a
//! connector without one answers a Challenge with `Reject{"wire.auth"}`, a
//! connector with one refuses a Welcome that came without a Challenge the
//! same way (the acceptor, already done then, reads that Reject as its first
//! frame after the handshake).
//!
//! **Time.** [`connect_handshake`] and [`accept_handshake`] run under
//! [`HandshakeConfig::timeout`] as a whole; a peer that stalls at any point
//! gets `wire.timeout`.
//!
//! **Failure.** The side that detects a failure sends
//! `Reject{code, reason}` when the protocol lets it (best effort: a write
//! error is ignored), shuts its write half down and returns the error; the
//! caller drops the stream. A received Reject becomes the matching error on
//! the other side: `wire.auth`, `wire.version`, `wire.cluster` and
//! `wire.handshake` keep their meaning, any other code (a [`Refusal`] of the
//! check) arrives as [`WireError::Refused`] with the code and reason intact.
//! An undecodable, empty or oversized frame during the handshake is answered
//! with a Reject of that code too.
//!
//! # Probes
//!
//! A node that is still discovering its contact points (the `static` and
//! `dns` providers, P4/P6) is not a member of anyone's topology yet, so a
//! normal handshake would be refused (`remoting.not_member`). It opens a
//! *probe* instead: the same exchange with [`Frame::Probe`] in place of
//! the connector's [`Frame::Hello`]:
//!
//! ```text
//! connector                                         acceptor
//!  1 ── Probe(C) ─────────────────────────────────────►  version, cluster, node id (no membership check)
//!    ... Hello(A), Challenge / Proof, Welcome exactly as above ...
//!  n ◄─────── ProbeInfo{joined, members, roles, labels}  then the acceptor closes
//! ```
//!
//! Every check of a Hello applies except the caller's (membership) check,
//! and with a shared secret both sides prove it, so a probe tells the
//! connector who is at an address (node id, incarnation) with the same
//! assurance as a handshake. `joined` says whether the acceptor's own node
//! is listed in the topology it follows; `members` how many that topology
//! lists; `roles` and `labels` are the acceptor's own as listed there (so
//! a member found by probing keeps them). A probe never becomes an association. [`accept_handshake_or_probe`]
//! tells the two apart ([`Accepted`]); [`connect_probe`] runs the
//! connector's side; a `Probe` given to [`accept_handshake`] is refused
//! with `wire.handshake`. The variants were added at the end of [`Frame`],
//! so the protocol version stays 1.
//!
//! # After the handshake
//!
//! Both sides may send [`Frame::Heartbeat`] (answered by
//! [`Frame::HeartbeatAck`] with the same `seq`), [`Frame::Tell`] and, to
//! close gracefully, [`Frame::Goodbye`]. Handshake frames after the
//! handshake are a protocol error for the association to handle.
//!
//! # Errors
//!
//! Every failure is a [`WireError`] with a stable [`WireError::code`]:
//!
//! | code | meaning |
//! |---|---|
//! | `wire.oversized` | a frame's length is over the limit (read: before allocating; write: nothing was sent) |
//! | `wire.empty` | a frame of length zero |
//! | `wire.decode` | a payload that is not exactly one valid frame |
//! | `wire.encode` | a value that cannot be encoded (never happens for [`Frame`]) |
//! | `wire.io` | the transport failed (reset, broken pipe, no randomness) |
//! | `wire.closed` | the peer closed the connection, between frames or in the middle of one |
//! | `wire.handshake` | a frame out of order in the handshake, or a node id clash |
//! | `wire.auth` | the shared-secret proof failed or is missing (either side) |
//! | `wire.version` | the protocol versions differ |
//! | `wire.cluster` | the cluster names differ |
//! | `wire.refused` | the acceptor's check refused the peer; the Reject's code and reason are kept |
//! | `wire.timeout` | the handshake did not finish within its timeout |
//!
//! # Example
//!
//! ```
//! use cluster::wire::{Frame, HandshakeConfig, Hello, accept_handshake, connect_handshake,
//!     read_frame, write_frame};
//! use cluster_core::NodeId;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = HandshakeConfig::new("prod").with_secret(b"s3cret".to_vec());
//! let a = Hello::new("prod", NodeId::new("a")?, 1, "10.0.0.1:4000");
//! let b = Hello::new("prod", NodeId::new("b")?, 7, "10.0.0.2:4000");
//! let (mut dialer, mut listener) = tokio::io::duplex(64 * 1024);
//! let (peer_of_a, peer_of_b) = tokio::join!(
//!     connect_handshake(&mut dialer, &config, &a),
//!     accept_handshake(&mut listener, &config, &b, |_peer: &Hello| Ok(())),
//! );
//! assert_eq!(peer_of_a?.node_id, b.node_id);
//! assert_eq!(peer_of_b?.incarnation, 1);
//!
//! write_frame(&mut dialer, &Frame::Heartbeat { seq: 1 }, config.max_frame).await?;
//! let frame: Frame = read_frame(&mut listener, config.max_frame).await?;
//! assert_eq!(frame, Frame::Heartbeat { seq: 1 });
//! # Ok(())
//! # }
//! ```

mod codec;
mod error;
mod handshake;
mod message;

pub use codec::{
    DEFAULT_MAX_FRAME, HEADER_LEN, decode_payload, encode_frame, read_frame, write_frame,
};
pub use error::{Refusal, WireError};
pub use handshake::{
    Accepted, Acceptor, Connector, DEFAULT_HANDSHAKE_TIMEOUT, HandshakeConfig, Outcome, Step,
    accept_handshake, accept_handshake_or_probe, connect_handshake, connect_probe,
};
pub use message::{Frame, Hello, NONCE_LEN, Nonce, PROTOCOL_VERSION, ProbeInfo};

#[cfg(test)]
mod tests;
