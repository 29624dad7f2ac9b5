//! Memory per node. The workspace forbids `unsafe`, so no counting global
//! allocator: the process's resident set (`/proc/self/statm`, pages of
//! 4 KiB) is read before and after building N nodes and running them to a
//! steady state, and the growth is divided by N. It includes the
//! simulation's own per-node tables (its per-link arrays are N² entries of
//! 8 bytes: reported separately).

use std::time::Duration;

use std::time::Instant;

use cluster::monitoring::{MonitorMsg, Monitoring, MonitoringConfig};
use cluster_core::NodeId;

use crate::sim::{Mode, SEC, Sim, SimConfig};

/// The monitoring cores alone: `nodes` cores, each given a view of all
/// `nodes` members and one round of probes answered; returns the RSS
/// growth per core in bytes. Measure it first in a fresh process (freed
/// memory is not returned to the system, so a later measurement reads low).
pub fn measure_cores(nodes: usize) -> Option<u64> {
    let ids: Vec<NodeId> = (0..nodes)
        .map(|i| NodeId::new(format!("n{i:04}")).expect("a valid node id"))
        .collect();
    let base = Instant::now();
    let before = rss_bytes()?;
    let cores: Vec<Monitoring> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let mut core = Monitoring::new(MonitoringConfig::default(), id.clone(), i as u64);
            core.on_view(ids.iter().map(|id| (id, 1)), base);
            core.tick(base + Duration::from_secs(1));
            let out = core.ready();
            for (to, msg) in out.send {
                if let MonitorMsg::Probe { seq } = msg {
                    core.on_message(&to, MonitorMsg::Ack { seq }, base + Duration::from_secs(1));
                }
            }
            let _ = core.ready();
            core
        })
        .collect();
    let after = rss_bytes()?;
    std::hint::black_box(&cores);
    let per = after.saturating_sub(before) / nodes.max(1) as u64;
    drop(cores);
    Some(per)
}

/// The resident set size of this process in bytes (Linux), if readable.
pub fn rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = s.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// What one measurement found.
#[derive(Clone, Debug)]
pub struct MemoryFigure {
    /// Nodes.
    pub nodes: usize,
    /// Mode.
    pub mode: Mode,
    /// Resident set growth over N, bytes.
    pub per_node: u64,
    /// The simulation's own per-link arrays over N, bytes (included above).
    pub sim_links_per_node: u64,
}

/// Builds `nodes` nodes, runs them `warm_up`, and returns the RSS growth
/// per node (`None` where `/proc/self/statm` is not readable).
pub fn measure(
    nodes: usize,
    mode: Mode,
    provisioning: bool,
    seed: u64,
    warm_up: Duration,
) -> Option<MemoryFigure> {
    let before = rss_bytes()?;
    let mut config = SimConfig::new(nodes, seed, mode);
    config.provisioning = provisioning;
    let mut sim = Sim::new(config);
    sim.run_until(u64::try_from(warm_up.as_nanos()).unwrap_or(10 * SEC));
    let after = rss_bytes()?;
    let n = nodes.max(1) as u64;
    let per_node = after.saturating_sub(before) / n;
    drop(sim);
    Some(MemoryFigure {
        nodes,
        mode,
        per_node,
        sim_links_per_node: 8 * n,
    })
}
