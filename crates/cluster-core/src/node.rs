//! Nodes and members.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::{ProvisioningError, Result};

/// A node's stable identity in the cluster (not its address): 1 to 128
/// characters from `[A-Za-z0-9._:-]`. Cheap to clone.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NodeId(Arc<str>);

impl NodeId {
    /// Validates and wraps `id`.
    pub fn new(id: impl AsRef<str>) -> Result<Self> {
        let id = id.as_ref();
        if id.is_empty() || id.len() > 128 {
            return Err(ProvisioningError::validation(
                "node_id",
                "must be 1 to 128 characters",
            ));
        }
        if let Some(c) = id
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-')))
        {
            return Err(ProvisioningError::validation(
                "node_id",
                format!("character {c:?} is not allowed (use A-Z a-z 0-9 . _ : -)"),
            ));
        }
        Ok(Self(Arc::from(id)))
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for NodeId {
    type Error = ProvisioningError;
    fn try_from(s: String) -> Result<Self> {
        Self::new(s)
    }
}

impl From<NodeId> for String {
    fn from(n: NodeId) -> Self {
        n.0.to_string()
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({})", self.0)
    }
}

/// Where a member accepts remoting connections: a host name or IP and a
/// port.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Debug)]
pub struct MemberAddress {
    /// Host name or IP address.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl MemberAddress {
    /// An address; the host must be non-empty and at most 253 bytes, the
    /// port non-zero.
    pub fn new(host: impl Into<String>, port: u16) -> Result<Self> {
        let host = host.into();
        if host.is_empty() || host.len() > 253 || host.chars().any(char::is_whitespace) {
            return Err(ProvisioningError::validation(
                "address.host",
                "must be a non-empty host name or IP without spaces",
            ));
        }
        if port == 0 {
            return Err(ProvisioningError::validation(
                "address.port",
                "must not be 0",
            ));
        }
        Ok(Self { host, port })
    }
}

impl fmt::Display for MemberAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// A node as a provider reports it.
///
/// `incarnation` changes each time the node's process starts (the cluster
/// bootstrap uses a fresh one per start), so a restarted node is told apart
/// from its quarantined former self. See [`Member::incarnation`] for the
/// order between incarnations.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Debug)]
pub struct Member {
    /// Stable identity.
    pub node_id: NodeId,
    /// Remoting address.
    pub address: MemberAddress,
    /// Process incarnation.
    ///
    /// The incarnations of one node id are totally ordered by `u64`
    /// comparison, and a greater one is a newer process of that node: a
    /// backend that holds one entry per node id keeps the greatest
    /// incarnation it was given and refuses to let a smaller one replace it
    /// (the older process is *superseded*,
    /// [`ProviderError::Superseded`](crate::error::ProviderError::Superseded)).
    /// Equal incarnations are the same process (re-registering or
    /// refreshing its own entry).
    ///
    /// How they are made: the cluster bootstrap (`fresh_incarnation` in
    /// the `cluster` crate) takes the wall clock in microseconds since the
    /// Unix epoch, raised to one more than the last value this process
    /// handed out, so the values are strictly increasing within a process,
    /// and a restart is newer than its predecessor as long as the clock
    /// did not step back by more than the time between the two starts.
    /// An embedder that sets the incarnation itself must keep this order
    /// (e.g. a persisted counter incremented at each start).
    pub incarnation: u64,
    /// Roles (for placement by role), kept sorted.
    #[serde(default)]
    pub roles: BTreeSet<String>,
    /// Free-form labels, kept sorted.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

impl Member {
    /// A member without roles or labels.
    pub fn new(node_id: NodeId, address: MemberAddress, incarnation: u64) -> Self {
        Self {
            node_id,
            address,
            incarnation,
            roles: BTreeSet::new(),
            labels: BTreeMap::new(),
        }
    }

    /// Adds a role.
    pub fn with_role(mut self, role: impl Into<String>) -> Self {
        self.roles.insert(role.into());
        self
    }

    /// Adds a label.
    pub fn with_label(mut self, k: impl Into<String>, v: impl Into<String>) -> Self {
        self.labels.insert(k.into(), v.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids_are_validated_with_the_field_named() {
        assert!(NodeId::new("node-1.eu:a_b").is_ok());
        for bad in ["", "a b", "ä", "x/y"] {
            let e = NodeId::new(bad).unwrap_err();
            assert_eq!(e.code(), "validation.invalid_field");
            assert!(e.to_string().contains("node_id"), "{e}");
        }
        assert!(NodeId::new("x".repeat(129)).is_err());
    }

    #[test]
    fn corrupt_node_id_in_data_is_a_decode_error_not_a_panic() {
        let bytes = rmp_serde::to_vec(&"bad id").unwrap();
        assert!(rmp_serde::from_slice::<NodeId>(&bytes).is_err());
    }

    #[test]
    fn addresses_display_ipv6_in_brackets() {
        assert_eq!(
            MemberAddress::new("::1", 80).unwrap().to_string(),
            "[::1]:80"
        );
        assert_eq!(MemberAddress::new("h", 1).unwrap().to_string(), "h:1");
        assert!(MemberAddress::new("h", 0).is_err());
        assert!(MemberAddress::new("", 1).is_err());
    }
}
