//! Opt-in suite against a real Consul agent (P2). Run it with
//!
//! ```sh
//! CONSUL_HTTP_ADDR=127.0.0.1:8500 [CONSUL_HTTP_TOKEN=...] \
//!   cargo nextest run -p provider-consul --test real_agent --run-ignored only
//! ```
//!
//! It registers a service named `provider-consul-it-<random>` (TTL 10 s,
//! deregistered at the end; a leftover is reaped by the agent after 1 min).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use cluster_core::ProviderFactory;
use cluster_core::{
    ClusterProvider, Member, MemberAddress, NodeId, ProviderDescriptor, ProviderId,
};
use futures::StreamExt;
use provider_consul::ConsulKind;

const NEEDS: &str = "needs a real Consul agent: set CONSUL_HTTP_ADDR and run with --ignored";

fn provider(service: &str) -> std::sync::Arc<dyn ClusterProvider> {
    assert!(std::env::var("CONSUL_HTTP_ADDR").is_ok(), "{NEEDS}");
    let d = ProviderDescriptor::new(ProviderId::new("real").unwrap(), "consul", 0)
        .with_setting("service", service)
        .with_setting("wait_ms", "1000");
    ConsulKind::new().create(&d).unwrap()
}

fn service_name() -> String {
    format!("provider-consul-it-{:08x}", fastrand::u32(..))
}

/// R1.4 against a real agent: reachable and the token accepted.
#[tokio::test]
#[ignore = "needs a real Consul agent: set CONSUL_HTTP_ADDR and run with --ignored"]
async fn real_r1_4_connectivity_check_passes() {
    let p = provider(&service_name());
    tokio::time::timeout(Duration::from_secs(10), p.check_connectivity())
        .await
        .expect("bounded")
        .expect("agent reachable and token accepted");
}

/// P2 against a real agent: register → seen by the watch as passing →
/// deregister → gone.
#[tokio::test]
#[ignore = "needs a real Consul agent: set CONSUL_HTTP_ADDR and run with --ignored"]
async fn real_p2_register_watch_deregister() {
    let service = service_name();
    let p = provider(&service);
    let me = Member::new(
        NodeId::new("it-node").unwrap(),
        MemberAddress::new("127.0.0.1", 4999).unwrap(),
        1,
    )
    .with_role("it")
    .with_label("suite", "real_agent");
    p.register(&me).await.expect("registered");
    let mut watch = p.watch();
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let s = watch
                .next()
                .await
                .expect("stream goes on")
                .expect("snapshot");
            if s.members.contains(&me) {
                break;
            }
        }
    })
    .await
    .expect("our member listed as passing");
    p.deregister(&me).await.expect("deregistered");
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let s = watch
                .next()
                .await
                .expect("stream goes on")
                .expect("snapshot");
            if !s.members.iter().any(|m| m.node_id == me.node_id) {
                break;
            }
        }
    })
    .await
    .expect("our member gone after deregistration");
}
