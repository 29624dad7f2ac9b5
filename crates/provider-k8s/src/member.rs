//! Pods to members: the pure core of the provider.
//!
//! [`member_of`] decides whether one pod is a member and decodes it;
//! [`Membership`] applies `kube_runtime::watcher` events to a store of
//! members and says when a snapshot is due. Neither does IO or reads a
//! clock, so both are tested with plain values.

use std::collections::BTreeMap;

use cluster_core::{Member, MemberAddress, NodeId};
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::watcher::Event;

/// The annotation keys a member pod carries (see the crate docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnnotationKeys {
    /// The node id (required).
    pub node_id: String,
    /// The remoting port (required, 1..=65535).
    pub port: String,
    /// The process incarnation (optional, default 0).
    pub incarnation: String,
    /// Comma-separated roles (optional).
    pub roles: String,
}

impl Default for AnnotationKeys {
    fn default() -> Self {
        Self {
            node_id: "cluster-provisioning.io/node-id".into(),
            port: "cluster-provisioning.io/port".into(),
            incarnation: "cluster-provisioning.io/incarnation".into(),
            roles: "cluster-provisioning.io/roles".into(),
        }
    }
}

/// Why a pod is not a member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotMember {
    /// It has a `deletionTimestamp`.
    Terminating,
    /// Its phase is not `Running` (the phase, or empty).
    NotRunning(String),
    /// Its `Ready` condition is not `True`.
    NotReady,
    /// It has no `status.podIP`.
    NoAddress,
    /// A required annotation is missing (its key).
    Missing(String),
    /// An annotation has a value that cannot be used.
    Invalid {
        /// The annotation key.
        key: String,
        /// Why.
        reason: String,
    },
}

impl std::fmt::Display for NotMember {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Terminating => f.write_str("terminating"),
            Self::NotRunning(p) => write!(f, "phase {p:?} is not Running"),
            Self::NotReady => f.write_str("not Ready"),
            Self::NoAddress => f.write_str("no pod IP"),
            Self::Missing(k) => write!(f, "annotation {k} missing"),
            Self::Invalid { key, reason } => write!(f, "annotation {key}: {reason}"),
        }
    }
}

impl NotMember {
    /// Whether this is a misconfiguration (worth a warning) rather than a
    /// pod that is simply not ready yet: a malformed annotation, or a
    /// Running, Ready pod carrying the cluster label without the node id or
    /// port annotation (self-registration writes the label and the
    /// annotations in one patch, so this is not a transient state).
    pub fn is_misconfiguration(&self) -> bool {
        matches!(self, Self::Invalid { .. } | Self::Missing(_))
    }
}

/// Decodes `pod` as a member: Running, `Ready=True`, not terminating, with a
/// pod IP and the node id and port annotations.
///
/// The member gets no labels: a label map costs a B-tree node (about 500
/// bytes) per member in every copy of the member list, and nothing needs the
/// pod name (the node id usually is the pod name).
pub fn member_of(pod: &Pod, keys: &AnnotationKeys) -> Result<Member, NotMember> {
    if pod.metadata.deletion_timestamp.is_some() {
        return Err(NotMember::Terminating);
    }
    let status = pod.status.as_ref();
    let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("");
    if phase != "Running" {
        return Err(NotMember::NotRunning(phase.to_owned()));
    }
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    if !ready {
        return Err(NotMember::NotReady);
    }
    let ip = status
        .and_then(|s| s.pod_ip.as_deref())
        .filter(|ip| !ip.is_empty())
        .ok_or(NotMember::NoAddress)?;
    let ann = pod.metadata.annotations.as_ref();
    let get = |k: &str| ann.and_then(|a| a.get(k)).map(String::as_str);
    let invalid = |key: &str, reason: String| NotMember::Invalid {
        key: key.to_owned(),
        reason,
    };
    let node_id = get(&keys.node_id).ok_or_else(|| NotMember::Missing(keys.node_id.clone()))?;
    let node_id = NodeId::new(node_id).map_err(|e| invalid(&keys.node_id, e.to_string()))?;
    let port = get(&keys.port).ok_or_else(|| NotMember::Missing(keys.port.clone()))?;
    let port = port
        .trim()
        .parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| invalid(&keys.port, format!("{port:?} is not a port in 1..=65535")))?;
    let incarnation = match get(&keys.incarnation) {
        None => 0,
        Some(v) => v.trim().parse::<u64>().map_err(|_| {
            invalid(
                &keys.incarnation,
                format!("{v:?} is not a non-negative integer"),
            )
        })?,
    };
    let address = MemberAddress::new(ip, port).map_err(|e| NotMember::Invalid {
        key: "status.podIP".into(),
        reason: e.to_string(),
    })?;
    let mut member = Member::new(node_id, address, incarnation);
    if let Some(roles) = get(&keys.roles) {
        for r in roles.split(',').map(str::trim).filter(|r| !r.is_empty()) {
            member = member.with_role(r);
        }
    }
    Ok(member)
}

/// The members of one namespace's selected pods, kept from watcher events.
///
/// Snapshots are published only once the first list is complete
/// (`InitDone`), so a partial first list never looks like a shrunken
/// cluster. A relist (`Init` .. `InitDone`, after a watch restart or an
/// expired resource version) is buffered and then replaces the store
/// atomically: pods deleted while the watch was down disappear.
#[derive(Clone, Debug, Default)]
pub struct Membership {
    keys: AnnotationKeys,
    /// Members by pod name.
    members: BTreeMap<String, Member>,
    /// The relist in progress.
    staging: Option<BTreeMap<String, Member>>,
    initialized: bool,
}

/// What applying one event means for the consumer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// Nothing to publish (no change, or a relist in progress).
    Quiet,
    /// The member set changed, or a (re)list completed: publish.
    Publish,
}

impl Membership {
    /// An empty store reading members with `keys`.
    pub fn new(keys: AnnotationKeys) -> Self {
        Self {
            keys,
            ..Self::default()
        }
    }

    /// Whether a first complete list has been applied.
    pub fn initialized(&self) -> bool {
        self.initialized
    }

    fn decode(&self, pod: &Pod) -> Option<(String, Member)> {
        let name = pod.metadata.name.clone()?;
        match member_of(pod, &self.keys) {
            Ok(m) => Some((name, m)),
            Err(why) => {
                if why.is_misconfiguration() {
                    tracing::warn!(pod = %name, reason = %why, "pod selected but not a member");
                } else {
                    tracing::debug!(pod = %name, reason = %why, "pod selected but not a member");
                }
                None
            }
        }
    }

    /// Applies one watcher event.
    pub fn apply(&mut self, event: Event<Pod>) -> Applied {
        match event {
            Event::Init => {
                self.staging = Some(BTreeMap::new());
                Applied::Quiet
            }
            Event::InitApply(pod) => {
                let decoded = self.decode(&pod);
                let staging = self.staging.get_or_insert_with(BTreeMap::new);
                if let Some((name, m)) = decoded {
                    staging.insert(name, m);
                }
                Applied::Quiet
            }
            Event::InitDone => {
                self.members = self.staging.take().unwrap_or_default();
                self.initialized = true;
                Applied::Publish
            }
            Event::Apply(pod) => {
                let Some(name) = pod.metadata.name.clone() else {
                    return Applied::Quiet;
                };
                let changed = match self.decode(&pod) {
                    Some((_, m)) => self.members.insert(name, m.clone()).as_ref() != Some(&m),
                    None => self.members.remove(&name).is_some(),
                };
                self.publish_if(changed)
            }
            Event::Delete(pod) => {
                let changed = pod
                    .metadata
                    .name
                    .as_ref()
                    .is_some_and(|n| self.members.remove(n).is_some());
                self.publish_if(changed)
            }
        }
    }

    fn publish_if(&self, changed: bool) -> Applied {
        if changed && self.initialized {
            Applied::Publish
        } else {
            Applied::Quiet
        }
    }

    /// The members, sorted by node id. Two pods claiming one node id (a
    /// misconfiguration, or a replacement pod starting before the old one
    /// is gone): the higher incarnation wins, then the first pod name.
    pub fn members(&self) -> Vec<Member> {
        let mut by_id: BTreeMap<&NodeId, &Member> = BTreeMap::new();
        for m in self.members.values() {
            match by_id.get(&m.node_id) {
                Some(old) if old.incarnation >= m.incarnation => {}
                _ => {
                    by_id.insert(&m.node_id, m);
                }
            }
        }
        by_id.into_values().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn pod(name: &str, ready: bool, ann: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "ns", "annotations": ann},
            "spec": {"containers": [{"name": "app"}], "nodeName": "n1"},
            "status": {
                "phase": "Running",
                "podIP": "10.0.0.7",
                "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
            },
        }))
        .unwrap()
    }

    fn good(name: &str, node: &str) -> Pod {
        pod(
            name,
            true,
            json!({
                "cluster-provisioning.io/node-id": node,
                "cluster-provisioning.io/port": "4000",
                "cluster-provisioning.io/incarnation": "7",
                "cluster-provisioning.io/roles": "web, db",
            }),
        )
    }

    /// P3: a running, ready, annotated pod decodes to a member at its pod IP.
    #[test]
    fn p3_ready_annotated_pod_is_a_member() {
        let m = member_of(&good("p-0", "node-a"), &AnnotationKeys::default()).unwrap();
        assert_eq!(m.node_id.as_str(), "node-a");
        assert_eq!(m.address, MemberAddress::new("10.0.0.7", 4000).unwrap());
        assert_eq!(m.incarnation, 7);
        assert_eq!(
            m.roles.iter().cloned().collect::<Vec<_>>(),
            vec!["db", "web"]
        );
        assert!(m.labels.is_empty());
    }

    /// P3: pods are counted only when Running, Ready, not terminating and
    /// annotated; each exclusion has its reason.
    #[test]
    fn p3_unready_terminating_pending_or_unannotated_pods_are_not_members() {
        let keys = AnnotationKeys::default();
        let mut p = good("p", "a");
        p.status.as_mut().unwrap().conditions.as_mut().unwrap()[0].status = "False".into();
        assert_eq!(member_of(&p, &keys), Err(NotMember::NotReady));

        let mut p = good("p", "a");
        p.metadata.deletion_timestamp =
            Some(serde_json::from_value(json!("2025-01-01T00:00:00Z")).unwrap());
        assert_eq!(member_of(&p, &keys), Err(NotMember::Terminating));

        let mut p = good("p", "a");
        p.status.as_mut().unwrap().phase = Some("Pending".into());
        assert_eq!(
            member_of(&p, &keys),
            Err(NotMember::NotRunning("Pending".into()))
        );

        let mut p = good("p", "a");
        p.status.as_mut().unwrap().pod_ip = None;
        assert_eq!(member_of(&p, &keys), Err(NotMember::NoAddress));

        let p = pod("p", true, json!({"cluster-provisioning.io/port": "1"}));
        assert_eq!(
            member_of(&p, &keys),
            Err(NotMember::Missing("cluster-provisioning.io/node-id".into()))
        );
        let p = pod("p", true, json!({}));
        assert!(matches!(member_of(&p, &keys), Err(NotMember::Missing(_))));
        // A ready, labelled pod without them is misconfigured (a warning);
        // one that is merely not ready yet is not.
        assert!(member_of(&p, &keys).unwrap_err().is_misconfiguration());
        assert!(!NotMember::NotReady.is_misconfiguration());
    }

    /// P3: malformed annotations are a clear reason, never a panic.
    #[test]
    fn p3_malformed_annotations_are_reported_not_panicking() {
        let keys = AnnotationKeys::default();
        for (port, inc, node) in [
            ("0", "1", "a"),
            ("70000", "1", "a"),
            ("x", "1", "a"),
            ("1", "-1", "a"),
            ("1", "1", "bad id"),
        ] {
            let p = pod(
                "p",
                true,
                json!({
                    "cluster-provisioning.io/node-id": node,
                    "cluster-provisioning.io/port": port,
                    "cluster-provisioning.io/incarnation": inc,
                }),
            );
            let e = member_of(&p, &keys).unwrap_err();
            assert!(e.is_misconfiguration(), "{port} {inc} {node}: {e}");
        }
        // A pod with no status at all.
        let bare: Pod = serde_json::from_value(json!({"metadata": {"name": "x"}})).unwrap();
        assert_eq!(
            member_of(&bare, &keys),
            Err(NotMember::NotRunning(String::new()))
        );
    }

    /// P3: nothing is published before the first list completes; a relist
    /// replaces the store, so pods deleted during a watch gap disappear.
    #[test]
    fn p3_relist_replaces_membership_and_drops_pods_deleted_during_a_gap() {
        let mut m = Membership::new(AnnotationKeys::default());
        assert_eq!(m.apply(Event::Init), Applied::Quiet);
        assert_eq!(m.apply(Event::InitApply(good("p-0", "a"))), Applied::Quiet);
        assert_eq!(m.apply(Event::InitApply(good("p-1", "b"))), Applied::Quiet);
        assert!(!m.initialized());
        assert_eq!(m.apply(Event::InitDone), Applied::Publish);
        assert_eq!(m.members().len(), 2);
        // A relist in progress keeps the old members until InitDone.
        m.apply(Event::Init);
        m.apply(Event::InitApply(good("p-1", "b")));
        assert_eq!(m.members().len(), 2);
        assert_eq!(m.apply(Event::InitDone), Applied::Publish);
        let ids: Vec<_> = m
            .members()
            .into_iter()
            .map(|x| x.node_id.to_string())
            .collect();
        assert_eq!(ids, vec!["b"]);
    }

    /// P3: watch events change membership; an event that changes nothing
    /// publishes nothing.
    #[test]
    fn p3_apply_and_delete_events_publish_only_changes() {
        let mut m = Membership::new(AnnotationKeys::default());
        m.apply(Event::Init);
        m.apply(Event::InitDone);
        assert!(m.members().is_empty());
        assert_eq!(m.apply(Event::Apply(good("p-0", "a"))), Applied::Publish);
        assert_eq!(m.apply(Event::Apply(good("p-0", "a"))), Applied::Quiet);
        let unready = pod("p-0", false, json!({}));
        assert_eq!(m.apply(Event::Apply(unready.clone())), Applied::Publish);
        assert!(m.members().is_empty());
        assert_eq!(m.apply(Event::Apply(unready)), Applied::Quiet);
        m.apply(Event::Apply(good("p-0", "a")));
        assert_eq!(m.apply(Event::Delete(good("p-0", "a"))), Applied::Publish);
        assert_eq!(m.apply(Event::Delete(good("p-0", "a"))), Applied::Quiet);
    }

    /// Two pods claiming one node id: the higher incarnation wins.
    #[test]
    fn duplicate_node_ids_keep_the_higher_incarnation() {
        let mut m = Membership::new(AnnotationKeys::default());
        m.apply(Event::Init);
        let mut old = good("p-old", "a");
        old.metadata
            .annotations
            .as_mut()
            .unwrap()
            .insert("cluster-provisioning.io/incarnation".into(), "9".into());
        m.apply(Event::InitApply(good("p-new", "a")));
        m.apply(Event::InitApply(old));
        m.apply(Event::InitDone);
        let ms = m.members();
        assert_eq!(ms.len(), 1);
        assert_eq!(ms[0].incarnation, 9);
    }
}
