//! Placement's errors and their wire form.

use super::*;

/// Why a placement request failed. [`code`](Self::code) is stable.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum PlacementError {
    /// Placement is paused or stopped (the provisioning status), with the
    /// provisioning error's code (`provisioning.unavailable`,
    /// `provisioning.draining`).
    #[error(transparent)]
    Provisioning(#[from] ProvisioningError),
    /// No grain kind with this name is registered on the owner
    /// (`placement.unknown_kind`).
    #[error("no grain kind {0:?} is registered")]
    UnknownKind(String),
    /// The owner did not own the identity in its view after every attempt
    /// (`placement.not_owner`).
    #[error("{0}")]
    NotOwner(String),
    /// The request could not be sent to the owner (`placement.remote`).
    #[error("could not reach the owner {node}: {reason}")]
    Remote {
        /// The owner.
        node: NodeId,
        /// Remoting's reason (with its code).
        reason: String,
    },
    /// No answer in time (`placement.timeout`).
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The request or the answer could not be encoded or decoded
    /// (`placement.codec`).
    #[error("codec: {0}")]
    Codec(String),
    /// The activation failed while handling the request
    /// (`placement.activation_failed`); the request is not sent again.
    #[error("the activation failed while handling the request")]
    ActivationFailed,
    /// The activation stopped (handed off) before the request ran
    /// (`placement.handed_off`); placed again while time remains.
    #[error("the activation was handed off before the request ran")]
    HandedOff,
    /// The PlacementSupervisor is not running (`placement.stopped`).
    #[error("the placement supervisor is not running")]
    Stopped,
    /// The owner left the topology while the request was in flight
    /// (`placement.owner_left`): the request may or may not have run there,
    /// so it is not sent again (at most once); the caller decides.
    #[error("the owner {0} left the topology while the request was in flight; it may have run")]
    OwnerLeft(NodeId),
    /// An error reported by the owner, with its code.
    #[error("{code}: {message}")]
    Reported {
        /// The owner's error code.
        code: String,
        /// The owner's message.
        message: String,
    },
}

impl PlacementError {
    /// The stable code.
    pub fn code(&self) -> &str {
        match self {
            Self::Provisioning(e) => e.code(),
            Self::UnknownKind(_) => "placement.unknown_kind",
            Self::NotOwner(_) => "placement.not_owner",
            Self::Remote { .. } => "placement.remote",
            Self::Timeout(_) => "placement.timeout",
            Self::Codec(_) => "placement.codec",
            Self::ActivationFailed => "placement.activation_failed",
            Self::HandedOff => "placement.handed_off",
            Self::Stopped => "placement.stopped",
            Self::OwnerLeft(_) => "placement.owner_left",
            Self::Reported { code, .. } => code,
        }
    }

    pub(super) fn to_wire(&self) -> WireFailure {
        WireFailure {
            code: self.code().to_owned(),
            message: self.to_string(),
        }
    }

    pub(super) fn from_wire(f: WireFailure) -> Self {
        match f.code.as_str() {
            "placement.not_owner" => Self::NotOwner(f.message),
            "placement.activation_failed" => Self::ActivationFailed,
            "placement.handed_off" => Self::HandedOff,
            _ => Self::Reported {
                code: f.code,
                message: f.message,
            },
        }
    }
}
