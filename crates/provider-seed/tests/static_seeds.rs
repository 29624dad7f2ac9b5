//! Scenario tests of the `static` kind (P4, B1): in-process cluster nodes
//! over real TCP on 127.0.0.1, each probing the seed list on the remoting
//! port. Every wait is bounded.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::time::Duration;

use provider_seed::metrics_names::{BOOTSTRAP_TOTAL, PROBES_TOTAL};
use support::*;

/// P4: three nodes listing the same three seeds form one cluster, with one
/// topology hash everywhere, and exactly one of them formed it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p4_three_nodes_over_static_seeds_form_one_cluster() {
    let metrics = Metrics::install();
    let ports = free_ports(3);
    let d = static_descriptor(&ports);
    let (a, b, c) = tokio::join!(
        start("a", ports[0], d.clone()),
        start("b", ports[1], d.clone()),
        start("c", ports[2], d.clone()),
    );
    converge(&[&a, &b, &c], &["a", "b", "c"]).await;
    assert_eq!(
        metrics.counter(BOOTSTRAP_TOTAL, &[("outcome", "formed")]),
        1,
        "exactly one node formed the cluster"
    );
    assert_eq!(
        metrics.counter(BOOTSTRAP_TOTAL, &[("outcome", "formed"), ("node", "a")]),
        1,
        "the lowest address formed it"
    );
    assert_eq!(
        metrics.counter(BOOTSTRAP_TOTAL, &[("outcome", "joined")]),
        2
    );
    // Roles and incarnations come through the probe.
    let t = a.topology().await;
    let bm = t.member(&b.id).unwrap();
    assert_eq!(bm.incarnation, b.cluster.local().incarnation);
    assert!(metrics.counter(PROBES_TOTAL, &[("outcome", "answered")]) > 0);
    for n in [a, b, c] {
        n.stop().await;
    }
}

/// P4 / B1: the first seed (the lowest address, the one that formed the
/// cluster) crashes and restarts with a new incarnation at the same
/// address: it joins the running cluster instead of forming a second one,
/// and the new incarnation replaces the old everywhere (R4.4).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p4_b1_a_restarted_first_seed_joins_the_running_cluster() {
    let metrics = Metrics::install();
    let ports = free_ports(3);
    let d = static_descriptor(&ports);
    let (a, b, c) = tokio::join!(
        start("a", ports[0], d.clone()),
        start("b", ports[1], d.clone()),
        start("c", ports[2], d.clone()),
    );
    converge(&[&a, &b, &c], &["a", "b", "c"]).await;
    let old = a.cluster.local().incarnation;
    a.crash().await;
    // The others drop it (quarantine or unreachable_timeout) ...
    converge(&[&b, &c], &["b", "c"]).await;
    // ... and it comes back with a new incarnation at the same address.
    let a = start("a", ports[0], d.clone()).await;
    let new = a.cluster.local().incarnation;
    assert_ne!(old, new);
    converge(&[&a, &b, &c], &["a", "b", "c"]).await;
    for n in [&b, &c] {
        let t = n.topology().await;
        assert_eq!(t.member(&a.id).unwrap().incarnation, new, "{}", n.id);
    }
    assert_eq!(
        metrics.counter(BOOTSTRAP_TOTAL, &[("outcome", "formed")]),
        1,
        "the restarted first seed must join, never form"
    );
    assert_eq!(
        metrics.counter(BOOTSTRAP_TOTAL, &[("outcome", "joined"), ("node", "a")]),
        1
    );
    for n in [a, b, c] {
        n.stop().await;
    }
}

/// P4: five nodes started at the same instant with `required_contacts = 3`
/// form exactly one cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p4_five_nodes_at_once_with_three_required_form_one_cluster() {
    let metrics = Metrics::install();
    let ports = free_ports(5);
    let d = static_descriptor(&ports).with_setting("required_contacts", "3");
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
    assert_eq!(
        metrics.counter(BOOTSTRAP_TOTAL, &[("outcome", "joined")]),
        4
    );
    for n in nodes {
        n.stop().await;
    }
}

/// P4: with `required_contacts = 3`, two nodes out of three seeds never
/// form a cluster: they stay Starting (no member snapshot); the third
/// arriving lets the lowest form it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p4_fewer_than_required_contacts_never_form() {
    let ports = free_ports(3);
    let d = static_descriptor(&ports).with_setting("required_contacts", "3");
    let (a, b) = tokio::join!(
        start("a", ports[0], d.clone()),
        start("b", ports[1], d.clone())
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    for n in [&a, &b] {
        let t = n.cluster.provisioning().topology().await.unwrap();
        assert!(t.members.is_empty(), "{}: {:?}", n.id, t.members);
    }
    let c = start("c", ports[2], d.clone()).await;
    converge(&[&a, &b, &c], &["a", "b", "c"]).await;
    for n in [a, b, c] {
        n.stop().await;
    }
}

/// P4: an address answered by a node of another cluster, or of this
/// cluster with another secret, is never listed, and does not block the
/// bootstrap although its address is lower than ours.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p4_other_clusters_and_wrong_secrets_are_never_listed() {
    let ports = free_ports(4);
    let d = static_descriptor(&ports);
    // Another cluster's node at the lowest address does not block the
    // first formation; a node with a wrong secret does when it is lower
    // (it may be this cluster's lowest seed, misconfigured: B1), so it
    // sits at the highest one here.
    let stranger = start_in(
        "elsewhere",
        SECRET,
        "x",
        ports[0],
        static_descriptor(&ports[..1]),
    )
    .await;
    let impostor = start_in(
        CLUSTER,
        b"wrong-secret",
        "y",
        ports[3],
        static_descriptor(&ports[3..]),
    )
    .await;
    let (a, b) = tokio::join!(
        start("a", ports[1], d.clone()),
        start("b", ports[2], d.clone())
    );
    converge(&[&a, &b], &["a", "b"]).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    for n in [&a, &b] {
        let t = n.topology().await;
        assert_eq!(ids(&t), ["a", "b"].map(String::from).into(), "{}", n.id);
    }
    for n in [a, b, stranger, impostor] {
        n.stop().await;
    }
}

/// P4: seeds given as host names are resolved at every round (`localhost`
/// here: its IPv6 address, where nobody listens, is a silent contact that
/// does not block the IPv4 one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p4_host_name_seeds_are_resolved() {
    let ports = free_ports(2);
    let seeds: Vec<String> = ports.iter().map(|p| format!("localhost:{p}")).collect();
    let d = static_descriptor(&ports).with_setting("seeds", seeds.join(","));
    let (a, b) = tokio::join!(
        start("a", ports[0], d.clone()),
        start("b", ports[1], d.clone())
    );
    converge(&[&a, &b], &["a", "b"]).await;
    for n in [a, b] {
        n.stop().await;
    }
}
