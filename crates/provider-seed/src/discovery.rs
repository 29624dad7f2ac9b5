//! Where the contact points come from: a static seed list (hostnames
//! resolved at every refresh) or DNS records (A/AAAA of a name with a
//! configured port, or SRV records giving host and port), resolved with
//! hickory-resolver.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};

use crate::{SeedError, codes};

/// A configured seed: `host:port` as written, and its parts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seed {
    /// As written in the configuration.
    pub text: String,
    /// Host name or IP (without brackets).
    pub host: String,
    /// Port.
    pub port: u16,
}

impl Seed {
    /// Parses `host:port` (an IPv6 host in brackets); the error names the
    /// seed and says what is wrong (`provider.seed.invalid_address`).
    pub fn parse(text: &str) -> Result<Self, SeedError> {
        let bad = |why: &str| {
            SeedError::new(
                codes::SEED_INVALID_ADDRESS,
                format!("seed {text:?}: {why} (expected host:port, an IPv6 host in brackets)"),
            )
        };
        let t = text.trim();
        let (host, port) = t.rsplit_once(':').ok_or_else(|| bad("no port"))?;
        let host = match host.strip_prefix('[') {
            Some(h) => h.strip_suffix(']').ok_or_else(|| bad("unclosed bracket"))?,
            None if host.contains(':') => return Err(bad("an IPv6 host needs brackets")),
            None => host,
        };
        if host.is_empty() || host.len() > 253 || host.chars().any(char::is_whitespace) {
            return Err(bad("empty or invalid host"));
        }
        let port: u16 = port
            .parse()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| bad("the port is not a number in 1..=65535"))?;
        Ok(Self {
            text: t.to_owned(),
            host: host.to_owned(),
            port,
        })
    }
}

/// Resolves the seeds: each one's addresses, or its error. IPs are taken
/// as they are; host names go through the system resolver (`getaddrinfo`).
pub async fn resolve_seeds(seeds: &[Seed]) -> Vec<(Seed, Result<Vec<SocketAddr>, SeedError>)> {
    let lookups = seeds.iter().map(|seed| async move {
        let result = match seed.host.parse::<IpAddr>() {
            Ok(ip) => Ok(vec![SocketAddr::new(ip, seed.port)]),
            Err(_) => tokio::net::lookup_host((seed.host.as_str(), seed.port))
                .await
                .map(|addrs| addrs.collect::<BTreeSet<_>>().into_iter().collect())
                .map_err(|e| {
                    SeedError::new(codes::SEED_RESOLVE, format!("seed {}: {e}", seed.text))
                }),
        };
        (seed.clone(), result)
    });
    futures::future::join_all(lookups).await
}

/// What the `dns` kind looks up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DnsQuery {
    /// A and AAAA records of `name`, each address with `port`.
    Address {
        /// The name.
        name: String,
        /// The remoting port.
        port: u16,
    },
    /// SRV records of `name` (`_service._proto.domain`): each target's
    /// A/AAAA records with the record's port.
    Srv {
        /// The SRV name.
        name: String,
    },
}

/// How the resolver is set up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsSettings {
    /// What to look up.
    pub query: DnsQuery,
    /// A nameserver (`ip:port`) instead of `/etc/resolv.conf`.
    pub nameserver: Option<SocketAddr>,
    /// Bound on one DNS request.
    pub timeout: Duration,
}

/// A DNS answer: the addresses, and the smallest TTL among the records it
/// came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// The contact addresses, sorted, without duplicates.
    pub addrs: Vec<SocketAddr>,
    /// The smallest TTL of the records used.
    pub ttl: Duration,
    /// SRV targets that did not resolve (skipped; each with its error).
    pub skipped: Vec<SeedError>,
}

/// Builds the resolver: the configured nameserver over UDP and TCP, or the
/// system configuration (`provider.dns.config` when it cannot be read).
pub fn resolver(settings: &DnsSettings) -> Result<TokioResolver, SeedError> {
    let mut opts = ResolverOpts::default();
    opts.timeout = settings.timeout;
    opts.attempts = 1;
    // No cache: the provider decides when to ask again (the interval, the
    // TTL, the 60 s cap); a cached answer would hide a change for as long
    // as its TTL, whatever the cap says.
    opts.cache_size = 0;
    let builder = match settings.nameserver {
        Some(ns) => {
            let mut udp = ConnectionConfig::udp();
            udp.port = ns.port();
            let mut tcp = ConnectionConfig::tcp();
            tcp.port = ns.port();
            let server = NameServerConfig::new(ns.ip(), true, vec![udp, tcp]);
            opts.use_hosts_file = ResolveHosts::Never;
            let config = ResolverConfig::from_name_servers(vec![server]);
            TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
        }
        None => TokioResolver::builder_tokio().map_err(|e| {
            SeedError::new(
                codes::DNS_CONFIG,
                format!("cannot read the system resolver configuration: {e}"),
            )
        })?,
    };
    builder
        .with_options(opts)
        .build()
        .map_err(|e| SeedError::new(codes::DNS_CONFIG, format!("cannot build the resolver: {e}")))
}

/// The stable code of a failed lookup.
pub fn classify(e: &NetError) -> &'static str {
    match e {
        _ if e.is_nx_domain() => codes::DNS_NXDOMAIN,
        _ if e.is_no_records_found() => codes::DNS_NO_RECORDS,
        NetError::Dns(DnsError::ResponseCode(_)) => codes::DNS_SERVFAIL,
        NetError::Timeout => codes::DNS_TIMEOUT,
        NetError::Truncated => codes::DNS_TRUNCATED,
        _ => codes::DNS_IO,
    }
}

fn lookup_error(what: &str, name: &str, e: &NetError) -> SeedError {
    SeedError::new(classify(e), format!("{what} {name}: {e}"))
}

/// Smallest TTL among `records` (`None` without records).
fn min_ttl<'a>(ttls: impl Iterator<Item = u32> + 'a) -> Option<Duration> {
    ttls.min().map(|s| Duration::from_secs(u64::from(s)))
}

/// Resolves `settings.query` once.
pub async fn resolve_dns(
    resolver: &TokioResolver,
    settings: &DnsSettings,
) -> Result<Resolved, SeedError> {
    match &settings.query {
        DnsQuery::Address { name, port } => {
            let lookup = resolver
                .lookup_ip(name.as_str())
                .await
                .map_err(|e| lookup_error("A/AAAA", name, &e))?;
            let ttl = min_ttl(lookup.as_lookup().answers().iter().map(|r| r.ttl))
                .unwrap_or(Duration::ZERO);
            let addrs: BTreeSet<SocketAddr> =
                lookup.iter().map(|ip| SocketAddr::new(ip, *port)).collect();
            if addrs.is_empty() {
                return Err(SeedError::new(
                    codes::DNS_NO_RECORDS,
                    format!("A/AAAA {name}: no address in the answer"),
                ));
            }
            Ok(Resolved {
                addrs: addrs.into_iter().collect(),
                ttl,
                skipped: Vec::new(),
            })
        }
        DnsQuery::Srv { name } => {
            let lookup = resolver
                .srv_lookup(name.as_str())
                .await
                .map_err(|e| lookup_error("SRV", name, &e))?;
            let mut ttl = min_ttl(lookup.answers().iter().map(|r| r.ttl));
            let targets: BTreeSet<(String, u16)> = lookup
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    hickory_resolver::proto::rr::RData::SRV(srv) => {
                        Some((srv.target.to_ascii(), srv.port))
                    }
                    _ => None,
                })
                .collect();
            if targets.is_empty() {
                return Err(SeedError::new(
                    codes::DNS_NO_RECORDS,
                    format!("SRV {name}: no SRV record in the answer"),
                ));
            }
            let mut addrs = BTreeSet::new();
            let mut skipped = Vec::new();
            for (target, port) in &targets {
                match resolver.lookup_ip(target.as_str()).await {
                    Ok(ips) => {
                        let t = min_ttl(ips.as_lookup().answers().iter().map(|r| r.ttl));
                        ttl = match (ttl, t) {
                            (Some(a), Some(b)) => Some(a.min(b)),
                            (a, b) => a.or(b),
                        };
                        let before = addrs.len();
                        addrs.extend(ips.iter().map(|ip| SocketAddr::new(ip, *port)));
                        if addrs.len() == before {
                            skipped.push(SeedError::new(
                                codes::DNS_SRV_TARGET,
                                format!("SRV {name}: target {target} has no address"),
                            ));
                        }
                    }
                    Err(e) => skipped.push(SeedError::new(
                        codes::DNS_SRV_TARGET,
                        format!(
                            "SRV {name}: target {target} does not resolve ({}: {e})",
                            classify(&e)
                        ),
                    )),
                }
            }
            if addrs.is_empty() {
                let why = skipped
                    .iter()
                    .map(|e| e.message.as_str())
                    .collect::<Vec<_>>()
                    .join("; ");
                return Err(SeedError::new(codes::DNS_SRV_TARGET, why));
            }
            Ok(Resolved {
                addrs: addrs.into_iter().collect(),
                ttl: ttl.unwrap_or(Duration::ZERO),
                skipped,
            })
        }
    }
}

/// When to resolve next: after `interval`, or after the answer's TTL when
/// that is longer (capped at `max(interval, 60 s)` so a change is seen
/// within a minute whatever the TTL).
pub fn next_resolve(now: Instant, interval: Duration, ttl: Duration) -> Instant {
    let cap = interval.max(Duration::from_secs(60));
    now + interval.max(ttl.min(cap))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p4_seeds_parse_or_name_what_is_wrong() {
        let s = Seed::parse(" node-1.example:4000 ").unwrap();
        assert_eq!((s.host.as_str(), s.port), ("node-1.example", 4000));
        let s = Seed::parse("[::1]:7").unwrap();
        assert_eq!((s.host.as_str(), s.port), ("::1", 7));
        for bad in [
            "",
            "host",
            "host:",
            "host:0",
            "host:99999",
            ":4000",
            "::1:4000",
            "[::1:4000",
            "a b:1",
        ] {
            let e = Seed::parse(bad).unwrap_err();
            assert_eq!(e.code, codes::SEED_INVALID_ADDRESS, "{bad}");
            assert!(e.message.contains("host:port"), "{bad}: {e}");
        }
    }

    /// P6: every resolver failure has its stable code (SERVFAIL and the
    /// other error answers included, which dnsmasq is hard to make send).
    #[test]
    fn p6_resolver_errors_map_to_stable_codes() {
        use hickory_resolver::net::NoRecords;
        use hickory_resolver::proto::op::{Query, ResponseCode};
        use hickory_resolver::proto::rr::{Name, RecordType};
        let query = || Query::query(Name::from_ascii("x.test.").unwrap(), RecordType::A);
        let rows = [
            (
                NetError::Dns(DnsError::NoRecordsFound(NoRecords::new(
                    query(),
                    ResponseCode::NXDomain,
                ))),
                codes::DNS_NXDOMAIN,
            ),
            (
                NetError::Dns(DnsError::NoRecordsFound(NoRecords::new(
                    query(),
                    ResponseCode::NoError,
                ))),
                codes::DNS_NO_RECORDS,
            ),
            (
                NetError::Dns(DnsError::ResponseCode(ResponseCode::ServFail)),
                codes::DNS_SERVFAIL,
            ),
            (
                NetError::Dns(DnsError::ResponseCode(ResponseCode::Refused)),
                codes::DNS_SERVFAIL,
            ),
            (NetError::Timeout, codes::DNS_TIMEOUT),
            (NetError::Truncated, codes::DNS_TRUNCATED),
            (NetError::NoConnections, codes::DNS_IO),
        ];
        for (e, want) in rows {
            assert_eq!(classify(&e), want, "{e}");
        }
    }

    #[test]
    fn p6_the_resolve_interval_follows_the_ttl_within_bounds() {
        let now = Instant::now();
        let s = Duration::from_secs;
        assert_eq!(next_resolve(now, s(5), s(0)), now + s(5));
        assert_eq!(next_resolve(now, s(5), s(30)), now + s(30));
        assert_eq!(next_resolve(now, s(5), s(3600)), now + s(60));
        assert_eq!(next_resolve(now, s(120), s(3600)), now + s(120));
    }

    /// P6: without `nameserver` the resolver is the system's
    /// (`/etc/resolv.conf`, and `/etc/hosts` first): `localhost` resolves.
    #[tokio::test]
    async fn p6_the_system_resolver_is_used_without_a_nameserver() {
        let settings = DnsSettings {
            query: DnsQuery::Address {
                name: "localhost".into(),
                port: 4000,
            },
            nameserver: None,
            timeout: Duration::from_secs(2),
        };
        let r = resolver(&settings).unwrap();
        let resolved = resolve_dns(&r, &settings).await.unwrap();
        assert!(
            resolved
                .addrs
                .contains(&SocketAddr::from(([127, 0, 0, 1], 4000))),
            "{resolved:?}"
        );
    }

    #[tokio::test]
    async fn p4_ip_seeds_need_no_lookup_and_bad_names_are_resolve_errors() {
        let seeds = vec![
            Seed::parse("127.0.0.1:4000").unwrap(),
            Seed::parse("no-such-host.invalid:4000").unwrap(),
        ];
        let out = resolve_seeds(&seeds).await;
        assert_eq!(
            out[0].1.as_ref().unwrap(),
            &vec![SocketAddr::from(([127, 0, 0, 1], 4000))]
        );
        assert_eq!(out[1].1.as_ref().unwrap_err().code, codes::SEED_RESOLVE);
    }
}
