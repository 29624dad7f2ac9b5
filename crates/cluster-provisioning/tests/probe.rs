//! Issue 16: the opt-in probe grain. Off by default (404); on, two nodes
//! of one cluster answer `POST /grains/probe-counter/{id}` from the single
//! activation of the grain, with its node, activation id and value; a bad
//! id is a 400 with `probe.invalid_id`; the admin token is required.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use cluster_provisioning::{Node, NodeConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn post(port: u16, path: &str, token: Option<&str>) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut raw)).await;
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

async fn node(id: &str, table: &str, diagnostics: &str) -> Node {
    let text = format!(
        r#"cluster = "probe"
node_id = "{id}"
bind = "127.0.0.1:0"

[admin]
bind = "127.0.0.1:0"
token = "t0ken"

[remoting]
heartbeat_interval = "100ms"
failure_timeout = "1s"

[leave]
deadline = "3s"

{diagnostics}

[[providers]]
id = "mem"
kind = "memory"
settings = {{ table = "{table}" }}
"#
    );
    let config = NodeConfig::from_toml("probe.toml", &text).unwrap();
    let node = Node::builder(config)
        .init_logs(false)
        .handle_signals(false)
        .start()
        .await
        .unwrap();
    node.ready(Duration::from_secs(10)).await.unwrap();
    node
}

async fn wait_members(node: &Node, n: usize) {
    for _ in 0..500 {
        if node.cluster().topology().await.unwrap().members.len() == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the topology never had {n} members");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue16_probe_route_is_off_by_default() {
    let n = node("solo", "probe-off", "").await;
    let port = n.admin_addr().unwrap().port();
    let (status, body) = post(port, "/grains/probe-counter/g1", Some("t0ken")).await;
    assert_eq!(status, 404, "{body}");
    n.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue16_probe_route_answers_from_the_one_activation() {
    let on = "[diagnostics]\nprobe_counter = true\n";
    let a = node("a", "probe-on", on).await;
    let b = node("b", "probe-on", on).await;
    wait_members(&a, 2).await;
    wait_members(&b, 2).await;
    let (pa, pb) = (
        a.admin_addr().unwrap().port(),
        b.admin_addr().unwrap().port(),
    );

    assert_eq!(post(pa, "/grains/probe-counter/g1", None).await.0, 401);
    let (status, body) = post(pa, "/grains/probe-counter/a%2Fb", Some("t0ken")).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("probe.invalid_id"), "{body}");

    let mut seen = Vec::new();
    for (i, port) in [pa, pb, pa, pb].into_iter().enumerate() {
        // The first requests may race the remote association coming up.
        let mut answer = None;
        for _ in 0..50 {
            let (status, body) = post(port, "/grains/probe-counter/g1", Some("t0ken")).await;
            if status == 200 {
                answer = Some(body);
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let body = answer.unwrap_or_else(|| panic!("request {i} never answered"));
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        seen.push(v);
    }
    let activation = seen[0]["activation"].as_str().unwrap();
    let owner = seen[0]["answered_by"].as_str().unwrap();
    assert!(owner == "a" || owner == "b", "{owner}");
    assert!(activation.starts_with(owner), "{activation}");
    for (i, v) in seen.iter().enumerate() {
        assert_eq!(v["activation"], activation, "{v}");
        assert_eq!(v["answered_by"], owner, "{v}");
        assert_eq!(v["grain"], "g1", "{v}");
        assert_eq!(v["value"].as_u64(), Some(i as u64 + 1), "{v}");
    }
    assert_eq!(seen[0]["asked"], "a");
    assert_eq!(seen[1]["asked"], "b");
    a.shutdown().await;
    b.shutdown().await;
}
