//! Probes on the remoting port (P4, P6): how a node that is still
//! discovering its contact points learns who listens at an address.
//!
//! The exchange is the handshake opened with a `Probe` frame (see
//! [`crate::wire`], "Probes"): the same version, cluster, node id and
//! shared-secret checks, no membership check, and after the `Welcome` the
//! acceptor answers one `ProbeInfo { joined, members }` and closes.
//!
//! - **Accept side** (`answer`): `joined` is whether this node is listed,
//!   at its own incarnation, in the topology Remoting follows, while the
//!   provisioning status is `Active` or `Degraded` (a node that is starting
//!   or draining is not a cluster to join); `members` is how many members
//!   that topology lists; `roles` and `labels` are this node's own entry
//!   there (empty when not listed). Nothing else is read or changed: a
//!   probe never opens an association and never reaches the actor.
//! - **Connector side** ([`probe`]): connects, runs the probe and returns a
//!   [`ProbeAnswer`], all within the handshake timeout. Errors are
//!   [`WireError`]s with their stable codes (`wire.io` for a refused
//!   connection, `wire.timeout`, `wire.cluster`, `wire.auth`, ...).
//!
//! Both are written against a generic stream so that a TLS stream can carry
//! them as well as a plain TCP one.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use cluster_core::{ProvisioningStatus, Topology};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::Shared;
use super::tls::{self, Stream, TLS_IDENTITY, Tls, TlsConfig, TlsConfigError};
use crate::wire::{
    Frame, HandshakeConfig, Hello, ProbeInfo, WireError, connect_probe, write_frame,
};

/// What a prober needs: its handshake settings (cluster name, the optional
/// shared secret, the time bound and the frame limit) and its own Hello.
#[derive(Clone, Debug)]
pub struct ProbeConfig {
    /// Cluster name, secret, timeout (bounds connect + probe) and frame limit.
    pub handshake: HandshakeConfig,
    /// Who is asking: the prober's own identity and advertised address.
    pub local: Hello,
    /// Mutual TLS, as Remoting runs it (see [`super::tls`]): the probe
    /// runs inside TLS, and the probed node's certificate must name the
    /// node id it answers with. `None`: plain TCP.
    pub tls: Option<ProbeTls>,
}

impl ProbeConfig {
    /// A prober without TLS.
    pub fn new(handshake: HandshakeConfig, local: Hello) -> Self {
        Self {
            handshake,
            local,
            tls: None,
        }
    }

    /// Probes over mutual TLS.
    pub fn with_tls(mut self, tls: ProbeTls) -> Self {
        self.tls = Some(tls);
        self
    }
}

/// A prober's TLS material: the node's Remoting TLS files, loaded once and
/// read again when they change (looked at no more often than the
/// configuration's `reload_check`).
#[derive(Clone)]
pub struct ProbeTls {
    tls: Arc<Tls>,
    checked: Arc<Mutex<Instant>>,
}

impl std::fmt::Debug for ProbeTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProbeTls")
            .field("cert_file", &self.tls.config.cert_file)
            .finish()
    }
}

impl ProbeTls {
    /// Loads the files (errors name the file: `remoting.tls.config`).
    /// `node` labels the expiry gauge.
    pub fn load(config: TlsConfig, node: &str) -> Result<Self, TlsConfigError> {
        Ok(Self {
            tls: Arc::new(Tls::load(config, Arc::from(node), None)?),
            checked: Arc::new(Mutex::new(Instant::now())),
        })
    }

    fn current(&self) -> &Tls {
        let due = {
            let mut checked = self
                .checked
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let due = checked.elapsed() >= self.tls.config.reload_check;
            if due {
                *checked = Instant::now();
            }
            due
        };
        if due {
            // A failure is logged, and the previous material stays.
            let _ = self.tls.reload(false);
        }
        &self.tls
    }
}

/// The answer of a probed node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeAnswer {
    /// The probed node's authenticated Hello (node id, incarnation, address).
    pub peer: Hello,
    /// What it says about itself: joined or not, its topology's size, its
    /// roles and labels.
    pub info: ProbeInfo,
}

/// Probes the node listening at `address` (`host:port`). Bounded by
/// `config.handshake.timeout` as a whole, connect included.
pub async fn probe(address: &str, config: &ProbeConfig) -> Result<ProbeAnswer, WireError> {
    let timeout = config.handshake.timeout;
    let attempt = async {
        let tcp = TcpStream::connect(address).await.map_err(WireError::Io)?;
        let _ = tcp.set_nodelay(true);
        let mut stream = match &config.tls {
            Some(t) => {
                let host = address.rsplit_once(':').map_or(address, |(h, _)| h);
                let host = host.trim_start_matches('[').trim_end_matches(']');
                tls::connect(t.current(), host, tcp).await?
            }
            None => Stream::Plain(tcp),
        };
        let answer = probe_over(&mut stream, config).await;
        let _ = stream.shutdown().await;
        let answer = answer.map_err(|e| tls::tls_hint(e, config.tls.is_some()))?;
        if config.tls.is_some() {
            // Only a certificate naming the node id it answered with makes
            // the answer count.
            tls::check_identity(
                &stream.peer_identities(),
                &config.handshake.cluster,
                answer.peer.node_id.as_str(),
            )
            .map_err(|reason| WireError::Tls {
                code: TLS_IDENTITY,
                reason,
            })?;
        }
        Ok(answer)
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .unwrap_or(Err(WireError::Timeout(timeout)))
}

/// The connector's side of a probe over an established stream.
pub async fn probe_over<S>(stream: &mut S, config: &ProbeConfig) -> Result<ProbeAnswer, WireError>
where
    S: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    let (peer, info) = connect_probe(stream, &config.handshake, &config.local).await?;
    Ok(ProbeAnswer { peer, info })
}

/// What this node answers to a probe, from the topology and status
/// Remoting follows.
pub(super) fn probe_info(
    topology: &Topology,
    status: ProvisioningStatus,
    local: &Hello,
) -> ProbeInfo {
    let listed = topology
        .member(&local.node_id)
        .filter(|m| m.incarnation == local.incarnation);
    let members = u32::try_from(topology.members.len()).unwrap_or(u32::MAX);
    match listed {
        Some(me)
            if matches!(
                status,
                ProvisioningStatus::Active | ProvisioningStatus::Degraded
            ) =>
        {
            ProbeInfo {
                joined: true,
                members,
                roles: me.roles.iter().cloned().collect(),
                labels: me.labels.clone(),
            }
        }
        _ => ProbeInfo {
            joined: false,
            members,
            ..ProbeInfo::default()
        },
    }
}

/// Answers an accepted probe (after the handshake's `Welcome`) with one
/// `ProbeInfo`, then closes the write half. Best effort: the prober may
/// already be gone.
pub(super) async fn answer<S>(stream: &mut S, shared: &Shared, peer: &Hello)
where
    S: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    let info = {
        let view = super::lock(&shared.view);
        probe_info(&view.topology, view.status, &shared.local)
    };
    tracing::debug!(prober = %peer.node_id, incarnation = peer.incarnation, address = %peer.address, joined = info.joined, members = info.members, "remoting probe answered");
    let config = &shared.config.handshake;
    let _ = tokio::time::timeout(config.timeout, async {
        let _ = write_frame(stream, &Frame::ProbeInfo(info), config.max_frame).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use cluster_core::{Member, MemberAddress, NodeId};

    fn member(id: &str, inc: u64) -> Member {
        Member::new(
            NodeId::new(id).unwrap(),
            MemberAddress::new("127.0.0.1", 4000).unwrap(),
            inc,
        )
    }

    fn topology(members: Vec<Member>) -> Topology {
        let mut t = Topology::starting();
        t.members = members.into();
        t
    }

    /// P4/P6: `joined` means listed at this very incarnation, in a status
    /// that is a cluster to join.
    #[test]
    fn p4_p6_probe_info_joined_only_when_listed_at_this_incarnation() {
        let local = Hello::for_member("c", &member("a", 2));
        let listed = topology(vec![member("a", 2).with_role("web"), member("b", 1)]);
        let old = topology(vec![member("a", 1), member("b", 1)]);
        let absent = topology(vec![member("b", 1)]);
        use ProvisioningStatus as S;
        let rows = [
            (&listed, S::Active, (true, 2)),
            (&listed, S::Degraded, (true, 2)),
            (&listed, S::Starting, (false, 2)),
            (&listed, S::Draining, (false, 2)),
            (&old, S::Active, (false, 2)),
            (&absent, S::Active, (false, 1)),
        ];
        for (t, status, want) in rows {
            let info = probe_info(t, status, &local);
            assert_eq!(
                (info.joined, info.members),
                want,
                "{status:?} {:?}",
                t.members
            );
            let roles: &[&str] = if info.joined { &["web"] } else { &[] };
            assert_eq!(info.roles, roles, "{status:?}");
        }
    }
}
