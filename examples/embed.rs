//! A service that embeds a cluster node: configuration file, logs, admin
//! HTTP (probes, members, providers, metrics), a graceful leave on SIGTERM,
//! and one grain kind, with one call to `Node::from_file(..).start()`.
//!
//! ```sh
//! cargo run --release --example embed -- deploy/config/memory.toml
//! curl -s 127.0.0.1:8558/health/ready; curl -s 127.0.0.1:8558/cluster/members
//! # Ctrl-C (or SIGTERM) leaves the cluster gracefully and exits 0.
//! cargo run --release --example embed -- deploy/config/memory.toml --once   # leave at once
//! ```
//!
//! Walk-through: `docs/embedding.md`.

use std::time::Duration;

use cluster_provisioning::{Grain, Node};

/// A grain: one counter per id, wherever it lives in the cluster.
#[derive(Default)]
struct Counter {
    value: u64,
}

impl Grain for Counter {
    type Request = u64;
    type Response = u64;

    async fn handle(&mut self, add: u64) -> u64 {
        self.value += add;
        self.value
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .unwrap_or_else(|| "deploy/config/memory.toml".to_owned());
    let once = args.any(|a| a == "--once");

    // The configuration is checked here: a bad file is one line naming the
    // file, the provider and the field.
    let node = match Node::from_file(&path) {
        Ok(builder) => {
            builder
                .grain("counter", |_id| Counter::default())
                .start()
                .await?
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    println!(
        "node {} of cluster {} started; admin on {:?}",
        node.cluster().local().node_id,
        node.cluster().name(),
        node.admin_addr()
    );

    // Ready: a healthy provider lists this node (what /health/ready says).
    node.ready(Duration::from_secs(30)).await?;
    // The application's own work: grain requests go to the grain's owner,
    // here or on another node.
    let mut visits = 0;
    for _ in 0..3 {
        visits = node
            .cluster()
            .request::<Counter>("counter", "visits", &1)
            .await?;
    }
    println!("visits after three requests: {visits}");

    if once {
        node.leave().await;
        node.shutdown().await;
    } else {
        println!("running; Ctrl-C or SIGTERM leaves the cluster gracefully");
        node.run_until_signal().await;
    }
    println!("left; bye");
    Ok(())
}
