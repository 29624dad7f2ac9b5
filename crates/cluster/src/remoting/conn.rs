//! The tasks of Remoting's connections: the accept loop and its
//! handshakes, dials, and the reader and writer of an established
//! connection. They own no association state: they report to the actor.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use actor_runtime::ActorRef;
use cluster_core::NodeId;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};

use super::actor::Msg;
use super::tls::{self, Stream, TLS_IDENTITY, tls_hint};
use super::{BUSY, DEGRADED, M_FRAMES_REFUSED, NOT_MEMBER, Shared};
use crate::netsim::NetSim;
use crate::wire::{
    Accepted, Frame, Hello, Refusal, WireError, accept_handshake_or_probe, connect_handshake,
    read_frame, write_frame,
};

/// Aborts its task when dropped: ties a task to its owner's lifetime.
pub(super) struct AbortOnDrop(pub(super) JoinHandle<()>);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The code under which a failed connection is counted in
/// `remoting_frames_refused_total`; `None` when the peer merely went away.
pub(super) fn refused_code(e: &WireError) -> Option<String> {
    match e {
        WireError::Closed { .. } | WireError::Io(_) | WireError::Encode(_) => None,
        WireError::Refused { code, .. } => Some(code.clone()),
        other => Some(other.code().to_owned()),
    }
}

/// Why a handshake was refused, by either side: its code and reason (a
/// wrong secret, another cluster or version, not a member, quarantined...).
/// `None` when the connection failed otherwise (lost, timed out, a bad
/// frame).
pub(super) fn refusal(e: &WireError) -> Option<(&str, &str)> {
    match e {
        WireError::Refused { code, reason } => Some((code, reason)),
        WireError::Auth(why)
        | WireError::Version(why)
        | WireError::Cluster(why)
        | WireError::Handshake(why) => Some((e.code(), why)),
        WireError::Tls { code, reason } => Some((code, reason)),
        _ => None,
    }
}

/// An error and its sources on one line, for logs: a Display does not
/// repeat its source (`i/o error: connection reset by peer`).
pub(super) struct Chain<'a>(pub(super) &'a dyn std::error::Error);

impl std::fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut next = self.0.source();
        while let Some(cause) = next {
            write!(f, ": {cause}")?;
            next = cause.source();
        }
        Ok(())
    }
}

/// Whether a dial that failed with `e` reports the member for quarantine
/// (see the comment at its use in the actor): only for another secret or
/// cluster name at the member's own address (not a protocol version: a
/// rolling upgrade), only when the member is not already `Failed`, and only
/// with evidence that this node's own secret is right: it has authenticated
/// with some other member (`authenticated_any`).
pub(super) fn quarantine_for_refusal(
    e: &WireError,
    already_failed: bool,
    authenticated_any: bool,
) -> bool {
    let cannot_authenticate = match e {
        WireError::Auth(_) | WireError::Cluster(_) => true,
        WireError::Refused { code, .. } => matches!(code.as_str(), "wire.auth" | "wire.cluster"),
        _ => false,
    };
    cannot_authenticate && !already_failed && authenticated_any
}

/// Whether a refusal with this code can be a normal race: a peer that
/// dials before the acceptor's topology lists it (or before its Remoting
/// knows it). The first one for a node is logged at DEBUG, a repeated one
/// at WARN like any other refusal (N3).
pub(super) fn may_be_race(code: &str) -> bool {
    code == NOT_MEMBER || code == DEGRADED
}

/// Accepts connections until aborted; each one shakes hands in a task of
/// its own (bounded by the handshake timeout), so a stalled or hostile peer
/// never holds up the others.
pub(super) async fn accept_loop(
    listener: Arc<TcpListener>,
    shared: Arc<Shared>,
    actor: ActorRef<Msg>,
) {
    let mut handshakes = JoinSet::new();
    // Nodes refused once for a reason that may be a race (see `may_be_race`).
    let raced: Arc<Mutex<HashSet<NodeId>>> = Arc::default();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, addr)) if handshakes.len() >= shared.config.max_pending_handshakes.max(1) => {
                    // A flood of connections that do not finish their
                    // handshake: the excess is closed at once, so memory
                    // stays bounded; the pending ones end within the
                    // handshake timeout.
                    drop(stream);
                    metrics::counter!(M_FRAMES_REFUSED, "node" => shared.node.clone(), "code" => BUSY).increment(1);
                    tracing::debug!(%addr, pending = handshakes.len(), "too many handshakes in progress: inbound connection closed");
                }
                Ok((stream, addr)) => {
                    handshakes.spawn(accept_one(stream, addr, shared.clone(), actor.clone(), raced.clone()));
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off a little.
                    tracing::warn!(error = %e, "remoting listener: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = handshakes.join_next(), if !handshakes.is_empty() => {}
        }
    }
}

/// The TLS handshake of an inbound connection, when TLS is on (bounded by
/// the handshake timeout: a peer that stops in the middle is
/// `remoting.tls.handshake`).
async fn accept_tls(tcp: TcpStream, shared: &Shared) -> Result<Stream, WireError> {
    let Some(tls) = &shared.tls else {
        return Ok(Stream::Plain(tcp));
    };
    let timeout = shared.config.handshake.timeout;
    tokio::time::timeout(timeout, tls::accept(tls, tcp))
        .await
        .unwrap_or_else(|_| {
            Err(WireError::Tls {
                code: tls::TLS_HANDSHAKE,
                reason: format!("the peer did not finish the TLS handshake within {timeout:?}"),
            })
        })
}

async fn accept_one(
    tcp: TcpStream,
    addr: SocketAddr,
    shared: Arc<Shared>,
    actor: ActorRef<Msg>,
    raced: Arc<Mutex<HashSet<NodeId>>>,
) {
    let _ = tcp.set_nodelay(true);
    let config = &shared.config.handshake;
    let mut dialer = None;
    let started = tokio::time::Instant::now();
    let outcome = match accept_tls(tcp, &shared).await {
        Ok(mut stream) => {
            // One deadline for both phases: the handshake gets what the TLS
            // handshake left of it.
            let mut remaining = config.clone();
            remaining.timeout = config
                .timeout
                .saturating_sub(started.elapsed())
                .max(Duration::from_millis(1));
            let identities = stream.peer_identities();
            let with_tls = shared.tls.is_some();
            // The certificate must name the node id the Hello claims (see
            // `tls`), before the membership check.
            let identity = |peer: &Hello| {
                if with_tls {
                    tls::check_identity(&identities, &config.cluster, peer.node_id.as_str())
                        .map_err(|reason| Refusal::new(TLS_IDENTITY, reason))
                } else {
                    Ok(())
                }
            };
            let outcome = accept_handshake_or_probe(
                &mut stream,
                &remaining,
                &shared.local,
                |peer: &Hello| {
                    dialer = Some(peer.node_id.clone());
                    identity(peer)?;
                    shared.check(peer)
                },
            )
            .await;
            match outcome {
                Ok(Accepted::Probe(peer)) => match identity(&peer) {
                    Ok(()) => return super::probe::answer(&mut stream, &shared, &peer).await,
                    Err(refusal) => {
                        // The answer's place gets the Reject instead.
                        dialer = Some(peer.node_id.clone());
                        let reject = Frame::Reject {
                            code: refusal.code.clone(),
                            reason: refusal.reason.clone(),
                        };
                        let _ = tokio::time::timeout(config.timeout, async {
                            let _ = write_frame(&mut stream, &reject, config.max_frame).await;
                            let _ = stream.shutdown().await;
                        })
                        .await;
                        Err(WireError::Refused {
                            code: refusal.code,
                            reason: refusal.reason,
                        })
                    }
                },
                Ok(Accepted::Peer(peer)) => Ok((peer, stream)),
                Err(e) => Err(tls_hint(e, with_tls)),
            }
        }
        Err(e) => Err(e),
    };
    match outcome {
        Ok((peer, _)) if cut(&shared, &peer.node_id) => {
            tracing::debug!(node = %peer.node_id, "netsim: link cut, inbound connection dropped");
        }
        Ok((peer, stream)) => {
            lock(&raced).remove(&peer.node_id);
            let _ = actor.tell(Msg::Accepted { peer, stream });
        }
        Err(e) => match refused_code(&e) {
            Some(code) => {
                metrics::counter!(M_FRAMES_REFUSED, "node" => shared.node.clone(), "code" => code.clone()).increment(1);
                let node = dialer
                    .as_ref()
                    .map_or_else(|| "unknown".to_owned(), NodeId::to_string);
                match refusal(&e) {
                    Some((code, reason))
                        if may_be_race(code)
                            && dialer
                                .as_ref()
                                .is_some_and(|n| lock(&raced).insert(n.clone())) =>
                    {
                        tracing::debug!(side = "accept", %node, %addr, code, reason, "remoting handshake refused (first time: may be a race)");
                    }
                    Some((code, reason)) => {
                        tracing::warn!(side = "accept", %node, %addr, code, reason, "remoting handshake refused");
                    }
                    None => {
                        tracing::warn!(%node, %addr, code, error = %e, "inbound connection closed during the handshake");
                    }
                }
            }
            None => {
                tracing::debug!(%addr, error = %Chain(&e), "inbound connection ended during the handshake")
            }
        },
    }
}

/// Connects to `address` and shakes hands, all within the handshake
/// timeout.
pub(super) async fn dial(
    node: &NodeId,
    address: String,
    shared: Arc<Shared>,
) -> Result<(Hello, Stream), WireError> {
    let config = &shared.config.handshake;
    if let Some(net) = &shared.config.netsim {
        let local = &shared.local.node_id;
        if net.link(local, node).cut || net.link(node, local).cut {
            // A partition loses the connection attempt: nothing reaches the
            // peer, and the dial fails once its timeout has passed.
            tokio::time::sleep(config.timeout).await;
            return Err(WireError::Timeout(config.timeout));
        }
    }
    let attempt = async {
        let tcp = TcpStream::connect(address.as_str())
            .await
            .map_err(WireError::Io)?;
        let _ = tcp.set_nodelay(true);
        let mut stream = match &shared.tls {
            Some(tls) => {
                let host = address
                    .rsplit_once(':')
                    .map_or(address.as_str(), |(h, _)| h);
                let host = host.trim_start_matches('[').trim_end_matches(']');
                tls::connect(tls, host, tcp).await?
            }
            None => Stream::Plain(tcp),
        };
        if shared.tls.is_some() {
            // The acceptor's certificate must name the node we meant to
            // dial (see `tls`): checked before our Hello, and told to the
            // acceptor in a Reject so that both sides log the reason.
            let identities = stream.peer_identities();
            if let Err(reason) = tls::check_identity(&identities, &config.cluster, node.as_str()) {
                let reject = Frame::Reject {
                    code: TLS_IDENTITY.to_owned(),
                    reason: format!("the dialer refuses this node's certificate: {reason}"),
                };
                let _ = write_frame(&mut stream, &reject, config.max_frame).await;
                let _ = stream.shutdown().await;
                return Err(WireError::Tls {
                    code: TLS_IDENTITY,
                    reason,
                });
            }
        }
        let peer = connect_handshake(&mut stream, config, &shared.local)
            .await
            .map_err(|e| tls_hint(e, shared.tls.is_some()))?;
        if cut(&shared, &peer.node_id) {
            // A one-way cut (the peer's frames do not reach us): its Welcome
            // is lost, so the attempt ends as a lost one would.
            return Err(WireError::Timeout(config.timeout));
        }
        Ok((peer, stream))
    };
    tokio::time::timeout(config.timeout, attempt)
        .await
        .unwrap_or(Err(WireError::Timeout(config.timeout)))
}

/// Whether the simulated network cuts the link from `peer` to us.
fn cut(shared: &Shared, peer: &NodeId) -> bool {
    shared
        .config
        .netsim
        .as_ref()
        .is_some_and(|n| n.link(peer, &shared.local.node_id).cut)
}

/// Says `Goodbye` on a connection that is not kept (a probe), then closes.
pub(super) async fn goodbye(mut stream: Stream, max_frame: usize, timeout: Duration) {
    let _ = tokio::time::timeout(timeout, async {
        let _ = write_frame(&mut stream, &Frame::Goodbye, max_frame).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

/// Reads frames and hands them to the actor, until the connection ends, a
/// frame is bad, or the peer says `Goodbye`.
pub(super) async fn read_loop<R: AsyncRead + Unpin>(
    mut reader: R,
    max_frame: usize,
    node: NodeId,
    conn: u64,
    actor: ActorRef<Msg>,
    net: Option<(NetSim, NodeId)>,
) {
    loop {
        match read_frame::<Frame, _>(&mut reader, max_frame).await {
            Ok(frame) => {
                if let Some((net, local)) = &net {
                    let link = net.link(&node, local);
                    if link.cut {
                        net.count_drop();
                        continue;
                    }
                    if !link.delay.is_zero() {
                        tokio::time::sleep(link.delay).await;
                    }
                }
                let last = matches!(frame, Frame::Goodbye | Frame::Reject { .. });
                let sent = actor.tell(Msg::Frame {
                    node: node.clone(),
                    conn,
                    frame,
                });
                if sent.is_err() || last {
                    return;
                }
            }
            Err(error) => {
                let _ = actor.tell(Msg::Lost { node, conn, error });
                return;
            }
        }
    }
}

/// Most bytes gathered into one write.
const WRITE_BATCH: usize = 64 * 1024;

/// Writes the queued (encoded) frames; when the queue closes, shuts the
/// write half down. Frames already queued behind the first are gathered
/// into one write (up to [`WRITE_BATCH`] bytes): one syscall for a burst
/// instead of one per frame. A write that stalls past `timeout` ends it.
pub(super) async fn write_loop<W: AsyncWrite + Unpin>(
    mut writer: W,
    mut queue: mpsc::Receiver<Vec<u8>>,
    timeout: Duration,
    written: Arc<AtomicU64>,
) {
    let mut batch: Vec<u8> = Vec::new();
    while let Some(first) = queue.recv().await {
        // Activity, for ring mode's idle close: one increment per wake-up.
        written.fetch_add(1, Ordering::Relaxed);
        let bytes: &[u8] = if first.len() >= WRITE_BATCH || queue.is_empty() {
            &first
        } else {
            batch.clear();
            batch.extend_from_slice(&first);
            while batch.len() < WRITE_BATCH {
                match queue.try_recv() {
                    Ok(more) => batch.extend_from_slice(&more),
                    Err(_) => break,
                }
            }
            &batch
        };
        let write = async {
            writer.write_all(bytes).await?;
            writer.flush().await
        };
        match tokio::time::timeout(timeout, write).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "remoting write failed");
                return;
            }
            Err(_) => {
                tracing::debug!(?timeout, "remoting write stalled");
                return;
            }
        }
    }
    let _ = tokio::time::timeout(timeout, writer.shutdown()).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 18 (R4.2): a refused handshake quarantines the member only for
    /// another secret or cluster, only once, and only when this node has
    /// shown its own secret right with another member.
    #[test]
    fn g18_r4_2_quarantine_only_for_auth_refusals_with_evidence() {
        let auth = WireError::Auth("bad proof".into());
        let refused_auth = WireError::Refused {
            code: "wire.auth".into(),
            reason: "bad proof".into(),
        };
        let version = WireError::Version("v9".into());
        let not_member = WireError::Refused {
            code: "remoting.not_member".into(),
            reason: "unknown".into(),
        };
        assert!(quarantine_for_refusal(&auth, false, true));
        assert!(quarantine_for_refusal(&refused_auth, false, true));
        assert!(
            !quarantine_for_refusal(&auth, false, false),
            "no evidence: our own secret may be wrong"
        );
        assert!(
            !quarantine_for_refusal(&auth, true, true),
            "already quarantined"
        );
        assert!(
            !quarantine_for_refusal(&version, false, true),
            "a rolling upgrade is no reason"
        );
        assert!(!quarantine_for_refusal(&not_member, false, true));
    }
}
