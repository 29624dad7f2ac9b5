//! Tests of the `dns` kind (P6) against a real dnsmasq on loopback, one per
//! test, with generated hosts and SRV records; record changes by rewriting
//! the files and SIGHUP (A records) or a restart (SRV records). Cluster
//! nodes run in-process over real TCP on 127.0.0.0/8. Every wait is
//! bounded; dnsmasq is killed on drop.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use cluster_core::ProviderFactory;
use cluster_core::{
    ClusterProvider, Member, MemberAddress, NodeId, ProviderDescriptor, ProviderError,
    ProvisioningStatus,
};
use futures::StreamExt;
use provider_seed::discovery::{self, DnsQuery, DnsSettings};
use provider_seed::metrics_names::BOOTSTRAP_TOTAL;
use provider_seed::{DnsKind, codes};
use support::dnsmasq::{Dnsmasq, srv};
use support::*;

/// P6: three nodes found through the A records of one name (one IP each,
/// one port) form one cluster; a record added joins a node, a record
/// removed removes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p6_a_records_form_one_cluster_and_follow_record_changes() {
    let Some(dns) = Dnsmasq::start() else { return };
    let metrics = Metrics::install();
    let port = free_port();
    let hosts = [("127.0.0.11", "nodes.test"), ("127.0.0.12", "nodes.test")];
    dns.set_hosts(&hosts);
    let d = dns_descriptor(
        &[("name", "nodes.test".into()), ("port", port.to_string())],
        dns.addr(),
    );
    let start_at = |name: &'static str, ip: &'static str| {
        let d = d.clone();
        async move { start_bound(name, ip, port, d).await }
    };
    let (a, b) = tokio::join!(start_at("a", "127.0.0.11"), start_at("b", "127.0.0.12"));
    converge(&[&a, &b], &["a", "b"]).await;
    assert_eq!(
        metrics.counter(BOOTSTRAP_TOTAL, &[("outcome", "formed")]),
        1
    );

    // c starts before its record exists: it is not one of its own
    // contacts, so it waits (B1: the others would never list it), and the
    // others do not list it until the record is added.
    let c = start_at("c", "127.0.0.13").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        ids(&*a.topology().await),
        ["a", "b"].map(String::from).into()
    );
    dns.set_hosts(&[
        ("127.0.0.11", "nodes.test"),
        ("127.0.0.12", "nodes.test"),
        ("127.0.0.13", "nodes.test"),
    ]);
    converge(&[&a, &b, &c], &["a", "b", "c"]).await;

    // The record removed: a and b drop c.
    dns.set_hosts(&hosts);
    converge(&[&a, &b], &["a", "b"]).await;
    for n in [a, b, c] {
        n.stop().await;
    }
}

/// P6: SRV records give host and port; three nodes on one IP form one
/// cluster, a node restarted with a new incarnation at the same address
/// replaces the old one everywhere, and the first seed restarted joins
/// the running cluster (one hash everywhere, one formation in all).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p6_srv_records_form_one_cluster_and_restarts_join_it() {
    let Some(mut dns) = Dnsmasq::start() else {
        return;
    };
    let metrics = Metrics::install();
    let ports = free_ports(3);
    dns.set_hosts(&[
        ("127.0.0.1", "n0.test"),
        ("127.0.0.1", "n1.test"),
        ("127.0.0.1", "n2.test"),
    ]);
    let lines: Vec<String> = ports
        .iter()
        .enumerate()
        .map(|(i, p)| srv("_remoting._tcp.cluster.test", &format!("n{i}.test"), *p))
        .collect();
    dns.set_conf(&lines);
    let d = dns_descriptor(&[("srv", "_remoting._tcp.cluster.test".into())], dns.addr());
    let (a, b, c) = tokio::join!(
        start("a", ports[0], d.clone()),
        start("b", ports[1], d.clone()),
        start("c", ports[2], d.clone()),
    );
    converge(&[&a, &b, &c], &["a", "b", "c"]).await;

    // b restarts: its new incarnation replaces the old one (R4.4).
    let old = b.cluster.local().incarnation;
    b.crash().await;
    let b = start("b", ports[1], d.clone()).await;
    assert_ne!(b.cluster.local().incarnation, old);
    converge(&[&a, &b, &c], &["a", "b", "c"]).await;
    assert_eq!(
        a.topology().await.member(&b.id).unwrap().incarnation,
        b.cluster.local().incarnation
    );

    // The first seed (lowest address, it formed the cluster) restarts: it
    // joins.
    a.crash().await;
    converge(&[&b, &c], &["b", "c"]).await;
    let a = start("a", ports[0], d.clone()).await;
    converge(&[&a, &b, &c], &["a", "b", "c"]).await;
    assert_eq!(
        metrics.counter(BOOTSTRAP_TOTAL, &[("outcome", "formed")]),
        1
    );
    for n in [a, b, c] {
        n.stop().await;
    }
}

/// P6: five nodes started at once behind one SRV name with
/// `required_contacts = 3` form exactly one cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p6_five_nodes_at_once_with_three_required_form_one_cluster() {
    let Some(mut dns) = Dnsmasq::start() else {
        return;
    };
    let metrics = Metrics::install();
    let ports = free_ports(5);
    let hosts: Vec<(&str, String)> = (0..5)
        .map(|i| ("127.0.0.1", format!("n{i}.test")))
        .collect();
    let hosts: Vec<(&str, &str)> = hosts.iter().map(|(ip, n)| (*ip, n.as_str())).collect();
    dns.set_hosts(&hosts);
    let lines: Vec<String> = ports
        .iter()
        .enumerate()
        .map(|(i, p)| srv("_remoting._tcp.five.test", &format!("n{i}.test"), *p))
        .collect();
    dns.set_conf(&lines);
    let d = dns_descriptor(
        &[
            ("srv", "_remoting._tcp.five.test".into()),
            ("required_contacts", "3".into()),
        ],
        dns.addr(),
    );
    let names = ["a", "b", "c", "d", "e"];
    let nodes = futures::future::join_all(
        names
            .iter()
            .zip(&ports)
            .map(|(n, p)| start(n, *p, d.clone())),
    )
    .await;
    let refs: Vec<&Node> = nodes.iter().collect();
    converge(&refs, &names).await;
    assert_eq!(
        metrics.counter(BOOTSTRAP_TOTAL, &[("outcome", "formed")]),
        1
    );
    for n in nodes {
        n.stop().await;
    }
}

/// P6 bad input: after the cluster formed, the name disappears (NXDOMAIN):
/// the provider reports `provider.dns.nxdomain`, the last good members are
/// kept while the status is Degraded (R4.3), and the record coming back
/// restores it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p6_a_lost_name_keeps_the_last_good_members_while_degraded() {
    let Some(mut dns) = Dnsmasq::start() else {
        return;
    };
    let ports = free_ports(2);
    dns.set_hosts(&[("127.0.0.1", "m0.test"), ("127.0.0.1", "m1.test")]);
    let lines: Vec<String> = ports
        .iter()
        .enumerate()
        .map(|(i, p)| srv("_remoting._tcp.lost.test", &format!("m{i}.test"), *p))
        .collect();
    dns.set_conf(&lines);
    let d = dns_descriptor(&[("srv", "_remoting._tcp.lost.test".into())], dns.addr());
    let (a, b) = tokio::join!(
        start("a", ports[0], d.clone()),
        start("b", ports[1], d.clone())
    );
    let hash = converge(&[&a, &b], &["a", "b"]).await;
    dns.set_conf(&[]);
    for n in [&a, &b] {
        eventually(&format!("{} degraded", n.id), || async {
            n.topology().await.status == ProvisioningStatus::Degraded
        })
        .await;
        let t = n.topology().await;
        assert_eq!(ids(&t), ["a", "b"].map(String::from).into(), "{}", n.id);
        assert_eq!(t.hash.0, hash);
    }
    dns.set_conf(&lines);
    for n in [&a, &b] {
        eventually(&format!("{} active again", n.id), || async {
            n.topology().await.status == ProvisioningStatus::Active
        })
        .await;
    }
    for n in [a, b] {
        n.stop().await;
    }
}

/// P6 bad input: an address in the records answered by a node of another
/// cluster is never listed and does not block the bootstrap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p6_a_record_pointing_at_another_cluster_is_never_listed() {
    let Some(mut dns) = Dnsmasq::start() else {
        return;
    };
    let ports = free_ports(3);
    dns.set_hosts(&[
        ("127.0.0.1", "o0.test"),
        ("127.0.0.1", "o1.test"),
        ("127.0.0.1", "o2.test"),
    ]);
    let lines: Vec<String> = ports
        .iter()
        .enumerate()
        .map(|(i, p)| srv("_remoting._tcp.mixed.test", &format!("o{i}.test"), *p))
        .collect();
    dns.set_conf(&lines);
    let d = dns_descriptor(&[("srv", "_remoting._tcp.mixed.test".into())], dns.addr());
    let stranger = start_in(
        "elsewhere",
        SECRET,
        "x",
        ports[0],
        static_descriptor(&ports[..1]),
    )
    .await;
    let (a, b) = tokio::join!(
        start("a", ports[1], d.clone()),
        start("b", ports[2], d.clone())
    );
    converge(&[&a, &b], &["a", "b"]).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        ids(&*a.topology().await),
        ["a", "b"].map(String::from).into()
    );
    for n in [a, b, stranger] {
        n.stop().await;
    }
}

fn local() -> Member {
    Member::new(
        NodeId::new("probe").unwrap(),
        MemberAddress::new("127.0.0.1", 1).unwrap(),
        1,
    )
}

/// The first item of a fresh provider's watch for `d`.
async fn first_item(d: ProviderDescriptor) -> Result<Vec<Member>, ProviderError> {
    let p: Arc<dyn ClusterProvider> = DnsKind::new(identity(CLUSTER, SECRET)).create(&d).unwrap();
    p.register(&local()).await.unwrap();
    let item = tokio::time::timeout(Duration::from_secs(10), p.watch().next())
        .await
        .expect("an item in time")
        .expect("the stream goes on");
    item.map(|s| s.members.to_vec())
}

fn code_of(e: &ProviderError) -> String {
    match e {
        ProviderError::Connectivity(m) => m.split(':').next().unwrap().to_owned(),
        other => panic!("expected a connectivity error, got {other:?}"),
    }
}

/// P6 bad input, each a clear `provider.dns.*` code and no panic:
/// NXDOMAIN, a server error (REFUSED: dnsmasq has no upstream for a name
/// outside its local zone; SERVFAIL is classified the same), a timeout (a
/// nameserver that never answers), an empty answer, an SRV target that
/// does not resolve. NXDOMAIN and an empty answer pass the acceptance
/// check (the server answered); the others fail it (R1.4).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p6_bad_dns_answers_are_clear_codes() {
    let Some(mut dns) = Dnsmasq::start() else {
        return;
    };
    dns.set_conf(&[
        "txt-record=empty.test,\"nothing here\"".to_owned(),
        srv("_remoting._tcp.bad.test", "missing.test", 4000),
    ]);
    // A nameserver that never answers (a bound socket nobody reads).
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let rows: Vec<(&str, ProviderDescriptor, &str, bool)> = vec![
        (
            "nxdomain",
            dns_descriptor(
                &[("name", "missing.test".into()), ("port", "4000".into())],
                dns.addr(),
            ),
            codes::DNS_NXDOMAIN,
            true,
        ),
        (
            "servfail",
            dns_descriptor(
                &[("name", "x.nowhere".into()), ("port", "4000".into())],
                dns.addr(),
            ),
            codes::DNS_SERVFAIL,
            false,
        ),
        (
            "timeout",
            dns_descriptor(
                &[("name", "x.test".into()), ("port", "4000".into())],
                silent_addr,
            ),
            codes::DNS_TIMEOUT,
            false,
        ),
        (
            "empty answer",
            dns_descriptor(
                &[("name", "empty.test".into()), ("port", "4000".into())],
                dns.addr(),
            ),
            codes::DNS_NO_RECORDS,
            true,
        ),
        (
            "srv target",
            dns_descriptor(&[("srv", "_remoting._tcp.bad.test".into())], dns.addr()),
            codes::DNS_SRV_TARGET,
            false,
        ),
    ];
    for (name, d, want, accepted) in rows {
        let e = first_item(d.clone()).await.expect_err(name);
        assert_eq!(code_of(&e), want, "{name}: {e}");
        let p = DnsKind::new(identity(CLUSTER, SECRET)).create(&d).unwrap();
        let check = p.check_connectivity().await;
        assert_eq!(
            check.is_ok(),
            accepted,
            "{name}: acceptance check {check:?}"
        );
    }
    drop(silent);
}

/// P6: an answer too large for UDP (60 addresses) is truncated by the
/// server and fetched again over TCP: all addresses come through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p6_a_truncated_answer_is_fetched_over_tcp() {
    let Some(dns) = Dnsmasq::start() else { return };
    let ips: Vec<String> = (1..=60).map(|i| format!("127.0.1.{i}")).collect();
    let records: Vec<(&str, &str)> = ips.iter().map(|ip| (ip.as_str(), "big.test")).collect();
    dns.set_hosts(&records);
    let settings = DnsSettings {
        query: DnsQuery::Address {
            name: "big.test".into(),
            port: 4000,
        },
        nameserver: Some(dns.addr()),
        timeout: Duration::from_secs(2),
    };
    let resolver = discovery::resolver(&settings).unwrap();
    let resolved = discovery::resolve_dns(&resolver, &settings).await.unwrap();
    assert_eq!(resolved.addrs.len(), 60);
    assert!(
        resolved
            .addrs
            .contains(&"127.0.1.60:4000".parse::<SocketAddr>().unwrap())
    );
}
