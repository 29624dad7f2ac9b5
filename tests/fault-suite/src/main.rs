//! `fault-suite`: the fault suite's program (issue 16).
//!
//! ```text
//! fault-suite run [--nodes 5] [--minutes 30] [--seed N] [--provider etcd|file]
//!                 [--faults kill,pause,...] [--once] [--keepalive-ms 2000] [--out DIR]
//!                 [--monitoring all-to-all|ring]
//!     a cluster in namespaces under a random schedule for --minutes (or
//!     every fault once with --once); the report goes to DIR/<run-id>/ (default
//!     target/fault-suite); exit 0 when every figure is within its bounds;
//!     --monitoring ring runs the nodes with `[remoting.monitoring] mode =
//!     "ring"` (issue 17) and checks them against the ring's bounds
//! fault-suite check DIR
//!     checks a finished run's histories again and rewrites its report
//! fault-suite summary DIR...
//!     figures per kind of fault over finished runs (a Markdown table)
//! fault-suite agent --node n1 --admin 127.0.0.1:8558 --dir DIR [--grains 12] [--interval-ms 100]
//!     the workload client next to one node (started by `run`)
//! ```
//!
//! Needs root (network namespaces). The nodes log at `info`;
//! `FAULT_SUITE_RUST_LOG` sets their `RUST_LOG` instead (e.g.
//! `info,cluster::monitoring=debug`).

use std::path::PathBuf;
use std::process::ExitCode;

use fault_suite::history::FaultKind;
use fault_suite::scenario::{self, Monitoring, Options, Provider};
use fault_suite::{hosts, nemesis, workload};

fn value<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

fn number(args: &[String], name: &str, default: u64) -> Result<u64, String> {
    value(args, name).map_or(Ok(default), |v| {
        v.parse()
            .map_err(|_| format!("{name}: {v:?} is not a whole number"))
    })
}

fn agent(args: &[String]) -> Result<(), String> {
    let c = workload::AgentConfig {
        node: value(args, "--node")
            .ok_or("--node is required")?
            .to_owned(),
        admin: value(args, "--admin")
            .ok_or("--admin is required")?
            .parse()
            .map_err(|e| format!("--admin: {e}"))?,
        grains: usize::try_from(number(args, "--grains", 12)?).map_err(|e| e.to_string())?,
        interval_ms: number(args, "--interval-ms", 100)?,
        observe_ms: number(args, "--observe-ms", 100)?,
        timeout_ms: number(args, "--timeout-ms", 4_000)?,
        dir: PathBuf::from(value(args, "--dir").ok_or("--dir is required")?),
    };
    workload::run(c).map_err(|e| e.to_string())
}

fn run(args: &[String]) -> Result<bool, String> {
    hosts::check_supported().map_err(|e| e.to_string())?;
    let nodes = usize::try_from(number(args, "--nodes", 5)?).map_err(|e| e.to_string())?;
    if !(3..=20).contains(&nodes) {
        return Err("--nodes: 3 to 20".into());
    }
    let minutes = number(args, "--minutes", 30)?;
    let seed = number(args, "--seed", fault_suite::history::now_ms())?;
    let provider = match value(args, "--provider").unwrap_or("etcd") {
        "etcd" => Provider::Etcd,
        "file" => Provider::File,
        other => return Err(format!("--provider: {other:?} is not etcd or file")),
    };
    let monitoring = match value(args, "--monitoring") {
        None => Monitoring::AllToAll,
        Some(m) => Monitoring::parse(m)
            .ok_or_else(|| format!("--monitoring: {m:?} is not all-to-all or ring"))?,
    };
    let mut kinds: Vec<FaultKind> = match value(args, "--faults") {
        Some(list) => list
            .split(',')
            .map(|k| FaultKind::parse(k.trim()).ok_or_else(|| format!("--faults: unknown {k:?}")))
            .collect::<Result<_, _>>()?,
        None => FaultKind::ALL.to_vec(),
    };
    if provider == Provider::File {
        kinds.retain(|k| !k.needs_etcd());
    }
    let names: Vec<String> = (1..=nodes).map(|i| format!("n{i}")).collect();
    let fault_ms = 8_000;
    let once = args.iter().any(|a| a == "--once");
    let quiet_ms = if once { 10_000 } else { 30_000 };
    let apply_for_ms = (minutes * 60_000).saturating_sub(quiet_ms);
    let steps = if once {
        nemesis::every_fault_once(seed, &names, &kinds, fault_ms)
    } else {
        // More steps than can be applied (a fault and its recovery take
        // about 10 s); the run stops applying them at `apply_for_ms`.
        nemesis::random(seed, &names, &kinds, fault_ms, 1_000, apply_for_ms)
    };
    let profile = scenario::profile_dir().ok_or("cannot locate the cargo profile directory")?;
    let out = value(args, "--out").map_or_else(
        || {
            profile
                .parent()
                .map_or_else(|| profile.clone(), |p| p.to_path_buf())
                .join("fault-suite")
        },
        PathBuf::from,
    );
    let opts = Options {
        nodes,
        monitoring,
        provider,
        seed,
        steps,
        grains: 12,
        interval_ms: 100,
        failure_timeout_ms: 1_000,
        lease_ttl_ms: 4_000,
        keepalive_ms: number(args, "--keepalive-ms", 2_000)?,
        fault_ms,
        gap_ms: 2_000,
        quiet_ms,
        apply_for_ms: (!once).then_some(apply_for_ms),
        out,
        node_bin: scenario::node_bin()?,
        agent_bin: std::env::current_exe().map_err(|e| e.to_string())?,
        etcd_bin: scenario::etcd_bin().ok_or("etcd not found (apt-get install etcd-server)")?,
    };
    eprintln!(
        "fault-suite: up to {} faults, seed {seed}, {nodes} nodes, provider {}, monitoring {}",
        opts.steps.len(),
        provider.as_str(),
        monitoring.as_str()
    );
    let outcome = scenario::run(opts)?;
    println!("{}", outcome.dir.join("report.md").display());
    for v in &outcome.verdict.violations {
        println!("  {v}");
    }
    println!(
        "{}",
        if outcome.verdict.pass() {
            "PASS"
        } else {
            "FAIL"
        }
    );
    Ok(outcome.verdict.pass())
}

fn summary(dirs: &[String]) -> Result<(), String> {
    let mut verdicts = Vec::new();
    for d in dirs {
        let path = std::path::Path::new(d).join("verdict.json");
        let text = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        verdicts
            .push(serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", path.display()))?);
    }
    print!("{}", fault_suite::report::summary(&verdicts));
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("agent") => agent(&args[1..]).map(|()| true),
        Some("run") => run(&args[1..]),
        Some("summary") => summary(&args[1..]).map(|()| true),
        Some("check") => args
            .get(1)
            .ok_or_else(|| "usage: fault-suite check DIR".to_owned())
            .and_then(|d| scenario::check_dir(std::path::Path::new(d)))
            .map(|v| {
                for x in &v.violations {
                    println!("  {x}");
                }
                println!("{}", if v.pass() { "PASS" } else { "FAIL" });
                v.pass()
            }),
        _ => Err("usage: fault-suite run [--nodes 5] [--minutes 30] [--seed N] [--provider etcd|file] [--faults kinds] [--once] [--monitoring all-to-all|ring] [--out DIR] | fault-suite agent ...".into()),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("fault-suite: {e}");
            ExitCode::from(2)
        }
    }
}
