//! `cluster-sim`: runs the scenarios and prints a Markdown report (see the
//! library's crate doc).
//!
//! ```text
//! cluster-sim [--nodes 1000] [--minutes 10 | --seconds 30] [--loss 0.05] [--seed 1]
//!             [--scenarios all|none|S1,S2,S3,S3a,S3b,S4,S6,S7,S9] [--mode ring|all-to-all]
//!             [--loss-as-delay] [--provisioning] [--memory cores|nodes] [--out FILE]
//! ```

use std::process::ExitCode;
use std::time::Duration;

use cluster_sim::scenario::{RunParams, Scenario, run};
use cluster_sim::sim::Mode;
use cluster_sim::{memory, report};

/// What `--memory` measures (one per process: memory freed by one
/// measurement is reused by the next, which would then read low).
#[derive(Clone, Copy)]
enum Memory {
    /// The monitoring cores alone.
    Cores,
    /// Whole simulated nodes after 10 simulated seconds.
    Nodes,
}

struct Args {
    nodes: usize,
    duration: Duration,
    loss: f64,
    seed: u64,
    scenarios: Vec<Scenario>,
    mode: Mode,
    memory: Option<Memory>,
    loss_as_delay: bool,
    provisioning: bool,
    out: Option<String>,
}

fn parse(args: &[String]) -> Result<Args, String> {
    let mut a = Args {
        nodes: 100,
        duration: Duration::from_secs(600),
        loss: 0.05,
        seed: 1,
        scenarios: Scenario::ALL.to_vec(),
        mode: Mode::Ring,
        memory: None,
        loss_as_delay: false,
        provisioning: false,
        out: None,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--nodes" => {
                a.nodes = value()?
                    .parse()
                    .map_err(|e| format!("--nodes: {e}"))
                    .and_then(|n: usize| {
                        if (2..=20_000).contains(&n) {
                            Ok(n)
                        } else {
                            Err("--nodes: must be 2 to 20000".to_string())
                        }
                    })?
            }
            "--minutes" | "--seconds" => {
                let v: f64 = value()?.parse().map_err(|e| format!("{flag}: {e}"))?;
                let secs = if flag == "--minutes" { v * 60.0 } else { v };
                if !(secs.is_finite() && (11.0..=86_400.0).contains(&secs)) {
                    return Err(format!("{flag}: the run must last 11 s to 24 h"));
                }
                a.duration = Duration::from_secs_f64(secs);
            }
            "--loss" => {
                let v: f64 = value()?.parse().map_err(|e| format!("--loss: {e}"))?;
                if !(0.0..1.0).contains(&v) {
                    return Err("--loss: must be in [0, 1)".into());
                }
                a.loss = v;
            }
            "--seed" => a.seed = value()?.parse().map_err(|e| format!("--seed: {e}"))?,
            "--scenarios" => {
                let v = value()?;
                if v == "all" {
                    a.scenarios = Scenario::ALL.to_vec();
                } else if v == "none" {
                    a.scenarios.clear();
                } else {
                    a.scenarios.clear();
                    for s in v.split(',') {
                        a.scenarios.extend(
                            Scenario::parse(s)
                                .ok_or_else(|| format!("--scenarios: unknown scenario {s:?}"))?,
                        );
                    }
                }
            }
            "--mode" => {
                a.mode = match value()?.as_str() {
                    "ring" => Mode::Ring,
                    "all-to-all" => Mode::AllToAll,
                    other => return Err(format!("--mode: {other:?} is not ring or all-to-all")),
                }
            }
            "--memory" => {
                a.memory = match value()?.as_str() {
                    "cores" => Some(Memory::Cores),
                    "nodes" => Some(Memory::Nodes),
                    other => return Err(format!("--memory: {other:?} is not cores or nodes")),
                }
            }
            "--loss-as-delay" => a.loss_as_delay = true,
            "--provisioning" => a.provisioning = true,
            "--out" => a.out = Some(value()?),
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if a.provisioning && a.mode != Mode::Ring {
        return Err("--provisioning: the provisioning core is simulated in ring mode only".into());
    }
    Ok(a)
}

const USAGE: &str = "usage: cluster-sim [--nodes N] [--minutes M | --seconds S] [--loss L] [--seed S] \
[--scenarios all|none|S1,S2,S3,S3a,S3b,S4,S6,S7,S9] [--mode ring|all-to-all] [--loss-as-delay] [--provisioning] [--memory cores|nodes] [--out FILE]";

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let args = match parse(&argv) {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("cluster-sim: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let params = RunParams {
        nodes: args.nodes,
        seed: args.seed,
        mode: args.mode,
        duration: args.duration,
        loss: args.loss,
        loss_as_delay: args.loss_as_delay,
        provisioning: args.provisioning,
    };
    // Memory first, in a fresh process: memory freed by a run is reused,
    // so a later reading would be low.
    let mut memory_md = String::new();
    match args.memory {
        None => {}
        Some(Memory::Cores) => {
            memory_md = match memory::measure_cores(args.nodes) {
                Some(c) => format!(
                    "\nMemory (resident set growth over N, `/proc/self/statm`, a fresh process): \
                     the monitoring core alone, with a view of {} members and one round done: \
                     {c} bytes per node.\n",
                    args.nodes
                ),
                None => "\nMemory: /proc/self/statm not readable here.\n".into(),
            }
        }
        Some(Memory::Nodes) => {
            memory_md = match memory::measure(
                args.nodes,
                args.mode,
                args.provisioning,
                args.seed,
                Duration::from_secs(10),
            ) {
                Some(m) => format!(
                    "\nMemory (resident set growth over N, `/proc/self/statm`, a fresh process): \
                     a whole simulated node ({}{}, {} nodes) after 10 simulated seconds: {} bytes \
                     per node, of which {} bytes are the simulation's own per-link tables.\n",
                    m.mode.as_str(),
                    if args.provisioning {
                        " with the provisioning core"
                    } else {
                        ""
                    },
                    m.nodes,
                    m.per_node,
                    m.sim_links_per_node
                ),
                None => "\nMemory: /proc/self/statm not readable here.\n".into(),
            }
        }
    }
    let mut outcomes = Vec::new();
    for s in &args.scenarios {
        eprintln!("cluster-sim: running {} ({}) ...", s.name(), s.title());
        let o = run(*s, &params);
        eprintln!(
            "cluster-sim: {} done: {} events in {:.1} s, {} reports, {} false",
            s.name(),
            o.events,
            o.wall.as_secs_f64(),
            o.reports,
            o.false_reports
        );
        outcomes.push(o);
    }
    let mut md = String::new();
    md.push_str(&format!(
        "Command: `cargo run --release -p cluster-sim -- {}`\n\nSeed {}, {} nodes, mode {}{}.\n\n",
        argv.join(" "),
        args.seed,
        args.nodes,
        args.mode.as_str(),
        if args.provisioning {
            ", the real ProvisioningCore on every node (views are its published topologies)"
        } else {
            ", views are the provider's table minus each node's own quarantines"
        }
    ));
    md.push_str(&report::summary_table(&outcomes));
    md.push('\n');
    md.push_str(&report::kinds_table(&outcomes));
    md.push('\n');
    md.push_str(&report::notes(&outcomes));
    md.push_str(&memory_md);
    print!("{md}");
    if let Some(path) = &args.out {
        if let Some(dir) = std::path::Path::new(path).parent()
            && !dir.as_os_str().is_empty()
        {
            let _ = std::fs::create_dir_all(dir);
        }
        if let Err(e) = std::fs::write(path, &md) {
            eprintln!("cluster-sim: cannot write {path}: {e}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
