//! The watch stream: a prefix get for the snapshot, then a watch from the
//! get's revision + 1, so no change between the two is lost.
//!
//! ```text
//!   ┌────────────► Resync ── get prefix (rev R), watch from R+1 ──► Watching
//!   │  (after a    │ error: yield Err, back off                     │ events: apply, yield snapshot if changed
//!   │   backoff)   ▼                                                │ keepalive due: ask etcd for progress,
//!   └───────── Resync(delay)                                        │   yield the snapshot on its answer
//!   ▲                                                               │ compacted: Resync at once (no error)
//!   └── stream error / closed / cancelled / no progress answer ─────┘   (yield Err, back off)
//! ```
//!
//! The keepalive is end to end: when nothing changed for `keepalive`, the
//! watch asks etcd for a progress notification and re-sends the current
//! snapshot when etcd answers. An etcd that does not answer within another
//! `keepalive` makes the watch fail and resync, so a live-looking but dead
//! connection never passes for a quiet cluster.
//!
//! Supersession: when the local process is superseded by a newer
//! incarnation of its node id (reported by the registration task, or seen
//! here in a snapshot), the stream yields one `Err(ProviderError::Superseded)`
//! between snapshots, in any state, and goes on watching (no resync, no
//! backoff); see [`Supersession`](crate::supersession).

use std::collections::BTreeMap;
use std::sync::Arc;

use cluster_core::backoff::Backoff;
use cluster_core::{Member, ProviderError, Snapshot};
use etcd_client::{EventType, GetOptions, WatchOptions, WatchStream};
use futures::stream::{self, BoxStream, StreamExt};
use tokio::time::Instant;

use crate::connection::{Connection, Op, classify};
use crate::layout::KeyLayout;
use crate::registration::Shared;
use crate::stats::Stats;
use crate::supersession::Supersession;

/// Metric: values skipped because they do not decode (labels `node`, the
/// node id of the member last registered through this provider or empty
/// before, and `provider`).
pub const MALFORMED_VALUES_TOTAL: &str = "provider_etcd_malformed_values_total";

/// Describes this crate's metrics (description and unit) to the installed
/// recorder; call it once, after installing the recorder.
pub fn describe() {
    metrics::describe_counter!(
        MALFORMED_VALUES_TOTAL,
        metrics::Unit::Count,
        "Values under the members prefix skipped because they do not decode, by node and provider."
    );
}

enum State {
    /// Read the snapshot and open the watch, after the delay if any.
    Resync { delay: Option<std::time::Duration> },
    /// Watching; `progress_asked` is set while a progress request is
    /// unanswered.
    Watching {
        stream: Box<WatchStream>,
        progress_asked: bool,
    },
}

pub(crate) struct Watch {
    conn: Arc<Connection>,
    layout: Arc<KeyLayout>,
    stats: Arc<Stats>,
    supersession: Arc<Supersession>,
    /// Changes of the supersession; the last one yielded.
    superseded: tokio::sync::watch::Receiver<Option<ProviderError>>,
    state: State,
    backoff: Backoff,
    /// Members by key.
    members: BTreeMap<Vec<u8>, Member>,
    /// When the keepalive (or the progress answer) is due.
    due: Instant,
}

impl Watch {
    pub(crate) fn stream(shared: Shared) -> BoxStream<'static, Result<Snapshot, ProviderError>> {
        let Shared {
            conn,
            stats,
            layout,
            supersession,
        } = shared;
        let backoff = Backoff::new(conn.config.retry_initial, conn.config.retry_max);
        let superseded = supersession.subscribe();
        let w = Self {
            conn,
            layout,
            stats,
            supersession,
            superseded,
            state: State::Resync { delay: None },
            backoff,
            members: BTreeMap::new(),
            due: Instant::now(),
        };
        stream::unfold(w, |mut w| async move {
            let item = w.next_item().await;
            Some((item, w))
        })
        .boxed()
    }

    fn snapshot(&mut self) -> Snapshot {
        self.backoff.reset();
        self.due = Instant::now() + self.conn.config.keepalive;
        let mut members: Vec<Member> = self.members.values().cloned().collect();
        members.sort_by(|a, b| a.node_id.cmp(&b.node_id));
        self.supersession.check(&members);
        Snapshot::now(members)
    }

    /// Gives up on the current watch: the next step resyncs after a
    /// backoff, and `e` is the item to yield.
    fn fail(&mut self, e: ProviderError) -> Result<Snapshot, ProviderError> {
        let delay = self.backoff.next_delay();
        tracing::warn!(provider = %self.conn.config.name, error = %e, retry_in = ?delay, "etcd watch failed");
        self.state = State::Resync { delay: Some(delay) };
        Err(e)
    }

    /// A supersession not yet yielded by this stream.
    fn superseded(&mut self) -> Option<ProviderError> {
        if self.superseded.has_changed().unwrap_or(false) {
            self.superseded.borrow_and_update().clone()
        } else {
            None
        }
    }

    async fn next_item(&mut self) -> Result<Snapshot, ProviderError> {
        loop {
            if let Some(e) = self.superseded() {
                return Err(e);
            }
            match &mut self.state {
                State::Resync { delay } => {
                    if let Some(d) = delay.take() {
                        tokio::time::sleep(d).await;
                    }
                    match self.resync().await {
                        Ok(stream) => {
                            self.state = State::Watching {
                                stream: Box::new(stream),
                                progress_asked: false,
                            };
                            return Ok(self.snapshot());
                        }
                        Err(e) => return self.fail(e),
                    }
                }
                State::Watching {
                    stream,
                    progress_asked,
                } => {
                    // A supersession reported meanwhile is yielded at once
                    // (`message` is cancel-safe: the watch goes on).
                    let message = tokio::select! {
                        m = tokio::time::timeout_at(self.due, stream.message()) => m,
                        Ok(()) = self.superseded.changed() => continue,
                    };
                    let response = match message {
                        Err(_due) if *progress_asked => {
                            return self.fail(ProviderError::Stream(format!(
                                "etcd did not answer a progress request within {:?}",
                                self.conn.config.keepalive
                            )));
                        }
                        Err(_due) => {
                            if let Err(e) = stream.request_progress().await {
                                return self.fail(classify(&e, Op::Watch));
                            }
                            *progress_asked = true;
                            self.due = Instant::now() + self.conn.config.keepalive;
                            continue;
                        }
                        Ok(Err(e)) => return self.fail(classify(&e, Op::Watch)),
                        Ok(Ok(None)) => {
                            return self.fail(ProviderError::Stream(
                                "etcd closed the watch stream".into(),
                            ));
                        }
                        Ok(Ok(Some(r))) => r,
                    };
                    if response.compact_revision() > 0 {
                        // The watch fell behind a compaction: nothing is
                        // wrong with etcd, read the state again.
                        self.stats.compacted();
                        tracing::info!(
                            provider = %self.conn.config.name,
                            compact_revision = response.compact_revision(),
                            "etcd watch revision compacted; reading the members again"
                        );
                        self.state = State::Resync { delay: None };
                        continue;
                    }
                    if response.canceled() {
                        return self.fail(cancelled(response.cancel_reason()));
                    }
                    let answered = std::mem::take(progress_asked);
                    let changed = self.apply(response.events());
                    if changed || answered {
                        return Ok(self.snapshot());
                    }
                }
            }
        }
    }

    /// Reads every member under the prefix and opens the watch from the
    /// read's revision + 1.
    async fn resync(&mut self) -> Result<WatchStream, ProviderError> {
        let prefix = self.layout.members_prefix().to_owned();
        let read = self
            .conn
            .call(Op::Read, |mut c| {
                let prefix = prefix.clone();
                async move { c.get(prefix, Some(GetOptions::new().with_prefix())).await }
            })
            .await?;
        // Without the read's revision the watch would start at revision 1,
        // be cancelled as compacted, and resync at once, forever: an answer
        // without it is a protocol error (yielded, then the backoff).
        let start = watch_start(read.header().map(|h| h.revision()))?;
        let mut members = BTreeMap::new();
        for kv in read.kvs() {
            if let Some(m) = self.decode(kv.key(), kv.value()) {
                members.insert(kv.key().to_vec(), m);
            }
        }
        let stream = self
            .conn
            .call(Op::Watch, |mut c| {
                let options = WatchOptions::new().with_prefix().with_start_revision(start);
                async move { c.watch(prefix, Some(options)).await }
            })
            .await?;
        self.members = members;
        self.stats.resynced();
        Ok(stream)
    }

    fn decode(&self, key: &[u8], value: &[u8]) -> Option<Member> {
        match self.layout.decode(key, value) {
            Ok(m) => Some(m),
            Err(reason) => {
                self.stats.malformed();
                metrics::counter!(MALFORMED_VALUES_TOTAL, "node" => self.stats.node(), "provider" => self.conn.config.name.clone())
                    .increment(1);
                tracing::warn!(provider = %self.conn.config.name, %reason, "skipping a value under the members prefix");
                None
            }
        }
    }

    /// Applies watch events; whether the member set changed.
    fn apply(&mut self, events: &[etcd_client::Event]) -> bool {
        let mut changed = false;
        for ev in events {
            let Some(kv) = ev.kv() else { continue };
            match ev.event_type() {
                EventType::Put => match self.decode(kv.key(), kv.value()) {
                    Some(m) => {
                        if self.members.get(kv.key()) != Some(&m) {
                            self.members.insert(kv.key().to_vec(), m);
                            changed = true;
                        }
                    }
                    None => changed |= self.members.remove(kv.key()).is_some(),
                },
                EventType::Delete => changed |= self.members.remove(kv.key()).is_some(),
            }
        }
        changed
    }
}

/// The revision the watch starts from: the one after the members read's.
/// Without the read's revision the watch would start at revision 1, be
/// cancelled as compacted and resync at once, forever: a read answered
/// without a response header (or with revision 0) is a protocol error,
/// yielded like any failure and followed by the backoff.
fn watch_start(read_revision: Option<i64>) -> Result<i64, ProviderError> {
    read_revision
        .filter(|r| *r > 0)
        .map(|r| r + 1)
        .ok_or_else(|| {
            ProviderError::Protocol(
                "etcd answered the members read without a response header (revision)".into(),
            )
        })
}

/// The error of a watch etcd cancelled (other than for a compaction): a
/// missing permission or a refused token is `provider.auth`, anything else
/// `provider.stream`.
fn cancelled(reason: &str) -> ProviderError {
    let lower = reason.to_ascii_lowercase();
    let auth = [
        "permission denied",
        "invalid auth token",
        "authentication",
        "user name",
    ]
    .iter()
    .any(|w| lower.contains(w));
    if auth {
        ProviderError::Auth(format!(
            "etcd cancelled the watch: {reason}; the etcd user lacks read permission on the \
             prefix, see docs/providers/etcd.md, RBAC"
        ))
    } else {
        ProviderError::Stream(format!("etcd cancelled the watch: {reason}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r5_5_a_read_without_a_revision_is_a_protocol_error_not_a_watch_from_1() {
        assert_eq!(watch_start(Some(41)).unwrap(), 42);
        for missing in [None, Some(0)] {
            assert_eq!(
                watch_start(missing).unwrap_err().code(),
                "provider.protocol"
            );
        }
    }

    #[test]
    fn r5_5_a_watch_cancelled_for_lack_of_permission_is_an_auth_error() {
        let cases = [
            ("etcdserver: permission denied", "provider.auth"),
            ("etcdserver: invalid auth token", "provider.auth"),
            (
                "etcdserver: mvcc: required revision is a future revision",
                "provider.stream",
            ),
            ("", "provider.stream"),
        ];
        for (reason, code) in cases {
            assert_eq!(cancelled(reason).code(), code, "{reason:?}");
        }
    }
}
