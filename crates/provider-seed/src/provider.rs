//! The async driver: resolves, probes, feeds the [`Core`] and yields
//! snapshots (see the [crate documentation](crate#rounds)).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use cluster::remoting::{ProbeConfig, probe};
use cluster::wire::{HandshakeConfig, Hello, WireError};
use cluster_core::backoff::{Backoff, Jitter};
use cluster_core::{Capabilities, ClusterProvider, Member, ProviderError, Snapshot};
use futures::future::BoxFuture;
use futures::stream::{self, BoxStream, StreamExt};
use hickory_resolver::TokioResolver;

use crate::core::{Core, Event, Output, Peer, Probe, parse_member_address};
use crate::discovery::{self, DnsSettings, Resolved, Seed};
use crate::metrics_names::{BOOTSTRAP_TOTAL, ERRORS_TOTAL, PROBES_TOTAL};
use crate::{Identity, SeedError, Settings, Source, codes};

/// Most probes in flight at once per round.
const CONCURRENT_PROBES: usize = 32;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A `static` or `dns` provider (see the [crate documentation](crate)).
#[derive(Clone)]
pub struct SeedProvider {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SeedProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeedProvider")
            .field("settings", &self.inner.settings)
            .field("identity", &self.inner.identity)
            .finish_non_exhaustive()
    }
}

struct Inner {
    settings: Settings,
    identity: Option<Arc<Identity>>,
    kind: &'static str,
    /// Built at the first lookup (inside the runtime, which its
    /// background tasks need), kept afterwards.
    resolver: Mutex<Option<TokioResolver>>,
    local: Mutex<Option<Member>>,
    state: Mutex<State>,
}

struct State {
    core: Core,
    /// `static`: each seed's last good addresses.
    seeds: BTreeMap<String, Vec<SocketAddr>>,
    /// `dns`: the last good answer and when to resolve again.
    dns: Option<(Vec<SocketAddr>, Instant)>,
}

/// What one round found, before the core.
enum Round {
    /// The core's output.
    Done(Output, bool),
    /// The contacts could not be resolved.
    Failed(SeedError),
}

impl SeedProvider {
    /// A provider with `settings`, probing as `identity` (`None`: it fails
    /// the connectivity check with `provider.seed.no_identity`).
    pub fn new(settings: Settings, identity: Option<Arc<Identity>>) -> Result<Self, ProviderError> {
        let kind = match &settings.source {
            Source::Static(_) => "static",
            Source::Dns(_) => "dns",
        };
        Ok(Self {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    core: Core::new(settings.rules),
                    seeds: BTreeMap::new(),
                    dns: None,
                }),
                settings,
                identity,
                kind,
                resolver: Mutex::new(None),
                local: Mutex::new(None),
            }),
        })
    }

    /// Whether this node has joined (or formed) a cluster.
    pub fn joined(&self) -> bool {
        lock(&self.inner.state).core.joined()
    }
}

impl Inner {
    fn node(&self) -> String {
        lock(&self.local)
            .as_ref()
            .map(|m| m.node_id.to_string())
            .unwrap_or_default()
    }

    /// `wait`, or less when a DNS resolve falls due earlier: a record
    /// change is then seen one resolve interval after it, not up to a
    /// probe interval later.
    fn until_resolve(&self, wait: Duration) -> Duration {
        match &lock(&self.state).dns {
            // A resolve already due (the last one failed) waits the full
            // delay: failures are retried at the probe interval, not in a
            // loop.
            Some((_, next)) if *next > Instant::now() => {
                wait.min(next.saturating_duration_since(Instant::now()))
            }
            _ => wait,
        }
    }

    /// The contact addresses of this round.
    async fn contacts(&self) -> Result<Vec<SocketAddr>, SeedError> {
        match &self.settings.source {
            Source::Static(seeds) => self.static_contacts(seeds).await,
            Source::Dns(dns) => self.dns_contacts(dns).await,
        }
    }

    async fn static_contacts(&self, seeds: &[Seed]) -> Result<Vec<SocketAddr>, SeedError> {
        let resolved = discovery::resolve_seeds(seeds).await;
        let mut state = lock(&self.state);
        let mut errors = Vec::new();
        for (seed, result) in resolved {
            match result {
                Ok(addrs) => {
                    state.seeds.insert(seed.text.clone(), addrs);
                }
                Err(e) => {
                    tracing::debug!(code = e.code, error = %e.message, "seed did not resolve; its last addresses are kept");
                    errors.push(e.message);
                }
            }
        }
        let all: BTreeSet<SocketAddr> = state.seeds.values().flatten().copied().collect();
        if all.is_empty() {
            return Err(SeedError::new(codes::SEED_RESOLVE, errors.join("; ")));
        }
        Ok(all.into_iter().collect())
    }

    async fn dns_contacts(&self, dns: &DnsSettings) -> Result<Vec<SocketAddr>, SeedError> {
        let now = Instant::now();
        if let Some((addrs, next)) = &lock(&self.state).dns
            && now < *next
        {
            return Ok(addrs.clone());
        }
        let resolver = {
            let mut slot = lock(&self.resolver);
            match &*slot {
                Some(r) => r.clone(),
                None => {
                    let r = discovery::resolver(dns)?;
                    *slot = Some(r.clone());
                    r
                }
            }
        };
        let Resolved {
            addrs,
            ttl,
            skipped,
        } = discovery::resolve_dns(&resolver, dns).await?;
        for e in skipped {
            metrics::counter!(ERRORS_TOTAL, "node" => self.node(), "kind" => self.kind, "code" => e.code).increment(1);
            tracing::warn!(code = e.code, error = %e.message, "SRV target skipped");
        }
        let next = discovery::next_resolve(now, self.settings.resolve_interval, ttl);
        lock(&self.state).dns = Some((addrs.clone(), next));
        Ok(addrs)
    }

    /// Probes one address and classifies the answer for the core.
    async fn probe_one(&self, addr: SocketAddr, config: &ProbeConfig) -> Probe {
        let outcome = probe(&addr.to_string(), config).await;
        let (probe, label) = classify(outcome, &config.handshake.cluster);
        metrics::counter!(PROBES_TOTAL, "node" => config.local.node_id.to_string(), "kind" => self.kind, "outcome" => label).increment(1);
        probe
    }

    async fn round(&self, local: &Member) -> Round {
        let Some(identity) = &self.identity else {
            return Round::Failed(SeedError::new(
                codes::SEED_NO_IDENTITY,
                "this kind was built without the cluster name and secret (StaticKind::new / DnsKind::new)",
            ));
        };
        let contacts = match self.contacts().await {
            Ok(c) => c,
            Err(e) => return Round::Failed(e),
        };
        let own = own_addresses(local).await;
        let mut handshake = HandshakeConfig::new(identity.cluster.clone())
            .with_timeout(self.settings.probe_timeout)
            .with_max_frame(identity.max_frame);
        if let Some(secret) = &identity.secret {
            handshake = handshake.with_secret(secret.clone());
        }
        let mut config = ProbeConfig::new(
            handshake,
            Hello::for_member(identity.cluster.clone(), local),
        );
        if let Some(tls) = &identity.tls {
            config = config.with_tls(tls.clone());
        }
        let results: Vec<(SocketAddr, Probe)> = stream::iter(contacts)
            .map(|addr| {
                let config = &config;
                let own = &own;
                async move {
                    if own.contains(&addr) {
                        (addr, Probe::Itself)
                    } else {
                        (addr, self.probe_one(addr, config).await)
                    }
                }
            })
            .buffer_unordered(CONCURRENT_PROBES)
            .collect()
            .await;
        let answered = results.iter().any(|(_, p)| matches!(p, Probe::Answered(_)));
        let out = lock(&self.state).core.round(Instant::now(), local, results);
        Round::Done(out, answered)
    }

    fn log(&self, events: &[Event]) {
        for e in events {
            let outcome = match e {
                Event::Formed { .. } => Some("formed"),
                Event::Joined { .. } => Some("joined"),
                _ => None,
            };
            if let Some(outcome) = outcome {
                metrics::counter!(BOOTSTRAP_TOTAL, "node" => self.node(), "kind" => self.kind, "outcome" => outcome).increment(1);
            }
            match e {
                Event::Refused {
                    contact,
                    code,
                    reason,
                } => tracing::warn!(
                    code = codes::SEED_NOT_MEMBER,
                    %contact,
                    refusal = %code,
                    reason = %reason,
                    "a contact point answered but is not a node of this cluster; never listed"
                ),
                Event::Replaced { contact, old, new } => tracing::info!(
                    %contact,
                    old_node = %old.0, old_incarnation = old.1,
                    new_node = %new.0, new_incarnation = new.1,
                    "another node or incarnation answers at a contact point; the old one is replaced"
                ),
                Event::Left { contact, node } => tracing::info!(
                    %contact, %node,
                    "a contact point stopped answering past unreachable_timeout; no longer listed"
                ),
                Event::Formed { contacts } => tracing::info!(
                    contacts = ?contacts,
                    "no cluster found: this node has the lowest contact address and forms a new cluster"
                ),
                Event::Joined { via, node } => tracing::info!(
                    %via, %node,
                    "a contact point has joined a cluster: joining it"
                ),
                Event::NotAContact => tracing::warn!(
                    code = codes::SEED_NOT_A_CONTACT,
                    "this node's address is not among the contact points it discovered (the seed list or the DNS records): it neither forms nor joins until it is, since the others would never list it"
                ),
            }
        }
    }
}

/// The probe's outcome as the core sees it, and the metric label.
fn classify(
    outcome: Result<cluster::remoting::ProbeAnswer, WireError>,
    cluster: &str,
) -> (Probe, &'static str) {
    match outcome {
        Ok(answer) => match parse_member_address(&answer.peer.address) {
            Some(address) => {
                let mut member = Member::new(answer.peer.node_id, address, answer.peer.incarnation);
                member.roles = answer.info.roles.into_iter().collect();
                member.labels = answer.info.labels;
                (
                    Probe::Answered(Peer {
                        member,
                        joined: answer.info.joined,
                    }),
                    "answered",
                )
            }
            None => (
                Probe::Refused {
                    code: "wire.handshake".into(),
                    reason: format!(
                        "node {} of cluster {cluster} advertises {:?}, not host:port",
                        answer.peer.node_id, answer.peer.address
                    ),
                },
                "refused",
            ),
        },
        Err(e) => {
            let code = e.code().to_owned();
            let reason = e.to_string();
            match e {
                // Something answered and is not one of ours.
                WireError::Auth(_)
                | WireError::Cluster(_)
                | WireError::Version(_)
                | WireError::Handshake(_)
                | WireError::Refused { .. }
                | WireError::Decode(_)
                | WireError::Oversized { .. }
                // A TLS peer of another CA, or whose certificate does not
                // name the node it answers as.
                | WireError::Tls { .. } => (Probe::Refused { code, reason }, "refused"),
                // Nothing (usable) answered.
                _ => (Probe::Silent { code, reason }, "silent"),
            }
        }
    }
}

/// The local node's own addresses: its advertised address resolved.
async fn own_addresses(local: &Member) -> BTreeSet<SocketAddr> {
    match tokio::net::lookup_host((local.address.host.as_str(), local.address.port)).await {
        Ok(addrs) => addrs.collect(),
        Err(_) => BTreeSet::new(),
    }
}

/// The delay before the next round: `interval` jittered ±20 %, doubled
/// `backoff` times (at most 8×, which bounds the jittered delay too): the
/// workspace's one [`Backoff`].
fn delay(interval: Duration, backoff: u32) -> Duration {
    Backoff::new(interval, interval.saturating_mul(8))
        .with_jitter(Jitter::spread(0.2))
        .random_delay(backoff)
}

impl ClusterProvider for SeedProvider {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            watch: true,
            register: true,
            external: true,
        }
    }

    /// R1.4: the identity is there, and the contacts can be looked up: a
    /// static seed list where at least one seed resolves; a DNS server
    /// that answers (NXDOMAIN and an empty answer are answers: the name
    /// may have no record before the first node is up).
    fn check_connectivity(&self) -> BoxFuture<'_, Result<(), ProviderError>> {
        Box::pin(async move {
            if self.inner.identity.is_none() {
                return Err(SeedError::new(
                    codes::SEED_NO_IDENTITY,
                    "this kind was built without the cluster name and secret",
                )
                .into_provider_error());
            }
            match self.inner.contacts().await {
                Ok(_) => Ok(()),
                Err(e) if e.code == codes::DNS_NXDOMAIN || e.code == codes::DNS_NO_RECORDS => {
                    Ok(())
                }
                Err(e) => Err(e.into_provider_error()),
            }
        })
    }

    /// Keeps the local member (listed once joined, and the Hello of every
    /// probe). Nothing is written anywhere: the contacts find this node by
    /// probing it.
    fn register(&self, local: &Member) -> BoxFuture<'_, Result<(), ProviderError>> {
        *lock(&self.inner.local) = Some(local.clone());
        Box::pin(async { Ok(()) })
    }

    /// Nothing to remove: once this node leaves, its probes answer
    /// `joined = false` (draining) or nothing, and the others drop it.
    fn deregister(&self, _local: &Member) -> BoxFuture<'_, Result<(), ProviderError>> {
        Box::pin(async { Ok(()) })
    }

    fn watch(&self) -> BoxStream<'static, Result<Snapshot, ProviderError>> {
        let inner = self.inner.clone();
        stream::unfold((inner, None::<Duration>, 0u32), |(inner, wait, mut backoff)| async move {
            if let Some(wait) = wait {
                tokio::time::sleep(wait).await;
            }
            let interval = inner.settings.probe_interval;
            loop {
                let local = lock(&inner.local).clone();
                let Some(local) = local else {
                    // Not registered yet: nothing to probe as.
                    tokio::time::sleep(delay(interval, 0)).await;
                    continue;
                };
                match inner.round(&local).await {
                    Round::Done(out, answered) => {
                        inner.log(&out.events);
                        if let Some(members) = out.members {
                            let next = inner.until_resolve(delay(interval, 0));
                            return Some((Ok(Snapshot::now(members)), (inner, Some(next), 0)));
                        }
                        // Bootstrapping: no snapshot; back off while nobody answers.
                        backoff = if answered { 0 } else { backoff.saturating_add(1) };
                        tokio::time::sleep(inner.until_resolve(delay(interval, backoff))).await;
                    }
                    Round::Failed(e) => {
                        metrics::counter!(ERRORS_TOTAL, "node" => inner.node(), "kind" => inner.kind, "code" => e.code).increment(1);
                        let next = inner.until_resolve(delay(interval, 0));
                        return Some((Err(e.into_provider_error()), (inner, Some(next), backoff)));
                    }
                }
            }
        })
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cluster::remoting::ProbeAnswer;
    use cluster::wire::ProbeInfo;
    use cluster_core::NodeId;

    fn static_provider(seeds: &str, identity: Option<Arc<Identity>>) -> SeedProvider {
        let d = cluster_core::ProviderDescriptor::new(
            cluster_core::ProviderId::new("s").unwrap(),
            "static",
            0,
        )
        .with_setting("seeds", seeds);
        SeedProvider::new(crate::static_settings(&d).unwrap(), identity).unwrap()
    }

    fn code(e: ProviderError) -> String {
        e.to_string()
    }

    /// P4/P6: rounds are jittered ±20 % around the interval, and the
    /// bootstrap backoff doubles it at most three times.
    #[test]
    fn p4_p6_round_delays_are_jittered_and_the_backoff_capped() {
        let s = Duration::from_secs(1);
        let mut seen = BTreeSet::new();
        for _ in 0..200 {
            let d = delay(s, 0);
            assert!(d >= s.mul_f64(0.8) && d <= s.mul_f64(1.2), "{d:?}");
            seen.insert(d.as_millis());
            for (backoff, factor) in [(1, 2.0), (3, 8.0), (9, 8.0), (u32::MAX, 8.0)] {
                let d = delay(s, backoff);
                assert!(
                    d >= s.mul_f64(0.8 * factor) && d <= s.mul_f64(1.2 * factor),
                    "{backoff}: {d:?}"
                );
            }
        }
        assert!(seen.len() > 50, "jittered: {} distinct delays", seen.len());
    }

    /// R1.4 for the static kind: at acceptance the identity must be there
    /// and at least one seed must resolve; no seed needs to answer (the
    /// first node starts alone).
    #[tokio::test]
    async fn p4_r1_4_the_acceptance_check() {
        let id = Some(Arc::new(Identity::new("c")));
        let ok = static_provider("127.0.0.1:1,no-such-host.invalid:4000", id.clone());
        assert!(ok.check_connectivity().await.is_ok());
        let none = static_provider("no-such-host.invalid:4000", id);
        let e = code(none.check_connectivity().await.unwrap_err());
        assert!(e.contains(codes::SEED_RESOLVE), "{e}");
        let unbound = static_provider("127.0.0.1:1", None);
        let e = code(unbound.check_connectivity().await.unwrap_err());
        assert!(e.contains(codes::SEED_NO_IDENTITY), "{e}");
    }

    /// P4/P6: what counts as "not one of ours" (never listed, reported
    /// once) and what as "nothing answered" (kept until
    /// `unreachable_timeout`).
    #[test]
    fn p4_p6_probe_outcomes_are_classified() {
        let refused = [
            WireError::Auth("bad proof".into()),
            WireError::Cluster("other".into()),
            WireError::Version("v9".into()),
            WireError::Handshake("own id".into()),
            WireError::Tls {
                code: "remoting.tls.identity",
                reason: "wrong SAN".into(),
            },
        ];
        for e in refused {
            let (p, label) = classify(Err(e), "c");
            assert!(matches!(p, Probe::Refused { .. }), "{p:?}");
            assert_eq!(label, "refused");
        }
        let silent = [
            WireError::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)),
            WireError::Timeout(Duration::from_secs(1)),
        ];
        for e in silent {
            let (p, label) = classify(Err(e), "c");
            assert!(matches!(p, Probe::Silent { .. }), "{p:?}");
            assert_eq!(label, "silent");
        }
        let hello = |address: &str| Hello::new("c", NodeId::new("b").unwrap(), 7, address);
        let answer = |address: &str| ProbeAnswer {
            peer: hello(address),
            info: ProbeInfo {
                joined: true,
                members: 2,
                roles: vec!["web".into()],
                labels: [("zone".to_owned(), "a".to_owned())].into(),
            },
        };
        let (p, _) = classify(Ok(answer("10.0.0.2:4000")), "c");
        let Probe::Answered(peer) = p else {
            panic!("{p:?}")
        };
        assert!(peer.joined);
        assert_eq!(peer.member.incarnation, 7);
        assert!(peer.member.roles.contains("web"));
        assert_eq!(peer.member.labels["zone"], "a");
        let (p, _) = classify(Ok(answer("no-port")), "c");
        assert!(matches!(p, Probe::Refused { .. }), "{p:?}");
    }
}
