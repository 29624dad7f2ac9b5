//! Shared sizes, the tokio runtime, the fan-out probe and loss bookkeeping.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::runtime::Runtime;
use tokio::sync::Notify;

/// Messages told to the summing actor per iteration of the tell benchmark.
pub const TELL_N: u64 = 1_000_000;
/// Sequential asks per iteration of the ask benchmark.
pub const ASK_N: u64 = 100_000;
/// Events published per iteration of the fan-out benchmark.
pub const FAN_EVENTS: u64 = 100_000;
/// Subscribers in the fan-out benchmark.
pub const FAN_SUBS: usize = 100;
/// Actors spawned (and stopped) per iteration of the spawn benchmark.
pub const SPAWN_N: usize = 10_000;
/// Panic + restart + ping cycles per iteration of the restart benchmark.
pub const RESTART_N: u64 = 1_000;
/// Timeout used for every request/reply in every peer.
pub const ASK_TIMEOUT: Duration = Duration::from_secs(5);
/// Hard cap on how long one fan-out iteration waits for its subscribers.
pub const FAN_TIMEOUT: Duration = Duration::from_secs(30);
/// A fan-out iteration also ends once publishing is over and no subscriber has
/// made progress for this long (a lossy peer would otherwise always hit
/// [`FAN_TIMEOUT`]). The time reported to criterion then includes this window
/// (the iteration really lasted that long, and criterion would otherwise run
/// hundreds of such iterations); the loss report gives the mean time to the
/// last delivery of incomplete iterations separately.
pub const FAN_STALL: Duration = Duration::from_millis(200);
const FAN_POLL: Duration = Duration::from_millis(10);

/// The runtime every benchmark uses: multi-thread, two workers.
pub fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("build tokio runtime")
}

/// Runs `fut` as a task on `rt`'s workers and waits for its output. The
/// benchmark drivers run on the runtime (as an actor or a handler would),
/// not on the thread blocked in `block_on`, whose park/unpark round trips
/// would dominate request/reply timings.
pub fn drive<T, F>(rt: &Runtime, fut: F) -> T
where
    F: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    rt.block_on(rt.spawn(fut)).expect("benchmark task panicked")
}

/// The event type published in the fan-out benchmark.
#[derive(Clone, Copy, Debug)]
pub struct Ev(pub u64);

#[repr(align(64))]
#[derive(Default)]
struct PaddedCount(AtomicU64);

/// Shared between the subscribers of one fan-out iteration and the waiter.
pub struct FanProbe {
    counts: Box<[PaddedCount]>,
    remaining: AtomicUsize,
    all_done: Notify,
    target: u64,
}

impl FanProbe {
    /// A probe for `subs` subscribers that each expect `target` events.
    pub fn new(subs: usize, target: u64) -> Arc<Self> {
        Arc::new(Self {
            counts: (0..subs).map(|_| PaddedCount::default()).collect(),
            remaining: AtomicUsize::new(subs),
            all_done: Notify::new(),
            target,
        })
    }

    /// Subscriber `idx` has now seen `seen` events.
    #[inline]
    pub fn record(&self, idx: usize, seen: u64) {
        self.counts[idx].0.store(seen, Ordering::Relaxed);
        if seen == self.target && self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.all_done.notify_one();
        }
    }

    fn total(&self) -> u64 {
        self.counts
            .iter()
            .map(|c| c.0.load(Ordering::Relaxed))
            .sum()
    }

    /// Expected deliveries for the whole iteration.
    pub fn expected(&self) -> u64 {
        self.target * self.counts.len() as u64
    }

    /// Waits until every subscriber saw every event, or progress stalled, or
    /// the hard timeout.
    pub async fn wait(&self, start: Instant) -> FanOutcome {
        let hard = start + FAN_TIMEOUT;
        let mut last_total = self.total();
        let mut last_change = Instant::now();
        loop {
            if self.remaining.load(Ordering::Acquire) == 0 {
                let elapsed = start.elapsed();
                return FanOutcome {
                    elapsed,
                    last_delivery: elapsed,
                    received: self.expected(),
                };
            }
            tokio::select! {
                () = self.all_done.notified() => continue,
                () = tokio::time::sleep(FAN_POLL) => {}
            }
            let total = self.total();
            let now = Instant::now();
            if total != last_total {
                last_total = total;
                last_change = now;
            } else if now.duration_since(last_change) >= FAN_STALL || now >= hard {
                return FanOutcome {
                    elapsed: now.duration_since(start),
                    last_delivery: last_change.duration_since(start),
                    received: total,
                };
            }
        }
    }
}

/// How one fan-out iteration ended.
pub struct FanOutcome {
    /// When the iteration ended (all delivered, or stall/timeout detected).
    pub elapsed: Duration,
    /// When the last delivery was observed (10 ms polling granularity if
    /// incomplete).
    pub last_delivery: Duration,
    /// Deliveries counted by the subscribers.
    pub received: u64,
}

#[derive(Default)]
struct Tally {
    iterations: u64,
    expected: u64,
    received: u64,
    stalled_iterations: u64,
    stalled_last_delivery: Duration,
}

static LOSSES: Mutex<BTreeMap<String, Tally>> = Mutex::new(BTreeMap::new());

/// Records the outcome of one fan-out iteration of `peer` and returns the
/// time to report to criterion.
pub fn record_fanout(peer: &str, probe: &FanProbe, outcome: &FanOutcome) -> Duration {
    let mut map = LOSSES.lock().unwrap_or_else(|e| e.into_inner());
    let t = map.entry(peer.to_owned()).or_default();
    t.iterations += 1;
    t.expected += probe.expected();
    t.received += outcome.received;
    if outcome.received < probe.expected() {
        t.stalled_iterations += 1;
        t.stalled_last_delivery += outcome.last_delivery;
    }
    outcome.elapsed
}

/// Records a correctness problem found by a benchmark (wrong sum, failed
/// ask, ...): printed and appended to the losses file, never a panic.
pub fn record_problem(peer: &str, scenario: &str, what: &str) {
    let line = format!("PROBLEM {scenario}/{peer}: {what}");
    eprintln!("{line}");
    append_to_losses_file(&line);
}

/// Prints (once per peer) and appends to `target/bench-losses.txt` the losses
/// counted by the fan-out benchmark since the last report.
pub fn report_fanout_losses(group: &str) {
    let map = std::mem::take(&mut *LOSSES.lock().unwrap_or_else(|e| e.into_inner()));
    let features = if cfg!(feature = "ractor-output-port-v2") {
        " [ractor output-port-v2]"
    } else if cfg!(feature = "ractor-default") {
        " [ractor default features]"
    } else {
        ""
    };
    for (peer, t) in map {
        let lost = t.expected - t.received;
        let mut line = format!(
            "{group}/{peer}{features}: iterations={} expected={} received={} lost={} ({:.3}% lost, {} iterations incomplete)",
            t.iterations,
            t.expected,
            t.received,
            lost,
            if t.expected == 0 {
                0.0
            } else {
                lost as f64 * 100.0 / t.expected as f64
            },
            t.stalled_iterations,
        );
        if let Some(mean) = t
            .stalled_last_delivery
            .checked_div(t.stalled_iterations as u32)
        {
            line.push_str(&format!(
                "; incomplete iterations: last delivery after {mean:.1?} on average (reported times include the {FAN_STALL:?} stall window)"
            ));
        }
        eprintln!("{line}");
        append_to_losses_file(&line);
    }
}

fn append_to_losses_file(line: &str) {
    // The bench binary lives in <target>/<profile>/deps/.
    let Some(target) = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.ancestors().nth(3).map(std::path::Path::to_path_buf))
    else {
        return;
    };
    let path = target.join("bench-losses.txt");
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
    {
        let _ = writeln!(f, "[{secs}] {line}");
    }
}

/// Replaces the panic hook with a silent one for as long as it lives.
pub struct QuietPanics {
    _private: (),
}

type PanicHook = Box<dyn Fn(&std::panic::PanicHookInfo<'_>) + Sync + Send + 'static>;
static SAVED_HOOK: Mutex<Option<PanicHook>> = Mutex::new(None);

impl QuietPanics {
    /// Installs a no-op panic hook, saving the current one.
    pub fn install() -> Self {
        let previous = std::panic::take_hook();
        *SAVED_HOOK.lock().unwrap_or_else(|e| e.into_inner()) = Some(previous);
        std::panic::set_hook(Box::new(|_| {}));
        Self { _private: () }
    }
}

impl Drop for QuietPanics {
    fn drop(&mut self) {
        if let Some(previous) = SAVED_HOOK.lock().unwrap_or_else(|e| e.into_inner()).take() {
            std::panic::set_hook(previous);
        }
    }
}
