//! A [`Member`] as a Consul service instance and back.
//!
//! - service ID `<node_id>-<incarnation>`, check ID `service:<service ID>`;
//! - `Address` / `Port` from the member's address;
//! - `Meta`: `node_id`, `incarnation`, `roles` (comma-separated) and one
//!   `label_<key>` per label. Consul meta keys allow only `[A-Za-z0-9_-]`,
//!   so a label key is escaped: `_` becomes `__`, any other byte outside
//!   `[A-Za-z0-9-]` becomes `_` and two lower-case hex digits.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use cluster_core::{Member, MemberAddress, NodeId};
use serde::Deserialize;
use serde_json::{Value, json};

/// Prefix of label meta keys.
pub const LABEL_PREFIX: &str = "label_";

/// The service ID of a member.
pub fn service_id(m: &Member) -> String {
    format!("{}-{}", m.node_id, m.incarnation)
}

/// The check ID of a member's TTL check.
pub fn check_id(m: &Member) -> String {
    format!("service:{}", service_id(m))
}

fn escape_key(k: &str) -> String {
    let mut out = String::with_capacity(k.len());
    for b in k.bytes() {
        match b {
            b'_' => out.push_str("__"),
            b if b.is_ascii_alphanumeric() || b == b'-' => out.push(char::from(b)),
            b => {
                let _ = write!(out, "_{b:02x}");
            }
        }
    }
    out
}

fn unescape_key(k: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(k.len());
    let mut it = k.bytes();
    while let Some(b) = it.next() {
        if b != b'_' {
            bytes.push(b);
            continue;
        }
        match it.next()? {
            b'_' => bytes.push(b'_'),
            h => {
                let l = it.next()?;
                let hex = [h, l];
                let s = std::str::from_utf8(&hex).ok()?;
                bytes.push(u8::from_str_radix(s, 16).ok()?);
            }
        }
    }
    String::from_utf8(bytes).ok()
}

/// The service meta of a member, checked against Consul's limits.
pub fn meta(m: &Member) -> Result<BTreeMap<String, String>, String> {
    let mut meta = BTreeMap::new();
    meta.insert("node_id".to_owned(), m.node_id.to_string());
    meta.insert("incarnation".to_owned(), m.incarnation.to_string());
    if let Some(r) = m.roles.iter().find(|r| r.contains(',') || r.is_empty()) {
        return Err(format!(
            "role {r:?} cannot be stored (empty or contains ',')"
        ));
    }
    if !m.roles.is_empty() {
        meta.insert(
            "roles".to_owned(),
            m.roles.iter().cloned().collect::<Vec<_>>().join(","),
        );
    }
    for (k, v) in &m.labels {
        let key = format!("{LABEL_PREFIX}{}", escape_key(k));
        if key.len() > 128 {
            return Err(format!(
                "label key {k:?} is too long for Consul meta (128 bytes escaped)"
            ));
        }
        meta.insert(key, v.clone());
    }
    if meta.len() > 64 {
        return Err(format!(
            "{} labels do not fit Consul's 64 meta pairs",
            m.labels.len()
        ));
    }
    if let Some((k, _)) = meta.iter().find(|(_, v)| v.len() > 512) {
        return Err(format!("meta {k:?} is longer than Consul's 512 characters"));
    }
    Ok(meta)
}

fn go_duration(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

/// The body of `PUT /v1/agent/service/register` for `m`.
pub fn registration(
    m: &Member,
    service: &str,
    tags: &[String],
    ttl: Duration,
    deregister_after: Duration,
) -> Result<Value, String> {
    Ok(json!({
        "ID": service_id(m),
        "Name": service,
        "Tags": tags,
        "Address": m.address.host,
        "Port": m.address.port,
        "Meta": meta(m)?,
        "Check": {
            "CheckID": check_id(m),
            "Name": "cluster membership TTL",
            "Notes": "passed by provider-consul every TTL/3 while the node runs",
            "TTL": go_duration(ttl),
            "Status": "passing",
            "DeregisterCriticalServiceAfter": go_duration(deregister_after),
        },
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Entry {
    #[serde(default)]
    node: Option<NodePart>,
    service: ServicePart,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct NodePart {
    #[serde(default)]
    address: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ServicePart {
    #[serde(default)]
    address: String,
    port: u16,
    #[serde(default)]
    meta: Option<BTreeMap<String, String>>,
}

/// Decodes one `/v1/health/service` entry; the error says why it is
/// skipped.
pub fn from_entry(v: Value) -> Result<Member, String> {
    let e: Entry = serde_json::from_value(v).map_err(|e| format!("undecodable entry: {e}"))?;
    let meta = e.service.meta.unwrap_or_default();
    let node_id = meta
        .get("node_id")
        .ok_or("no node_id in Service.Meta (not registered by this provider)")?;
    let node_id = NodeId::new(node_id).map_err(|e| e.to_string())?;
    let incarnation = meta
        .get("incarnation")
        .ok_or("no incarnation in Service.Meta")?
        .parse::<u64>()
        .map_err(|e| format!("incarnation: {e}"))?;
    let host = if e.service.address.is_empty() {
        e.node.map(|n| n.address).unwrap_or_default()
    } else {
        e.service.address
    };
    let address = MemberAddress::new(host, e.service.port).map_err(|e| e.to_string())?;
    let mut m = Member::new(node_id, address, incarnation);
    if let Some(roles) = meta.get("roles") {
        m.roles = roles
            .split(',')
            .filter(|r| !r.is_empty())
            .map(str::to_owned)
            .collect();
    }
    for (k, v) in &meta {
        if let Some(escaped) = k.strip_prefix(LABEL_PREFIX) {
            let key = unescape_key(escaped).ok_or_else(|| format!("bad label key {k:?}"))?;
            m.labels.insert(key, v.clone());
        }
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p2_member_round_trips_through_registration_and_entry() {
        let m = Member::new(
            NodeId::new("node-1.eu:a").unwrap(),
            MemberAddress::new("10.0.0.7", 4100).unwrap(),
            42,
        )
        .with_role("frontend")
        .with_role("db")
        .with_label("zone", "eu-1")
        .with_label("app.kubernetes.io/name", "x")
        .with_label("a_b", "y");
        let reg = registration(
            &m,
            "svc",
            &[],
            Duration::from_secs(10),
            Duration::from_secs(60),
        )
        .unwrap();
        assert_eq!(reg["ID"], "node-1.eu:a-42");
        assert_eq!(reg["Check"]["TTL"], "10000ms");
        for k in reg["Meta"].as_object().unwrap().keys() {
            assert!(
                k.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'),
                "meta key {k} valid for Consul"
            );
        }
        let entry = json!({
            "Node": {"Address": "10.9.9.9"},
            "Service": {"Address": reg["Address"], "Port": reg["Port"], "Meta": reg["Meta"]},
        });
        assert_eq!(from_entry(entry).unwrap(), m);
    }

    #[test]
    fn p2_node_address_is_the_fallback_and_bad_entries_say_why() {
        let entry = json!({
            "Node": {"Address": "10.9.9.9"},
            "Service": {"Address": "", "Port": 7, "Meta": {"node_id": "n", "incarnation": "1"}},
        });
        assert_eq!(from_entry(entry).unwrap().address.host, "10.9.9.9");
        for bad in [
            json!({"Service": {"Port": 7, "Meta": {}}}),
            json!({"Service": {"Address": "h", "Port": 0, "Meta": {"node_id": "n", "incarnation": "1"}}}),
            json!({"Service": {"Address": "h", "Port": 7, "Meta": {"node_id": "bad id", "incarnation": "1"}}}),
            json!({"Service": {"Address": "h", "Port": 7, "Meta": {"node_id": "n", "incarnation": "x"}}}),
            json!({"Service": {"Address": "h", "Port": "7"}}),
            json!([1, 2]),
        ] {
            assert!(from_entry(bad.clone()).is_err(), "{bad}");
        }
    }

    #[test]
    fn label_keys_escape_reversibly() {
        for k in ["a", "a_b", "a__b", "x.y/z", "é", "_", "-"] {
            let e = escape_key(k);
            assert!(
                e.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            );
            assert_eq!(unescape_key(&e).as_deref(), Some(k));
        }
        assert_eq!(unescape_key("_z"), None);
    }
}
