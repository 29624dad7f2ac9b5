//! The diagnostic probe grain (issue 16): a counter any outside client can
//! call through the admin port, so a test or an operator sees which node
//! answered and which activation served the request.
//!
//! Off by default; `[diagnostics] probe_counter = true` in the node's file
//! turns it on:
//!
//! ```text
//! POST /grains/probe-counter/{id}
//!   200 {"grain":"g1","value":3,"answered_by":"node-b","activation":"node-b-5f3a...-1","asked":"node-a"}
//!   400 {"code":"probe.invalid_id", ...}      id not 1-128 of [A-Za-z0-9._-]
//!   404                                       probe_counter is off
//!   503 {"code":"<placement code>", ...}      the grain did not answer
//! ```
//!
//! Each request adds 1 to the grain's value and returns the new value.
//! The value lives in the activation only (no storage): a new activation
//! (another owner, a restart) starts from 0, which is the point: `value`
//! together with `activation` tells a checker whether two activations of
//! one grain served requests at the same time. The activation id is made in
//! `on_activate` from the node id, the time and a process-wide sequence, so
//! it is unique across nodes and restarts.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use cluster::grain::{GrainContext, GrainError};
use cluster::placement::Grain;
use serde::{Deserialize, Serialize};

use crate::node::Node;

/// The grain kind's name.
pub const KIND: &str = "probe-counter";

/// The longest grain id the route accepts.
pub const MAX_ID_LEN: usize = 128;

static SEQUENCE: AtomicU64 = AtomicU64::new(0);

/// What one probe request answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeAnswer {
    /// The value after this request (requests this activation served).
    pub value: u64,
    /// The node hosting the activation.
    pub answered_by: String,
    /// The activation's unique id.
    pub activation: String,
}

/// The `probe-counter` grain.
#[derive(Debug)]
pub struct ProbeCounter {
    node: String,
    activation: String,
    value: u64,
}

impl ProbeCounter {
    /// A fresh instance on `node` (its activation id is made on activation).
    pub fn new(node: &str) -> Self {
        Self {
            node: node.to_owned(),
            activation: String::new(),
            value: 0,
        }
    }
}

/// A new activation id: `<node>-<unix nanos, hex>-<sequence>`.
pub fn activation_id(node: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let seq = SEQUENCE.fetch_add(1, Ordering::Relaxed);
    format!("{node}-{nanos:x}-{seq}")
}

impl Grain for ProbeCounter {
    type Request = u64;
    type Response = ProbeAnswer;

    async fn on_activate(&mut self, _ctx: &GrainContext) -> Result<(), GrainError> {
        self.activation = activation_id(&self.node);
        self.value = 0;
        Ok(())
    }

    async fn handle(&mut self, add: u64) -> ProbeAnswer {
        self.value = self.value.saturating_add(add);
        ProbeAnswer {
            value: self.value,
            answered_by: self.node.clone(),
            activation: self.activation.clone(),
        }
    }
}

/// Whether `id` is a grain id the route accepts: 1 to [`MAX_ID_LEN`]
/// characters of `[A-Za-z0-9._-]`.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Registers the kind on `builder` for the node of `config`.
pub(crate) fn register(
    builder: cluster::ClusterBuilder,
    config: &crate::NodeConfig,
) -> cluster::ClusterBuilder {
    let node = config.node_id.as_str().to_owned();
    builder.grain::<ProbeCounter>(KIND, move |_| ProbeCounter::new(&node))
}

fn json_error(status: StatusCode, code: &str, message: String) -> Response {
    (
        status,
        axum::Json(serde_json::json!({ "code": code, "error": message })),
    )
        .into_response()
}

/// `POST /grains/probe-counter/{id}`.
pub(crate) async fn route(
    State(node): State<Node>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !node.config().diagnostics.probe_counter {
        return (
            StatusCode::NOT_FOUND,
            "the probe grain is off ([diagnostics] probe_counter = true turns it on)\n",
        )
            .into_response();
    }
    if !crate::admin::authorized(&node, &headers) {
        return crate::admin::unauthorized();
    }
    if !valid_id(&id) {
        return json_error(
            StatusCode::BAD_REQUEST,
            "probe.invalid_id",
            format!("a grain id is 1 to {MAX_ID_LEN} characters of [A-Za-z0-9._-]"),
        );
    }
    let c = node.cluster();
    match c.request::<ProbeCounter>(KIND, &id, &1).await {
        Ok(a) => axum::Json(serde_json::json!({
            "grain": id,
            "value": a.value,
            "answered_by": a.answered_by,
            "activation": a.activation,
            "asked": c.local().node_id.as_str(),
        }))
        .into_response(),
        Err(e) => json_error(StatusCode::SERVICE_UNAVAILABLE, e.code(), e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue16_probe_ids_are_checked() {
        assert!(valid_id("g-1.a_b"));
        assert!(!valid_id(""));
        assert!(!valid_id("a/b"));
        assert!(!valid_id("a b"));
        assert!(!valid_id(&"x".repeat(MAX_ID_LEN + 1)));
        assert!(valid_id(&"x".repeat(MAX_ID_LEN)));
    }

    #[test]
    fn issue16_activation_ids_are_unique_and_name_the_node() {
        let a = activation_id("n1");
        let b = activation_id("n1");
        assert_ne!(a, b);
        assert!(a.starts_with("n1-"));
    }

    #[tokio::test]
    async fn issue16_probe_counter_counts_per_activation() {
        let key = cluster_core::GrainKey::new("c", KIND, "g");
        let ctx = GrainContext::new(key, &cluster::grain::GrainOptions::default());
        let mut g = ProbeCounter::new("n1");
        g.on_activate(&ctx).await.unwrap_or_else(|_| unreachable!());
        let first = g.handle(1).await;
        let second = g.handle(1).await;
        assert_eq!((first.value, second.value), (1, 2));
        assert_eq!(first.activation, second.activation);
        assert_eq!(first.answered_by, "n1");
        let mut again = ProbeCounter::new("n1");
        again
            .on_activate(&ctx)
            .await
            .unwrap_or_else(|_| unreachable!());
        let third = again.handle(1).await;
        assert_eq!(third.value, 1);
        assert_ne!(third.activation, first.activation);
    }
}
