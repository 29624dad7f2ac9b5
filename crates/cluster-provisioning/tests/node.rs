//! N2: the node runtime embedded in a test process: the admin surface's
//! probes, the bearer token on mutating endpoints, a reload that is applied
//! or refused whole (R5.4), garbage on the admin port, and a leave requested
//! over HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use cluster_provisioning::{Node, NodeConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn http(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &[u8],
) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let _ = s.write_all(body).await;
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut raw)).await;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    (status, body)
}

fn config_text(table: &str, providers: &str) -> String {
    format!(
        r#"cluster = "embedded"
node_id = "n1"
bind = "127.0.0.1:0"

[admin]
bind = "127.0.0.1:0"
token = "let-me-in"

[leave]
deadline = "5s"

{providers}
[[providers]]
id = "mem"
kind = "memory"
settings = {{ table = "{table}" }}
"#
    )
}

async fn wait_ready(port: u16) {
    for _ in 0..500 {
        if http(port, "GET", "/health/ready", None, b"").await.0 == 200 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never ready");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn n2_r5_4_admin_probes_token_reload_and_leave() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.toml");
    std::fs::write(&path, config_text("node-test-1", "")).unwrap();
    let node = Node::builder(NodeConfig::load(&path).unwrap())
        .init_logs(false)
        .handle_signals(false)
        .start()
        .await
        .unwrap();
    let port = node.admin_addr().unwrap().port();
    assert_eq!(http(port, "GET", "/health/live", None, b"").await.0, 200);
    wait_ready(port).await;

    // Mutating endpoints need the token when one is configured.
    assert_eq!(
        http(port, "POST", "/cluster/reload", None, b"").await.0,
        401
    );
    assert_eq!(
        http(port, "POST", "/cluster/reload", Some("wrong"), b"")
            .await
            .0,
        401
    );
    // Reads do not.
    let (s, body) = http(port, "GET", "/cluster/providers", None, b"").await;
    assert_eq!(s, 200);
    assert!(body.contains("\"id\":\"mem\""), "{body}");

    // A valid reload adds a provider: applied whole (R5.4).
    let extra = "[[providers]]\nid = \"extra\"\nkind = \"memory\"\nsettings = { table = \"node-test-1b\" }\n";
    std::fs::write(&path, config_text("node-test-1", extra)).unwrap();
    let (s, body) = http(port, "POST", "/cluster/reload", Some("let-me-in"), b"").await;
    assert_eq!(s, 200, "{body}");
    let defs = node.cluster().provisioning().definitions().await.unwrap();
    assert_eq!(defs.len(), 2);

    // A bad file is refused with the one-line reason; nothing changes.
    std::fs::write(
        &path,
        config_text(
            "node-test-1",
            "[[providers]]\nid = \"bad\"\nkind = \"memory\"\nsettings = { keepalive = \"5x\" }\n",
        ),
    )
    .unwrap();
    let (s, body) = http(port, "POST", "/cluster/reload", Some("let-me-in"), b"").await;
    assert_eq!(s, 400);
    assert!(
        body.contains("providers[bad].settings.keepalive: \"5x\" is not a duration"),
        "{body}"
    );
    assert_eq!(
        node.cluster()
            .provisioning()
            .definitions()
            .await
            .unwrap()
            .len(),
        2
    );

    // A file that parses but that a kind refuses: the same one line as
    // `check-config` (file, provider, the file's key), 400, nothing changes.
    std::fs::write(
        &path,
        config_text(
            "node-test-1",
            "[[providers]]\nid = \"odd\"\nkind = \"zookeeper\"\n",
        ),
    )
    .unwrap();
    let (s, body) = http(port, "POST", "/cluster/reload", Some("let-me-in"), b"").await;
    assert_eq!(s, 400);
    assert!(
        body.contains("providers[odd].kind: unknown provider kind"),
        "{body}"
    );
    std::fs::write(&path, config_text("node-test-1", extra)).unwrap();

    // Garbage, a huge declared body and an unknown path: 4xx or a closed
    // connection, never a crash; the node still answers.
    let (s, _) = http(port, "GET", "/no/such/thing", None, b"").await;
    assert_eq!(s, 404);
    let mut raw = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    raw.write_all(b"\x16\x03\x01 not http at all\r\n\r\n")
        .await
        .unwrap();
    let mut sink = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), raw.read_to_end(&mut sink)).await;
    assert!(
        sink.is_empty() || String::from_utf8_lossy(&sink).starts_with("HTTP/1.1 4"),
        "garbage gets a 4xx or a closed connection"
    );
    let big = vec![b'x'; 64 * 1024];
    let (s, _) = http(port, "POST", "/cluster/reload", Some("let-me-in"), &big).await;
    assert_eq!(s, 200, "the body is not read");
    // A client that never finishes its headers is cut off.
    let mut slow = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    slow.write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(
        cluster_provisioning::admin::HEADER_TIMEOUT + Duration::from_secs(3),
        slow.read_to_end(&mut rest),
    )
    .await;
    assert!(closed.is_ok(), "a slow header is cut off");
    assert_eq!(http(port, "GET", "/health/live", None, b"").await.0, 200);

    // A leave over HTTP: accepted, then the node is no longer ready.
    let (s, _) = http(port, "POST", "/cluster/leave", Some("let-me-in"), b"").await;
    assert_eq!(s, 202);
    let (s, body) = http(port, "GET", "/health/ready", None, b"").await;
    assert!(s == 503 || s == 0, "not ready while leaving: {s} {body}");
    // Let the leave finish first (provisioning stops, so the members view
    // fails): `run_until_signal` must still return when the leave is
    // already over (regression: the end of the leave was lost when nobody
    // was waiting).
    for _ in 0..500 {
        if http(port, "GET", "/cluster/members", None, b"").await.0 != 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_ne!(
        http(port, "GET", "/cluster/members", None, b"").await.0,
        200
    );
    // Live while leaving: the process is fine.
    assert_eq!(http(port, "GET", "/health/live", None, b"").await.0, 200);
    tokio::time::timeout(Duration::from_secs(10), node.run_until_signal())
        .await
        .expect("run_until_signal returns after an HTTP leave");
    assert!(node.is_leaving());
}

/// N2: a start with the admin port off loopback and no token is refused;
/// so is Remoting off loopback without a secret (unless `insecure`).
#[tokio::test]
async fn n2_unsafe_starts_are_refused() {
    let text = config_text("node-test-2", "")
        .replace("token = \"let-me-in\"\n", "")
        .replace(
            "[admin]\nbind = \"127.0.0.1:0\"",
            "[admin]\nbind = \"0.0.0.0:0\"",
        );
    let e = Node::builder(NodeConfig::from_toml("node.toml", &text).unwrap())
        .init_logs(false)
        .start()
        .await
        .unwrap_err();
    assert_eq!(e.code(), "config.unsafe");
    assert!(e.to_string().starts_with("node.toml: admin.bind:"), "{e}");
}

/// Issue 17: two nodes started from files with `[remoting.monitoring]
/// mode = "ring"` form one cluster, associate, and quarantine nobody over
/// ten probe intervals (their Remoting accepted the section as given); a
/// start whose monitoring was set out of range in code is refused before
/// anything runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i17_nodes_run_ring_monitoring_from_their_files() {
    use cluster_provisioning::config::MonitoringMode;
    let ring = "[remoting.monitoring]\nmode = \"ring\"\nprobe_interval = \"100ms\"\n\
                probe_timeout = \"50ms\"\nvote_ttl = \"1s\"\n";
    let text = |id: &str| {
        config_text("node-test-i17", "").replace("node_id = \"n1\"", &format!("node_id = \"{id}\""))
            + "\n"
            + ring
    };
    let mut nodes = Vec::new();
    for id in ["r1", "r2"] {
        let config = NodeConfig::from_toml("node.toml", &text(id)).unwrap();
        assert_eq!(config.remoting.monitoring.mode, MonitoringMode::Ring);
        let node = Node::builder(config)
            .init_logs(false)
            .handle_signals(false)
            .start()
            .await
            .unwrap();
        nodes.push(node);
    }
    for node in &nodes {
        node.cluster()
            .wait_for_members(2, Duration::from_secs(10))
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    for node in &nodes {
        let t = node.cluster().topology().await.unwrap();
        assert_eq!(t.members.len(), 2, "{t:?}");
        assert!(t.blocked.is_empty(), "nobody quarantined: {t:?}");
        let up = node.cluster().remoting().associations();
        assert_eq!(up.len(), 1, "an association with the other member: {up:?}");
    }
    for node in &nodes {
        node.leave().await;
        node.shutdown().await;
    }

    let mut bad = NodeConfig::from_toml("node.toml", &text("r3")).unwrap();
    bad.remoting.monitoring.probe_timeout = bad.remoting.monitoring.probe_interval;
    let e = Node::builder(bad)
        .init_logs(false)
        .handle_signals(false)
        .start()
        .await
        .unwrap_err();
    assert_eq!(e.code(), "config.invalid");
    assert!(
        e.to_string()
            .starts_with("node.toml: remoting.monitoring.probe_timeout:"),
        "{e}"
    );
}
