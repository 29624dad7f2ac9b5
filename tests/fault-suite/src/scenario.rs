//! The scenario runner: hosts, etcd, nodes and agents in namespaces, the
//! nemesis's steps applied one after another, then the checker and the
//! report.
//!
//! ```text
//! Net (guard) ─► etcd host ─► n1..nN hosts ─► a cluster-node in each
//!   ─► an agent in each (workload + observations) ─► converged?
//!   ─► for each step: apply, hold, heal, record the Fault, wait to converge
//!   ─► quiet period ─► stop agents and processes ─► check ─► report
//! ```
//!
//! Every process is held by a [`Proc`] guard that kills it on drop, and
//! the namespaces by the [`Net`] guard, so a failing run leaves nothing
//! behind.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::checker::{self, Timing, Verdict};
use crate::history::{Appender, Fault, FaultKind, Observation, Request, now_ms, read_lines};
use crate::hosts::Net;
use crate::nemesis::Step;
use crate::workload;

/// The membership provider of the nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Provider {
    /// A real etcd in a namespace of its own.
    Etcd,
    /// A shared directory (the namespaces share the file system).
    File,
}

impl Provider {
    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Etcd => "etcd",
            Self::File => "file",
        }
    }
}

/// How the nodes detect failed members (`[remoting.monitoring] mode`,
/// issue 17).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Monitoring {
    /// Every node heartbeats every other and reports on its own detector
    /// (the default).
    #[default]
    AllToAll,
    /// Ring monitoring: k monitors per node, a quorum of votes.
    Ring,
}

/// Ring mode's `probe_interval`: the suite's heartbeat interval, so a
/// round takes as long as an all-to-all heartbeat.
pub const RING_PROBE_INTERVAL_MS: u64 = 200;
/// Ring mode's `probe_timeout` (less than the interval, room for the
/// indirect probes in the same round).
pub const RING_PROBE_TIMEOUT_MS: u64 = 80;
/// Ring mode's `suspicion_mult` (the default, written out so the bounds
/// and the nodes use the same value).
pub const RING_SUSPICION_MULT: f64 = 0.33;
/// Ring mode's `vote_ttl`: ten rounds, as the default (10 s) is for 1 s
/// rounds. With the default a vote whose retraction was lost while
/// associations churned (a heal, an etcd restart) stayed live for 50
/// rounds of 200 ms and could join a later, unrelated suspicion (R-2 in
/// docs/reliability.md).
pub const RING_VOTE_TTL_MS: u64 = 2000;

impl Monitoring {
    /// Its name on the command line and in `run.json`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AllToAll => "all-to-all",
            Self::Ring => "ring",
        }
    }

    /// `all-to-all` (or `all_to_all`) or `ring`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "all-to-all" | "all_to_all" => Some(Self::AllToAll),
            "ring" => Some(Self::Ring),
            _ => None,
        }
    }

    /// The `[remoting.monitoring]` table the nodes get (empty for
    /// all-to-all: the default needs none).
    pub fn config_section(self) -> String {
        match self {
            Self::AllToAll => String::new(),
            Self::Ring => format!(
                "\n[remoting.monitoring]\nmode = \"ring\"\nprobe_interval = \"{RING_PROBE_INTERVAL_MS}ms\"\nprobe_timeout = \"{RING_PROBE_TIMEOUT_MS}ms\"\nsuspicion_mult = {RING_SUSPICION_MULT}\nvote_ttl = \"{RING_VOTE_TTL_MS}ms\"\n"
            ),
        }
    }
}

fn default_monitoring() -> String {
    Monitoring::AllToAll.as_str().to_owned()
}

/// A run's settings.
#[derive(Clone, Debug)]
pub struct Options {
    /// How many nodes.
    pub nodes: usize,
    /// The failure detection the nodes run.
    pub monitoring: Monitoring,
    /// The provider.
    pub provider: Provider,
    /// The seed the schedule was made from (reported).
    pub seed: u64,
    /// The faults to apply.
    pub steps: Vec<Step>,
    /// Grains of the workload.
    pub grains: usize,
    /// Pause between two requests of one grain on one client (ms).
    pub interval_ms: u64,
    /// `[remoting] failure_timeout` of the nodes (ms).
    pub failure_timeout_ms: u64,
    /// etcd lease TTL (ms, whole seconds).
    pub lease_ttl_ms: u64,
    /// etcd `keepalive`: an unchanged snapshot is sent again after this
    /// long, and a quarantine is lifted only at a later snapshot (R4.4), so
    /// it bounds how fast the views agree after a heal (ms).
    pub keepalive_ms: u64,
    /// How long a cut or pause holds (ms).
    pub fault_ms: u64,
    /// Steady time after each fault has converged (ms).
    pub gap_ms: u64,
    /// The quiet period at the end (ms).
    pub quiet_ms: u64,
    /// Stop applying steps once this long has passed since the cluster
    /// formed (the long run's duration less its quiet period); `None`:
    /// apply every step.
    pub apply_for_ms: Option<u64>,
    /// Where the run's directory is made (`<out>/<run-id>/`).
    pub out: PathBuf,
    /// The `cluster-node` program.
    pub node_bin: PathBuf,
    /// The `fault-suite` program (for the agents).
    pub agent_bin: PathBuf,
    /// The `etcd` program.
    pub etcd_bin: PathBuf,
}

/// What a run produced.
#[derive(Debug)]
pub struct Outcome {
    /// The run's directory (report.md, timeline.png, histories, logs).
    pub dir: PathBuf,
    /// The verdict.
    pub verdict: Verdict,
}

/// A child process killed (SIGKILL) on drop.
#[derive(Debug)]
pub struct Proc {
    child: Option<Child>,
}

impl Proc {
    fn spawn(mut cmd: Command, log: &Path) -> Result<Self, String> {
        let err = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| format!("{}: {e}", log.display()))?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .map_err(|e| format!("spawn {cmd:?}: {e}"))?;
        Ok(Self { child: Some(child) })
    }

    fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn signal(&self, sig: &str) {
        if let Some(pid) = self.pid() {
            let _ = Command::new("kill")
                .args([sig, &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
    }

    /// SIGKILL and reap.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Waits up to `bound` for the exit, then kills.
    fn wait_or_kill(&mut self, bound: Duration) {
        let start = Instant::now();
        while start.elapsed() < bound {
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(_)) = c.try_wait()
            {
                self.child = None;
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // A stopped process must be continued to die promptly.
        self.signal("-CONT");
        self.kill();
    }
}

struct Cluster {
    net: Net,
    dir: PathBuf,
    opts: Options,
    names: Vec<String>,
    nodes: Vec<Option<Proc>>,
    agents: Vec<Proc>,
    etcd: Option<Proc>,
}

const ADMIN: &str = "127.0.0.1:8558";

impl Cluster {
    fn etcd_ip(&self) -> String {
        self.net
            .host("etcd")
            .map(|h| h.ip.to_string())
            .unwrap_or_default()
    }

    fn start_etcd(&mut self) -> Result<(), String> {
        let host = self.net.host("etcd").ok_or("no etcd host")?.clone();
        let client = format!("http://{}:2379", host.ip);
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &host.ns])
            .arg(&self.opts.etcd_bin)
            .args(["--name", "fs", "--data-dir"])
            .arg(self.dir.join("etcd-data"))
            .args([
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
                "--listen-peer-urls",
                "http://127.0.0.1:2380",
                "--initial-advertise-peer-urls",
                "http://127.0.0.1:2380",
                "--initial-cluster",
                "fs=http://127.0.0.1:2380",
                "--log-level",
                "warn",
            ]);
        self.etcd = Some(Proc::spawn(cmd, &self.dir.join("etcd.log"))?);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            let ok = Command::new("ip")
                .args(["netns", "exec", &host.ns, "etcdctl", "--endpoints", &client])
                .args(["--command-timeout=1s", "endpoint", "health"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err("etcd did not become healthy within 20s".into())
    }

    fn config(&self, i: usize) -> String {
        let name = &self.names[i];
        let ip = self
            .net
            .host(name)
            .map(|h| h.ip.to_string())
            .unwrap_or_default();
        let provider = match self.opts.provider {
            Provider::Etcd => format!(
                "[[providers]]\nid = \"etcd\"\nkind = \"etcd\"\nsettings = {{ endpoints = [\"http://{}:2379\"], lease_ttl = \"{}s\", keepalive = \"{}ms\", request_timeout = \"1s\", connect_timeout = \"1s\", retry_max = \"1s\" }}\n",
                self.etcd_ip(),
                self.opts.lease_ttl_ms / 1000,
                self.opts.keepalive_ms
            ),
            Provider::File => format!(
                "[[providers]]\nid = \"dir\"\nkind = \"file\"\nsettings = {{ dir = {:?}, poll = \"100ms\" }}\n",
                self.dir.join("members")
            ),
        };
        format!(
            r#"# Written by the fault suite (issue 16).
cluster = "faults"
node_id = "{name}"
bind = "{ip}:4000"
secret = "fault-suite-cluster-secret"

[admin]
bind = "{ADMIN}"

[diagnostics]
probe_counter = true

[remoting]
heartbeat_interval = "200ms"
failure_timeout = "{ft}ms"
{monitoring}
[placement]
request_timeout = "2s"

[leave]
deadline = "5s"

{provider}"#,
            ft = self.opts.failure_timeout_ms,
            monitoring = self.opts.monitoring.config_section(),
        )
    }

    fn start_node(&mut self, i: usize) -> Result<(), String> {
        let name = self.names[i].clone();
        let ns = self.net.host(&name).ok_or("no host")?.ns.clone();
        let path = self.dir.join(format!("{name}.toml"));
        std::fs::write(&path, self.config(i)).map_err(|e| e.to_string())?;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &ns])
            .arg(&self.opts.node_bin)
            .args(["run", "--config"])
            .arg(&path)
            .env(
                "RUST_LOG",
                std::env::var("FAULT_SUITE_RUST_LOG").unwrap_or_else(|_| "info".into()),
            );
        self.nodes[i] = Some(Proc::spawn(cmd, &self.dir.join(format!("{name}.log")))?);
        Ok(())
    }

    fn start_agent(&mut self, i: usize) -> Result<(), String> {
        let name = self.names[i].clone();
        let ns = self.net.host(&name).ok_or("no host")?.ns.clone();
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &ns])
            .arg(&self.opts.agent_bin)
            .args(["agent", "--node", &name, "--admin", ADMIN])
            .args(["--grains", &self.opts.grains.to_string()])
            .args(["--interval-ms", &self.opts.interval_ms.to_string()])
            .arg("--dir")
            .arg(&self.dir);
        let agent = Proc::spawn(cmd, &self.dir.join(format!("agent-{name}.log")))?;
        self.agents.push(agent);
        Ok(())
    }

    /// Whether `node` is ready by an observation newer than `since`.
    fn ready_since(&self, node: &str, since: u64) -> bool {
        workload::read_status(&self.dir, node)
            .is_some_and(|s| s.ready && s.observation.t_ms >= since)
    }

    fn wait_ready(&self, node: &str, since: u64, bound: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < bound {
            if self.ready_since(node, since) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// Every node ready, one hash, every node up, by observations newer
    /// than `since`.
    fn converged(&self, since: u64) -> bool {
        let mut hashes = std::collections::BTreeSet::new();
        for n in &self.names {
            let Some(s) = workload::read_status(&self.dir, n) else {
                return false;
            };
            let o = &s.observation;
            if !s.ready || o.t_ms < since || o.up.len() != self.names.len() {
                return false;
            }
            hashes.insert(o.hash.clone());
        }
        hashes.len() == 1
    }

    /// Waits until the nodes agree and keep agreeing for
    /// [`checker::STABLE_MS`], at most `bound`.
    fn wait_converged(&self, bound: Duration) -> bool {
        let since = now_ms();
        let start = Instant::now();
        let mut agreeing_since: Option<Instant> = None;
        while start.elapsed() < bound {
            if self.converged(since) {
                let t = *agreeing_since.get_or_insert_with(Instant::now);
                if t.elapsed() >= Duration::from_millis(checker::STABLE_MS) {
                    return true;
                }
            } else {
                agreeing_since = None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    fn index(&self, node: &str) -> Result<usize, String> {
        self.names
            .iter()
            .position(|n| n == node)
            .ok_or_else(|| format!("no node {node}"))
    }

    fn others(&self, node: &str) -> Vec<String> {
        self.names.iter().filter(|n| *n != node).cloned().collect()
    }

    /// Applies `step`, holds it, heals it; returns (start, heal).
    fn apply(&mut self, step: &Step) -> Result<(u64, u64), String> {
        let hold = Duration::from_millis(step.hold_ms);
        let bound = Duration::from_secs(30);
        let start = now_ms();
        match step.kind {
            FaultKind::Kill => {
                let i = self.index(&step.targets[0])?;
                if let Some(p) = self.nodes[i].as_mut() {
                    p.kill();
                }
                std::thread::sleep(hold);
                let restarted = now_ms();
                self.start_node(i)?;
                self.wait_ready(&step.targets[0], restarted, bound);
            }
            FaultKind::Pause => {
                let i = self.index(&step.targets[0])?;
                if let Some(p) = &self.nodes[i] {
                    p.signal("-STOP");
                }
                std::thread::sleep(hold);
                if let Some(p) = &self.nodes[i] {
                    p.signal("-CONT");
                }
            }
            FaultKind::Partition => {
                let majority: Vec<String> = self
                    .names
                    .iter()
                    .filter(|n| !step.targets.contains(n))
                    .cloned()
                    .collect();
                for m in &step.targets {
                    for n in &majority {
                        self.net.cut_both(m, n)?;
                    }
                }
                std::thread::sleep(hold);
                self.net.heal_all()?;
            }
            FaultKind::OneWay => {
                let t = step.targets[0].clone();
                for n in self.others(&t) {
                    self.net.cut(&t, &n)?;
                }
                std::thread::sleep(hold);
                self.net.heal_all()?;
            }
            FaultKind::EtcdCut => {
                self.net.cut_both(&step.targets[0], "etcd")?;
                std::thread::sleep(hold);
                self.net.heal_all()?;
            }
            FaultKind::EtcdRestart => {
                if let Some(p) = self.etcd.as_mut() {
                    p.kill();
                }
                std::thread::sleep(hold);
                self.start_etcd()?;
            }
            FaultKind::Rolling => {
                for t in step.targets.clone() {
                    let i = self.index(&t)?;
                    if let Some(p) = self.nodes[i].as_mut() {
                        p.signal("-TERM");
                        p.wait_or_kill(Duration::from_secs(8));
                    }
                    let restarted = now_ms();
                    self.start_node(i)?;
                    self.wait_ready(&t, restarted, bound);
                    // One node at a time: the next once all agree again.
                    self.wait_converged(bound);
                }
            }
        }
        Ok((start, now_ms()))
    }
}

/// The timing the checker's bounds follow from.
pub fn timing(o: &Options) -> Timing {
    Timing {
        failure_timeout_ms: o.failure_timeout_ms,
        lease_ttl_ms: o.lease_ttl_ms,
        fault_ms: o.fault_ms,
        ring: (o.monitoring == Monitoring::Ring).then(|| checker::RingTiming {
            probe_interval_ms: RING_PROBE_INTERVAL_MS,
            t_min_ms: checker::t_min_ms(RING_PROBE_INTERVAL_MS, RING_SUSPICION_MULT, o.nodes),
        }),
    }
}

/// Runs a scenario. `Err` when the harness itself fails (namespaces,
/// processes); a cluster that misbehaves is a failing [`Verdict`].
pub fn run(opts: Options) -> Result<Outcome, String> {
    let net = Net::new()?;
    let dir = opts.out.join(&net.run_id);
    std::fs::create_dir_all(dir.join("members")).map_err(|e| format!("{}: {e}", dir.display()))?;
    let names: Vec<String> = (1..=opts.nodes).map(|i| format!("n{i}")).collect();
    let mut c = Cluster {
        net,
        dir: dir.clone(),
        nodes: (0..opts.nodes).map(|_| None).collect(),
        agents: Vec::new(),
        etcd: None,
        names: names.clone(),
        opts: opts.clone(),
    };
    if opts.provider == Provider::Etcd {
        c.net.add_host("etcd")?;
    }
    for n in &names {
        c.net.add_host(n)?;
    }
    if opts.provider == Provider::Etcd {
        c.start_etcd()?;
    }
    for i in 0..names.len() {
        c.start_node(i)?;
    }
    for i in 0..names.len() {
        c.start_agent(i)?;
    }
    if !c.wait_converged(Duration::from_secs(60)) {
        return Err(format!(
            "the cluster did not form within 60s (logs in {})",
            dir.display()
        ));
    }
    let start_ms = now_ms();
    std::thread::sleep(Duration::from_millis(opts.gap_ms));
    let mut faults = Vec::new();
    let mut fault_log = Appender::open(&dir.join("faults.jsonl")).map_err(|e| e.to_string())?;
    for (index, step) in opts.steps.iter().enumerate() {
        if opts
            .apply_for_ms
            .is_some_and(|limit| now_ms().saturating_sub(start_ms) >= limit)
        {
            break;
        }
        eprintln!(
            "fault-suite: fault {index}: {} {:?}",
            step.kind.as_str(),
            step.targets
        );
        let (s, h) = c.apply(step)?;
        let f = Fault {
            index,
            kind: step.kind,
            targets: step.targets.clone(),
            start_ms: s,
            heal_ms: h,
        };
        fault_log.push(&f).map_err(|e| e.to_string())?;
        faults.push(f);
        c.wait_converged(Duration::from_secs(20));
        std::thread::sleep(Duration::from_millis(opts.gap_ms));
    }
    std::thread::sleep(Duration::from_millis(opts.quiet_ms));
    let end_ms = now_ms();
    // Agents first, so no request is recorded against a stopped node.
    for a in &mut c.agents {
        a.kill();
    }
    for p in c.nodes.iter_mut().flatten() {
        p.kill();
    }
    if let Some(e) = c.etcd.as_mut() {
        e.kill();
    }
    drop(c);
    // etcd preallocates 64 MB of WAL: not worth keeping once the run ended.
    let _ = std::fs::remove_dir_all(dir.join("etcd-data"));

    let meta = RunMeta {
        seed: opts.seed,
        provider: opts.provider.as_str().to_owned(),
        monitoring: opts.monitoring.as_str().to_owned(),
        nodes: names,
        start_ms,
        end_ms,
        timing: timing(&opts),
        settle_ms: opts.failure_timeout_ms + 1_000,
        notes: vec![
            monitoring_note(&opts),
            format!(
                "failure timeout {} ms (heartbeat 200 ms), request timeout 2 s, {} lease {} s, keepalive {} ms; cuts and pauses hold up to {} ms; {} grains, one request per grain every {} ms per client",
                opts.failure_timeout_ms,
                opts.provider.as_str(),
                opts.lease_ttl_ms / 1000,
                opts.keepalive_ms,
                opts.fault_ms,
                opts.grains,
                opts.interval_ms
            ),
        ],
    };
    std::fs::write(
        dir.join("run.json"),
        serde_json::to_vec_pretty(&meta).unwrap_or_default(),
    )
    .map_err(|e| e.to_string())?;
    let verdict = check_dir(&dir)?;
    Ok(Outcome { dir, verdict })
}

/// The report's line on the failure detection.
fn monitoring_note(o: &Options) -> String {
    let t = timing(o);
    match t.ring {
        None => format!(
            "monitoring all-to-all: heartbeat 200 ms, failure timeout {} ms; detection bound {} ms",
            o.failure_timeout_ms,
            checker::detection_ms(t)
        ),
        Some(r) => format!(
            "monitoring ring (issue 17): probe interval {} ms, probe timeout {RING_PROBE_TIMEOUT_MS} ms, suspicion_mult {RING_SUSPICION_MULT} (T_min {} ms), monitors {} and quorum {} of {} nodes; detection bound 3·I + T_min + 500 = {} ms, no FS-1 allowance",
            r.probe_interval_ms,
            r.t_min_ms,
            o.nodes.saturating_sub(1).min(5),
            (o.nodes.saturating_sub(1).min(5) / 2 + 1).min(3),
            o.nodes,
            checker::detection_ms(t)
        ),
    }
}

/// What a run's directory needs besides its histories (`run.json`).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct RunMeta {
    /// The schedule's seed.
    pub seed: u64,
    /// `etcd` or `file`.
    pub provider: String,
    /// `all-to-all` or `ring` (absent in runs made before the option:
    /// all-to-all).
    #[serde(default = "default_monitoring")]
    pub monitoring: String,
    /// The nodes.
    pub nodes: Vec<String>,
    /// Start of the checked part (the cluster had formed).
    pub start_ms: u64,
    /// End.
    pub end_ms: u64,
    /// The timing the bounds follow from.
    pub timing: Timing,
    /// See [`checker::Input::settle_ms`].
    pub settle_ms: u64,
    /// Lines for the report.
    pub notes: Vec<String>,
}

/// Checks the run in `dir` (its `run.json`, `faults.jsonl` and
/// histories) and writes `report.md`, `timeline.png` and `verdict.json`
/// there. `fault-suite check DIR` runs it again on a finished run.
pub fn check_dir(dir: &Path) -> Result<Verdict, String> {
    let meta: RunMeta = serde_json::from_slice(
        &std::fs::read(dir.join("run.json")).map_err(|e| format!("{}: {e}", dir.display()))?,
    )
    .map_err(|e| format!("run.json: {e}"))?;
    let faults: Vec<Fault> = read_lines(&dir.join("faults.jsonl")).unwrap_or_default();
    let mut requests: Vec<Request> = Vec::new();
    let mut observations: Vec<Observation> = Vec::new();
    for n in &meta.nodes {
        let (r, o, _) = workload::files(dir, n);
        requests.extend(read_lines::<Request>(&r).unwrap_or_default());
        observations.extend(read_lines::<Observation>(&o).unwrap_or_default());
    }
    requests.retain(|r| r.start_ms >= meta.start_ms && r.end_ms <= meta.end_ms);
    observations.retain(|o| o.t_ms >= meta.start_ms && o.t_ms <= meta.end_ms);
    let t = meta.timing;
    let verdict = checker::check(
        checker::Input {
            requests: &requests,
            observations: &observations,
            faults: &faults,
            nodes: &meta.nodes,
            end_ms: meta.end_ms,
            settle_ms: meta.settle_ms,
        },
        &|f| checker::bounds_for(f.kind, t, f.heal_ms.saturating_sub(f.start_ms)),
    );
    let mut notes = meta.notes.clone();
    notes.push("histories: requests-<node>.jsonl, observations-<node>.jsonl, faults.jsonl; run.json; verdict.json; node logs <node>.log".into());
    let run_id = dir
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let info = crate::report::RunInfo {
        run_id: &run_id,
        seed: meta.seed,
        provider: &meta.provider,
        monitoring: &meta.monitoring,
        nodes: &meta.nodes,
        start_ms: meta.start_ms,
        end_ms: meta.end_ms,
        notes: &notes,
    };
    let events = crate::logs::read(dir, &meta.nodes);
    std::fs::write(
        dir.join("report.md"),
        crate::report::markdown(info, &verdict)
            + &crate::report::quarantines(info, &verdict, &events),
    )
    .map_err(|e| e.to_string())?;
    crate::report::timeline(
        &dir.join("timeline.png"),
        info,
        &verdict,
        &requests,
        &observations,
    )?;
    std::fs::write(
        dir.join("verdict.json"),
        serde_json::to_vec_pretty(&verdict).unwrap_or_default(),
    )
    .map_err(|e| e.to_string())?;
    Ok(verdict)
}

/// The directory of the running executable's cargo profile
/// (`target/debug` for `target/debug/deps/ci-...` and
/// `target/debug/fault-suite`).
pub fn profile_dir() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let mut dir = exe.parent()?.to_path_buf();
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir = dir.parent()?.to_path_buf();
    }
    Some(dir)
}

/// The `cluster-node` program: `FAULT_SUITE_NODE_BIN`, or the one of this
/// cargo profile. Under cargo (`cargo run`, `cargo test`, nextest: `CARGO`
/// is set) it is brought up to date first with `cargo build -p
/// cluster-node` (a no-op when it is), so a suite never runs a stale node;
/// otherwise it is built only when missing.
pub fn node_bin() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("FAULT_SUITE_NODE_BIN") {
        return Ok(PathBuf::from(p));
    }
    let dir = profile_dir().ok_or("cannot locate the cargo profile directory")?;
    let bin = dir.join("cluster-node");
    let cargo = std::env::var_os("CARGO");
    if cargo.is_some() || !bin.is_file() {
        let mut cmd = Command::new(cargo.unwrap_or_else(|| "cargo".into()));
        cmd.args(["build", "--quiet", "-p", "cluster-node"]);
        // The workspace this crate was built from.
        cmd.current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."));
        if dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let ok = cmd.status().is_ok_and(|s| s.success());
        if !ok || !bin.is_file() {
            return Err(format!("could not build {}", bin.display()));
        }
    }
    Ok(bin)
}

/// The `etcd` program: `ETCD_BIN` or on `PATH`.
pub fn etcd_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("ETCD_BIN") {
        return Some(PathBuf::from(p));
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join("etcd"))
        .find(|p| p.is_file())
}
