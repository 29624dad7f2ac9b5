//! [`FakePod`]: a builder of pod JSON as the API server would store it.

use std::collections::BTreeMap;

use serde_json::{Value, json};

/// A pod to create with [`FakeKube::create_pod`](crate::FakeKube::create_pod).
///
/// Defaults: phase `Running`, not ready, no IP, one container `app`, node
/// `fake-node`.
#[derive(Clone, Debug)]
pub struct FakePod {
    namespace: String,
    name: String,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    ip: Option<String>,
    phase: String,
    ready: bool,
}

impl FakePod {
    /// A pod named `name` in `namespace`.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            ip: None,
            phase: "Running".into(),
            ready: false,
        }
    }

    /// Adds a label.
    pub fn label(mut self, k: impl Into<String>, v: impl Into<String>) -> Self {
        self.labels.insert(k.into(), v.into());
        self
    }

    /// Adds an annotation.
    pub fn annotation(mut self, k: impl Into<String>, v: impl Into<String>) -> Self {
        self.annotations.insert(k.into(), v.into());
        self
    }

    /// Sets `status.podIP` (and `podIPs`).
    pub fn ip(mut self, ip: impl Into<String>) -> Self {
        self.ip = Some(ip.into());
        self
    }

    /// Sets `status.phase`.
    pub fn phase(mut self, phase: impl Into<String>) -> Self {
        self.phase = phase.into();
        self
    }

    /// Sets the `Ready` condition.
    pub fn ready(mut self, ready: bool) -> Self {
        self.ready = ready;
        self
    }

    /// The pod's JSON.
    pub fn build(&self) -> Value {
        let mut status = json!({
            "phase": self.phase,
            "hostIP": "10.255.0.1",
            "startTime": crate::store::now_rfc3339(),
            "conditions": [],
        });
        if let Some(ip) = &self.ip {
            status["podIP"] = json!(ip);
            status["podIPs"] = json!([{"ip": ip}]);
        }
        let mut pod = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "labels": self.labels,
                "annotations": self.annotations,
            },
            "spec": {
                "containers": [{"name": "app", "image": "example.invalid/node:latest"}],
                "nodeName": "fake-node",
                "restartPolicy": "Always",
            },
            "status": status,
        });
        set_condition(&mut pod, "PodScheduled", true);
        set_condition(&mut pod, "Ready", self.ready);
        pod
    }
}

/// Sets a pod condition (`Ready` also sets `ContainersReady`).
pub(crate) fn set_condition(pod: &mut Value, kind: &str, on: bool) {
    let now = crate::store::now_rfc3339();
    let kinds: &[&str] = if kind == "Ready" {
        &["Ready", "ContainersReady"]
    } else {
        std::slice::from_ref(&kind)
    };
    if !pod["status"]["conditions"].is_array() {
        pod["status"]["conditions"] = json!([]);
    }
    for k in kinds {
        let status = if on { "True" } else { "False" };
        let conds = pod["status"]["conditions"]
            .as_array_mut()
            .map(std::mem::take)
            .unwrap_or_default();
        let mut conds: Vec<Value> = conds
            .into_iter()
            .filter(|c| c.get("type").and_then(Value::as_str) != Some(k))
            .collect();
        conds.push(
            json!({"type": k, "status": status, "lastProbeTime": null, "lastTransitionTime": now}),
        );
        pod["status"]["conditions"] = Value::Array(conds);
    }
}
