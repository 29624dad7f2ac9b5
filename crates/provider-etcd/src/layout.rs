//! [`KeyLayout`]: where members live in etcd and how they are encoded.
//!
//! One key per member, `<prefix>/<cluster>/members/<node_id>`, holding the
//! [`Member`] as JSON (readable with `etcdctl get --prefix`), attached to
//! the registering node's lease.

use cluster_core::{Member, NodeId};

/// The keys of one cluster under one prefix.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct KeyLayout {
    members: String,
}

impl KeyLayout {
    /// The layout of `cluster` under `prefix` (both validated by
    /// [`EtcdConfig`](crate::EtcdConfig)).
    pub fn new(prefix: &str, cluster: &str) -> Self {
        Self {
            members: format!("{prefix}/{cluster}/members/"),
        }
    }

    /// The prefix every member key starts with (ends with `/`).
    pub fn members_prefix(&self) -> &str {
        &self.members
    }

    /// The key of one member.
    pub fn key_of(&self, node: &NodeId) -> String {
        format!("{}{}", self.members, node.as_str())
    }

    /// The value stored for `member` (JSON).
    pub fn encode(member: &Member) -> Vec<u8> {
        // A Member is plain data (strings, numbers, ordered maps): encoding
        // it cannot fail; an empty value would be skipped by readers.
        serde_json::to_vec(member).unwrap_or_default()
    }

    /// Decodes the value under `key`. The key must be a member key and the
    /// value a member whose node id is the key's last segment; otherwise the
    /// reason, for a warning.
    pub fn decode(&self, key: &[u8], value: &[u8]) -> Result<Member, String> {
        let key = std::str::from_utf8(key).map_err(|_| "key is not UTF-8".to_owned())?;
        let id = key
            .strip_prefix(&self.members)
            .ok_or_else(|| format!("key {key:?} is not under {:?}", self.members))?;
        let member: Member = serde_json::from_slice(value)
            .map_err(|e| format!("value of {key:?} is not a member: {e}"))?;
        if member.node_id.as_str() != id {
            return Err(format!(
                "value of {key:?} names node {:?}, not {id:?}",
                member.node_id.as_str()
            ));
        }
        Ok(member)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cluster_core::MemberAddress;

    fn member(id: &str) -> Member {
        Member::new(
            NodeId::new(id).unwrap(),
            MemberAddress::new("127.0.0.1", 4000).unwrap(),
            7,
        )
        .with_role("worker")
        .with_label("zone", "a")
    }

    #[test]
    fn p5_keys_follow_prefix_cluster_members_node() {
        let l = KeyLayout::new("/cluster-provisioning", "lab");
        assert_eq!(l.members_prefix(), "/cluster-provisioning/lab/members/");
        assert_eq!(
            l.key_of(&NodeId::new("node-1").unwrap()),
            "/cluster-provisioning/lab/members/node-1"
        );
    }

    #[test]
    fn p5_members_round_trip_as_readable_json() {
        let l = KeyLayout::new("/p", "c");
        let m = member("a");
        let v = KeyLayout::encode(&m);
        let text = std::str::from_utf8(&v).unwrap();
        assert!(text.contains(r#""node_id":"a""#), "{text}");
        assert!(text.contains(r#""host":"127.0.0.1""#), "{text}");
        assert_eq!(l.decode(l.key_of(&m.node_id).as_bytes(), &v).unwrap(), m);
    }

    #[test]
    fn p5_malformed_values_are_reasons_not_panics() {
        let l = KeyLayout::new("/p", "c");
        let good = KeyLayout::encode(&member("a"));
        let cases: [(&[u8], &[u8], &str); 5] = [
            (b"/p/c/members/a", b"not json", "not a member"),
            (b"/p/c/members/a", b"{\"node_id\":\"a\"}", "not a member"),
            (b"/p/c/members/a", b"", "not a member"),
            (b"/p/c/members/b", &good, "names node"),
            (b"/p/other/a", &good, "is not under"),
        ];
        for (k, v, why) in cases {
            let e = l.decode(k, v).unwrap_err();
            assert!(e.contains(why), "{e}");
        }
        assert!(l.decode(&[0xff, 0xfe], &good).is_err());
    }
}
