//! One node per process: three processes on one machine form a cluster
//! over the `file` provider (a shared directory) and real TCP.
//!
//! `cargo run --release --example multiprocess`
//!
//! Without arguments it is a launcher: it makes a temporary directory,
//! starts three copies of itself as nodes `a`, `b` and `c`, and drives them
//! through their standard input: grains asked from `a`, then node `c`
//! killed with SIGKILL (a real crash: no goodbye, its member file left
//! behind), `a` and `b` detecting it by missing heartbeats and
//! quarantining it, `c`'s grains answering from their new owners, and a
//! graceful leave. It exits non-zero if any step does not happen in time.
//!
//! Each node can also be started by hand, one per terminal:
//!
//! ```text
//! mkdir -p /tmp/cluster
//! cargo run --release --example multiprocess -- node a /tmp/cluster
//! cargo run --release --example multiprocess -- node b /tmp/cluster
//! ```
//!
//! A node prints its events (`members ...`, `quarantined ...`) and reads
//! commands, one per line: `ask <grain>` (answers `answer <grain> <node>
//! <count>`), `leave`.

use std::process::{ExitCode, Stdio};
use std::time::Duration;

use actor_runtime::ActorSystem;
use cluster::Cluster;
use cluster::placement::Grain;
use cluster::remoting::RemotingConfig;
use cluster_core::events::{RemoteNodeQuarantined, TopologyUpdated};
use cluster_core::{NodeId, ProviderDescriptor, ProviderId};
use examples::Timeline;
use provider_file::FileKind;
use provisioning_actors::failover::FailoverConfig;
use provisioning_actors::{ProviderKinds, ProvisioningConfig};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

type Error = Box<dyn std::error::Error>;

struct Counter {
    node: String,
    value: u64,
}

impl Grain for Counter {
    type Request = ();
    type Response = (String, u64);

    async fn handle(&mut self, (): ()) -> (String, u64) {
        self.value += 1;
        (self.node.clone(), self.value)
    }
}

/// A node process: one cluster node, commands on stdin, events on stdout.
async fn node(name: String, dir: String) -> Result<(), Error> {
    let system = ActorSystem::new(&name);
    let host = name.clone();
    let cluster = Cluster::builder(&system, "multiprocess", NodeId::new(&name)?)
        .bind("127.0.0.1:0")
        .kinds(ProviderKinds::new().with(FileKind))
        .provider(
            ProviderDescriptor::new(ProviderId::new("dir")?, "file", 0)
                .with_setting("dir", dir)
                .with_setting("poll_ms", "100"),
        )
        .provisioning_config(ProvisioningConfig {
            failover: FailoverConfig {
                startup_grace: Duration::from_millis(100),
                ..FailoverConfig::default()
            },
            ..ProvisioningConfig::default()
        })
        .remoting_config(
            RemotingConfig::new("multiprocess")
                .with_heartbeat_interval(Duration::from_millis(200))
                .with_failure_timeout(Duration::from_secs(1)),
        )
        .grain("counter", move |_id| Counter {
            node: host.clone(),
            value: 0,
        })
        .start()
        .await?;
    let es = system.event_stream();
    let _topology = es.subscribe_fn(|e: &TopologyUpdated| {
        let names: Vec<&str> = e
            .topology
            .members
            .iter()
            .map(|m| m.node_id.as_str())
            .collect();
        println!("members {} {}", e.topology.status.as_str(), names.join(","));
    });
    let _quarantine = es.subscribe_fn(|e: &RemoteNodeQuarantined| {
        println!("quarantined {} {}", e.node, e.reason);
    });
    println!(
        "started {} {}",
        cluster.local().address,
        cluster.local().incarnation
    );
    // A topology published before the subscriptions is printed here.
    let t = cluster.topology().await?;
    let names: Vec<&str> = t.members.iter().map(|m| m.node_id.as_str()).collect();
    println!("members {} {}", t.status.as_str(), names.join(","));
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["ask", grain] => match cluster.request::<Counter>("counter", grain, &()).await {
                Ok((node, count)) => println!("answer {grain} {node} {count}"),
                Err(e) => println!("error {grain} {} {e}", e.code()),
            },
            ["leave"] => break,
            [] => {}
            _ => println!("error unknown command: {line}"),
        }
    }
    let report = cluster.leave(Duration::from_secs(5)).await;
    println!("left {}", report.handed_off);
    system.shutdown().await;
    Ok(())
}

/// The launcher's view of one node process.
struct Proc {
    name: &'static str,
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Proc {
    async fn spawn(name: &'static str, dir: &str) -> Result<Self, Error> {
        let mut child = Command::new(std::env::current_exe()?)
            .args(["node", name, dir])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let stdin = child.stdin.take().ok_or("no stdin")?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        Ok(Self {
            name,
            child,
            stdin,
            lines: BufReader::new(stdout).lines(),
        })
    }

    async fn send(&mut self, line: &str) -> Result<(), Error> {
        self.stdin.write_all(format!("{line}\n").as_bytes()).await?;
        self.stdin.flush().await?;
        Ok(())
    }

    /// Reads lines until one satisfies `want`; fails after `limit`.
    async fn expect(
        &mut self,
        tl: &Timeline,
        limit: Duration,
        want: impl Fn(&str) -> bool,
    ) -> Result<String, Error> {
        let name = self.name;
        let read = async {
            while let Some(line) = self.lines.next_line().await? {
                if want(&line) {
                    tl.log(format!("{name}: {line}"));
                    return Ok::<_, Error>(line);
                }
            }
            Err(format!("{name} exited").into())
        };
        tokio::time::timeout(limit, read)
            .await
            .map_err(|_| format!("{name}: expected line not seen within {limit:?}"))?
    }
}

const GRAINS: [&str; 6] = ["alice", "bob", "carol", "dave", "erin", "frank"];

async fn ask_all(tl: &Timeline, p: &mut Proc) -> Result<Vec<(String, String, u64)>, Error> {
    let mut out = Vec::new();
    for g in GRAINS {
        p.send(&format!("ask {g}")).await?;
        let line = p
            .expect(tl, Duration::from_secs(5), |l| {
                l.starts_with("answer ") || l.starts_with("error ")
            })
            .await?;
        let w: Vec<&str> = line.split_whitespace().collect();
        match w.as_slice() {
            ["answer", g, node, count] => {
                out.push(((*g).to_owned(), (*node).to_owned(), count.parse::<u64>()?))
            }
            _ => return Err(format!("request failed: {line}").into()),
        }
    }
    Ok(out)
}

async fn launcher() -> Result<(), Error> {
    let tl = Timeline::start();
    let dir = std::env::temp_dir().join(format!("multiprocess-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let _cleanup = RemoveOnDrop(dir.clone());
    let dir_s = dir.to_string_lossy().into_owned();
    tl.log(format!("shared member directory {dir_s}"));
    let mut procs = Vec::new();
    for name in ["a", "b", "c"] {
        let mut p = Proc::spawn(name, &dir_s).await?;
        p.expect(&tl, Duration::from_secs(10), |l| l.starts_with("started "))
            .await?;
        procs.push(p);
    }
    for p in &mut procs {
        p.expect(&tl, Duration::from_secs(10), |l| {
            l == "members active a,b,c"
        })
        .await?;
    }
    tl.log("ok: three processes see one cluster");
    let [a, b, c] = &mut procs[..] else {
        return Err("three processes expected".into());
    };
    let first = ask_all(&tl, a).await?;
    let on_c: Vec<String> = first
        .iter()
        .filter(|(_, n, _)| n == "c")
        .map(|(g, _, _)| g.clone())
        .collect();
    tl.log(format!(
        "ok: grains answer from their owners; on c: {on_c:?}"
    ));

    tl.log(format!("killing c (pid {:?}) with SIGKILL", c.child.id()));
    c.child.kill().await?;
    for p in [&mut *a, &mut *b] {
        p.expect(&tl, Duration::from_secs(10), |l| {
            l.starts_with("quarantined c")
        })
        .await?;
    }
    tl.log("ok: a and b detected the crash by heartbeats and quarantined c");
    let second = ask_all(&tl, a).await?;
    for ((g, n1, c1), (_, n2, c2)) in first.iter().zip(&second) {
        if on_c.contains(g) {
            if n2 == "c" || *c2 != 1 {
                return Err(format!("{g} did not move off c").into());
            }
        } else if n1 != n2 || *c2 != c1 + 1 {
            return Err(format!("{g} moved although its owner lives").into());
        }
    }
    tl.log("ok: c's grains answer from their new owners; the others kept their state");

    for p in [&mut *a, &mut *b] {
        p.send("leave").await?;
        p.expect(&tl, Duration::from_secs(10), |l| l.starts_with("left "))
            .await?;
        let status = tokio::time::timeout(Duration::from_secs(10), p.child.wait()).await??;
        if !status.success() {
            return Err(format!("{} exited with {status}", p.name).into());
        }
    }
    let left: Vec<String> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    tl.log(format!(
        "member files left: {left:?} (c crashed without deregistering)"
    ));
    Ok(())
}

/// Removes the shared directory however the launcher ends.
struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [mode, name, dir] if mode == "node" => match node(name.clone(), dir.clone()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("node {name}: {e}");
                ExitCode::FAILURE
            }
        },
        [] => examples::finish("multiprocess", launcher().await),
        _ => {
            eprintln!("usage: multiprocess [node <name> <dir>]");
            ExitCode::from(2)
        }
    }
}
