//! The shared catalog: nodes, services, checks and the modify index, as a
//! synchronous state machine. Every operation takes `now`; the HTTP layer and
//! the ticker only drive it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::time::Instant;

/// The status of a health check, as Consul names it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum CheckStatus {
    /// `passing`
    Passing,
    /// `warning`
    Warning,
    /// `critical`
    Critical,
}

impl CheckStatus {
    /// Consul's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Passing => "passing",
            Self::Warning => "warning",
            Self::Critical => "critical",
        }
    }

    /// Parses Consul's spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "passing" => Some(Self::Passing),
            "warning" => Some(Self::Warning),
            "critical" => Some(Self::Critical),
            _ => None,
        }
    }
}

/// An API error: an HTTP status and Consul's plain-text message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status code.
    pub status: u16,
    /// Body text.
    pub message: String,
}

impl ApiError {
    pub(crate) fn new(status: u16, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct ServiceRec {
    pub id: String,
    pub name: String,
    pub tags: Vec<String>,
    pub address: String,
    pub port: u16,
    pub meta: BTreeMap<String, String>,
    pub create_index: u64,
    pub modify_index: u64,
}

#[derive(Clone, Debug)]
pub(crate) struct CheckRec {
    pub check_id: String,
    pub name: String,
    pub service_id: String,
    pub status: CheckStatus,
    pub output: String,
    pub notes: String,
    pub ttl: Option<Duration>,
    pub ttl_deadline: Option<Instant>,
    pub deregister_after: Option<Duration>,
    pub critical_since: Option<Instant>,
    pub create_index: u64,
    pub modify_index: u64,
}

#[derive(Clone, Debug)]
pub(crate) struct NodeRec {
    pub id: String,
    pub address: String,
    /// The agent's gossip health (`serfHealth`): false while the agent is
    /// stopped.
    pub alive: bool,
    pub create_index: u64,
    pub modify_index: u64,
    /// Services by id.
    pub services: BTreeMap<String, ServiceRec>,
    /// Checks by id.
    pub checks: BTreeMap<String, CheckRec>,
}

/// A check definition as decoded from a registration.
#[derive(Clone, Debug)]
pub(crate) struct CheckDef {
    pub check_id: Option<String>,
    pub name: Option<String>,
    pub ttl: Duration,
    pub deregister_after: Option<Duration>,
    pub status: Option<CheckStatus>,
    pub notes: String,
}

/// A service registration as decoded from the request body.
#[derive(Clone, Debug)]
pub(crate) struct ServiceDef {
    pub id: String,
    pub name: String,
    pub tags: Vec<String>,
    pub address: String,
    pub port: u16,
    pub meta: BTreeMap<String, String>,
    pub checks: Vec<CheckDef>,
}

/// The catalog shared by every agent of one fake cluster.
#[derive(Debug)]
pub(crate) struct Catalog {
    pub datacenter: String,
    /// The raft-like modify index: grows by one per change.
    pub index: u64,
    /// Modify index of each service name's health result.
    pub service_index: BTreeMap<String, u64>,
    pub nodes: BTreeMap<String, NodeRec>,
    /// Real agents round DeregisterCriticalServiceAfter up to this.
    pub min_deregister_after: Duration,
}

impl Catalog {
    pub fn new(datacenter: String, min_deregister_after: Duration) -> Self {
        Self {
            datacenter,
            index: 1,
            service_index: BTreeMap::new(),
            nodes: BTreeMap::new(),
            min_deregister_after,
        }
    }

    fn bump(&mut self, names: impl IntoIterator<Item = String>) {
        self.index += 1;
        for n in names {
            self.service_index.insert(n, self.index);
        }
    }

    pub fn add_node(&mut self, name: &str, id: &str, address: &str) {
        self.index += 1;
        let idx = self.index;
        self.nodes.insert(
            name.to_owned(),
            NodeRec {
                id: id.to_owned(),
                address: address.to_owned(),
                alive: true,
                create_index: idx,
                modify_index: idx,
                services: BTreeMap::new(),
                checks: BTreeMap::new(),
            },
        );
    }

    fn node_mut(&mut self, node: &str) -> Result<&mut NodeRec, ApiError> {
        self.nodes
            .get_mut(node)
            .ok_or_else(|| ApiError::new(500, format!("fake-consul: unknown node {node:?}")))
    }

    /// `PUT /v1/agent/service/register`.
    pub fn register(&mut self, node: &str, def: ServiceDef, now: Instant) -> Result<(), ApiError> {
        let min_after = self.min_deregister_after;
        let next = self.index + 1;
        let n = self.node_mut(node)?;
        let old_name = n.services.get(&def.id).map(|s| s.name.clone());
        let create_index = n.services.get(&def.id).map_or(next, |s| s.create_index);
        // Re-registration replaces the service's checks.
        n.checks.retain(|_, c| c.service_id != def.id);
        let many = def.checks.len() > 1;
        for (i, c) in def.checks.iter().enumerate() {
            let check_id = c.check_id.clone().unwrap_or_else(|| {
                if many {
                    format!("service:{}:{}", def.id, i + 1)
                } else {
                    format!("service:{}", def.id)
                }
            });
            let status = c.status.unwrap_or(CheckStatus::Critical);
            n.checks.insert(
                check_id.clone(),
                CheckRec {
                    check_id,
                    name: c
                        .name
                        .clone()
                        .unwrap_or_else(|| format!("Service '{}' check", def.name)),
                    service_id: def.id.clone(),
                    status,
                    output: String::new(),
                    notes: c.notes.clone(),
                    ttl: Some(c.ttl),
                    ttl_deadline: Some(now + c.ttl),
                    deregister_after: c.deregister_after.map(|d| d.max(min_after)),
                    critical_since: (status == CheckStatus::Critical).then_some(now),
                    create_index: next,
                    modify_index: next,
                },
            );
        }
        let name = def.name.clone();
        n.services.insert(
            def.id.clone(),
            ServiceRec {
                id: def.id,
                name: def.name,
                tags: def.tags,
                address: def.address,
                port: def.port,
                meta: def.meta,
                create_index,
                modify_index: next,
            },
        );
        self.bump(old_name.into_iter().chain(Some(name)));
        Ok(())
    }

    /// `PUT /v1/agent/service/deregister/:id`.
    pub fn deregister(&mut self, node: &str, id: &str) -> Result<(), ApiError> {
        let n = self.node_mut(node)?;
        let Some(s) = n.services.remove(id) else {
            return Err(ApiError::new(
                404,
                format!(
                    "Unknown service ID {id:?}. Ensure that the service ID is passed, not the service name."
                ),
            ));
        };
        n.checks.retain(|_, c| c.service_id != id);
        self.bump([s.name]);
        Ok(())
    }

    /// The service name a check belongs to (for ACL checks).
    pub fn check_service_name(&self, node: &str, check_id: &str) -> Option<String> {
        let n = self.nodes.get(node)?;
        let c = n.checks.get(check_id)?;
        n.services.get(&c.service_id).map(|s| s.name.clone())
    }

    /// `PUT /v1/agent/check/{pass,warn,fail,update}/:id`.
    pub fn update_ttl(
        &mut self,
        node: &str,
        check_id: &str,
        status: CheckStatus,
        output: String,
        now: Instant,
    ) -> Result<(), ApiError> {
        let next = self.index + 1;
        let n = self.node_mut(node)?;
        let Some(c) = n.checks.get_mut(check_id) else {
            return Err(ApiError::new(404, format!("Unknown check ID {check_id:?}")));
        };
        let Some(ttl) = c.ttl else {
            return Err(ApiError::new(
                500,
                format!("CheckID {check_id:?} does not have associated TTL"),
            ));
        };
        c.ttl_deadline = Some(now + ttl);
        c.output = output;
        if c.status == status {
            // Like the agent: an unchanged status is not a catalog change.
            return Ok(());
        }
        c.status = status;
        c.modify_index = next;
        c.critical_since = (status == CheckStatus::Critical).then_some(now);
        let name = n.services.get(&c.service_id).map(|s| s.name.clone());
        self.bump(name);
        Ok(())
    }

    /// Lapsed TTLs turn critical.
    pub fn expire_ttls(&mut self, now: Instant) {
        let mut changed = Vec::new();
        let next = self.index + 1;
        for n in self.nodes.values_mut() {
            for c in n.checks.values_mut() {
                if c.status != CheckStatus::Critical && c.ttl_deadline.is_some_and(|d| d <= now) {
                    c.status = CheckStatus::Critical;
                    c.output = "TTL expired".into();
                    c.critical_since = Some(now);
                    c.modify_index = next;
                    if let Some(s) = n.services.get(&c.service_id) {
                        changed.push(s.name.clone());
                    }
                }
            }
        }
        if !changed.is_empty() {
            self.bump(changed);
        }
    }

    /// The reaper: services whose check has been critical for longer than
    /// its DeregisterCriticalServiceAfter are deregistered. Only on agents
    /// that run (`alive`).
    pub fn reap(&mut self, now: Instant) -> Vec<(String, String)> {
        let mut victims = Vec::new();
        for (node, n) in &self.nodes {
            if !n.alive {
                continue;
            }
            for c in n.checks.values() {
                if let (Some(after), Some(since)) = (c.deregister_after, c.critical_since)
                    && now.saturating_duration_since(since) >= after
                {
                    victims.push((node.clone(), c.service_id.clone()));
                }
            }
        }
        victims.sort();
        victims.dedup();
        for (node, id) in &victims {
            let _ = self.deregister(node, id);
        }
        victims
    }

    /// Agent restart: the node forgets its services and checks.
    pub fn forget_node(&mut self, node: &str) {
        let Some(n) = self.nodes.get_mut(node) else {
            return;
        };
        let names: BTreeSet<String> = n.services.values().map(|s| s.name.clone()).collect();
        n.services.clear();
        n.checks.clear();
        self.bump(names);
    }

    /// Agent stop / start: its gossip health check.
    pub fn set_alive(&mut self, node: &str, alive: bool) {
        let next = self.index + 1;
        let Some(n) = self.nodes.get_mut(node) else {
            return;
        };
        if n.alive == alive {
            return;
        }
        n.alive = alive;
        n.modify_index = next;
        let names: BTreeSet<String> = n.services.values().map(|s| s.name.clone()).collect();
        self.bump(names);
    }

    /// Fault: every index drops to `to` (a restored snapshot, a new cluster
    /// at the same address).
    pub fn reset_index(&mut self, to: u64) {
        self.index = to;
        for v in self.service_index.values_mut() {
            *v = (*v).min(to);
        }
    }

    /// The X-Consul-Index of a service's health result.
    pub fn health_index(&self, name: &str) -> u64 {
        self.service_index
            .get(name)
            .copied()
            .unwrap_or(self.index)
            .max(1)
    }

    /// `GET /v1/health/service/:name` entries.
    pub fn health_entries(&self, name: &str, passing_only: bool, tag: Option<&str>) -> Vec<Value> {
        let mut out = Vec::new();
        for (node_name, n) in &self.nodes {
            for s in n.services.values() {
                if s.name != name || tag.is_some_and(|t| !s.tags.iter().any(|x| x == t)) {
                    continue;
                }
                let mut checks = vec![self.serf_check(node_name, n)];
                let mut all_passing = n.alive;
                for c in n.checks.values().filter(|c| c.service_id == s.id) {
                    all_passing &= c.status == CheckStatus::Passing;
                    checks.push(check_json(node_name, c, s));
                }
                if passing_only && !all_passing {
                    continue;
                }
                out.push(json!({
                    "Node": self.node_json(node_name, n),
                    "Service": service_json(s),
                    "Checks": checks,
                }));
            }
        }
        out
    }

    fn node_json(&self, name: &str, n: &NodeRec) -> Value {
        json!({
            "ID": n.id,
            "Node": name,
            "Address": n.address,
            "Datacenter": self.datacenter,
            "TaggedAddresses": {"lan": n.address, "wan": n.address},
            "Meta": {"consul-network-segment": ""},
            "CreateIndex": n.create_index,
            "ModifyIndex": n.modify_index,
        })
    }

    fn serf_check(&self, node: &str, n: &NodeRec) -> Value {
        let (status, output) = if n.alive {
            ("passing", "Agent alive and reachable")
        } else {
            ("critical", "Agent not live or unreachable")
        };
        json!({
            "Node": node,
            "CheckID": "serfHealth",
            "Name": "Serf Health Status",
            "Status": status,
            "Notes": "",
            "Output": output,
            "ServiceID": "",
            "ServiceName": "",
            "ServiceTags": [],
            "Type": "",
            "CreateIndex": n.create_index,
            "ModifyIndex": n.modify_index,
        })
    }

    /// `GET /v1/agent/services` of one node.
    pub fn agent_services(&self, node: &str) -> Value {
        let mut m = Map::new();
        if let Some(n) = self.nodes.get(node) {
            for s in n.services.values() {
                m.insert(s.id.clone(), service_json(s));
            }
        }
        Value::Object(m)
    }

    /// `GET /v1/agent/checks` of one node.
    pub fn agent_checks(&self, node: &str) -> Value {
        let mut m = Map::new();
        if let Some(n) = self.nodes.get(node) {
            for c in n.checks.values() {
                if let Some(s) = n.services.get(&c.service_id) {
                    m.insert(c.check_id.clone(), check_json(node, c, s));
                }
            }
        }
        Value::Object(m)
    }
}

fn service_json(s: &ServiceRec) -> Value {
    json!({
        "ID": s.id,
        "Service": s.name,
        "Tags": s.tags,
        "Address": s.address,
        "Meta": s.meta,
        "Port": s.port,
        "Weights": {"Passing": 1, "Warning": 1},
        "EnableTagOverride": false,
        "CreateIndex": s.create_index,
        "ModifyIndex": s.modify_index,
    })
}

fn check_json(node: &str, c: &CheckRec, s: &ServiceRec) -> Value {
    json!({
        "Node": node,
        "CheckID": c.check_id,
        "Name": c.name,
        "Status": c.status.as_str(),
        "Notes": c.notes,
        "Output": c.output,
        "ServiceID": s.id,
        "ServiceName": s.name,
        "ServiceTags": s.tags,
        "Type": "ttl",
        "CreateIndex": c.create_index,
        "ModifyIndex": c.modify_index,
    })
}
