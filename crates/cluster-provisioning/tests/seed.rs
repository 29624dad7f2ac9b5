//! P4 through the node runtime: nodes built from a configuration file with
//! `kind = "static"` find each other. The node binds the kinds to its
//! cluster name and secret at start; without that binding the probes would
//! fail the secret proof and each node would form a cluster of its own.
#![cfg(feature = "seed")]
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeSet;
use std::time::Duration;

use cluster_provisioning::{Node, NodeConfig};

fn config(node: &str, port: u16, seeds: &[u16]) -> NodeConfig {
    let seeds: Vec<String> = seeds.iter().map(|p| format!("\"127.0.0.1:{p}\"")).collect();
    let text = format!(
        r#"cluster = "seeded"
node_id = "{node}"
bind = "127.0.0.1:{port}"
secret = "node-runtime-seed-secret"

[admin]
enabled = false

[leave]
deadline = "3s"

[[providers]]
id = "seeds"
kind = "static"
[providers.settings]
seeds = [{}]
probe_interval = "200ms"
stable_margin = "500ms"
"#,
        seeds.join(", ")
    );
    NodeConfig::from_toml("node.toml", &text).unwrap()
}

fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let mut ports: Vec<u16> = held
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect();
    ports.sort_unstable();
    ports
}

/// P4: two nodes of a configuration file with a static seed list and a
/// cluster secret form one cluster through the node runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p4_nodes_from_a_config_file_form_one_cluster_over_static_seeds() {
    let ports = free_ports(2);
    let start = |name: &'static str, port: u16| {
        let ports = ports.clone();
        async move {
            Node::builder(config(name, port, &ports))
                .init_logs(false)
                .handle_signals(false)
                .start()
                .await
                .unwrap()
        }
    };
    let (a, b) = tokio::join!(start("a", ports[0]), start("b", ports[1]));
    let want: BTreeSet<String> = ["a", "b"].map(String::from).into();
    for n in [&a, &b] {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let t = n.cluster().topology().await.unwrap();
            let ids: BTreeSet<String> = t.members.iter().map(|m| m.node_id.to_string()).collect();
            if ids == want {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{}: {ids:?}",
                n.cluster().local().node_id
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let (ha, hb) = (
        a.cluster().topology().await.unwrap().hash,
        b.cluster().topology().await.unwrap().hash,
    );
    assert_eq!(ha, hb);
    a.shutdown().await;
    b.shutdown().await;
}
