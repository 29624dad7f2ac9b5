//! P4 with issue 14: static seeds over mutual TLS. The probes run inside
//! TLS like the associations: three nodes with certificates from the
//! cluster's CA form one cluster; a node at a seed address whose
//! certificate comes from another CA is never listed by them, and never
//! joins. Every wait is bounded.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::time::Duration;

use cluster::remoting::TlsConfig;
use cluster::remoting::tls::identity_uri;
use support::*;
use test_pki::{NodeCert, NodePki};

fn tls(pki: &NodePki, name: &str, which: NodeCert) -> TlsConfig {
    let pair = pki.node(name, &identity_uri(CLUSTER, name), which).unwrap();
    TlsConfig::new(&pair.cert, &pair.key, &pki.ca)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p4_i14_static_seeds_over_mutual_tls_form_one_cluster_without_the_other_ca() {
    let dir = tempfile::tempdir().unwrap();
    let pki = NodePki::generate(dir.path()).unwrap();
    let ports = free_ports(4);
    let d = static_descriptor(&ports);
    let (a, b, c, x) = tokio::join!(
        start_tls("a", ports[0], d.clone(), tls(&pki, "a", NodeCert::Valid)),
        start_tls("b", ports[1], d.clone(), tls(&pki, "b", NodeCert::Valid)),
        start_tls("c", ports[2], d.clone(), tls(&pki, "c", NodeCert::Valid)),
        start_tls("x", ports[3], d.clone(), tls(&pki, "x", NodeCert::OtherCa)),
    );
    converge(&[&a, &b, &c], &["a", "b", "c"]).await;
    // A few more rounds: x stays out, on both sides.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for n in [&a, &b, &c] {
        assert!(!ids(&*n.topology().await).contains("x"), "{} lists x", n.id);
    }
    assert!(
        !ids(&*x.topology().await).contains("a"),
        "x joined through a refused probe"
    );
    for n in [a, b, c, x] {
        n.stop().await;
    }
}
