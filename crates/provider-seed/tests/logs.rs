//! What the `static` provider logs (N3 for P4): an address answered by a
//! node of another cluster is reported once, at WARN, with the contact,
//! the code and the handshake's refusal, however many rounds probe it; the
//! formation and the join are reported at INFO.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

#[path = "../../provisioning-actors/tests/support/logs.rs"]
mod logs;

use std::time::Duration;

use logs::Logs;
use provider_seed::codes;
use support::*;
use tracing::Level;

/// P4: another cluster's node at a seed address is logged once with the
/// reason, never listed.
#[tokio::test]
async fn p4_a_stranger_at_a_seed_address_is_logged_once_with_the_reason() {
    let (logs, _guard) = Logs::capture();
    let ports = free_ports(3);
    let d = static_descriptor(&ports);
    // The stranger (cluster "elsewhere") holds the highest port.
    let stranger = start_in(
        "elsewhere",
        SECRET,
        "x",
        ports[2],
        static_descriptor(&ports[2..]),
    )
    .await;
    let a = start("a", ports[0], d.clone()).await;
    let b = start("b", ports[1], d.clone()).await;
    converge(&[&a, &b], &["a", "b"]).await;
    // Many rounds (probe_interval 200 ms) probe the stranger.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let contact = format!("127.0.0.1:{}", ports[2]);
    let refused: Vec<_> = logs
        .with_message("a contact point answered but is not a node of this cluster; never listed")
        .into_iter()
        .filter(|l| l.field("contact") == Some(contact.as_str()))
        .collect();
    // One per prober (a and b), not one per round.
    assert_eq!(refused.len(), 2, "{}", Logs::dump(&refused));
    for l in &refused {
        assert_eq!(l.level, Level::WARN);
        assert_eq!(l.field("code"), Some(codes::SEED_NOT_MEMBER));
        assert_eq!(l.field("refusal"), Some("wire.cluster"));
        assert!(
            l.field("reason").is_some_and(|r| r.contains("elsewhere")),
            "{l:?}"
        );
    }
    let formed = logs.with_message(
        "no cluster found: this node has the lowest contact address and forms a new cluster",
    );
    assert_eq!(
        formed.len(),
        2,
        "a formed, and so did the stranger alone: {}",
        Logs::dump(&formed)
    );
    assert_eq!(
        logs.with_message("a contact point has joined a cluster: joining it")
            .len(),
        1,
        "b joined"
    );
    for n in [a, b, stranger] {
        n.stop().await;
    }
}
