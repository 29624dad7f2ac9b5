//! Stable error codes (R5.5).
//!
//! Every variant has a `code()` that never changes meaning; the list is
//! pinned by a test and documented in `docs/error-codes.md`.

use std::path::PathBuf;

use crate::node::NodeId;
use crate::provider::ProviderId;

/// The result type of this crate and of `provisioning-actors`.
pub type Result<T, E = ProvisioningError> = std::result::Result<T, E>;

/// What a provider reports: the failure classes the supervisor reacts to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProviderError {
    /// The backend cannot be reached (refused, timed out, DNS, TLS).
    #[error("backend unreachable: {0}")]
    Connectivity(String),
    /// The backend refused our credentials or lacks a permission
    /// (HTTP 401/403); the message names what is missing.
    #[error("not authorized: {0}")]
    Auth(String),
    /// The backend answered something we cannot understand.
    #[error("malformed backend response: {0}")]
    Protocol(String),
    /// The watch failed mid-stream.
    #[error("watch stream failed: {0}")]
    Stream(String),
    /// Registering or deregistering the local member failed.
    #[error("registration failed: {0}")]
    Registration(String),
    /// A kind-specific setting is missing or invalid.
    #[error("invalid setting {field}: {reason}")]
    Config {
        /// The setting's key.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// The backend holds a newer incarnation of our node id: a newer
    /// process of this node registered, and this one must not overwrite it
    /// (see [`Member::incarnation`](crate::node::Member::incarnation)).
    #[error("{node} incarnation {incarnation} is superseded by incarnation {newer}")]
    Superseded {
        /// Our node id.
        node: NodeId,
        /// Our incarnation.
        incarnation: u64,
        /// The newer incarnation the backend holds.
        newer: u64,
    },
}

impl ProviderError {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Connectivity(_) => "provider.connectivity",
            Self::Auth(_) => "provider.auth",
            Self::Protocol(_) => "provider.protocol",
            Self::Stream(_) => "provider.stream",
            Self::Registration(_) => "provider.registration",
            Self::Config { .. } => "provider.config",
            Self::Superseded { .. } => "provider.superseded",
        }
    }
}

/// Errors of provisioning: registry, store, queries.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProvisioningError {
    /// A field of a definition is missing or invalid (R1.1).
    #[error("invalid {field}: {reason}")]
    Validation {
        /// The field, dotted for nested ones (`settings.address`).
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// A provider with this id is already registered; it was kept (R1.2).
    #[error("a provider named {0} is already registered")]
    Duplicate(ProviderId),
    /// No provider factory for this kind.
    #[error("unknown provider kind {0:?}")]
    UnknownKind(String),
    /// No provider with this id.
    #[error("no provider named {0}")]
    NotFound(ProviderId),
    /// `lift_suppression` on a provider whose activation is not suppressed
    /// (R5.2).
    #[error("provider {0} is not suppressed")]
    NotSuppressed(ProviderId),
    /// The provider lacks a required capability; it is kept Disabled (R1.3).
    #[error("provider {provider} lacks {missing:?}")]
    Capability {
        /// The provider.
        provider: ProviderId,
        /// The missing capabilities.
        missing: Vec<&'static str>,
    },
    /// The provider failed its acceptance check or its operation (R1.4).
    #[error("provider {provider} failed")]
    Provider {
        /// The provider.
        provider: ProviderId,
        /// What it reported.
        #[source]
        source: ProviderError,
    },
    /// The store could not be read or written.
    #[error("store {path}: {message}")]
    StoreIo {
        /// The file.
        path: PathBuf,
        /// The IO error.
        message: String,
    },
    /// The store file is corrupt (bad checksum, undecodable); it was not
    /// overwritten (R1.5).
    #[error("store {path} is corrupt: {message}; it was left untouched")]
    StoreCorrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The store was written by an unknown format version.
    #[error("store {path} has format version {found}, this build reads {supported}")]
    StoreVersion {
        /// The file.
        path: PathBuf,
        /// The file's version.
        found: u32,
        /// The version this build reads.
        supported: u32,
    },
    /// No topology is available, with the status that explains why (R3.2).
    #[error("no topology available: {0}")]
    Unavailable(&'static str),
    /// Draining: the operation is refused (R3.5).
    #[error("provisioning is draining")]
    Draining,
    /// The supervisor did not answer in time.
    #[error("provisioning supervisor did not answer: {0}")]
    Supervisor(String),
    /// The node is not quarantined.
    #[error("{node} incarnation {incarnation} is not quarantined")]
    NotQuarantined {
        /// The node.
        node: NodeId,
        /// The incarnation.
        incarnation: u64,
    },
}

impl ProvisioningError {
    /// A validation error for `field`.
    pub fn validation(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Validation {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Validation { .. } => "validation.invalid_field",
            Self::Duplicate(_) => "registry.duplicate",
            Self::UnknownKind(_) => "registry.unknown_kind",
            Self::NotFound(_) => "registry.not_found",
            Self::NotSuppressed(_) => "registry.not_suppressed",
            Self::Capability { .. } => "provider.capability_missing",
            Self::Provider { source, .. } => source.code(),
            Self::StoreIo { .. } => "store.io",
            Self::StoreCorrupt { .. } => "store.corrupt",
            Self::StoreVersion { .. } => "store.version",
            Self::Unavailable(_) => "provisioning.unavailable",
            Self::Draining => "provisioning.draining",
            Self::Supervisor(_) => "provisioning.supervisor",
            Self::NotQuarantined { .. } => "quarantine.not_quarantined",
        }
    }

    /// A validation problem (R1.1).
    pub fn is_validation(&self) -> bool {
        matches!(self, Self::Validation { .. })
    }

    /// A connectivity problem with a backend (R1.4).
    pub fn is_connectivity(&self) -> bool {
        matches!(
            self,
            Self::Provider {
                source: ProviderError::Connectivity(_),
                ..
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// R5.5: the codes are part of the API. This list must only grow; if a
    /// line here has to change, a user's alert or test breaks.
    #[test]
    fn r5_5_error_codes_are_pinned() {
        let p = ProviderId::new("p").unwrap();
        let n = NodeId::new("n").unwrap();
        let provider = |e| ProvisioningError::Provider {
            provider: p.clone(),
            source: e,
        };
        let all = [
            (
                ProvisioningError::validation("f", "r"),
                "validation.invalid_field",
            ),
            (
                ProvisioningError::Duplicate(p.clone()),
                "registry.duplicate",
            ),
            (
                ProvisioningError::UnknownKind("x".into()),
                "registry.unknown_kind",
            ),
            (ProvisioningError::NotFound(p.clone()), "registry.not_found"),
            (
                ProvisioningError::NotSuppressed(p.clone()),
                "registry.not_suppressed",
            ),
            (
                ProvisioningError::Capability {
                    provider: p.clone(),
                    missing: vec!["watch"],
                },
                "provider.capability_missing",
            ),
            (
                provider(ProviderError::Connectivity("x".into())),
                "provider.connectivity",
            ),
            (provider(ProviderError::Auth("x".into())), "provider.auth"),
            (
                provider(ProviderError::Protocol("x".into())),
                "provider.protocol",
            ),
            (
                provider(ProviderError::Stream("x".into())),
                "provider.stream",
            ),
            (
                provider(ProviderError::Registration("x".into())),
                "provider.registration",
            ),
            (
                provider(ProviderError::Config {
                    field: "f".into(),
                    reason: "r".into(),
                }),
                "provider.config",
            ),
            (
                provider(ProviderError::Superseded {
                    node: n.clone(),
                    incarnation: 1,
                    newer: 2,
                }),
                "provider.superseded",
            ),
            (
                ProvisioningError::StoreIo {
                    path: "s".into(),
                    message: "m".into(),
                },
                "store.io",
            ),
            (
                ProvisioningError::StoreCorrupt {
                    path: "s".into(),
                    message: "m".into(),
                },
                "store.corrupt",
            ),
            (
                ProvisioningError::StoreVersion {
                    path: "s".into(),
                    found: 9,
                    supported: 1,
                },
                "store.version",
            ),
            (
                ProvisioningError::Unavailable("x"),
                "provisioning.unavailable",
            ),
            (ProvisioningError::Draining, "provisioning.draining"),
            (
                ProvisioningError::Supervisor("x".into()),
                "provisioning.supervisor",
            ),
            (
                ProvisioningError::NotQuarantined {
                    node: n,
                    incarnation: 1,
                },
                "quarantine.not_quarantined",
            ),
        ];
        for (e, code) in &all {
            assert_eq!(e.code(), *code, "{e}");
            assert!(!e.to_string().is_empty());
        }
        assert!(all[0].0.is_validation());
        let connectivity = all.iter().find(|(_, c)| *c == "provider.connectivity");
        assert!(connectivity.expect("listed").0.is_connectivity());
    }
}
