//! The Markdown tables the binary prints (for `docs/performance.md`).

use std::fmt::Write as _;

use crate::scenario::{Outcome, Summary};
use crate::sim::KINDS;

fn ms(s: &Summary) -> String {
    if s.count == 0 {
        return "–".into();
    }
    format!("{:.0} / {:.0} / {:.0}", s.p50, s.p99, s.max)
}

fn rate(s: &Summary) -> String {
    format!("{:.2} / {:.2} / {:.2}", s.mean, s.p99, s.max)
}

/// The summary table: one row per outcome.
pub fn summary_table(outcomes: &[Outcome]) -> String {
    let mut out = String::new();
    out.push_str(
        "| scenario | mode | nodes | simulated s | loss | reports | false quarantines (reports / incarnations) | detection: first report p50 / p99 / max (ms) | detection: last live view p50 / p99 / max (ms) | crashes reported / removed everywhere / measured | sent per node per s, mean / p99 / max | received per node per s, mean / p99 / max | peers sent to per node, mean / max | wall s |\n",
    );
    out.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for o in outcomes {
        let (first, last, counts) = match &o.detection {
            Some(d) => (
                ms(&d.first_report),
                ms(&d.last_view),
                format!(
                    "{} / {} / {} (views missed by the verdicts: {} of {})",
                    d.reported, d.removed_everywhere, d.crashes, d.missed, d.pairs
                ),
            ),
            None => ("–".into(), "–".into(), "–".into()),
        };
        let _ = writeln!(
            out,
            "| {} {} | {} | {} | {:.0} | {} | {} | {} / {} | {} | {} | {} | {} | {} | {:.1} / {:.0} | {:.1} |",
            o.scenario.name(),
            o.scenario.title(),
            o.mode.as_str(),
            o.nodes,
            o.simulated_secs,
            o.loss,
            o.reports,
            o.false_reports,
            o.false_targets,
            first,
            last,
            counts,
            rate(&o.rates.sent),
            rate(&o.rates.received),
            o.rates.peers.mean,
            o.rates.peers.max,
            o.wall.as_secs_f64(),
        );
    }
    out
}

/// Messages per node per second by kind (mean over nodes; p99 and max of
/// the total), one column per outcome.
pub fn kinds_table(outcomes: &[Outcome]) -> String {
    let mut out = String::new();
    out.push_str("| kind (sent per node per s, mean over nodes; p99 / max) |");
    for o in outcomes {
        let _ = write!(
            out,
            " {} {} N={} |",
            o.scenario.name(),
            o.mode.as_str(),
            o.nodes
        );
    }
    out.push('\n');
    out.push_str("|---|");
    for _ in outcomes {
        out.push_str("---|");
    }
    out.push('\n');
    for (k, name) in KINDS.iter().enumerate() {
        if outcomes
            .iter()
            .all(|o| o.rates.sent_by_kind.get(k).is_none_or(|s| s.max == 0.0))
        {
            continue;
        }
        let _ = write!(out, "| {name} |");
        for o in outcomes {
            let s = o.rates.sent_by_kind[k];
            let _ = write!(out, " {:.2} ({:.0} / {:.0}) |", s.mean, s.p99, s.max);
        }
        out.push('\n');
    }
    out.push_str("| **all** |");
    for o in outcomes {
        let _ = write!(out, " **{}** |", rate(&o.rates.sent));
    }
    out.push('\n');
    out
}

/// Notes and false-quarantine examples, as a list.
pub fn notes(outcomes: &[Outcome]) -> String {
    let mut out = String::new();
    for o in outcomes {
        if o.notes.is_empty() && o.false_examples.is_empty() {
            continue;
        }
        let _ = write!(
            out,
            "- {} {} N={}:",
            o.scenario.name(),
            o.mode.as_str(),
            o.nodes
        );
        for n in &o.notes {
            let _ = write!(out, " {n};");
        }
        if !o.false_examples.is_empty() {
            let _ = write!(
                out,
                " false quarantines, first: {}",
                o.false_examples.join(", ")
            );
        }
        out.push('\n');
    }
    out
}
