//! Grains with state (issue 18): what a store costs a grain, per store
//! (in-memory, SQLite on a temporary file, PostgreSQL on loopback).
//!
//! - `activation/<store>`: one node; 1,000 grains whose state (a 120-byte
//!   `Ledger`, version 1) is already stored. Each is asked once while not
//!   active (**cold**: placement spawns the activation, `on_activate`
//!   loads the state, `handle` answers) and once more right after
//!   (**warm**: the same path without activation); cold − warm is what the
//!   activation with its load adds. The store's own `read` and `write` (an
//!   update of an existing row) are timed directly on other keys, to show
//!   how much of it is the store.
//! - `deactivation/<store>`: one node; 500 grains of a kind with a 50 ms
//!   idle timeout, each asked once to change its state without saving it
//!   (`AddLater`), so its `on_deactivate` saves it. The idle timeout ends
//!   them one by one (the requests are 4 ms apart, so the saves seldom
//!   overlap); the time is taken **inside** `on_deactivate`, from its start
//!   to the end of the save (encoding included). The supervisor's part
//!   (an idle check, a tell, the actor's stop) is not in it: it is not
//!   observable from outside without a change to `crates/cluster/src`.
//! - `leave/<store>/{dirty,saved}`: three nodes over real TCP on
//!   127.0.0.1 (the test cluster of `tests/support/nodes.rs`); 10,000
//!   grains active, their state stored beforehand. `dirty`: each was asked
//!   to change its state without saving, so the leaving node saves its
//!   ~3,300 in `on_deactivate`; `saved`: write-through grains with nothing
//!   left to save. Node `c` leaves gracefully (`Cluster::leave`); the time
//!   runs from the start of the leave until every grain `c` hosted has
//!   answered from another node with its state (64 requests in flight from
//!   node `a`, each retried until it does). Printed with the hand-off
//!   (every `on_deactivate` done) and the whole `leave` call.
//! - `write_through/<store>`: one node; grains that save on every request
//!   (`Add`), driven for a few seconds: one grain with 64 concurrent
//!   callers (its requests are handled one at a time) and 64 grains with
//!   one caller each. The same two cases with the stateless `echo` grain
//!   (`none`) are the floor.
//!
//! Every store runs durable: SQLite with its default `synchronous=FULL`,
//! PostgreSQL with its defaults (`fsync` and `synchronous_commit` on),
//! both on the machine's ext4 disk. PostgreSQL is started by the bench (the
//! harness of `crates/grain-storage-postgres/tests/support/postgres.rs`)
//! and stopped when the bench ends or panics; without it installed the
//! PostgreSQL cases print a skip line.
//!
//! ```sh
//! cargo bench -p cluster --bench grains                            # everything, about 4 minutes
//! cargo bench -p cluster --bench grains -- activation deactivation  # cases whose name contains a word
//! cargo bench -p cluster --bench grains -- leave/postgres
//! GRAIN_BENCH_SECS=5 GRAIN_BENCH_LEAVE_RUNS=3 cargo bench -p cluster --bench grains -- write_through
//! ```

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/support/nodes.rs"]
mod nodes;
#[path = "../../grain-storage-postgres/tests/support/postgres.rs"]
mod postgres;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cluster::Cluster;
use cluster::grain::{
    DeactivationReason, Grain, GrainContext, GrainError, GrainOptions, PersistentState,
};
use cluster::partition::PartitionTable;
use cluster_core::{GrainKey, GrainStorage, MemoryGrainStorage};
use futures::StreamExt;
use grain_storage_postgres::PostgresGrainStorage;
use grain_storage_sqlite::{SqliteGrainStorage, SqliteSettings, Synchronous};
use nodes::*;
use postgres::PostgresServer;
use serde::{Deserialize, Serialize};
use tokio::runtime::Runtime;
use tokio::sync::mpsc;

/// Bound of every phase: nothing here waits longer.
const PHASE_BOUND: Duration = Duration::from_secs(120);
const ACTIVATIONS: usize = 1_000;
const DEACTIVATIONS: usize = 500;
const LEAVE_GRAINS: usize = 10_000;
const IN_FLIGHT: usize = 64;

// ---------------------------------------------------------------- the grain

/// The stored state: a running total and a 100-byte note (≈ 120 bytes
/// encoded with rmp-serde).
#[derive(Serialize, Deserialize, Default, Clone, Debug)]
struct LedgerState {
    total: u64,
    note: String,
}

fn state(total: u64) -> Vec<u8> {
    rmp_serde::to_vec(&LedgerState {
        total,
        note: "n".repeat(100),
    })
    .unwrap()
}

#[derive(Serialize, Deserialize, Debug)]
enum Op {
    /// Answer the state.
    Get,
    /// Add and save before answering (write-through).
    Add(u64),
    /// Add; saved by `on_deactivate`.
    AddLater(u64),
}

#[derive(Serialize, Deserialize, Debug)]
struct Answer {
    node: String,
    total: u64,
}

/// Where `on_deactivate` reports how long its save took.
type Probe = mpsc::UnboundedSender<Result<Duration, String>>;

struct Ledger {
    node: String,
    state: PersistentState<LedgerState>,
    dirty: bool,
    probe: Option<Probe>,
}

impl Grain for Ledger {
    type Request = Op;
    type Response = Result<Answer, String>;

    async fn on_activate(&mut self, ctx: &GrainContext) -> Result<(), GrainError> {
        self.state.load(ctx).await
    }

    async fn handle(&mut self, op: Op) -> Self::Response {
        match op {
            Op::Get => {}
            Op::Add(n) => {
                self.state.get_mut().total += n;
                self.state.save().await.map_err(|e| e.code().to_owned())?;
            }
            Op::AddLater(n) => {
                self.state.get_mut().total += n;
                self.dirty = true;
            }
        }
        Ok(Answer {
            node: self.node.clone(),
            total: self.state.get().total,
        })
    }

    async fn on_deactivate(&mut self, _reason: DeactivationReason) -> Result<(), GrainError> {
        if !self.dirty {
            return Ok(());
        }
        let start = Instant::now();
        let saved = self.state.save().await;
        if let Some(p) = &self.probe {
            let _ = p.send(
                saved
                    .as_ref()
                    .map(|()| start.elapsed())
                    .map_err(|e| e.code().to_owned()),
            );
        }
        self.dirty = saved.is_err();
        saved
    }
}

fn ledger_kind(
    builder: cluster::ClusterBuilder,
    kind: &str,
    options: GrainOptions,
    node: &str,
    probe: Option<Probe>,
) -> cluster::ClusterBuilder {
    let node = node.to_owned();
    builder.grain_with(kind, options, move |_id| Ledger {
        node: node.clone(),
        state: PersistentState::new(),
        dirty: false,
        probe: probe.clone(),
    })
}

async fn ask(cluster: &Cluster, kind: &str, id: &str, op: Op) -> Result<Answer, String> {
    match cluster.request::<Ledger>(kind, id, &op).await {
        Ok(r) => r,
        Err(e) => Err(e.code().to_owned()),
    }
}

fn key(kind: &str, id: &str) -> GrainKey {
    GrainKey::new(CLUSTER, kind, id)
}

// ---------------------------------------------------------------- stores

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Store {
    Memory,
    Sqlite,
    Postgres,
}

impl Store {
    const ALL: [Store; 3] = [Store::Memory, Store::Sqlite, Store::Postgres];

    fn name(self) -> &'static str {
        match self {
            Store::Memory => "memory",
            Store::Sqlite => "sqlite",
            Store::Postgres => "postgres",
        }
    }
}

/// Opens the stores of one case: `n` handles on one database (one per
/// node, as separate processes would have; the in-memory store is one
/// shared map), plus one for filling it. SQLite's filling connection runs
/// `synchronous=NORMAL` (untimed set-up; the nodes' connections keep the
/// durable default).
struct Stores {
    nodes: Vec<Arc<dyn GrainStorage>>,
    fill: Arc<dyn GrainStorage>,
}

async fn open_stores(
    store: Store,
    n: usize,
    dir: &Path,
    file: &str,
    pg: Option<&PostgresServer>,
) -> Stores {
    match store {
        Store::Memory => {
            let m: Arc<dyn GrainStorage> = Arc::new(MemoryGrainStorage::new());
            Stores {
                nodes: vec![m.clone(); n],
                fill: m,
            }
        }
        Store::Sqlite => {
            let path = dir.join(file);
            let mut nodes: Vec<Arc<dyn GrainStorage>> = Vec::new();
            for _ in 0..n {
                nodes.push(Arc::new(SqliteGrainStorage::open(&path).await.unwrap()));
            }
            let fill = SqliteGrainStorage::open_with(
                &path,
                SqliteSettings::new().synchronous(Synchronous::Normal),
            )
            .await
            .unwrap();
            Stores {
                nodes,
                fill: Arc::new(fill),
            }
        }
        Store::Postgres => {
            let settings = pg.expect("a server").settings();
            let mut nodes: Vec<Arc<dyn GrainStorage>> = Vec::new();
            for _ in 0..n {
                nodes.push(Arc::new(
                    PostgresGrainStorage::connect(settings.clone())
                        .await
                        .unwrap(),
                ));
            }
            let fill = PostgresGrainStorage::connect(settings).await.unwrap();
            Stores {
                nodes,
                fill: Arc::new(fill),
            }
        }
    }
}

/// Writes version 1 of `kind`/`g{i}` (total `i + 1`) for `i` in `0..n`,
/// 64 at a time.
async fn fill(store: &Arc<dyn GrainStorage>, kind: &str, n: usize) {
    let data = Arc::new((0..n).map(|i| state(i as u64 + 1)).collect::<Vec<_>>());
    futures::stream::iter(0..n)
        .map(|i| {
            let (store, data) = (store.clone(), data.clone());
            let kind = kind.to_owned();
            async move {
                let v = store
                    .write(&key(&kind, &format!("g{i}")), 0, 1, &data[i])
                    .await
                    .unwrap();
                assert_eq!(v, 1);
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect::<Vec<()>>()
        .await;
}

// ---------------------------------------------------------------- figures

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn us(d: Duration) -> String {
    let v = d.as_secs_f64() * 1e6;
    if v < 100.0 {
        format!("{v:.1} µs")
    } else {
        format!("{v:.0} µs")
    }
}

fn report(case: &str, what: &str, mut v: Vec<Duration>) {
    v.sort();
    let mean = v.iter().sum::<Duration>() / (v.len().max(1) as u32);
    println!(
        "{case:<28} {what:<34} p50 {:>9}  p99 {:>9}  max {:>9}  mean {:>9}  n {}",
        us(percentile(&v, 50.0)),
        us(percentile(&v, 99.0)),
        us(v.last().copied().unwrap_or_default()),
        us(mean),
        v.len()
    );
}

async fn bounded<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(PHASE_BOUND, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: not done within {PHASE_BOUND:?}"))
}

// ---------------------------------------------------------------- cases

async fn activation(store: Store, dir: &Path, pg: Option<&PostgresServer>) {
    let case = format!("activation/{}", store.name());
    let stores = open_stores(store, 1, dir, "activation.db", pg).await;
    let s = stores.nodes[0].clone();
    // The store alone: read and update rows of another kind.
    fill(&stores.fill, "raw", ACTIVATIONS).await;
    let (mut reads, mut writes) = (Vec::new(), Vec::new());
    for i in 0..ACTIVATIONS {
        let k = key("raw", &format!("g{i}"));
        let t = Instant::now();
        let got = s.read(&k).await.unwrap().unwrap();
        reads.push(t.elapsed());
        let t = Instant::now();
        s.write(&k, got.version, 1, &got.data).await.unwrap();
        writes.push(t.elapsed());
    }
    fill(&stores.fill, "ledger", ACTIVATIONS).await;
    let b = Backends::new();
    let opts = GrainOptions::new().shared_storage(s.clone());
    let node = b
        .start_with("s", |bl| ledger_kind(bl, "ledger", opts, "s", None))
        .await;
    converge(&[&node], &["s"]).await;
    let (mut cold, mut warm) = (Vec::new(), Vec::new());
    bounded(&case, async {
        for i in 0..ACTIVATIONS {
            let id = format!("g{i}");
            let t = Instant::now();
            let a = ask(&node.cluster, "ledger", &id, Op::Get).await.unwrap();
            cold.push(t.elapsed());
            assert_eq!(a.total, i as u64 + 1, "{id} loaded its state");
            let t = Instant::now();
            ask(&node.cluster, "ledger", &id, Op::Get).await.unwrap();
            warm.push(t.elapsed());
        }
    })
    .await;
    report(&case, "store read (direct)", reads);
    report(&case, "store write, update (direct)", writes);
    report(&case, "cold request (activate + load)", cold);
    report(&case, "warm request (same grain)", warm);
    node.cluster.leave(Duration::from_secs(10)).await;
    node.system.shutdown().await;
}

async fn deactivation(store: Store, dir: &Path, pg: Option<&PostgresServer>) {
    let case = format!("deactivation/{}", store.name());
    let stores = open_stores(store, 1, dir, "deactivation.db", pg).await;
    fill(&stores.fill, "idle", DEACTIVATIONS).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let b = Backends::new();
    let opts = GrainOptions::new()
        .shared_storage(stores.nodes[0].clone())
        .idle_timeout(Duration::from_millis(50));
    let node = b
        .start_with("s", |bl| ledger_kind(bl, "idle", opts, "s", Some(tx)))
        .await;
    converge(&[&node], &["s"]).await;
    let mut saves = Vec::new();
    let mut failed = Vec::new();
    bounded(&case, async {
        for i in 0..DEACTIVATIONS {
            let id = format!("g{i}");
            ask(&node.cluster, "idle", &id, Op::AddLater(1))
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(4)).await;
        }
        while saves.len() + failed.len() < DEACTIVATIONS {
            match rx.recv().await.unwrap() {
                Ok(d) => saves.push(d),
                Err(code) => failed.push(code),
            }
        }
    })
    .await;
    report(&case, "on_deactivate with save", saves);
    if !failed.is_empty() {
        println!("{case:<28} FAILED saves: {failed:?}");
    }
    // Every state was saved: read back directly.
    let s = &stores.nodes[0];
    for i in 0..DEACTIVATIONS {
        let got = s
            .read(&key("idle", &format!("g{i}")))
            .await
            .unwrap()
            .unwrap();
        let st: LedgerState = rmp_serde::from_slice(&got.data).unwrap();
        assert_eq!((got.version, st.total), (2, i as u64 + 2), "g{i} saved");
    }
    node.cluster.leave(Duration::from_secs(10)).await;
    node.system.shutdown().await;
}

async fn leave(store: Store, dirty: bool, run: usize, dir: &Path, pg: Option<&PostgresServer>) {
    let mode = if dirty { "dirty" } else { "saved" };
    let case = format!("leave/{}/{mode}", store.name());
    let kind = format!("ledger_{mode}_{run}");
    let stores = open_stores(store, 3, dir, &format!("leave-{mode}-{run}.db"), pg).await;
    fill(&stores.fill, &kind, LEAVE_GRAINS).await;
    let b = Backends::new();
    // The saves of `c`'s grains (dirty) are reported here.
    let (tx, mut saves) = mpsc::unbounded_channel();
    let mut nodes = Vec::new();
    for (i, name) in ["a", "b", "c"].into_iter().enumerate() {
        let opts = GrainOptions::new().shared_storage(stores.nodes[i].clone());
        let k = kind.clone();
        let probe = (name == "c").then(|| tx.clone());
        nodes.push(
            b.start_with(name, |bl| ledger_kind(bl, &k, opts, name, probe))
                .await,
        );
    }
    drop(tx);
    let c_node = nodes.pop().unwrap();
    let b_node = nodes.pop().unwrap();
    let a_node = nodes.pop().unwrap();
    converge(&[&a_node, &b_node, &c_node], &["a", "b", "c"]).await;
    let a = a_node.cluster.clone();
    // Activate every grain (and, `dirty`, change it without saving).
    let bump = u64::from(dirty);
    let wrong = bounded(&case, async {
        futures::stream::iter(0..LEAVE_GRAINS)
            .map(|i| {
                let (a, kind) = (a.clone(), kind.clone());
                async move {
                    let op = if dirty { Op::AddLater(1) } else { Op::Get };
                    let r = ask(&a, &kind, &format!("g{i}"), op).await.unwrap();
                    r.total != i as u64 + 1 + bump
                }
            })
            .buffer_unordered(IN_FLIGHT)
            .filter(|w| futures::future::ready(*w))
            .count()
            .await
    })
    .await;
    assert_eq!(wrong, 0, "every grain activated with its stored state");
    let t = a_node.topology().await;
    let table = PartitionTable::from_topology(&t);
    let on_c: Vec<usize> = (0..LEAVE_GRAINS)
        .filter(|i| {
            table
                .owner(&kind, &format!("g{i}"))
                .unwrap()
                .node_id
                .as_str()
                == "c"
        })
        .collect();
    let active_on_c = c_node
        .cluster
        .placement()
        .activations()
        .await
        .unwrap()
        .len();
    assert_eq!(active_on_c, on_c.len());

    let start = Instant::now();
    let leaving = c_node.cluster.clone();
    let leave_task = tokio::spawn(async move {
        let report = leaving.leave(Duration::from_secs(30)).await;
        (report.handed_off, start.elapsed())
    });
    // When the last of `c`'s saves finished (dirty), and how many failed.
    let expected_saves = if dirty { on_c.len() } else { 0 };
    let saves_task = tokio::spawn(async move {
        let (mut done, mut failed, mut last) = (0, 0, Duration::ZERO);
        while done + failed < expected_saves {
            match saves.recv().await {
                Some(Ok(_)) => done += 1,
                Some(Err(_)) => failed += 1,
                None => break,
            }
            last = start.elapsed();
        }
        (done, failed, last)
    });
    let (wrong, retries) = bounded(&case, async {
        let results: Vec<(bool, Vec<String>)> = futures::stream::iter(on_c.iter().copied())
            .map(|i| {
                let (a, kind) = (a.clone(), kind.clone());
                async move {
                    let id = format!("g{i}");
                    let mut failures = Vec::new();
                    loop {
                        let t = Instant::now();
                        match ask(&a, &kind, &id, Op::Get).await {
                            Ok(r) if r.node != "c" => {
                                return (r.total != i as u64 + 1 + bump, failures);
                            }
                            Ok(_) => failures.push("answered by c".to_owned()),
                            Err(code) => failures.push(format!(
                                "{code} after ~{} ms",
                                t.elapsed().as_millis() / 100 * 100
                            )),
                        }
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
            })
            .buffer_unordered(IN_FLIGHT)
            .collect()
            .await;
        let wrong = results.iter().filter(|(w, _)| *w).count();
        let mut failures = std::collections::BTreeMap::<String, usize>::new();
        for f in results.into_iter().flat_map(|(_, f)| f) {
            *failures.entry(f).or_default() += 1;
        }
        (wrong, failures)
    })
    .await;
    let all_answered = start.elapsed();
    let (handed, left) = bounded(&case, leave_task).await.unwrap();
    let (saved, save_failed, last_save) = bounded(&case, saves_task).await.unwrap();
    let ms = |d: Duration| format!("{:.0} ms", d.as_secs_f64() * 1e3);
    println!(
        "{case:<28} run {run}: all {} grains of c answered from a or b after {:>7} \
         ({wrong} with a stale state); leave() returned after {} (handed_off {handed}); \
         c's saves: {saved} ok, {save_failed} failed, the last done after {}; \
         failed attempts: {retries:?}",
        on_c.len(),
        ms(all_answered),
        ms(left),
        ms(last_save),
    );
    for n in [&a_node, &b_node] {
        n.cluster.leave(Duration::from_secs(30)).await;
    }
    for n in [a_node, b_node, c_node] {
        n.system.shutdown().await;
    }
}

/// Runs `workers` callers for `secs` (after half a second of warm-up);
/// answers (requests done, errors) in the measured window.
async fn drive<F, Fut>(secs: f64, workers: usize, call: F) -> (u64, u64)
where
    F: Fn(usize) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = bool> + Send + 'static,
{
    let warm_until = Instant::now() + Duration::from_millis(500);
    let until = warm_until + Duration::from_secs_f64(secs);
    let tasks: Vec<_> = (0..workers)
        .map(|w| {
            let call = call.clone();
            tokio::spawn(async move {
                let (mut ok, mut err) = (0u64, 0u64);
                loop {
                    let good = call(w).await;
                    let now = Instant::now();
                    if now >= until {
                        break;
                    }
                    if now >= warm_until {
                        if good {
                            ok += 1;
                        } else {
                            err += 1;
                        }
                    }
                }
                (ok, err)
            })
        })
        .collect();
    let mut total = (0, 0);
    for t in tasks {
        let (o, e) = t.await.unwrap();
        total.0 += o;
        total.1 += e;
    }
    total
}

async fn write_through(store: Option<Store>, secs: f64, dir: &Path, pg: Option<&PostgresServer>) {
    let name = store.map_or("none", Store::name);
    let case = format!("write_through/{name}");
    let b = Backends::new();
    let node = match store {
        Some(st) => {
            let stores = open_stores(st, 1, dir, "write-through.db", pg).await;
            let opts = GrainOptions::new().shared_storage(stores.nodes[0].clone());
            b.start_with("s", |bl| ledger_kind(bl, "ledger", opts, "s", None))
                .await
        }
        None => b.start("s").await,
    };
    converge(&[&node], &["s"]).await;
    for (label, grains) in [
        ("1 grain, 64 callers", 1usize),
        ("64 grains, 1 caller each", 64),
    ] {
        let cl = node.cluster.clone();
        let stateful = store.is_some();
        let (ok, err) = bounded(
            &case,
            drive(secs, IN_FLIGHT, move |w| {
                let cl = cl.clone();
                async move {
                    let id = format!("w{}", w % grains);
                    if stateful {
                        ask(&cl, "ledger", &id, Op::Add(1)).await.is_ok()
                    } else {
                        cl.request::<EchoWithId>("echo", &id, &0).await.is_ok()
                    }
                }
            }),
        )
        .await;
        println!(
            "{case:<28} {label:<34} {:>9.0} requests/s  ({ok} in {secs} s, {err} errors)",
            ok as f64 / secs
        );
    }
    node.cluster.leave(Duration::from_secs(10)).await;
    node.system.shutdown().await;
}

// ---------------------------------------------------------------- main

fn main() {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let selected = |name: &str| filters.is_empty() || filters.iter().any(|f| name.contains(f));
    let secs: f64 = std::env::var("GRAIN_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let runs: usize = std::env::var("GRAIN_BENCH_LEAVE_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    let dir = tempfile::Builder::new()
        .prefix("grains-bench-")
        .tempdir()
        .expect("a temporary dir");
    let names = |store: Store| {
        let s = store.name();
        [
            format!("activation/{s}"),
            format!("deactivation/{s}"),
            format!("leave/{s}/dirty"),
            format!("leave/{s}/saved"),
            format!("write_through/{s}"),
        ]
    };
    let want_pg = names(Store::Postgres).iter().any(|n| selected(n));
    // Dropped at the end of main, also when a case panics (unwinding).
    let pg = if want_pg {
        let pg = PostgresServer::start_durable();
        if pg.is_none() {
            println!("postgres: skipped (PostgreSQL is not installed; apt-get install postgresql)");
        }
        pg
    } else {
        None
    };
    let rt: Runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut stores: Vec<Option<Store>> = vec![None];
    stores.extend(Store::ALL.map(Some));
    for store in stores {
        if store == Some(Store::Postgres) && pg.is_none() {
            continue;
        }
        let pg = pg.as_ref();
        let d = dir.path();
        let Some(st) = store else {
            if selected("write_through/none") {
                rt.block_on(write_through(None, secs, d, pg));
            }
            continue;
        };
        let [act, deact, dirty, saved, wt] = names(st);
        if selected(&act) {
            rt.block_on(activation(st, d, pg));
        }
        if selected(&deact) {
            rt.block_on(deactivation(st, d, pg));
        }
        for run in 0..runs {
            if selected(&dirty) {
                rt.block_on(leave(st, true, run, d, pg));
            }
            if selected(&saved) {
                rt.block_on(leave(st, false, run, d, pg));
            }
        }
        if selected(&wt) {
            rt.block_on(write_through(Some(st), secs, d, pg));
        }
    }
    drop(rt);
    drop(pg);
}
