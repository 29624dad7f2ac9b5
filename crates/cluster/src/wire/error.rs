//! [`WireError`] and [`Refusal`].

use std::io;
use std::time::Duration;

use super::message::Frame;

/// Why a frame could not be read or written, or a handshake failed. Each
/// variant has a stable [`code`](WireError::code) (listed in the
/// [module documentation](super#errors)).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// A frame's length is over the limit (`wire.oversized`). On read the
    /// header was refused before anything was allocated; on write nothing
    /// was sent.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    Oversized {
        /// The length claimed by the header (read) or encoded (write).
        len: u64,
        /// The limit in force.
        max: usize,
    },
    /// A frame header with length zero (`wire.empty`).
    #[error("empty frame (length 0)")]
    Empty,
    /// A payload that is not exactly one valid value (`wire.decode`).
    #[error("undecodable frame: {0}")]
    Decode(String),
    /// A value that cannot be encoded (`wire.encode`); nothing was sent.
    #[error("could not encode frame: {0}")]
    Encode(String),
    /// The transport failed (`wire.io`).
    #[error("i/o error")]
    Io(#[source] io::Error),
    /// The peer closed the connection (`wire.closed`).
    #[error("connection closed by peer{}", if *.mid_frame { " in the middle of a frame" } else { "" })]
    Closed {
        /// `true` when the close cut a frame short (after part of its
        /// header or payload), `false` when it fell between frames.
        mid_frame: bool,
    },
    /// The handshake's frames came out of order, or the peer claims this
    /// node's own id (`wire.handshake`).
    #[error("handshake failed: {0}")]
    Handshake(String),
    /// The shared-secret proof failed, or one side has a secret and the
    /// other has none (`wire.auth`).
    #[error("authentication failed: {0}")]
    Auth(String),
    /// The protocol versions differ (`wire.version`).
    #[error("protocol version mismatch: {0}")]
    Version(String),
    /// The cluster names differ (`wire.cluster`).
    #[error("cluster mismatch: {0}")]
    Cluster(String),
    /// The acceptor's check refused the connector (`wire.refused`): on the
    /// acceptor it is the [`Refusal`] it sent, on the connector the Reject
    /// it received. `code` and `reason` are the check's, verbatim.
    #[error("refused ({code}): {reason}")]
    Refused {
        /// The refusal's own code, e.g. `remoting.quarantined`.
        code: String,
        /// Human-readable reason.
        reason: String,
    },
    /// The handshake did not finish in time (`wire.timeout`).
    #[error("handshake timed out after {0:?}")]
    Timeout(Duration),
    /// The TLS layer under the handshake failed: its `remoting.tls.*` code
    /// (see [`crate::remoting::tls`]) and why.
    #[error("TLS ({code}): {reason}")]
    Tls {
        /// A `remoting.tls.*` code.
        code: &'static str,
        /// Human-readable reason.
        reason: String,
    },
}

impl WireError {
    /// The stable code of this error, e.g. `wire.oversized`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Oversized { .. } => "wire.oversized",
            Self::Empty => "wire.empty",
            Self::Decode(_) => "wire.decode",
            Self::Encode(_) => "wire.encode",
            Self::Io(_) => "wire.io",
            Self::Closed { .. } => "wire.closed",
            Self::Handshake(_) => "wire.handshake",
            Self::Auth(_) => "wire.auth",
            Self::Version(_) => "wire.version",
            Self::Cluster(_) => "wire.cluster",
            Self::Refused { .. } => "wire.refused",
            Self::Timeout(_) => "wire.timeout",
            Self::Tls { code, .. } => code,
        }
    }

    /// The error a received `Reject { code, reason }` stands for: the wire
    /// codes the handshake itself sends keep their variant, anything else
    /// is a [`WireError::Refused`] carrying the code and reason.
    pub fn from_reject(code: String, reason: String) -> Self {
        let by_peer = |reason: &str| format!("refused by peer: {reason}");
        match code.as_str() {
            "wire.auth" => Self::Auth(by_peer(&reason)),
            "wire.version" => Self::Version(by_peer(&reason)),
            "wire.cluster" => Self::Cluster(by_peer(&reason)),
            "wire.handshake" => Self::Handshake(by_peer(&reason)),
            _ => Self::Refused { code, reason },
        }
    }

    /// The Reject that tells the peer about this error, for the errors
    /// that are the peer's doing (a bad frame, a failed check). `None` for
    /// transport failures and for a Reject received from the peer.
    pub(crate) fn reject_frame(&self) -> Option<Frame> {
        let reason = match self {
            Self::Oversized { .. } | Self::Empty | Self::Decode(_) => self.to_string(),
            Self::Handshake(why) | Self::Auth(why) | Self::Version(why) | Self::Cluster(why) => {
                why.clone()
            }
            Self::Refused { code, reason } => {
                return Some(Frame::Reject {
                    code: code.clone(),
                    reason: reason.clone(),
                });
            }
            Self::Encode(_)
            | Self::Io(_)
            | Self::Closed { .. }
            | Self::Timeout(_)
            | Self::Tls { .. } => return None,
        };
        Some(Frame::Reject {
            code: self.code().to_owned(),
            reason,
        })
    }
}

/// Why the acceptor's check refuses a peer: the code and reason go to the
/// peer in a `Reject` frame verbatim, and come back to the caller as
/// [`WireError::Refused`].
///
/// ```
/// use cluster::wire::Refusal;
///
/// let r = Refusal::new("remoting.quarantined", "node b incarnation 3 is quarantined");
/// assert_eq!(r.code, "remoting.quarantined");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// A stable code, e.g. `remoting.unknown_peer` or
    /// `remoting.quarantined`.
    pub code: String,
    /// Human-readable reason.
    pub reason: String,
}

impl Refusal {
    /// A refusal with this code and reason.
    pub fn new(code: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            reason: reason.into(),
        }
    }
}

impl From<Refusal> for WireError {
    fn from(r: Refusal) -> Self {
        Self::Refused {
            code: r.code,
            reason: r.reason,
        }
    }
}
