//! Benchmarks of the `TopologyMerger` core.
//!
//! `merge/{priority,union}/N`: two healthy providers listing the same N
//! members; each iteration is one refresh of the active provider with one
//! member changed (its port flips), then merge + diff + hash: what the
//! supervisor does per snapshot. The snapshot is built outside the timing,
//! with fresh allocations like a decoded provider response.
//!
//! Memory (printed on stderr before the criterion run): bytes the merger
//! keeps per member. The workspace forbids `unsafe`, so a counting global
//! allocator cannot be written here; instead each scenario runs in a fresh
//! child process and reports (a) the bytes of every distinct allocation
//! reachable from the merger's state (shared allocations counted once,
//! glibc chunk rounding included) and (b) the resident-set growth of the
//! process while building that state (glibc thresholds fixed so freed large
//! buffers are returned), an upper bound that still counts fragmentation
//! and freed small temporaries (the first merge's diff, dropped snapshots).
//!
//! `path/memory/N` (issue 17): the CPU of the snapshot path without the
//! task hops, one iteration per change: the in-memory provider's table
//! changes (one member of N gets a new incarnation), its watch stream yields
//! the snapshot, the merger takes it in and merges. Single-threaded, so a
//! loaded machine disturbs it less than the end-to-end percentiles of the
//! propagation bench.
//!
//! ```sh
//! cargo bench -p provisioning-actors --bench merge -- --warm-up-time 1 --measurement-time 2
//! ```

use std::collections::HashSet;
use std::hint::black_box;
use std::process::Command;
use std::sync::Arc;

use cluster_core::{Member, MemberAddress, NodeId, ProviderId};
use criterion::{BatchSize, BenchmarkId, Criterion};
use provisioning_actors::merge::{
    MergeConfig, MergeOutcome, MergePolicy, ProviderInput, TopologyMerger,
};

const SIZES: [usize; 4] = [100, 1_000, 10_000, 100_000];
const CHILD_ENV: &str = "MERGE_BENCH_MEMORY_SCENARIO";
/// `MEMBERS:ITERATIONS`: run the `path` loop that often and exit, for
/// `perf stat -e instructions:u` (run it with k and 2k iterations: the
/// difference divided by k is one change's instructions, whatever the
/// machine's load).
const PATH_ENV: &str = "MERGE_BENCH_PATH";

fn pid(s: &str) -> ProviderId {
    ProviderId::new(s).expect("valid provider id")
}

/// N members with fresh allocations; member `changed` gets port 4001.
fn members(n: usize, changed: Option<usize>) -> Vec<Member> {
    (0..n)
        .map(|i| {
            let id = NodeId::new(format!("node-{i:06}")).expect("valid node id");
            let host = format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255);
            let port = if changed == Some(i) { 4001 } else { 4000 };
            let address = MemberAddress::new(host, port).expect("valid address");
            Member::new(id, address, 1)
        })
        .collect()
}

fn inputs() -> [ProviderInput; 2] {
    [
        ProviderInput::new(pid("primary"), 0, true),
        ProviderInput::new(pid("standby"), 1, true),
    ]
}

fn policy_name(p: MergePolicy) -> &'static str {
    match p {
        MergePolicy::Priority => "priority",
        MergePolicy::Union => "union",
    }
}

/// The memory provider's path: table change → watch stream → merger.
struct Path {
    rt: tokio::runtime::Runtime,
    table: provider_memory::MembershipTable,
    stream: futures::stream::BoxStream<
        'static,
        Result<cluster_core::Snapshot, cluster_core::ProviderError>,
    >,
    merger: TopologyMerger,
    inputs: [ProviderInput; 2],
    template: Member,
    incarnation: u64,
    seq: u64,
}

impl Path {
    fn new(n: usize) -> Self {
        use cluster_core::ClusterProvider;
        use futures::StreamExt;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let table = provider_memory::MembershipTable::new();
        table.replace_all(members(n, None));
        let provider = provider_memory::MemoryProvider::new(table.clone());
        let mut stream = provider.watch();
        let inputs = inputs();
        let mut merger = TopologyMerger::new(MergeConfig::default());
        let first = rt
            .block_on(stream.next())
            .expect("a snapshot")
            .expect("no error");
        merger.on_refresh(&inputs[0].id, first.members);
        merger.merge(&inputs, Some(&inputs[0].id), 1);
        Self {
            rt,
            table,
            stream,
            merger,
            inputs,
            template: members(n, None).swap_remove(n / 2),
            incarnation: 1,
            seq: 1,
        }
    }

    /// One change, through the stream and the merger.
    fn step(&mut self) -> MergeOutcome {
        use futures::StreamExt;
        self.incarnation += 1;
        self.seq += 1;
        let mut m = self.template.clone();
        m.incarnation = self.incarnation;
        self.table.upsert(m);
        let snapshot = self
            .rt
            .block_on(self.stream.next())
            .expect("a snapshot")
            .expect("no error");
        let active = &self.inputs[0].id;
        self.merger.on_refresh(active, snapshot.members);
        let out = self.merger.merge(&self.inputs, Some(active), self.seq);
        assert!(out.changed && out.diff.changed.len() == 1);
        out
    }
}

fn bench_path(c: &mut Criterion) {
    let mut group = c.benchmark_group("path");
    for n in [1_000, 10_000] {
        group.sample_size(if n >= 10_000 { 20 } else { 50 });
        let mut path = Path::new(n);
        group.bench_function(BenchmarkId::new("memory", n), |b| {
            b.iter(|| black_box(path.step()))
        });
    }
    group.finish();
}

fn bench_merge(c: &mut Criterion) {
    let mut group = c.benchmark_group("merge");
    for policy in [MergePolicy::Priority, MergePolicy::Union] {
        for n in SIZES {
            group.sample_size(if n >= 100_000 { 10 } else { 50 });
            let inputs = inputs();
            let active = inputs[0].id.clone();
            let mut merger = TopologyMerger::new(MergeConfig::with_policy(policy));
            merger.on_refresh(&inputs[0].id, members(n, None));
            merger.on_refresh(&inputs[1].id, members(n, None));
            let mut seq = 1;
            merger.merge(&inputs, Some(&active), seq);
            let mut flips = 0usize;
            group.bench_function(BenchmarkId::new(policy_name(policy), n), |b| {
                b.iter_batched(
                    || {
                        flips += 1;
                        members(n, (flips % 2 == 1).then_some(n / 2))
                    },
                    |snapshot| {
                        seq += 1;
                        merger.on_refresh(&active, snapshot);
                        let out = merger.merge(&inputs, Some(&active), seq);
                        assert!(out.changed && out.diff.changed.len() == 1);
                        black_box(out)
                    },
                    BatchSize::LargeInput,
                )
            });
        }
    }
    group.finish();
}

/// glibc's chunk for a request of `n` bytes (8-byte header, 16-byte
/// alignment, 32-byte minimum).
fn chunk(n: usize) -> usize {
    if n == 0 {
        0
    } else {
        ((n + 8 + 15) & !15).max(32)
    }
}

/// Bytes of every distinct allocation reachable from the merger: the
/// `Arc<[Member]>` lists (published and per provider), node id `Arc<str>`s
/// and host strings. Bench members have no roles or labels (no B-tree
/// nodes). Returns (requested bytes, glibc chunk bytes).
fn accounted(merger: &TopologyMerger, providers: &[ProviderId]) -> (usize, usize) {
    let mut lists: Vec<&Arc<[Member]>> = vec![&merger.published().members];
    lists.extend(
        providers
            .iter()
            .filter_map(|p| merger.snapshot(p).map(|s| s.members())),
    );
    let mut seen_lists = HashSet::new();
    let mut seen_ids = HashSet::new();
    let (mut req, mut chunks) = (0, 0);
    let mut add = |n: usize| {
        req += n;
        chunks += chunk(n);
    };
    for list in lists {
        if !seen_lists.insert(Arc::as_ptr(list) as *const u8 as usize) {
            continue;
        }
        add(2 * size_of::<usize>() + list.len() * size_of::<Member>());
        for m in list.iter() {
            if seen_ids.insert(m.node_id.as_str().as_ptr() as usize) {
                add(2 * size_of::<usize>() + m.node_id.as_str().len());
            }
            add(m.address.host.capacity());
        }
    }
    (req, chunks)
}

fn resident_bytes() -> usize {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<usize>().ok())
        .map_or(0, |pages| pages * 4096)
}

const SCENARIOS: [&str; 4] = [
    "priority-1-provider",
    "priority-2-equal",
    "priority-2-differ-by-1",
    "union-2-differ-by-1",
];

/// Runs in a child process: builds one scenario with `n` members and
/// prints `accounted_req accounted_chunks rss_growth`.
fn child(scenario: &str, n: usize) {
    let before = resident_bytes();
    let policy = if scenario.starts_with("union") {
        MergePolicy::Union
    } else {
        MergePolicy::Priority
    };
    let inputs = inputs();
    let ids = [inputs[0].id.clone(), inputs[1].id.clone()];
    let mut merger = TopologyMerger::new(MergeConfig::with_policy(policy));
    merger.on_refresh(&ids[0], members(n, None));
    match scenario {
        "priority-1-provider" => {}
        "priority-2-equal" => {
            merger.on_refresh(&ids[1], members(n, None));
        }
        _ => {
            merger.on_refresh(&ids[1], members(n, Some(n / 2)));
        }
    }
    let out = merger.merge(&inputs, Some(&ids[0]), 1);
    assert_eq!(out.topology.members.len(), n);
    drop(out);
    let grown = resident_bytes().saturating_sub(before);
    let (req, chunks) = accounted(&merger, &ids);
    println!("{req} {chunks} {grown}");
    black_box(&merger);
}

fn memory_report(sizes: &[usize]) {
    let Ok(exe) = std::env::current_exe() else {
        eprintln!("memory: cannot find the bench executable");
        return;
    };
    eprintln!(
        "memory: bytes retained per member (size_of::<Member>() = {})",
        size_of::<Member>()
    );
    eprintln!(
        "{:<24} {:>8} {:>10} {:>10} {:>10}",
        "scenario", "members", "requested", "malloc", "rss-growth"
    );
    for scenario in SCENARIOS {
        for &n in sizes {
            let out = Command::new(&exe)
                .env(CHILD_ENV, format!("{scenario}:{n}"))
                // Fixed thresholds: large freed buffers go back to the
                // system instead of staying resident in the heap.
                .env(
                    "GLIBC_TUNABLES",
                    "glibc.malloc.mmap_threshold=131072:glibc.malloc.trim_threshold=131072",
                )
                .output();
            let text = out
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            let v: Vec<f64> = text
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            if let [req, chunks, rss] = v[..] {
                let per = |x: f64| x / n as f64;
                eprintln!(
                    "{scenario:<24} {n:>8} {:>10.1} {:>10.1} {:>10.1}",
                    per(req),
                    per(chunks),
                    per(rss)
                );
            } else {
                eprintln!("{scenario:<24} {n:>8} (child failed: {text:?})");
            }
        }
    }
}

fn main() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        let (scenario, n) = spec.split_once(':').unwrap_or((&spec, "0"));
        child(scenario, n.parse().unwrap_or(0));
        return;
    }
    if let Ok(spec) = std::env::var(PATH_ENV) {
        let (n, iters) = spec.split_once(':').unwrap_or(("1000", "1"));
        let mut path = Path::new(n.parse().unwrap_or(1_000));
        for _ in 0..iters.parse::<usize>().unwrap_or(1) {
            black_box(path.step());
        }
        return;
    }
    // `cargo bench` passes --bench; `cargo test --benches` does not: keep
    // that run short.
    let benching = std::env::args().any(|a| a == "--bench");
    memory_report(if benching {
        &[10_000, 100_000]
    } else {
        &[1_000]
    });
    let mut c = Criterion::default().configure_from_args();
    bench_path(&mut c);
    bench_merge(&mut c);
    c.final_summary();
}
