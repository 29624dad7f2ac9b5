//! What a node shows about itself: the JSON of `GET /cluster/members` and
//! `GET /cluster/providers`, and the readiness rule of `GET /health/ready`.
//! Plain data, built from provisioning's answers by pure functions, so the
//! admin HTTP handlers, `cluster-node status` and tests share one shape.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use cluster_core::{Member, ProviderHealth, ProvisioningStatus, Snapshot, Topology};
use provisioning_actors::ProviderStatus;
/// Re-exported for clients that decode the views (e.g. `cluster-node status`).
pub use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// `GET /cluster/members`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembersView {
    /// The cluster.
    pub cluster: String,
    /// The node answering.
    pub node: String,
    /// Provisioning status (`active`, `degraded`, `draining`, ...).
    pub status: String,
    /// The published topology's sequence number.
    pub seq_no: u64,
    /// Its hash, 16 hex digits: equal on two nodes means the same members.
    pub hash: String,
    /// The provider the members come from.
    pub active_provider: Option<String>,
    /// Whether the topology was restored from the store and not yet
    /// confirmed by a provider.
    pub stale: bool,
    /// Members, sorted by node id, then the quarantined ones.
    pub members: Vec<MemberView>,
    /// Changes of the active provider since this node started.
    pub failovers: u64,
}

/// One row of [`MembersView`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberView {
    /// Node id.
    pub node: String,
    /// `host:port` of its Remoting.
    pub address: String,
    /// Process incarnation.
    pub incarnation: u64,
    /// `up`, or `quarantined` (blocked: refused until it returns with a new
    /// incarnation or is reactivated).
    pub state: String,
    /// Whether this is the node answering.
    #[serde(rename = "self")]
    pub is_self: bool,
    /// Providers whose last snapshot lists it.
    pub providers: Vec<String>,
    /// Roles.
    pub roles: Vec<String>,
}

/// `GET /cluster/providers`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProvidersView {
    /// The node answering.
    pub node: String,
    /// Changes of the active provider since this node started.
    pub failovers: u64,
    /// Providers in priority order.
    pub providers: Vec<ProviderView>,
}

/// One row of [`ProvidersView`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProviderView {
    /// Provider id.
    pub id: String,
    /// Kind.
    pub kind: String,
    /// Priority (lower is preferred).
    pub priority: u32,
    /// `starting`, `healthy`, `degraded`, `down`, `failed`, `disabled`.
    pub health: String,
    /// Whether it is the active provider.
    pub active: bool,
    /// Unix time (seconds) of its last snapshot.
    pub last_update_unix: Option<f64>,
    /// Code of its last error.
    pub last_error: Option<String>,
    /// Why it is disabled or suppressed.
    pub disabled_reason: Option<String>,
    /// Members in its last snapshot.
    pub members: usize,
}

fn unix(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Builds the members view from the published topology and each
/// provider's last snapshot (to say which providers list a member).
pub fn members_view(
    cluster: &str,
    local: &Member,
    topology: &Topology,
    snapshots: &[(String, Option<Snapshot>)],
    failovers: u64,
) -> MembersView {
    let mut listed_by: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (provider, snapshot) in snapshots {
        if let Some(s) = snapshot {
            for m in s.members.iter() {
                listed_by
                    .entry(m.node_id.as_str())
                    .or_default()
                    .push(provider.clone());
            }
        }
    }
    let row = |m: &Member, state: &str| MemberView {
        node: m.node_id.to_string(),
        address: m.address.to_string(),
        incarnation: m.incarnation,
        state: state.to_owned(),
        is_self: m.node_id == local.node_id && m.incarnation == local.incarnation,
        providers: listed_by
            .get(m.node_id.as_str())
            .cloned()
            .unwrap_or_default(),
        roles: m.roles.iter().cloned().collect(),
    };
    let mut members: Vec<MemberView> = topology.members.iter().map(|m| row(m, "up")).collect();
    for b in topology.blocked.iter() {
        // The blocked incarnation's address is known from the snapshots.
        let address = snapshots
            .iter()
            .filter_map(|(_, s)| s.as_ref())
            .flat_map(|s| s.members.iter())
            .find(|m| m.node_id == b.node_id && m.incarnation == b.incarnation)
            .map_or_else(|| "-".to_owned(), |m| m.address.to_string());
        members.push(MemberView {
            node: b.node_id.to_string(),
            address,
            incarnation: b.incarnation,
            state: "quarantined".to_owned(),
            is_self: false,
            providers: listed_by
                .get(b.node_id.as_str())
                .cloned()
                .unwrap_or_default(),
            roles: Vec::new(),
        });
    }
    MembersView {
        cluster: cluster.to_owned(),
        node: local.node_id.to_string(),
        status: topology.status.as_str().to_owned(),
        seq_no: topology.seq_no,
        hash: topology.hash.to_string(),
        active_provider: topology.active_provider.as_ref().map(ToString::to_string),
        stale: topology.stale,
        members,
        failovers,
    }
}

/// Builds the providers view.
pub fn providers_view(node: &str, providers: &[ProviderStatus], failovers: u64) -> ProvidersView {
    let mut rows: Vec<ProviderView> = providers
        .iter()
        .map(|p| ProviderView {
            id: p.id.to_string(),
            kind: p.kind.clone(),
            priority: p.priority,
            health: p.health.as_str().to_owned(),
            active: p.active,
            last_update_unix: p.last_update.map(unix),
            last_error: p.last_error.map(str::to_owned),
            disabled_reason: p.disabled_reason.clone(),
            members: p.last_members,
        })
        .collect();
    rows.sort_by(|a, b| (a.priority, &a.id).cmp(&(b.priority, &b.id)));
    ProvidersView {
        node: node.to_owned(),
        failovers,
        providers: rows,
    }
}

/// Why a node is not ready (`GET /health/ready` answers 503 with it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotReady {
    /// The node is leaving.
    Draining,
    /// Remoting's listener is not serving.
    RemotingDown,
    /// No topology from a healthy provider yet (status, active provider).
    NoHealthyProvider(String),
    /// The topology does not list this node yet.
    NotListed,
}

impl std::error::Error for NotReady {}

impl std::fmt::Display for NotReady {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Draining => f.write_str("draining: the node is leaving"),
            Self::RemotingDown => f.write_str("remoting is not serving"),
            Self::NoHealthyProvider(why) => {
                write!(f, "no topology from a healthy provider ({why})")
            }
            Self::NotListed => f.write_str("the topology does not list this node yet"),
        }
    }
}

/// Provider kinds that list a node only once its readiness probe passes
/// (the Kubernetes provider lists Ready pods). For them "the topology lists
/// this node" cannot be part of readiness: the probe would wait for the
/// listing and the listing for the probe, and no pod would ever be Ready.
pub const MEMBERSHIP_FOLLOWS_READINESS: &[&str] = &["kubernetes"];

/// The readiness rule (N2): ready once this node has a topology from a
/// healthy provider that lists itself, its Remoting listener is up, and it
/// is not draining.
///
/// It deliberately does **not** wait for other members: a readiness probe
/// that waits for the cluster to form blocks the very pods that would form
/// it (a StatefulSet starts pod 1 only once pod 0 is Ready, and a Service
/// publishes only Ready pods to DNS-based discovery), so the cluster never
/// forms. Readiness says "this node can serve", not "the cluster is whole".
///
/// When the active provider is of a kind in
/// [`MEMBERSHIP_FOLLOWS_READINESS`], the "lists itself" condition is left
/// out (it would be circular).
pub fn readiness(
    local: &Member,
    topology: &Topology,
    providers: &[ProviderStatus],
    remoting_up: bool,
    draining: bool,
) -> Result<(), NotReady> {
    if draining || topology.status == ProvisioningStatus::Draining {
        return Err(NotReady::Draining);
    }
    if !remoting_up {
        return Err(NotReady::RemotingDown);
    }
    let active_healthy = topology.active_provider.as_ref().is_some_and(|id| {
        providers
            .iter()
            .any(|p| &p.id == id && p.health == ProviderHealth::Healthy)
    });
    if topology.stale || !active_healthy {
        let active = topology
            .active_provider
            .as_ref()
            .map_or_else(|| "none".to_owned(), ToString::to_string);
        return Err(NotReady::NoHealthyProvider(format!(
            "status {}, active provider {active}",
            topology.status.as_str()
        )));
    }
    let gated = topology.active_provider.as_ref().is_some_and(|id| {
        providers
            .iter()
            .any(|p| &p.id == id && MEMBERSHIP_FOLLOWS_READINESS.contains(&p.kind.as_str()))
    });
    if !gated
        && !topology
            .members
            .iter()
            .any(|m| m.node_id == local.node_id && m.incarnation == local.incarnation)
    {
        return Err(NotReady::NotListed);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use cluster_core::{MemberAddress, NodeId, ProviderId};

    fn member(id: &str, inc: u64) -> Member {
        Member::new(
            NodeId::new(id).expect("id"),
            MemberAddress::new("127.0.0.1", 4000).expect("address"),
            inc,
        )
    }

    fn status(id: &str, health: ProviderHealth, active: bool) -> ProviderStatus {
        ProviderStatus {
            id: ProviderId::new(id).expect("id"),
            kind: "memory".into(),
            priority: 0,
            health,
            active,
            last_update: None,
            last_error: None,
            disabled_reason: None,
            last_hash: None,
            last_members: 1,
            stream_errors: 0,
        }
    }

    fn topology(members: Vec<Member>, active: Option<&str>, st: ProvisioningStatus) -> Topology {
        let mut t = Topology::starting();
        t.members = members.into();
        t.status = st;
        t.active_provider = active.map(|a| ProviderId::new(a).expect("id"));
        t
    }

    #[test]
    fn n2_ready_needs_a_healthy_provider_listing_this_node_and_nothing_more() {
        let me = member("a", 7);
        let healthy = [status("p", ProviderHealth::Healthy, true)];
        // Alone in the topology is enough: readiness never waits for others.
        let alone = topology(vec![me.clone()], Some("p"), ProvisioningStatus::Active);
        assert_eq!(readiness(&me, &alone, &healthy, true, false), Ok(()));
        // Not listed yet, or listed with an old incarnation.
        let other = topology(
            vec![member("b", 1), member("a", 6)],
            Some("p"),
            ProvisioningStatus::Active,
        );
        assert_eq!(
            readiness(&me, &other, &healthy, true, false),
            Err(NotReady::NotListed)
        );
        // The active provider degraded.
        let degraded = [status("p", ProviderHealth::Degraded, true)];
        assert!(matches!(
            readiness(&me, &alone, &degraded, true, false),
            Err(NotReady::NoHealthyProvider(_))
        ));
        // Starting: no active provider.
        let starting = topology(vec![], None, ProvisioningStatus::Starting);
        assert!(matches!(
            readiness(&me, &starting, &healthy, true, false),
            Err(NotReady::NoHealthyProvider(_))
        ));
        assert_eq!(
            readiness(&me, &alone, &healthy, false, false),
            Err(NotReady::RemotingDown)
        );
        assert_eq!(
            readiness(&me, &alone, &healthy, true, true),
            Err(NotReady::Draining)
        );
        // Kubernetes lists only Ready pods: not listed yet must not keep the
        // pod unready (the probe and the listing would wait for each other).
        let mut pods = status("p", ProviderHealth::Healthy, true);
        pods.kind = "kubernetes".into();
        let empty = topology(vec![member("b", 1)], Some("p"), ProvisioningStatus::Active);
        assert_eq!(readiness(&me, &empty, &[pods], true, false), Ok(()));
    }

    #[test]
    fn n2_members_view_marks_self_quarantined_and_listing_providers() {
        let me = member("a", 7);
        let mut t = topology(
            vec![me.clone(), member("b", 2)],
            Some("p"),
            ProvisioningStatus::Active,
        );
        t.blocked = vec![cluster_core::BlockedMember {
            node_id: NodeId::new("c").expect("id"),
            incarnation: 3,
        }]
        .into();
        let snap = Snapshot::now(vec![me.clone(), member("b", 2), member("c", 3)]);
        let v = members_view("shop", &me, &t, &[("p".into(), Some(snap))], 2);
        let rows: Vec<(&str, &str, bool)> = v
            .members
            .iter()
            .map(|m| (m.node.as_str(), m.state.as_str(), m.is_self))
            .collect();
        assert_eq!(
            rows,
            vec![
                ("a", "up", true),
                ("b", "up", false),
                ("c", "quarantined", false)
            ]
        );
        assert_eq!(v.members[2].address, "127.0.0.1:4000");
        assert_eq!(v.members[0].providers, vec!["p".to_owned()]);
        assert_eq!(v.failovers, 2);
    }
}
