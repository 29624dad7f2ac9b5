//! The report of a run: `report.md` (a summary table per fault, the
//! verdict) and `timeline.png` (per node: answered and failed requests per
//! second, topology changes, fault windows shaded). The picture has no
//! text (no font needed); its legend is in the Markdown.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use plotters::prelude::*;

use crate::checker::Verdict;
use crate::history::{FaultKind, Observation, Request};
use crate::logs::{Event, LogEvent};

/// The color of a fault kind's shading.
pub fn color(kind: FaultKind) -> RGBColor {
    match kind {
        FaultKind::Kill => RGBColor(230, 80, 80),
        FaultKind::Pause => RGBColor(240, 160, 40),
        FaultKind::Partition => RGBColor(150, 90, 200),
        FaultKind::OneWay => RGBColor(230, 120, 200),
        FaultKind::EtcdCut => RGBColor(60, 180, 200),
        FaultKind::EtcdRestart => RGBColor(90, 180, 90),
        FaultKind::Rolling => RGBColor(200, 200, 60),
    }
}

fn hex(c: RGBColor) -> String {
    format!("#{:02x}{:02x}{:02x}", c.0, c.1, c.2)
}

/// What the report shows besides the verdict.
#[derive(Clone, Copy, Debug)]
pub struct RunInfo<'a> {
    /// The run's id.
    pub run_id: &'a str,
    /// The seed of the schedule.
    pub seed: u64,
    /// The provider (`etcd` or `file`).
    pub provider: &'a str,
    /// The failure detection (`all-to-all` or `ring`, issue 17).
    pub monitoring: &'a str,
    /// The nodes.
    pub nodes: &'a [String],
    /// Start and end (Unix ms).
    pub start_ms: u64,
    /// End.
    pub end_ms: u64,
    /// Extra lines (the timing used).
    pub notes: &'a [String],
}

fn secs(ms: u64, start: u64) -> String {
    format!("{:.1}", ms.saturating_sub(start) as f64 / 1000.0)
}

/// The Markdown summary.
pub fn markdown(info: RunInfo<'_>, v: &Verdict) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Fault suite run {}\n", info.run_id);
    let _ = writeln!(
        s,
        "**{}**: {} nodes ({}), provider `{}`, monitoring `{}`, seed {}, {:.0} s, {} requests ({} answered).\n",
        if v.pass() { "PASS" } else { "FAIL" },
        info.nodes.len(),
        info.nodes.join(", "),
        info.provider,
        info.monitoring,
        info.seed,
        info.end_ms.saturating_sub(info.start_ms) as f64 / 1000.0,
        v.requests,
        v.answered
    );
    for n in info.notes {
        let _ = writeln!(s, "- {n}");
    }
    let _ = writeln!(
        s,
        "\nTimes in seconds from the start; figures in ms. *unavail.*: longest time a grain had no answer from any node, fault start to heal; *after heal*: longest wait of a node's client for a grain's first answer after the heal; *converge*: heal to one topology hash on every node with every node up; *double*: double activations (count / longest overlap); bounds in brackets.\n"
    );
    let _ = writeln!(
        s,
        "| # | fault | targets | start | heal | unavail. | after heal | converge | double | failovers | quarantines | topology changes | new activations | requests | errors | result |"
    );
    let _ = writeln!(
        s,
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for f in &v.faults {
        let b = f.bounds;
        let errors: Vec<String> = f.errors.iter().map(|(k, n)| format!("{k}: {n}")).collect();
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} [{}] | {} [{}] | {} [{}] | {} / {} [{}] | {} | {} | {} | {} | {} | {} | {} |",
            f.fault.index,
            f.fault.kind.as_str(),
            f.fault.targets.join(" "),
            secs(f.fault.start_ms, info.start_ms),
            secs(f.fault.heal_ms, info.start_ms),
            f.unavailable
                .as_ref()
                .map_or("-".into(), |(g, u)| format!("{u} ({g})")),
            b.unavailable_ms,
            f.after_heal
                .as_ref()
                .map_or("-".into(), |(n, g, w)| format!("{w} ({n}, {g})")),
            b.after_heal_ms,
            f.convergence_ms.map_or("never".into(), |c| c.to_string()),
            b.convergence_ms,
            f.doubles.len(),
            f.longest_double_ms(),
            b.double_activation_ms,
            f.failovers,
            f.quarantines,
            f.topology_changes,
            f.new_activations,
            f.requests,
            if errors.is_empty() {
                "-".into()
            } else {
                errors.join(", ")
            },
            if f.violations.is_empty() {
                "pass"
            } else {
                "**FAIL**"
            },
        );
    }
    let _ = writeln!(s, "\n## Errors by code (whole run)\n");
    if v.errors.is_empty() {
        let _ = writeln!(s, "none");
    }
    for (code, n) in &v.errors {
        let _ = writeln!(s, "- `{code}`: {n}");
    }
    let _ = writeln!(s, "\n## Double activations\n");
    let _ = writeln!(
        s,
        "Outside any fault: {} (none allowed).",
        v.doubles_outside.len()
    );
    for f in &v.faults {
        for d in f.doubles.iter().take(5) {
            let _ = writeln!(
                s,
                "- fault {} ({}): grain {} served by {} and {} from {} s to {} s ({} ms)",
                f.fault.index,
                f.fault.kind.as_str(),
                d.grain,
                d.first,
                d.second,
                secs(d.from_ms, info.start_ms),
                secs(d.to_ms, info.start_ms),
                d.overlap_ms()
            );
        }
    }
    for d in v.doubles_outside.iter().take(10) {
        let _ = writeln!(
            s,
            "- outside: grain {} served by {} and {} from {} s to {} s ({} ms)",
            d.grain,
            d.first,
            d.second,
            secs(d.from_ms, info.start_ms),
            secs(d.to_ms, info.start_ms),
            d.overlap_ms()
        );
    }
    let _ = writeln!(s, "\n## Bounds exceeded\n");
    if v.violations.is_empty() {
        let _ = writeln!(s, "none");
    }
    for x in &v.violations {
        let _ = writeln!(s, "- {x}");
    }
    let _ = writeln!(s, "\n## Timeline (timeline.png)\n");
    let _ = writeln!(
        s,
        "One panel per node, top to bottom: {}. x: time, the whole run; y: requests per second asked of that node. Blue line: answered; red line: failed; black ticks at the top: that node's topology hash changed. Shaded: fault windows (start to heal):\n",
        info.nodes.join(", ")
    );
    for k in FaultKind::ALL {
        let _ = writeln!(s, "- {} `{}`", k.as_str(), hex(color(k)));
    }
    let _ = writeln!(s, "\n![timeline](timeline.png)");
    s
}

/// The report's section on who quarantined whom and why, from the node
/// logs ([`crate::logs`]): one row per quarantine, lift and stall, with
/// the fault whose window (its start to the next one's) it falls in.
pub fn quarantines(info: RunInfo<'_>, v: &Verdict, events: &[LogEvent]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "\n## Quarantines, lifts and stalls (node logs)\n");
    let fault_of = |t: u64| {
        v.faults
            .iter()
            .rev()
            .find(|f| f.fault.start_ms <= t)
            .map_or("-".to_owned(), |f| {
                format!("{} {}", f.fault.index, f.fault.kind.as_str())
            })
    };
    let in_run: Vec<&LogEvent> = events
        .iter()
        .filter(|e| e.t_ms >= info.start_ms && e.t_ms <= info.end_ms)
        .collect();
    if in_run.is_empty() {
        let _ = writeln!(s, "none");
        return s;
    }
    let _ = writeln!(s, "| time | fault | observer | event | node | reason |");
    let _ = writeln!(s, "|---|---|---|---|---|---|");
    for e in in_run {
        let (what, node, reason) = match &e.event {
            Event::Quarantined { node, reason } => ("quarantined", node.as_str(), reason.as_str()),
            Event::Lifted { node } => ("lifted", node.as_str(), ""),
            Event::Stalled => ("stalled", "", ""),
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {what} | {node} | {reason} |",
            secs(e.t_ms, info.start_ms),
            fault_of(e.t_ms),
            e.observer
        );
    }
    s
}

/// Draws `timeline.png`.
pub fn timeline(
    path: &Path,
    info: RunInfo<'_>,
    v: &Verdict,
    requests: &[Request],
    observations: &[Observation],
) -> Result<(), String> {
    let n = info.nodes.len().max(1);
    let height = 150 * u32::try_from(n).unwrap_or(1);
    let span_s = (info.end_ms.saturating_sub(info.start_ms) as f64 / 1000.0).max(1.0);
    // About 2 pixels a second, so a 30-minute run stays readable.
    let width = (span_s * 2.0).clamp(1400.0, 4000.0) as u32;
    let buckets = span_s.ceil() as usize + 1;
    let at = |ms: u64| ms.saturating_sub(info.start_ms) as f64 / 1000.0;
    let mut ok: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    let mut err: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for r in requests {
        let b = (at(r.end_ms) as usize).min(buckets - 1);
        let m = if r.ok() { &mut ok } else { &mut err };
        m.entry(r.asked.as_str())
            .or_insert_with(|| vec![0.0; buckets])[b] += 1.0;
    }
    let ymax = ok
        .values()
        .chain(err.values())
        .flat_map(|v| v.iter().copied())
        .fold(1.0f64, f64::max)
        * 1.15;
    let root = BitMapBackend::new(path, (width, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let panels = root.split_evenly((n, 1));
    for (panel, node) in panels.iter().zip(info.nodes) {
        let mut chart = ChartBuilder::on(panel)
            .margin(6)
            .build_cartesian_2d(0f64..span_s, 0f64..ymax)
            .map_err(|e| e.to_string())?;
        let shades = v.faults.iter().map(|f| {
            let c = color(f.fault.kind);
            let x1 = at(f.fault.heal_ms).max(at(f.fault.start_ms) + 0.2);
            Rectangle::new(
                [(at(f.fault.start_ms), 0.0), (x1, ymax)],
                c.mix(0.35).filled(),
            )
        });
        chart.draw_series(shades).map_err(|e| e.to_string())?;
        let line = |m: &BTreeMap<&str, Vec<f64>>| -> Vec<(f64, f64)> {
            m.get(node.as_str()).map_or_else(Vec::new, |v| {
                v.iter()
                    .enumerate()
                    .map(|(i, y)| (i as f64 + 0.5, *y))
                    .collect()
            })
        };
        chart
            .draw_series(std::iter::once(PathElement::new(
                line(&ok),
                BLUE.stroke_width(2),
            )))
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(std::iter::once(PathElement::new(
                line(&err),
                RED.stroke_width(2),
            )))
            .map_err(|e| e.to_string())?;
        let mut mine: Vec<&Observation> = observations
            .iter()
            .filter(|o| o.node == *node && o.answered)
            .collect();
        mine.sort_by_key(|o| o.t_ms);
        let ticks = mine.windows(2).filter(|w| w[0].hash != w[1].hash).map(|w| {
            let x = at(w[1].t_ms);
            PathElement::new(vec![(x, ymax * 0.85), (x, ymax)], BLACK.stroke_width(2))
        });
        chart.draw_series(ticks).map_err(|e| e.to_string())?;
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(0.0, 0.0), (span_s, ymax)],
                BLACK.stroke_width(1),
            )))
            .map_err(|e| e.to_string())?;
    }
    root.present().map_err(|e| e.to_string())
}

/// Figures of one kind of fault over several runs.
#[derive(Debug, Default)]
struct KindSummary {
    faults: usize,
    unavailable: Vec<u64>,
    after_heal: Vec<u64>,
    convergence: Vec<u64>,
    never_converged: usize,
    doubles: usize,
    longest_double: u64,
    over_bound: usize,
    errors: BTreeMap<String, usize>,
}

fn median_max(v: &[u64]) -> String {
    if v.is_empty() {
        return "-".into();
    }
    let mut v = v.to_vec();
    v.sort_unstable();
    format!("{} / {}", v[v.len() / 2], v[v.len() - 1])
}

/// A Markdown table of the figures per kind of fault over `verdicts`
/// (`fault-suite summary DIR...`): medians and maxima in ms.
pub fn summary(verdicts: &[Verdict]) -> String {
    let mut by: BTreeMap<FaultKind, KindSummary> = BTreeMap::new();
    let (mut requests, mut answered, mut outside) = (0, 0, 0);
    for v in verdicts {
        requests += v.requests;
        answered += v.answered;
        outside += v.doubles_outside.len();
        for f in &v.faults {
            let k = by.entry(f.fault.kind).or_default();
            k.faults += 1;
            if let Some((_, u)) = &f.unavailable {
                k.unavailable.push(*u);
            }
            if let Some((_, _, w)) = &f.after_heal {
                k.after_heal.push(*w);
            }
            match f.convergence_ms {
                Some(c) => k.convergence.push(c),
                None => k.never_converged += 1,
            }
            k.doubles += f.doubles.len();
            k.longest_double = k.longest_double.max(f.longest_double_ms());
            k.over_bound += usize::from(!f.violations.is_empty());
            for (code, n) in &f.errors {
                *k.errors.entry(code.clone()).or_insert(0) += n;
            }
        }
    }
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} runs, {requests} requests, {answered} answered, {outside} double activations outside faults.\n",
        verdicts.len()
    );
    let _ = writeln!(
        s,
        "| fault | count | unavailable (median / max) | after heal (median / max) | convergence (median / max) | double activations (count / longest) | faults over a bound | errors by code |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|");
    for (kind, k) in &by {
        let never = if k.never_converged > 0 {
            format!(" ({} never)", k.never_converged)
        } else {
            String::new()
        };
        let errors: Vec<String> = k.errors.iter().map(|(c, n)| format!("{c} {n}")).collect();
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {}{never} | {} / {} | {} | {} |",
            kind.as_str(),
            k.faults,
            median_max(&k.unavailable),
            median_max(&k.after_heal),
            median_max(&k.convergence),
            k.doubles,
            k.longest_double,
            k.over_bound,
            if errors.is_empty() {
                "-".into()
            } else {
                errors.join(", ")
            }
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::{Bounds, DoubleActivation, FaultFigures};
    use crate::history::Fault;

    fn figures(kind: FaultKind, unavailable: u64, violations: Vec<String>) -> FaultFigures {
        FaultFigures {
            fault: Fault {
                index: 0,
                kind,
                targets: vec!["n1".into()],
                start_ms: 1_000,
                heal_ms: 2_000,
            },
            bounds: Bounds {
                unavailable_ms: 1_500,
                after_heal_ms: 5_000,
                convergence_ms: 5_000,
                double_activation_ms: 0,
            },
            window_end_ms: 3_000,
            unavailable: Some(("g1".into(), unavailable)),
            after_heal: Some(("n2".into(), "g1".into(), 100)),
            convergence_ms: Some(300),
            failovers: 0,
            quarantines: 2,
            topology_changes: 3,
            new_activations: 1,
            requests: 10,
            errors: BTreeMap::from([("client.connect".to_owned(), 4)]),
            doubles: vec![DoubleActivation {
                grain: "g1".into(),
                first: "a".into(),
                second: "b".into(),
                from_ms: 1_200,
                to_ms: 1_700,
            }],
            violations,
        }
    }

    #[test]
    fn issue16_report_and_summary_show_the_figures_and_the_verdict() {
        let bad = Verdict {
            faults: vec![figures(FaultKind::Kill, 2_000, vec!["too long".into()])],
            doubles_outside: Vec::new(),
            requests: 10,
            answered: 6,
            errors: BTreeMap::from([("client.connect".to_owned(), 4)]),
            violations: vec!["too long".into()],
        };
        let good = Verdict {
            faults: vec![figures(FaultKind::Kill, 1_000, Vec::new())],
            violations: Vec::new(),
            ..bad.clone()
        };
        let nodes = vec!["n1".to_owned(), "n2".to_owned()];
        let info = RunInfo {
            run_id: "r",
            seed: 1,
            provider: "etcd",
            monitoring: "ring",
            nodes: &nodes,
            start_ms: 0,
            end_ms: 3_000,
            notes: &[],
        };
        let md = markdown(info, &bad);
        assert!(md.contains("**FAIL**"), "{md}");
        assert!(
            md.contains("| 0 | kill | n1 | 1.0 | 2.0 | 2000 (g1) [1500] |"),
            "{md}"
        );
        assert!(md.contains("- too long"), "{md}");
        assert!(md.contains("monitoring `ring`"), "{md}");
        let events = [
            LogEvent {
                t_ms: 1_500,
                observer: "n2".into(),
                event: Event::Quarantined {
                    node: "n1".into(),
                    reason: "monitors' verdict: n2, n3".into(),
                },
            },
            LogEvent {
                t_ms: 500,
                observer: "n1".into(),
                event: Event::Stalled,
            },
        ];
        let q = quarantines(info, &bad, &events);
        assert!(
            q.contains("| 1.5 | 0 kill | n2 | quarantined | n1 | monitors' verdict: n2, n3 |"),
            "{q}"
        );
        assert!(q.contains("| 0.5 | - | n1 | stalled |  |  |"), "{q}");
        assert!(markdown(info, &good).starts_with("# Fault suite run r\n\n**PASS**"));
        let table = summary(&[bad, good.clone()]);
        assert!(
            table.starts_with("2 runs, 20 requests, 12 answered"),
            "{table}"
        );
        assert!(
            table.contains("| kill | 2 | 2000 / 2000 | 100 / 100 | 300 / 300 | 2 / 500 | 1 | client.connect 8 |"),
            "{table}"
        );
        let dir = std::env::temp_dir().join(format!("fs-report-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_default();
        let png = dir.join("timeline.png");
        timeline(&png, info, &good, &[], &[]).unwrap_or_else(|e| panic!("{e}"));
        let bytes = std::fs::read(&png).unwrap_or_default();
        assert!(bytes.starts_with(b"\x89PNG"), "not a PNG");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
