//! The watch: blocking queries on `/v1/health/service/<name>?passing`, as
//! a small state machine driven by `stream::unfold`.
//!
//! ```text
//!           ┌──────────── answer (index rules, maybe a pause) ───────────┐
//!           ▼                                                            │
//!   Query(index) ── GET ?index=i&wait=w ──► yield Ok(snapshot) ──────────┘
//!           │
//!           └── failure ──► yield Err(e), pause retry_min·2^(n-1) (jittered, ≤ retry_max)
//! ```
//!
//! Index rules (Consul's "blocking queries" implementation notes): the
//! index only moves forward; a returned index lower than ours means the
//! state was reset (restore, new cluster) and we start again from 0 (a
//! non-blocking query); an index of 0 is a bug of the server and is
//! replaced by 1 so that the next query blocks instead of spinning.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use cluster_core::backoff::{Backoff, Jitter};
use cluster_core::{Member, ProviderError, Snapshot};
use futures::StreamExt;
use futures::stream::BoxStream;
use reqwest::Method;
use serde_json::Value;
use tokio::time::Instant;

use crate::client::Http;
use crate::config::ConsulConfig;
use crate::member;
use crate::provider::Stats;

/// What the index of an answer means for the next query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IndexStep {
    /// Greater than ours: block from it next.
    Forward(u64),
    /// Equal to ours: nothing changed (timeout or idempotent write).
    Unchanged(u64),
    /// Lower than ours: reset to 0.
    Backwards,
    /// Zero: use 1.
    Zero,
}

impl IndexStep {
    /// Applies Consul's rules to `returned` when we asked from `ours`.
    pub fn of(ours: u64, returned: u64) -> Self {
        if returned == 0 {
            Self::Zero
        } else if returned < ours {
            Self::Backwards
        } else if returned == ours {
            Self::Unchanged(returned)
        } else {
            Self::Forward(returned)
        }
    }

    /// The index of the next query.
    pub fn next_index(self) -> u64 {
        match self {
            Self::Forward(i) | Self::Unchanged(i) => i,
            Self::Backwards => 0,
            Self::Zero => 1,
        }
    }

    /// Whether the next query may start at once (something changed).
    pub fn changed(self) -> bool {
        matches!(self, Self::Forward(_))
    }
}

/// The retry pauses: `retry_min` doubling up to `retry_max`, with "equal
/// jitter" (a uniform draw in the upper half of each delay), so that nodes
/// that lost the agent together do not retry together.
pub fn retry_backoff(config: &ConsulConfig) -> Backoff {
    Backoff::new(config.retry_min, config.retry_max).with_jitter(Jitter::EQUAL)
}

struct State {
    http: Http,
    config: Arc<ConsulConfig>,
    stats: Arc<Stats>,
    index: u64,
    /// The pause after the next failure; reset by an answer.
    backoff: Backoff,
    pause: Option<Duration>,
}

/// Decodes the body of a health answer; undecodable entries are skipped
/// and counted.
pub(crate) fn decode_members(body: &[u8], stats: &Stats) -> Result<Vec<Member>, ProviderError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        ProviderError::Protocol(format!("/v1/health/service answered invalid JSON: {e}"))
    })?;
    let Value::Array(entries) = v else {
        return Err(ProviderError::Protocol(
            "/v1/health/service answered JSON that is not a list".into(),
        ));
    };
    let mut members: Vec<Member> = Vec::with_capacity(entries.len());
    for e in entries {
        match member::from_entry(e) {
            Ok(m) => members.push(m),
            Err(why) => {
                stats.skipped_entries.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%why, "consul: health entry skipped");
            }
        }
    }
    // One member per node: the newest incarnation (an old one may still
    // pass its TTL for a moment after a fast restart).
    members.sort_by(|a, b| {
        a.node_id
            .cmp(&b.node_id)
            .then(b.incarnation.cmp(&a.incarnation))
    });
    members.dedup_by(|later, first| later.node_id == first.node_id);
    Ok(members)
}

/// Maps a non-200 answer of a read.
/// Consul filters health and catalog results by ACL: a token that may not
/// read the service or its nodes gets `200 []` with this header set, not a
/// 403. Taken at face value that empty list would make every node leave,
/// so it is an authorization error.
pub(crate) fn acl_filtered(
    headers: &reqwest::header::HeaderMap,
    service: &str,
) -> Option<ProviderError> {
    let filtered = headers
        .get("x-consul-results-filtered-by-acls")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    filtered.then(|| {
        ProviderError::Auth(format!(
            "GET /v1/health/service/{service}: results filtered by ACLs (the token needs service:read on {service:?} and node:read)"
        ))
    })
}

pub(crate) fn read_status_error(
    status: reqwest::StatusCode,
    text: String,
    what: &str,
) -> ProviderError {
    match status.as_u16() {
        401 | 403 => ProviderError::Auth(format!("{what}: {status} {text}")),
        500..=599 => ProviderError::Stream(format!("{what}: the agent answered {status}: {text}")),
        _ => ProviderError::Protocol(format!("{what}: unexpected answer {status}: {text}")),
    }
}

impl State {
    async fn query(&mut self) -> Result<(u64, Vec<Member>), ProviderError> {
        let mut url = self
            .http
            .url(&["v1", "health", "service", &self.config.service]);
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("passing", "true");
            if self.index > 0 {
                q.append_pair("index", &self.index.to_string());
                q.append_pair("wait", &format!("{}ms", self.config.wait.as_millis()));
            }
            if let Some(dc) = &self.config.datacenter {
                q.append_pair("dc", dc);
            }
        }
        // The agent may add up to wait/16 to the wait.
        let timeout = self.config.wait + self.config.wait / 16 + self.http.request_timeout;
        self.stats.queries.fetch_add(1, Ordering::Relaxed);
        let a = self
            .http
            .call(Method::GET, url, None, timeout)
            .await
            .map_err(|e| e.into_watch_error())?;
        if !a.status.is_success() {
            let what = format!(
                "GET /v1/health/service/{} (needs service:read and node:read)",
                self.config.service
            );
            return Err(read_status_error(a.status, a.text(), &what));
        }
        if let Some(e) = acl_filtered(&a.headers, &self.config.service) {
            return Err(e);
        }
        let index = a
            .headers
            .get("x-consul-index")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .ok_or_else(|| {
                ProviderError::Protocol(
                    "/v1/health/service answered without a valid X-Consul-Index".into(),
                )
            })?;
        Ok((index, decode_members(&a.body, &self.stats)?))
    }

    async fn step(&mut self) -> Result<Snapshot, ProviderError> {
        if let Some(p) = self.pause.take() {
            tokio::time::sleep(p).await;
        }
        let started = Instant::now();
        match self.query().await {
            Ok((returned, members)) => {
                self.backoff.reset();
                let step = IndexStep::of(self.index, returned);
                if matches!(step, IndexStep::Backwards | IndexStep::Zero) {
                    self.stats.index_resets.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(
                        ours = self.index,
                        returned,
                        "consul: index went backwards or to zero; reset"
                    );
                }
                self.index = step.next_index();
                if !step.changed() {
                    let elapsed = started.elapsed();
                    if elapsed < self.config.min_query_interval {
                        self.pause = Some(self.config.min_query_interval - elapsed);
                    }
                }
                Ok(Snapshot::now(members))
            }
            Err(e) => {
                self.stats.errors.fetch_add(1, Ordering::Relaxed);
                let d = self.backoff.next_delay();
                tracing::warn!(code = e.code(), error = %e, retry_in = ?d, "consul: watch query failed");
                self.pause = Some(d);
                Err(e)
            }
        }
    }
}

/// The watch stream; it never ends by itself.
pub(crate) fn watch(
    http: Http,
    config: Arc<ConsulConfig>,
    stats: Arc<Stats>,
) -> BoxStream<'static, Result<Snapshot, ProviderError>> {
    let state = State {
        http,
        backoff: retry_backoff(&config),
        config,
        stats,
        index: 0,
        pause: None,
    };
    futures::stream::unfold(state, |mut s| async move {
        let item = s.step().await;
        Some((item, s))
    })
    .boxed()
}

/// [`decode_members`] for the fuzz target `consul_members` in `fuzz/`
/// (the skipped-entry count goes nowhere). Not part of the API; hidden from
/// the docs.
#[doc(hidden)]
pub fn decode_members_for_fuzzing(body: &[u8]) -> Result<Vec<Member>, ProviderError> {
    decode_members(body, &Stats::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p2_index_only_moves_forward_resets_on_rollback_and_never_zero() {
        assert_eq!(IndexStep::of(0, 5), IndexStep::Forward(5));
        assert_eq!(IndexStep::of(5, 5), IndexStep::Unchanged(5));
        assert_eq!(IndexStep::of(5, 9).next_index(), 9);
        assert_eq!(IndexStep::of(9, 3), IndexStep::Backwards);
        assert_eq!(IndexStep::of(9, 3).next_index(), 0);
        assert_eq!(IndexStep::of(9, 0).next_index(), 1);
        assert_eq!(IndexStep::of(0, 0).next_index(), 1);
        assert!(IndexStep::of(1, 2).changed());
        assert!(!IndexStep::of(2, 2).changed());
        assert!(!IndexStep::of(3, 2).changed());
    }

    /// P2: the retry pauses are `retry_min` doubling to `retry_max`, drawn
    /// in the upper half of each delay.
    #[test]
    fn p2_retry_pauses_use_equal_jitter_between_the_retry_settings() {
        let url = reqwest::Url::parse("http://127.0.0.1:8500").unwrap();
        let mut config = ConsulConfig::new(url, "s");
        config.retry_min = Duration::from_millis(100);
        config.retry_max = Duration::from_secs(1);
        let b = retry_backoff(&config);
        assert_eq!(b.jitter(), Jitter::EQUAL);
        assert_eq!((b.initial(), b.max()), (config.retry_min, config.retry_max));
        assert_eq!(b.delay(2, 0.0), Duration::from_millis(200));
    }

    #[test]
    fn p2_malformed_bodies_are_protocol_errors_and_bad_entries_are_skipped() {
        let stats = Stats::default();
        for bad in [&b"[{\"Node\": "[..], b"{}", b"null", b""] {
            let e = decode_members(bad, &stats).unwrap_err();
            assert_eq!(e.code(), "provider.protocol");
        }
        let body = br#"[
            {"Service": {"Address": "h", "Port": 1, "Meta": {"node_id": "a", "incarnation": "1"}}},
            {"Service": {"Address": "h", "Port": 1, "Meta": {"node_id": "a", "incarnation": "3"}}},
            {"Service": {"Address": "h", "Port": 1}},
            {"Nonsense": true}
        ]"#;
        let m = decode_members(body, &stats).unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].incarnation, 3, "newest incarnation of a node kept");
        assert_eq!(stats.skipped_entries.load(Ordering::Relaxed), 2);
    }
}
