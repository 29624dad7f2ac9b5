//! Contact-point membership (P4, P6): the `static` kind (a list of seed
//! addresses) and the `dns` kind (A/AAAA or SRV records).
//!
//! Both only know *addresses*, while topology, remoting and quarantine are
//! keyed by node id and incarnation. This crate closes the gap by asking
//! each address who it is: a **probe** on the remoting port
//! ([`cluster::remoting::probe`]), the remoting handshake opened with a
//! `Probe` frame, so the same cluster name, protocol version and shared
//! secret proof apply, and the answer carries the node id, incarnation,
//! address, roles and labels, and whether that node has joined a cluster.
//! The pure [`core`] turns the answers into a member list with a **safe
//! first bootstrap**; `docs/providers/seeds-dns.md` is the user guide and
//! `docs/providers/dns.md` covers a Kubernetes headless Service.
//!
//! # Rounds
//!
//! The provider's watch runs rounds until it is dropped. A round:
//!
//! 1. resolves the contact points: `static` resolves every seed's host
//!    name (an IP needs no lookup; a seed that fails to resolve keeps its
//!    previous addresses, and only when no seed resolves at all is the
//!    round an error); `dns` resolves its name when the resolve interval
//!    has passed (`interval`, or the records' TTL when longer, capped at a
//!    minute) and reuses the last answer in between; a failed lookup is an
//!    error item with its `provider.dns.*` code and the supervisor keeps
//!    the last good members (Degraded, R4.3);
//! 2. probes every contact address concurrently (at most 32 at once, each
//!    bounded by `probe_timeout_ms`), except the node's own address;
//! 3. feeds the results to the [`core::Core`] and yields the member list
//!    (every round once joined: that is also the keepalive), or nothing
//!    while bootstrapping (the provider stays `Starting`; past the
//!    failover silence timeout it shows as Degraded with
//!    `provider.silence` until it has joined).
//!
//! Rounds run every `probe_interval_ms` (jittered ±20 %); while
//! bootstrapping with no contact answering, the delay doubles up to 8×
//! (jittered too): a node keeps retrying forever, and nodes started at the
//! same instant do not probe in lockstep. A probe is one TCP connection
//! and one or two round trips; per node that is `60 / probe_interval`
//! probes per contact per minute, whatever happens to the others.
//!
//! # The cluster identity
//!
//! A probe must carry the cluster name and prove the shared secret, which
//! a provider descriptor does not hold (secrets never go into provider
//! settings). [`StaticKind::new`] and [`DnsKind::new`] take them as an
//! [`Identity`]; the node runtime builds them from its own configuration.
//! A kind built with `unbound()` validates settings (for `check-config`)
//! but its providers fail the connectivity check with
//! `provider.seed.no_identity`.
//!
//! # Settings
//!
//! Shared by both kinds:
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `form_new_cluster` | `true` | whether this node may form a new cluster (see [`core`]) |
//! | `required_contacts` | `1` | contacts (itself included) that must answer before a new cluster is formed, 1..=100 |
//! | `stable_margin_ms` | `3000` | how long the discovered and answering sets must stay unchanged before forming, 0..=600000 |
//! | `unreachable_timeout_ms` | `10000` | how long a contact that stopped answering stays listed, 100..=600000 |
//! | `probe_interval_ms` | `1000` | time between rounds, 100..=60000 |
//! | `probe_timeout_ms` | `2000` | bound on one probe (connect + handshake + answer), 100..=60000 |
//!
//! `static`: `seeds` (required): comma-separated `host:port` (an IPv6 host
//! in brackets). `dns`: `name` and `port` (A/AAAA), or `srv`
//! (`_service._proto.domain`); `nameserver` (`ip:port`, default: the
//! system's `/etc/resolv.conf`), `interval_ms` (resolve interval, default
//! 5000, 1000..=3600000), `dns_timeout_ms` (one request, default 2000,
//! 100..=60000).
//!
//! # Error codes
//!
//! Every failure carries one of the codes in [`codes`] (documented in
//! `docs/error-codes.md`). They reach the supervisor inside a
//! [`ProviderError`] (`provider.config` for settings,
//! `provider.connectivity` otherwise) whose message starts with the code,
//! and the logs as the `code` field.

pub mod core;
pub mod discovery;
mod provider;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use cluster::wire::DEFAULT_MAX_FRAME;
use cluster_core::settings::{Settings as Reader, invalid as config};
use cluster_core::{ClusterProvider, ProviderDescriptor, ProviderError, ProviderFactory};

pub use provider::SeedProvider;

use crate::core::Rules;
use crate::discovery::{DnsQuery, DnsSettings, Seed};

/// The stable error codes of this crate.
pub mod codes {
    /// A seed is not `host:port`.
    pub const SEED_INVALID_ADDRESS: &str = "provider.seed.invalid_address";
    /// No seed resolved (each seed's error is in the message).
    pub const SEED_RESOLVE: &str = "provider.seed.resolve";
    /// An address answered, but not as a node of this cluster (another
    /// cluster, a wrong secret, another protocol version, an id clash).
    pub const SEED_NOT_MEMBER: &str = "provider.seed.not_member";
    /// The kind was built without the cluster identity.
    pub const SEED_NO_IDENTITY: &str = "provider.seed.no_identity";
    /// This node's address is not among the contacts it discovered: it
    /// waits (a WARN, once until it is).
    pub const SEED_NOT_A_CONTACT: &str = "provider.seed.not_a_contact";
    /// The name does not exist (NXDOMAIN).
    pub const DNS_NXDOMAIN: &str = "provider.dns.nxdomain";
    /// The name exists but has no record of the type asked (an empty answer).
    pub const DNS_NO_RECORDS: &str = "provider.dns.no_records";
    /// The server answered an error (SERVFAIL, REFUSED, ...).
    pub const DNS_SERVFAIL: &str = "provider.dns.servfail";
    /// No answer in time.
    pub const DNS_TIMEOUT: &str = "provider.dns.timeout";
    /// The answer was truncated and could not be had over TCP.
    pub const DNS_TRUNCATED: &str = "provider.dns.truncated";
    /// No SRV target resolved to an address (or one did not, when skipped).
    pub const DNS_SRV_TARGET: &str = "provider.dns.srv_target";
    /// The server could not be reached (transport error).
    pub const DNS_IO: &str = "provider.dns.io";
    /// The resolver configuration is unusable (`/etc/resolv.conf`).
    pub const DNS_CONFIG: &str = "provider.dns.config";
}

/// A failure of this crate: a stable code from [`codes`] and a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeedError {
    /// The code.
    pub code: &'static str,
    /// What happened.
    pub message: String,
}

impl SeedError {
    pub(crate) fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// As a provider error: the code first in the message.
    pub fn into_provider_error(self) -> ProviderError {
        ProviderError::Connectivity(self.to_string())
    }
}

impl fmt::Display for SeedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for SeedError {}

/// What a probe needs besides the local member: the cluster name, the
/// shared secret (if any) and the frame limit. `Debug` never prints the
/// secret.
#[derive(Clone)]
pub struct Identity {
    /// The cluster name.
    pub cluster: String,
    /// The shared secret of the remoting handshake.
    pub secret: Option<Vec<u8>>,
    /// The frame limit (default [`DEFAULT_MAX_FRAME`]).
    pub max_frame: usize,
    /// Remoting's mutual TLS, when the node runs it: probes then run inside
    /// TLS and an answer counts only from a certificate naming the node id
    /// it answers with (issue 14).
    pub tls: Option<cluster::remoting::ProbeTls>,
}

impl Identity {
    /// The identity of `cluster`, without a secret or TLS.
    pub fn new(cluster: impl Into<String>) -> Self {
        Self {
            cluster: cluster.into(),
            secret: None,
            max_frame: DEFAULT_MAX_FRAME,
            tls: None,
        }
    }

    /// Sets the shared secret.
    pub fn with_secret(mut self, secret: impl Into<Vec<u8>>) -> Self {
        self.secret = Some(secret.into());
        self
    }

    /// Probes over mutual TLS with this node's Remoting TLS files.
    pub fn with_tls(mut self, tls: cluster::remoting::ProbeTls) -> Self {
        self.tls = Some(tls);
        self
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("cluster", &self.cluster)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

/// Where the contact points come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A static seed list.
    Static(Vec<Seed>),
    /// DNS records.
    Dns(DnsSettings),
}

/// Everything a [`SeedProvider`] is configured with.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Where the contacts come from.
    pub source: Source,
    /// The bootstrap rules.
    pub rules: Rules,
    /// Time between rounds.
    pub probe_interval: Duration,
    /// Bound on one probe.
    pub probe_timeout: Duration,
    /// The DNS resolve interval (`dns` only).
    pub resolve_interval: Duration,
}

/// The keys both kinds share.
const SHARED: [&str; 6] = [
    "form_new_cluster",
    "required_contacts",
    "stable_margin_ms",
    "unreachable_timeout_ms",
    "probe_interval_ms",
    "probe_timeout_ms",
];

/// Refuses keys that are neither shared nor in `own`, then reads the
/// settings both kinds share.
fn shared<'a>(
    d: &'a ProviderDescriptor,
    own: &[&str],
) -> Result<(Reader<'a>, Rules, Duration, Duration), ProviderError> {
    let s = Reader::of(d);
    let known: Vec<&str> = SHARED.iter().chain(own).copied().collect();
    s.check_known(&known)?;
    let rules = Rules {
        form_new_cluster: s.bool("form_new_cluster", true)?,
        required_contacts: usize::try_from(s.u32("required_contacts", 1..=100, 1)?).unwrap_or(1),
        stable_margin: s.millis("stable_margin_ms", 0..=600_000, 3_000)?,
        unreachable_timeout: s.millis("unreachable_timeout_ms", 100..=600_000, 10_000)?,
    };
    let interval = s.millis("probe_interval_ms", 100..=60_000, 1_000)?;
    let timeout = s.millis("probe_timeout_ms", 100..=60_000, 2_000)?;
    Ok((s, rules, interval, timeout))
}

/// Parses the settings of the `static` kind.
pub fn static_settings(d: &ProviderDescriptor) -> Result<Settings, ProviderError> {
    let (s, rules, probe_interval, probe_timeout) = shared(d, &["seeds"])?;
    let seeds = s
        .list("seeds")
        .ok_or_else(|| config("seeds", "missing: a list of host:port"))?
        .iter()
        .map(|seed| Seed::parse(seed))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| config("seeds", e.to_string()))?;
    if seeds.is_empty() {
        return Err(config("seeds", "must list at least one host:port"));
    }
    Ok(Settings {
        source: Source::Static(seeds),
        rules,
        probe_interval,
        probe_timeout,
        resolve_interval: probe_interval,
    })
}

/// Parses the settings of the `dns` kind.
pub fn dns_settings(d: &ProviderDescriptor) -> Result<Settings, ProviderError> {
    let (s, rules, probe_interval, probe_timeout) = shared(
        d,
        &[
            "name",
            "port",
            "srv",
            "nameserver",
            "interval_ms",
            "dns_timeout_ms",
        ],
    )?;
    let query = match (s.text("name"), s.text("srv")) {
        (Some(_), Some(_)) => {
            return Err(config(
                "srv",
                "set either name (with port) or srv, not both",
            ));
        }
        (None, None) => return Err(config("name", "missing: a DNS name (with port), or srv")),
        (Some(name), None) => {
            s.required("port", "the remoting port of the name's addresses")?;
            let port = s.u32("port", 1..=65_535, 0)?;
            DnsQuery::Address {
                name,
                port: u16::try_from(port).unwrap_or(0),
            }
        }
        (None, Some(srv)) => {
            if s.text("port").is_some() {
                return Err(config(
                    "port",
                    "not used with srv: the SRV records give the port",
                ));
            }
            DnsQuery::Srv { name: srv }
        }
    };
    let nameserver = match s.text("nameserver") {
        None => None,
        Some(ns) => Some(ns.parse().map_err(|_| {
            config(
                "nameserver",
                format!("{ns:?} is not ip:port (e.g. 127.0.0.1:53)"),
            )
        })?),
    };
    Ok(Settings {
        source: Source::Dns(DnsSettings {
            query,
            nameserver,
            timeout: s.millis("dns_timeout_ms", 100..=60_000, 2_000)?,
        }),
        rules,
        probe_interval,
        probe_timeout,
        resolve_interval: s.millis("interval_ms", 1_000..=3_600_000, 5_000)?,
    })
}

/// Factory of the `static` kind.
#[derive(Clone, Debug)]
pub struct StaticKind {
    identity: Option<Arc<Identity>>,
}

impl StaticKind {
    /// A kind whose providers probe as `identity`.
    pub fn new(identity: Identity) -> Self {
        Self {
            identity: Some(Arc::new(identity)),
        }
    }

    /// A kind without the cluster identity: validates settings only.
    pub fn unbound() -> Self {
        Self { identity: None }
    }
}

impl ProviderFactory for StaticKind {
    fn kind(&self) -> &str {
        "static"
    }

    fn create(&self, d: &ProviderDescriptor) -> Result<Arc<dyn ClusterProvider>, ProviderError> {
        let settings = static_settings(d)?;
        Ok(Arc::new(SeedProvider::new(
            settings,
            self.identity.clone(),
        )?))
    }
}

/// Factory of the `dns` kind.
#[derive(Clone, Debug)]
pub struct DnsKind {
    identity: Option<Arc<Identity>>,
}

impl DnsKind {
    /// A kind whose providers probe as `identity`.
    pub fn new(identity: Identity) -> Self {
        Self {
            identity: Some(Arc::new(identity)),
        }
    }

    /// A kind without the cluster identity: validates settings only.
    pub fn unbound() -> Self {
        Self { identity: None }
    }
}

impl ProviderFactory for DnsKind {
    fn kind(&self) -> &str {
        "dns"
    }

    fn create(&self, d: &ProviderDescriptor) -> Result<Arc<dyn ClusterProvider>, ProviderError> {
        let settings = dns_settings(d)?;
        Ok(Arc::new(SeedProvider::new(
            settings,
            self.identity.clone(),
        )?))
    }
}

/// Metric names.
pub mod metrics_names {
    /// Counter, labels `node`, `kind` (`static`, `dns`), `outcome`
    /// (`answered`, `refused`, `silent`): probes sent.
    pub const PROBES_TOTAL: &str = "provider_seed_probes_total";
    /// Counter, labels `node`, `kind`, `code`: rounds that failed (no seed
    /// resolved, a DNS error) or SRV targets skipped.
    pub const ERRORS_TOTAL: &str = "provider_seed_errors_total";
    /// Counter, labels `node`, `kind`, `outcome` (`formed`: this node
    /// formed a new cluster; `joined`: it joined a running one).
    pub const BOOTSTRAP_TOTAL: &str = "provider_seed_bootstrap_total";
}

/// Describes this crate's metrics to the installed recorder.
pub fn describe() {
    metrics::describe_counter!(
        metrics_names::PROBES_TOTAL,
        metrics::Unit::Count,
        "Probes sent by the static and dns providers, by outcome."
    );
    metrics::describe_counter!(
        metrics_names::ERRORS_TOTAL,
        metrics::Unit::Count,
        "Failed rounds of the static and dns providers (resolution), by code."
    );
    metrics::describe_counter!(
        metrics_names::BOOTSTRAP_TOTAL,
        metrics::Unit::Count,
        "How the static and dns providers ended their bootstrap: formed a new cluster or joined one."
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use cluster_core::ProviderId;

    fn d(kind: &str, settings: &[(&str, &str)]) -> ProviderDescriptor {
        let mut d = ProviderDescriptor::new(ProviderId::new("p").unwrap(), kind, 0);
        for (k, v) in settings {
            d = d.with_setting(*k, *v);
        }
        d
    }

    fn field(r: Result<Settings, ProviderError>) -> (String, String) {
        match r {
            Err(ProviderError::Config { field, reason }) => (field, reason),
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    /// P4: a malformed seed is a config error naming `seeds` and the code.
    #[test]
    fn p4_malformed_seeds_are_config_errors_with_the_code() {
        for bad in ["host", "a:1,host:", "[::1:4000", "h:0"] {
            let (f, reason) = field(static_settings(&d("static", &[("seeds", bad)])));
            assert_eq!(f, "seeds", "{bad}");
            assert!(
                reason.starts_with(codes::SEED_INVALID_ADDRESS),
                "{bad}: {reason}"
            );
        }
        assert_eq!(field(static_settings(&d("static", &[]))).0, "seeds");
        assert_eq!(
            field(static_settings(&d("static", &[("seeds", " , ")]))).0,
            "seeds"
        );
        let s = static_settings(&d("static", &[("seeds", "a:1, [::1]:2 ,b:3")])).unwrap();
        let Source::Static(seeds) = s.source else {
            panic!()
        };
        assert_eq!(seeds.len(), 3);
    }

    #[test]
    fn p4_p6_shared_settings_are_checked_per_key() {
        let base = [("seeds", "a:1")];
        for (k, v) in [
            ("required_contacts", "0"),
            ("required_contacts", "x"),
            ("form_new_cluster", "yes"),
            ("stable_margin_ms", "-1"),
            ("unreachable_timeout_ms", "5"),
            ("probe_interval_ms", "10"),
            ("probe_timeout_ms", "0"),
            ("bogus", "1"),
        ] {
            let mut s = base.to_vec();
            s.push((k, v));
            assert_eq!(field(static_settings(&d("static", &s))).0, k, "{k}={v}");
        }
        let s = static_settings(&d(
            "static",
            &[
                ("seeds", "a:1"),
                ("required_contacts", "3"),
                ("form_new_cluster", "false"),
            ],
        ))
        .unwrap();
        assert_eq!(s.rules.required_contacts, 3);
        assert!(!s.rules.form_new_cluster);
    }

    #[test]
    fn p6_dns_settings_want_name_and_port_or_srv() {
        let ok = dns_settings(&d("dns", &[("name", "nodes.test"), ("port", "4000")])).unwrap();
        assert!(matches!(
            ok.source,
            Source::Dns(DnsSettings {
                query: DnsQuery::Address { port: 4000, .. },
                nameserver: None,
                ..
            })
        ));
        assert_eq!(ok.resolve_interval, Duration::from_secs(5));
        let ok = dns_settings(&d(
            "dns",
            &[
                ("srv", "_remoting._tcp.nodes.test"),
                ("nameserver", "127.0.0.1:5353"),
            ],
        ))
        .unwrap();
        assert!(matches!(
            ok.source,
            Source::Dns(DnsSettings {
                query: DnsQuery::Srv { .. },
                nameserver: Some(_),
                ..
            })
        ));
        let rows: [(&[(&str, &str)], &str); 7] = [
            (&[], "name"),
            (&[("name", "n")], "port"),
            (&[("name", "n"), ("port", "0")], "port"),
            (&[("name", "n"), ("srv", "s")], "srv"),
            (&[("srv", "s"), ("port", "1")], "port"),
            (&[("srv", "s"), ("nameserver", "localhost")], "nameserver"),
            (&[("srv", "s"), ("interval_ms", "500")], "interval_ms"),
        ];
        for (settings, want) in rows {
            assert_eq!(
                field(dns_settings(&d("dns", settings))).0,
                want,
                "{settings:?}"
            );
        }
    }

    #[test]
    fn identity_debug_never_prints_the_secret() {
        let i = Identity::new("c").with_secret(b"hunter2".to_vec());
        assert!(!format!("{i:?}").contains("hunter2"));
    }
}
