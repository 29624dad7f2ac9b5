//! End to end over the real `cluster-node` binary (N1, N2, N3): three node
//! processes on loopback with configuration files and the `file` provider
//! (a primary and a standby directory), their admin surfaces, a failover,
//! a SIGTERM leave, and `check-config`'s exit codes.
//!
//! Every wait is bounded; every process is killed when a test ends, also
//! on failure (`NodeProcess` kills on drop).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_cluster-node");

/// A minimal HTTP/1.1 client for the admin surface: (status, body).
fn http(method: &str, port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(
        &format!("127.0.0.1:{port}").parse().unwrap(),
        Duration::from_secs(2),
    )
    .ok()?;
    s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    // The admin surface answers with Content-Length; a chunked body would
    // need decoding, so check we are not fooling ourselves.
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{head}"
    );
    Some((status, body.to_owned()))
}

fn get(port: u16, path: &str) -> Option<(u16, String)> {
    http("GET", port, path)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out after {timeout:?} waiting for {what}");
}

struct NodeProcess {
    name: String,
    child: Child,
    admin: u16,
    log: PathBuf,
}

impl NodeProcess {
    fn start(dir: &Path, name: &str, primary: &Path, standby: &Path) -> Self {
        Self::start_with(dir, name, primary, standby, "")
    }

    /// [`start`](Self::start) with `extra` appended to the file (more
    /// tables).
    fn start_with(dir: &Path, name: &str, primary: &Path, standby: &Path, extra: &str) -> Self {
        let admin = free_port();
        let config = dir.join(format!("{name}.toml"));
        std::fs::write(
            &config,
            format!(
                r#"cluster = "e2e"
node_id = "{name}"
bind = "127.0.0.1:0"

[admin]
bind = "127.0.0.1:{admin}"

[failover]
silence_timeout = "2s"
stability_window = "1s"

[remoting]
heartbeat_interval = "200ms"
failure_timeout = "2s"

[leave]
deadline = "5s"

[[providers]]
id = "primary"
kind = "file"
settings = {{ dir = {primary:?}, poll = "50ms" }}

[[providers]]
id = "standby"
kind = "file"
settings = {{ dir = {standby:?}, poll = "50ms" }}
{extra}"#
            ),
        )
        .unwrap();
        let log = dir.join(format!("{name}.log"));
        let child = Command::new(BIN)
            .args(["run", "--config"])
            .arg(&config)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("cluster-node starts");
        Self {
            name: name.to_owned(),
            child,
            admin,
            log,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn members(&self) -> serde_json::Value {
        let (status, body) = get(self.admin, "/cluster/members").expect("members answers");
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    fn up_members(&self) -> Vec<String> {
        self.members()["members"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["state"] == "up")
            .map(|m| m["node"].as_str().unwrap().to_owned())
            .collect()
    }

    fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(
                start.elapsed() < timeout,
                "{} did not exit within {timeout:?}:\n{}",
                self.name,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Checks that `text` is Prometheus exposition text: every sample line is
/// `name{labels} value`, and returns the samples as (name, labels, value).
fn parse_prometheus(text: &str) -> Vec<(String, String, f64)> {
    let mut samples = Vec::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("a sample has a value");
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.strip_suffix('}').expect("labels close")),
            None => (series, ""),
        };
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name in {line:?}"
        );
        samples.push((name.to_owned(), labels.to_owned(), value));
    }
    samples
}

/// N1, N2, N3 over the real binary: three nodes form one cluster and agree
/// on it; the probes answer through start, failover and leave; `/metrics`
/// is Prometheus text with the documented names and the `node` label; a
/// SIGTERM is a graceful leave seen by the others within 2 s, exit code 0.
#[test]
fn n1_n2_n3_three_node_processes_form_fail_over_and_leave() {
    let dir = tempfile::tempdir().unwrap();
    let primary = dir.path().join("primary");
    let standby = dir.path().join("standby");
    std::fs::create_dir(&primary).unwrap();
    std::fs::create_dir(&standby).unwrap();
    let mut nodes: Vec<NodeProcess> = ["node-a", "node-b", "node-c"]
        .iter()
        .map(|n| NodeProcess::start(dir.path(), n, &primary, &standby))
        .collect();

    // Start: live once the admin port serves; ready once the node is listed.
    for n in &nodes {
        wait_for(&format!("{} live", n.name), Duration::from_secs(20), || {
            get(n.admin, "/health/live").is_some_and(|(s, _)| s == 200)
        });
        wait_for(
            &format!("{} ready", n.name),
            Duration::from_secs(20),
            || get(n.admin, "/health/ready").is_some_and(|(s, _)| s == 200),
        );
    }
    // Every node's view agrees: the same three members, the same hash.
    wait_for(
        "three members everywhere, one hash",
        Duration::from_secs(20),
        || {
            let views: Vec<_> = nodes.iter().map(NodeProcess::members).collect();
            views
                .iter()
                .all(|v| v["members"].as_array().unwrap().len() == 3)
                && views.iter().all(|v| v["hash"] == views[0]["hash"])
        },
    );
    let a = nodes[0].members();
    assert_eq!(a["cluster"], "e2e");
    assert_eq!(a["active_provider"], "primary");
    let me = a["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["self"] == true)
        .unwrap();
    assert_eq!(me["node"], "node-a");

    // The providers view names both providers, the primary active.
    let (status, body) = get(nodes[0].admin, "/cluster/providers").unwrap();
    assert_eq!(status, 200);
    let p: serde_json::Value = serde_json::from_str(&body).unwrap();
    let ids: Vec<_> = p["providers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["id"].as_str().unwrap().to_owned(),
                x["active"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        ids,
        vec![("primary".to_owned(), true), ("standby".to_owned(), false)]
    );

    // Metrics: Prometheus text, described, with the node label.
    let (status, text) = get(nodes[0].admin, "/metrics").unwrap();
    assert_eq!(status, 200);
    let samples = parse_prometheus(&text);
    for name in [
        "provisioning_members",
        "provisioning_status",
        "remoting_associations",
        "provisioning_provider_health",
    ] {
        assert!(
            samples
                .iter()
                .any(|(n, l, _)| n == name && l.contains("node=\"node-a\"")),
            "{name} with node=\"node-a\" missing:\n{text}"
        );
        assert!(
            text.contains(&format!("# HELP {name} ")),
            "{name} is not described"
        );
    }
    let members_gauge = samples
        .iter()
        .find(|(n, l, _)| n == "provisioning_members" && l.contains("node=\"node-a\""))
        .unwrap();
    assert_eq!(members_gauge.2, 3.0);

    // Mutating endpoints need no token on loopback without one configured,
    // and a garbage request is a 4xx, not a crash.
    let (status, _) = http("GET", nodes[0].admin, "/cluster/leave").unwrap();
    assert_eq!(status, 405, "leave is POST only");
    let (status, _) = get(nodes[0].admin, "/nowhere").unwrap();
    assert_eq!(status, 404);
    let mut s = TcpStream::connect(("127.0.0.1", nodes[0].admin)).unwrap();
    s.write_all(b"\x00\x01garbage\r\n\r\n").unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    assert!(
        get(nodes[0].admin, "/health/live").is_some_and(|(s, _)| s == 200),
        "still serving after garbage"
    );

    // Failover: the primary directory disappears; every node fails over to
    // the standby, stays ready, and counts one failover.
    let moved = dir.path().join("primary-gone");
    std::fs::rename(&primary, &moved).unwrap();
    wait_for("standby active everywhere", Duration::from_secs(20), || {
        nodes
            .iter()
            .all(|n| n.members()["active_provider"] == "standby")
    });
    for n in &nodes {
        assert!(n.members()["failovers"].as_u64().unwrap() >= 1);
        assert_eq!(
            get(n.admin, "/health/ready").unwrap().0,
            200,
            "{} ready on the standby",
            n.name
        );
        assert_eq!(n.up_members().len(), 3);
    }

    // SIGTERM on node-c: a graceful leave the others see within 2 s, and
    // exit code 0.
    let c = nodes.pop().unwrap();
    let mut c = c;
    c.terminate();
    let start = Instant::now();
    wait_for("node-c gone from a and b", Duration::from_secs(2), || {
        nodes
            .iter()
            .all(|n| !n.up_members().contains(&"node-c".to_owned()))
    });
    let seen_after = start.elapsed();
    let status = c.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "exit {status:?}:\n{}", c.log());
    let log = c.log();
    assert!(
        log.contains("left the cluster"),
        "the leave is logged:\n{log}"
    );
    eprintln!("node-c's leave seen by the others after {seen_after:?}");

    // N3: the operator's lines were logged at the default level.
    let a_log = nodes[0].log();
    assert!(
        a_log.contains("active provider changed"),
        "failover logged:\n{a_log}"
    );
    assert!(
        !a_log.contains("ERROR"),
        "no error in a healthy run:\n{a_log}"
    );
}

/// N1: `check-config` prints the effective configuration with secrets
/// redacted (exit 0), and refuses bad input with one line naming the file,
/// the provider and the field (exit 2); `run` refuses the same way.
#[test]
fn n1_check_config_and_run_exit_2_with_one_line_on_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "very-secret\n").unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        format!(
            "cluster = \"c\"\nnode_id = \"n\"\nsecret_file = {:?}\n[[providers]]\nid = \"m\"\nkind = \"memory\"\nsettings = {{ keepalive = \"2s\" }}\n",
            secret.display().to_string()
        ),
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["check-config"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains("keepalive = \"2s\"") && shown.contains("<redacted>"),
        "{shown}"
    );
    assert!(!shown.contains("very-secret"), "{shown}");

    let cases = [
        ("missing.toml", None, "missing.toml: cannot read the file"),
        (
            "syntax.toml",
            Some("cluster = \"c\nnode_id = \"n\""),
            "syntax.toml: not valid TOML",
        ),
        (
            "unknown.toml",
            Some("cluster = \"c\"\nnode_id = \"n\"\nbnid = 1"),
            "unknown.toml: bnid: unknown key",
        ),
        (
            "type.toml",
            Some("cluster = \"c\"\nnode_id = \"n\"\n[admin]\nenabled = \"maybe\""),
            "type.toml: admin.enabled:",
        ),
        (
            "duration.toml",
            Some(
                "cluster = \"c\"\nnode_id = \"n\"\n[[providers]]\nid = \"consul-main\"\nkind = \"consul\"\nsettings = { wait = \"5x\" }",
            ),
            "duration.toml: providers[consul-main].settings.wait: \"5x\" is not a duration",
        ),
        (
            "range.toml",
            Some(
                "cluster = \"c\"\nnode_id = \"n\"\n[[providers]]\nid = \"consul-main\"\nkind = \"consul\"\nsettings = { wait = \"0s\" }",
            ),
            "range.toml: providers[consul-main].settings.wait:",
        ),
        (
            "kind.toml",
            Some(
                "cluster = \"c\"\nnode_id = \"n\"\n[[providers]]\nid = \"p\"\nkind = \"zookeeper\"",
            ),
            "kind.toml: providers[p].kind: unknown provider kind",
        ),
        (
            "dup.toml",
            Some(
                "cluster = \"c\"\nnode_id = \"n\"\n[[providers]]\nid = \"p\"\nkind = \"memory\"\n[[providers]]\nid = \"p\"\nkind = \"file\"\nsettings = { dir = \"/tmp\" }",
            ),
            "dup.toml: providers[p].id: two providers have the id",
        ),
        (
            "secret.toml",
            Some("cluster = \"c\"\nnode_id = \"n\"\nsecret_file = \"/nonexistent/s\""),
            "secret.toml: secret_file: cannot read /nonexistent/s",
        ),
        (
            "unsafe.toml",
            Some(
                "cluster = \"c\"\nnode_id = \"n\"\nbind = \"0.0.0.0:0\"\nadvertise_host = \"198.18.0.1\"\n[[providers]]\nid = \"m\"\nkind = \"memory\"",
            ),
            "unsafe.toml: bind: Remoting on 0.0.0.0:0 (not loopback) needs [remoting.tls] or a cluster secret",
        ),
    ];
    for (file, content, want) in cases {
        let path = dir.path().join(file);
        if let Some(c) = content {
            std::fs::write(&path, c).unwrap();
        }
        for args in [vec!["check-config"], vec!["run", "--config"]] {
            let out = Command::new(BIN).args(&args).arg(&path).output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{args:?} {file}: {err}");
            let line = err.trim_end();
            assert!(!line.contains('\n'), "{args:?} {file}: one line: {err}");
            assert!(
                line.starts_with(&format!("{}/{want}", dir.path().display())),
                "{args:?} {file}:\n got: {line}\nwant: .../{want}"
            );
        }
    }
}

/// A top-level `key = "value"` of a TOML text (the examples' `cluster`).
fn top_level(text: &str, key: &str) -> Option<String> {
    text.lines()
        .take_while(|l| !l.starts_with('['))
        .find_map(|l| l.strip_prefix(&format!("{key} = \"")))
        .and_then(|rest| rest.split('"').next())
        .map(str::to_owned)
}

/// N1: every example configuration shipped in `deploy/config` is valid
/// (`check-config` exits 0), with the files it names (secrets, CA bundles)
/// created under a temporary root; the Remoting TLS files (issue 14) are a
/// real CA and a certificate naming the example's node.
#[test]
fn n1_every_shipped_example_config_checks() {
    let root = tempfile::tempdir().unwrap();
    let pki = test_pki::NodePki::generate(&root.path().join("pki")).unwrap();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/config");
    let mut seen = 0;
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&examples)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("toml"))
        .collect();
    // The Kubernetes manifests' configuration: its node id comes from the
    // pod name (CLUSTER_NODE_ID), as in the StatefulSet.
    paths.push(examples.join("../kubernetes/node.toml"));
    for path in paths {
        seen += 1;
        let mut text = std::fs::read_to_string(&path).unwrap();
        // Absolute paths move under the temporary root; the files they
        // name are created (a secret is any non-empty text).
        for prefix in [
            "/run/secrets/",
            "/etc/cluster-node/",
            "/var/lib/cluster-node",
            "/tmp/cluster-node-demo",
        ] {
            let moved = format!("{}{prefix}", root.path().display());
            text = text.replace(&format!("\"{prefix}"), &format!("\"{moved}"));
        }
        let cluster = top_level(&text, "cluster").unwrap();
        // CLUSTER_NODE_ID (set below, as the StatefulSet does) wins over
        // a file's node_id.
        let node = "example-node-0";
        let node_cert = pki
            .node(
                &format!("{cluster}-{node}"),
                &format!("cluster://{cluster}/{node}"),
                test_pki::NodeCert::Valid,
            )
            .unwrap();
        for quoted in text.split('"').skip(1).step_by(2) {
            if let Some(rest) = quoted.strip_prefix(&root.path().display().to_string()) {
                let p = PathBuf::from(quoted);
                // PEM files get real PEM: a CA bundle, or the node's
                // certificate or key.
                let file = rest.rsplit('/').next().unwrap_or_default();
                let tls_source = if !(file.ends_with(".crt")
                    || file.ends_with(".pem")
                    || file.ends_with(".key"))
                {
                    None
                } else if file.contains("ca") {
                    Some(&pki.ca)
                } else if file.contains("key") {
                    Some(&node_cert.key)
                } else {
                    Some(&node_cert.cert)
                };
                if let Some(source) = tls_source {
                    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                    std::fs::copy(source, &p).unwrap();
                } else if rest.ends_with("-demo")
                    || rest.ends_with("cluster-node")
                    || rest.ends_with("members")
                {
                    std::fs::create_dir_all(&p).unwrap();
                } else {
                    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                    std::fs::write(&p, "placeholder\n").unwrap();
                }
            }
        }
        let copy = root.path().join(format!(
            "{}-{}",
            path.parent()
                .unwrap()
                .file_name()
                .unwrap()
                .to_string_lossy(),
            path.file_name().unwrap().to_string_lossy()
        ));
        std::fs::write(&copy, &text).unwrap();
        let out = Command::new(BIN)
            .arg("check-config")
            .arg(&copy)
            // The Kubernetes kind infers its client the way kube-rs does;
            // give it a kubeconfig so the check does not depend on the host.
            .env("KUBECONFIG", write_kubeconfig(root.path()))
            .env("POD_NAMESPACE", "default")
            .env("CLUSTER_NODE_ID", "example-node-0")
            // The StatefulSet sets it from the pod IP (downward API).
            .env("CLUSTER_ADVERTISE_HOST", "198.18.0.10")
            .env_remove("CONSUL_HTTP_ADDR")
            .env_remove("ETCDCTL_ENDPOINTS")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(
        seen >= 6,
        "an example per provider in {}",
        examples.display()
    );
}

fn write_kubeconfig(dir: &Path) -> PathBuf {
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: http://127.0.0.1:1\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\n    namespace: default\nusers:\n- name: u\n  user: {}\ncurrent-context: c\n",
    )
    .unwrap();
    path
}

/// Issue 14 over the real binary: two node processes with `[remoting.tls]`
/// form a cluster over mutual TLS and export their certificate's expiry;
/// a third whose certificate comes from another CA never gets an
/// association, and the others log why (`remoting.tls.unknown_ca`).
#[test]
fn i14_node_processes_associate_over_mutual_tls_and_refuse_another_ca() {
    let dir = tempfile::tempdir().unwrap();
    let pki = test_pki::NodePki::generate(&dir.path().join("pki")).unwrap();
    let primary = dir.path().join("primary");
    let standby = dir.path().join("standby");
    std::fs::create_dir(&primary).unwrap();
    std::fs::create_dir(&standby).unwrap();
    let tls = |name: &str, which: test_pki::NodeCert| {
        let pair = pki
            .node(name, &format!("cluster://e2e/{name}"), which)
            .unwrap();
        format!(
            "\n[remoting.tls]\ncert_file = {:?}\nkey_file = {:?}\nca_file = {:?}\n",
            pair.cert, pair.key, pki.ca
        )
    };
    let good: Vec<NodeProcess> = ["node-a", "node-b"]
        .iter()
        .map(|n| {
            let extra = tls(n, test_pki::NodeCert::Valid);
            NodeProcess::start_with(dir.path(), n, &primary, &standby, &extra)
        })
        .collect();
    // `remoting_peer_up{peer}`: 1 while the association is up.
    let peer_up = |n: &NodeProcess, peer: &str| -> Option<f64> {
        let (_, text) = get(n.admin, "/metrics").unwrap_or_default();
        parse_prometheus(&text)
            .into_iter()
            .find(|(name, labels, _)| {
                name == "remoting_peer_up" && labels.contains(&format!("peer=\"{peer}\""))
            })
            .map(|s| s.2)
    };
    wait_for("an association over TLS", Duration::from_secs(20), || {
        peer_up(&good[0], "node-b") == Some(1.0) && peer_up(&good[1], "node-a") == Some(1.0)
    });
    let (status, text) = get(good[0].admin, "/metrics").unwrap();
    assert_eq!(status, 200);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let expiry = parse_prometheus(&text)
        .into_iter()
        .find(|(name, _, _)| name == "remoting_tls_certificate_expiry_timestamp_seconds")
        .expect("the expiry gauge is exported");
    assert!(expiry.2 > now, "{expiry:?}");

    let extra = tls("node-c", test_pki::NodeCert::OtherCa);
    let intruder = NodeProcess::start_with(dir.path(), "node-c", &primary, &standby, &extra);
    wait_for(
        "node-a logs the refusal of node-c's certificate",
        Duration::from_secs(20),
        || good[0].log().contains("remoting.tls.unknown_ca"),
    );
    // Listed by the shared directory, tried (its series exists), and
    // never associated, for a few heartbeats more.
    for n in &good {
        wait_for(
            &format!("{} tracks node-c", n.name),
            Duration::from_secs(20),
            || peer_up(n, "node-c").is_some(),
        );
    }
    std::thread::sleep(Duration::from_secs(1));
    for n in &good {
        assert_eq!(peer_up(n, "node-c"), Some(0.0), "{}", n.name);
    }
    drop(intruder);
}
