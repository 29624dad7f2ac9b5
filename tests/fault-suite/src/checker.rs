//! The checker: pure functions from a run's history (requests, membership
//! observations, faults) to figures and a verdict. No I/O, no clock.
//!
//! Per fault, with its window running from its start to the next fault's
//! start (or the end of the run):
//!
//! - **double activations**: two activations of one grain that both served
//!   requests at the same time. An activation *certainly* lived from the
//!   end of its first answer to the start of its last one; two activations
//!   of a grain are a double activation when an answer of one lies wholly
//!   inside that span of the other (so a slow request straddling a normal
//!   hand-off is not one). The figure is the overlap of their spans from
//!   first answer start to last answer end. Inside a fault that splits the
//!   members' views ([`FaultKind::splits_views`]) they are bounded by that
//!   kind's bound; anywhere else the bound is zero. A double activation
//!   is a fault's when it begins between the fault's start and the moment
//!   the members agree again after the heal (at least `settle_ms` after
//!   it).
//! - **unavailability**: per grain, the longest time without an answer
//!   (from any node) counted from the fault's start until the heal; and
//!   after the heal, the longest time any node's client waited for its
//!   first answer of a grain.
//! - **convergence**: time from the heal until every node reports the same
//!   topology hash with every node up (observations after the heal only),
//!   and keeps doing so for [`STABLE_MS`] (a quarantine that relapses
//!   right after the views agreed does not count as converged).
//! - **failovers** (provider changes), **quarantines** (a member newly
//!   quarantined by an observer), **topology changes** (hash changes), and
//!   **new activations** in the window; **errors by code**.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::history::{Fault, FaultKind, Observation, Request};

/// The limits a fault's figures must stay within (milliseconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bounds {
    /// Longest time a grain goes without an answer from any node, from
    /// the fault's start to its heal.
    pub unavailable_ms: u64,
    /// Longest wait of any node's client for a grain's first answer after
    /// the heal.
    pub after_heal_ms: u64,
    /// From the heal to one topology hash on every node, every node up.
    pub convergence_ms: u64,
    /// Longest double activation attributed to the fault (0: none
    /// allowed).
    pub double_activation_ms: u64,
}

/// The timing of the cluster under test, from which the bounds follow
/// (see docs/reliability.md for the reasoning).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Timing {
    /// `[remoting] failure_timeout`.
    pub failure_timeout_ms: u64,
    /// The provider's lease (etcd `lease_ttl`) or equivalent.
    pub lease_ttl_ms: u64,
    /// How long a cut or pause lasts.
    pub fault_ms: u64,
    /// Ring monitoring's timing (issue 17) when the nodes ran
    /// `[remoting.monitoring] mode = "ring"`; `None`: all-to-all (the
    /// default, and every run recorded before the option existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ring: Option<RingTiming>,
}

/// The ring monitoring settings the bounds of a ring-mode run follow from
/// (docs/monitoring-design.md, §2.10 and §3.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct RingTiming {
    /// `probe_interval` (I).
    pub probe_interval_ms: u64,
    /// The shortest suspicion before a member is reported (T_min), see
    /// [`t_min_ms`].
    pub t_min_ms: u64,
}

/// T_min = max(I / 3, α · log10(max(N, 10)) · I), in whole ms (rounded
/// up): the core's shortest suspicion for `nodes` members, probe interval
/// I and `suspicion_mult` α.
pub fn t_min_ms(probe_interval_ms: u64, suspicion_mult: f64, nodes: usize) -> u64 {
    let i = probe_interval_ms as f64;
    let n = (nodes.max(10)) as f64;
    (i / 3.0).max(suspicion_mult * n.log10() * i).ceil() as u64
}

/// How long a crash takes to be reported, the retry and the workload's
/// period included: all-to-all `ft + 500 ms`; ring `3·I + T_min + 500 ms`
/// (a round to notice, the indirect probes, T_min, and the co-monitors'
/// rounds for the quorum).
pub fn detection_ms(t: Timing) -> u64 {
    match t.ring {
        None => t.failure_timeout_ms + 500,
        Some(r) => 3 * r.probe_interval_ms + r.t_min_ms + 500,
    }
}

/// Allowance for follow-up FS-1 (docs/reliability.md): a process resumed
/// after a pause longer than the failure timeout counts its own pause as
/// its peers' silence and quarantines every peer; it serves every grain
/// alone, and the peers' requests to it are refused, until the quarantines
/// are lifted at the provider's next refresh (etcd `keepalive`, 5 s by
/// default).
pub const FS1_RESUMED_NODE_QUARANTINES_PEERS_MS: u64 = 5_000;

/// One topology hash on every node within this long of a heal.
pub const CONVERGENCE_MS: u64 = 5_000;

/// The bounds of a fault of `kind` that held `hold_ms` (start to heal),
/// for `timing`. See docs/reliability.md, "Bounds per fault".
///
/// In ring mode (`t.ring`) detection is [`detection_ms`]'s ring bound and
/// the pause carries no FS-1 allowance: a resumed node is one monitor
/// among k and cannot quarantine anyone alone (docs/monitoring-design.md,
/// §2.10), so the relapse the allowance covers must not happen.
pub fn bounds_for(kind: FaultKind, t: Timing, hold_ms: u64) -> Bounds {
    let detect = detection_ms(t);
    let after_heal = 5_000;
    let fs1 = if kind == FaultKind::Pause && t.ring.is_none() {
        FS1_RESUMED_NODE_QUARANTINES_PEERS_MS
    } else {
        0
    };
    let convergence_ms = CONVERGENCE_MS + fs1;
    let unavailable_ms = if kind == FaultKind::EtcdCut {
        // The others drop the node when its lease expires.
        t.lease_ttl_ms + detect
    } else {
        detect
    };
    // Where views split, two activations can serve from the moment a side
    // detects the other (never before the fault) until the views agree
    // again after the heal.
    let double_activation_ms = if kind.splits_views() {
        hold_ms + convergence_ms
    } else {
        0
    };
    Bounds {
        unavailable_ms,
        after_heal_ms: after_heal + fs1,
        convergence_ms,
        double_activation_ms,
    }
}

/// Two activations of a grain serving at the same time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoubleActivation {
    /// The grain.
    pub grain: String,
    /// One activation.
    pub first: String,
    /// The other.
    pub second: String,
    /// Start of the overlap.
    pub from_ms: u64,
    /// End of the overlap.
    pub to_ms: u64,
}

impl DoubleActivation {
    /// Its length.
    pub fn overlap_ms(&self) -> u64 {
        self.to_ms.saturating_sub(self.from_ms)
    }
}

/// The figures of one fault.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FaultFigures {
    /// The fault.
    pub fault: Fault,
    /// Its bounds.
    pub bounds: Bounds,
    /// Where its window ends (the next fault's start, or the run's end).
    pub window_end_ms: u64,
    /// The worst grain and its time without an answer, start to heal.
    pub unavailable: Option<(String, u64)>,
    /// The worst (node, grain) and its wait after the heal.
    pub after_heal: Option<(String, String, u64)>,
    /// Heal to one hash everywhere; `None`: not within the window.
    pub convergence_ms: Option<u64>,
    /// Provider failovers in the window, all nodes.
    pub failovers: u64,
    /// Members newly quarantined in the window (observer, member) pairs.
    pub quarantines: usize,
    /// Topology hash changes in the window, all nodes.
    pub topology_changes: usize,
    /// Activations whose first answer is in the window.
    pub new_activations: usize,
    /// Requests in the window.
    pub requests: usize,
    /// Failed requests in the window by code.
    pub errors: BTreeMap<String, usize>,
    /// Double activations attributed to it.
    pub doubles: Vec<DoubleActivation>,
    /// Bounds exceeded, one line each.
    pub violations: Vec<String>,
}

impl FaultFigures {
    /// The longest double activation.
    pub fn longest_double_ms(&self) -> u64 {
        self.doubles
            .iter()
            .map(DoubleActivation::overlap_ms)
            .max()
            .unwrap_or(0)
    }
}

/// A run's verdict.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Verdict {
    /// Per fault.
    pub faults: Vec<FaultFigures>,
    /// Double activations in no fault's window.
    pub doubles_outside: Vec<DoubleActivation>,
    /// Requests.
    pub requests: usize,
    /// Answered.
    pub answered: usize,
    /// Failed requests by code, whole run.
    pub errors: BTreeMap<String, usize>,
    /// Every bound exceeded.
    pub violations: Vec<String>,
}

impl Verdict {
    /// Whether every figure is within its bounds.
    pub fn pass(&self) -> bool {
        self.violations.is_empty()
    }
}

/// What the checker reads.
#[derive(Clone, Copy, Debug)]
pub struct Input<'a> {
    /// The workload's requests.
    pub requests: &'a [Request],
    /// The nodes' membership as observed.
    pub observations: &'a [Observation],
    /// The faults, in order.
    pub faults: &'a [Fault],
    /// Every node of the cluster.
    pub nodes: &'a [String],
    /// The run's end.
    pub end_ms: u64,
    /// How long after a heal a double activation is still the fault's.
    pub settle_ms: u64,
}

#[derive(Debug)]
struct Span {
    grain: String,
    activation: String,
    /// First answer's start, last answer's end.
    loose: (u64, u64),
    /// First answer's end, last answer's start (may be empty).
    certain: (u64, u64),
    answers: Vec<(u64, u64)>,
}

fn spans(requests: &[Request]) -> Vec<Span> {
    let mut by: BTreeMap<(&str, &str), Vec<(u64, u64)>> = BTreeMap::new();
    for r in requests.iter().filter(|r| r.ok()) {
        if let Some(a) = &r.activation {
            by.entry((r.grain.as_str(), a.as_str()))
                .or_default()
                .push((r.start_ms, r.end_ms));
        }
    }
    by.into_iter()
        .map(|((grain, activation), mut answers)| {
            answers.sort_unstable();
            let first_start = answers.iter().map(|a| a.0).min().unwrap_or(0);
            let last_end = answers.iter().map(|a| a.1).max().unwrap_or(0);
            let first_end = answers.iter().map(|a| a.1).min().unwrap_or(0);
            let last_start = answers.iter().map(|a| a.0).max().unwrap_or(0);
            Span {
                grain: grain.to_owned(),
                activation: activation.to_owned(),
                loose: (first_start, last_end),
                certain: (first_end, last_start),
                answers,
            }
        })
        .collect()
}

/// Whether one of `answers` (sorted by start) lies wholly inside
/// `certain`.
fn any_inside(answers: &[(u64, u64)], certain: (u64, u64)) -> bool {
    let (from, to) = certain;
    if from > to {
        return false;
    }
    let first = answers.partition_point(|a| a.0 < from);
    answers[first..]
        .iter()
        .take_while(|a| a.0 <= to)
        .any(|a| a.1 <= to)
}

/// Every double activation in `requests` (see the module documentation).
pub fn double_activations(requests: &[Request]) -> Vec<DoubleActivation> {
    let spans = spans(requests);
    let mut by_grain: BTreeMap<&str, Vec<&Span>> = BTreeMap::new();
    for s in &spans {
        by_grain.entry(s.grain.as_str()).or_default().push(s);
    }
    let mut out = Vec::new();
    for (grain, list) in by_grain {
        for (i, a) in list.iter().enumerate() {
            for b in &list[i + 1..] {
                // Spans that do not meet cannot interleave.
                if a.loose.1 < b.loose.0 || b.loose.1 < a.loose.0 {
                    continue;
                }
                let interleaved =
                    any_inside(&b.answers, a.certain) || any_inside(&a.answers, b.certain);
                if !interleaved {
                    continue;
                }
                let from = a.loose.0.max(b.loose.0);
                let to = a.loose.1.min(b.loose.1);
                out.push(DoubleActivation {
                    grain: grain.to_owned(),
                    first: a.activation.clone(),
                    second: b.activation.clone(),
                    from_ms: from,
                    to_ms: to.max(from),
                });
            }
        }
    }
    out
}

/// The longest time `grain` went without an answer from any node,
/// counted from `from` until its first answer at or after `to` (or the end
/// of the run).
pub fn unavailable_ms(ok_ends: &[u64], from: u64, to: u64, end_ms: u64) -> u64 {
    // ok_ends is sorted: start at the first answer after `from`.
    let first = ok_ends.partition_point(|t| *t <= from);
    let mut prev = from;
    let mut worst = 0;
    for &t in &ok_ends[first..] {
        worst = worst.max(t - prev);
        prev = t;
        if t >= to {
            return worst;
        }
    }
    // Never answered again after `prev`.
    worst.max(end_ms.saturating_sub(prev))
}

/// Observations begun this close to the next fault's start are not used
/// for the convergence of the previous one (they may see the next fault).
pub const NEXT_FAULT_MARGIN_MS: u64 = 250;

/// How long the members must keep agreeing for a convergence to count: a
/// view that agrees for a moment and splits again (a quarantine that
/// relapses) has not converged.
pub const STABLE_MS: u64 = 3_000;

/// The first time at or after `heal` (before `until`) when every node's
/// latest observation since `heal` has the same hash and lists every node
/// up, and they keep agreeing for [`STABLE_MS`] (or until `until`); as
/// milliseconds after `heal`. `observations` are sorted by time.
pub fn convergence_ms(
    observations: &[&Observation],
    nodes: &[String],
    heal: u64,
    until: u64,
) -> Option<u64> {
    let first = observations.partition_point(|o| o.t_ms < heal);
    let after = observations[first..]
        .iter()
        .copied()
        .take_while(|o| o.t_ms <= until);
    let everyone: BTreeSet<&str> = nodes.iter().map(String::as_str).collect();
    let mut latest: HashMap<&str, &Observation> = HashMap::new();
    // Since when they agree, on which hash.
    let mut agreeing: Option<(u64, Option<String>)> = None;
    for o in after {
        latest.insert(o.node.as_str(), o);
        if latest.len() < nodes.len() {
            continue;
        }
        let mut hashes = BTreeSet::new();
        let mut all_up = true;
        for n in nodes {
            match latest.get(n.as_str()) {
                Some(l) if l.answered => {
                    hashes.insert(l.hash.clone());
                    all_up &= l.up.len() == everyone.len()
                        && l.up.iter().all(|u| everyone.contains(u.as_str()));
                }
                _ => all_up = false,
            }
        }
        if all_up && hashes.len() == 1 {
            let hash = hashes.into_iter().next().flatten();
            match &agreeing {
                Some((since, h)) if *h == hash => {
                    if o.t_ms - since >= STABLE_MS {
                        return Some(since - heal);
                    }
                }
                _ => agreeing = Some((o.t_ms, hash)),
            }
        } else {
            agreeing = None;
        }
    }
    // Still agreeing when the window ended: too short to prove, accepted.
    agreeing.map(|(since, _)| since - heal)
}

struct Changes {
    failovers: u64,
    quarantines: usize,
    topology_changes: usize,
}

/// Answered observations per node, sorted by time.
fn by_node(observations: &[Observation]) -> BTreeMap<&str, Vec<&Observation>> {
    let mut by: BTreeMap<&str, Vec<&Observation>> = BTreeMap::new();
    for o in observations.iter().filter(|o| o.answered) {
        by.entry(o.node.as_str()).or_default().push(o);
    }
    for list in by.values_mut() {
        list.sort_by_key(|o| o.t_ms);
    }
    by
}

fn changes(by_node: &BTreeMap<&str, Vec<&Observation>>, from: u64, to: u64) -> Changes {
    let mut c = Changes {
        failovers: 0,
        quarantines: 0,
        topology_changes: 0,
    };
    for list in by_node.values() {
        // Pairs (a, b) whose later observation b is in [from, to).
        let lo = list.partition_point(|o| o.t_ms < from).max(1);
        let hi = list.partition_point(|o| o.t_ms < to);
        for j in lo..hi.max(lo) {
            let (a, b) = (list[j - 1], list[j]);
            // A restarted node counts from zero again.
            c.failovers += b.failovers.saturating_sub(a.failovers);
            if a.hash != b.hash {
                c.topology_changes += 1;
            }
            c.quarantines += b
                .quarantined
                .iter()
                .filter(|q| !a.quarantined.contains(q))
                .count();
        }
    }
    c
}

/// Checks a run against `bounds` (per kind).
pub fn check(input: Input<'_>, bounds: &dyn Fn(&Fault) -> Bounds) -> Verdict {
    let mut ok_ends: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    let mut grains: BTreeSet<&str> = BTreeSet::new();
    for r in input.requests {
        grains.insert(r.grain.as_str());
        if r.ok() {
            ok_ends.entry(r.grain.as_str()).or_default().push(r.end_ms);
        }
    }
    for v in ok_ends.values_mut() {
        v.sort_unstable();
    }
    let doubles = double_activations(input.requests);
    let mut spans = spans(input.requests);
    spans.sort_by_key(|s| s.loose.0);
    let mut observations: Vec<&Observation> = input.observations.iter().collect();
    observations.sort_by_key(|o| o.t_ms);
    let per_node = by_node(input.observations);
    let mut by_start: Vec<&Request> = input.requests.iter().collect();
    by_start.sort_by_key(|r| r.start_ms);
    // Each client's requests of one grain, by start.
    let mut per_client: BTreeMap<(&str, &str), Vec<&Request>> = BTreeMap::new();
    for r in &by_start {
        per_client
            .entry((r.asked.as_str(), r.grain.as_str()))
            .or_default()
            .push(r);
    }
    let mut attributed = vec![false; doubles.len()];
    let mut faults = Vec::new();
    let mut violations = Vec::new();

    for (i, f) in input.faults.iter().enumerate() {
        let b = bounds(f);
        let window_end = input
            .faults
            .get(i + 1)
            .map_or(input.end_ms, |n| n.start_ms)
            .max(f.heal_ms);
        let mut unavailable: Option<(String, u64)> = None;
        for g in &grains {
            let ends = ok_ends.get(g).map_or(&[][..], Vec::as_slice);
            let u = unavailable_ms(ends, f.start_ms, f.heal_ms, input.end_ms);
            if unavailable.as_ref().is_none_or(|(_, w)| u > *w) {
                unavailable = Some(((*g).to_owned(), u));
            }
        }
        let mut after_heal: Option<(String, String, u64)> = None;
        for n in input.nodes {
            for g in &grains {
                let Some(all) = per_client.get(&(n.as_str(), *g)) else {
                    continue;
                };
                let mine = &all[all.partition_point(|r| r.start_ms < f.heal_ms)..];
                if mine.is_empty() {
                    continue;
                }
                // The earliest answer: a request that starts after the
                // best end so far cannot end before it.
                let mut best = input.end_ms;
                for r in mine {
                    if r.start_ms > best {
                        break;
                    }
                    if r.ok() {
                        best = best.min(r.end_ms);
                    }
                }
                let wait = best.saturating_sub(f.heal_ms);
                if after_heal.as_ref().is_none_or(|(_, _, w)| wait > *w) {
                    after_heal = Some((n.clone(), (*g).to_owned(), wait));
                }
            }
        }
        // Observations begun in the last moments before the next fault may
        // already see it.
        let until = window_end
            .saturating_sub(NEXT_FAULT_MARGIN_MS)
            .max(f.heal_ms);
        let convergence = convergence_ms(&observations, input.nodes, f.heal_ms, until);
        let c = changes(&per_node, f.start_ms, window_end);
        let lo = by_start.partition_point(|r| r.start_ms < f.start_ms);
        let hi = by_start.partition_point(|r| r.start_ms < window_end);
        let mut errors = BTreeMap::new();
        let mut requests = 0;
        for r in &by_start[lo..hi.max(lo)] {
            requests += 1;
            if !r.ok() {
                *errors.entry(r.result.clone()).or_insert(0) += 1;
            }
        }
        let new_activations = spans.partition_point(|s| s.loose.0 < window_end)
            - spans.partition_point(|s| s.loose.0 < f.start_ms);
        // A double activation that begins before the members agree again
        // (or within `settle_ms` of the heal) is the fault's.
        let settle_end = f.heal_ms
            + input
                .settle_ms
                .max(convergence.unwrap_or(window_end - f.heal_ms));
        let mut mine = Vec::new();
        for (d, seen) in doubles.iter().zip(attributed.iter_mut()) {
            if d.to_ms >= f.start_ms && d.from_ms <= settle_end && !*seen {
                *seen = true;
                mine.push(d.clone());
            }
        }
        let mut v = Vec::new();
        let name = format!("fault {} ({})", f.index, f.kind.as_str());
        if let Some((g, u)) = &unavailable
            && *u > b.unavailable_ms
        {
            v.push(format!(
                "{name}: grain {g} had no answer for {u} ms (bound {} ms)",
                b.unavailable_ms
            ));
        }
        if let Some((n, g, w)) = &after_heal
            && *w > b.after_heal_ms
        {
            v.push(format!(
                "{name}: {n} waited {w} ms after the heal for grain {g} (bound {} ms)",
                b.after_heal_ms
            ));
        }
        match convergence {
            Some(ms) if ms > b.convergence_ms => v.push(format!(
                "{name}: one topology hash {ms} ms after the heal (bound {} ms)",
                b.convergence_ms
            )),
            None => v.push(format!(
                "{name}: the nodes did not agree on one topology with every node up before the next fault"
            )),
            _ => {}
        }
        let longest = mine
            .iter()
            .map(DoubleActivation::overlap_ms)
            .max()
            .unwrap_or(0);
        let too_long = if b.double_activation_ms == 0 {
            !mine.is_empty()
        } else {
            longest > b.double_activation_ms
        };
        if too_long {
            let bound = if b.double_activation_ms == 0 {
                "none allowed".to_owned()
            } else {
                format!("bound {} ms", b.double_activation_ms)
            };
            v.push(format!(
                "{name}: {} double activations, longest {longest} ms ({bound})",
                mine.len()
            ));
        }
        violations.extend(v.iter().cloned());
        faults.push(FaultFigures {
            fault: f.clone(),
            bounds: b,
            window_end_ms: window_end,
            unavailable,
            after_heal,
            convergence_ms: convergence,
            failovers: c.failovers,
            quarantines: c.quarantines,
            topology_changes: c.topology_changes,
            new_activations,
            requests,
            errors,
            doubles: mine,
            violations: v,
        });
    }
    let doubles_outside: Vec<DoubleActivation> = doubles
        .iter()
        .zip(&attributed)
        .filter(|(_, seen)| !**seen)
        .map(|(d, _)| d.clone())
        .collect();
    if !doubles_outside.is_empty() {
        let longest = doubles_outside
            .iter()
            .map(DoubleActivation::overlap_ms)
            .max()
            .unwrap_or(0);
        violations.push(format!(
            "{} double activations outside any fault, longest {longest} ms (none allowed)",
            doubles_outside.len()
        ));
    }
    let mut errors = BTreeMap::new();
    for r in input.requests.iter().filter(|r| !r.ok()) {
        *errors.entry(r.result.clone()).or_insert(0) += 1;
    }
    Verdict {
        faults,
        doubles_outside,
        requests: input.requests.len(),
        answered: input.requests.iter().filter(|r| r.ok()).count(),
        errors,
        violations,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::OK;

    fn req(asked: &str, grain: &str, by: &str, act: &str, start: u64, end: u64) -> Request {
        Request {
            id: format!("{asked}-{start}"),
            asked: asked.into(),
            grain: grain.into(),
            answered_by: Some(by.into()),
            activation: Some(act.into()),
            value: Some(1),
            start_ms: start,
            end_ms: end,
            result: OK.into(),
        }
    }

    fn fail(asked: &str, grain: &str, code: &str, start: u64, end: u64) -> Request {
        Request {
            id: format!("{asked}-{start}-f"),
            asked: asked.into(),
            grain: grain.into(),
            answered_by: None,
            activation: None,
            value: None,
            start_ms: start,
            end_ms: end,
            result: code.into(),
        }
    }

    fn obs(node: &str, t: u64, hash: &str, up: &[&str]) -> Observation {
        Observation {
            node: node.into(),
            t_ms: t,
            answered: true,
            hash: Some(hash.into()),
            seq_no: 1,
            up: up.iter().map(|s| (*s).to_owned()).collect(),
            quarantined: Vec::new(),
            failovers: 0,
            status: "active".into(),
        }
    }

    #[test]
    fn issue16_a_clean_hand_off_is_not_a_double_activation() {
        // a1 serves until 1000; a slow request to a1 (900..1100) straddles
        // the first answers of a2 (1000..1050): not interleaved.
        let h = vec![
            req("n1", "g", "n1", "a1", 0, 10),
            req("n1", "g", "n1", "a1", 500, 510),
            req("n2", "g", "n1", "a1", 900, 1100),
            req("n1", "g", "n2", "a2", 1000, 1050),
            req("n1", "g", "n2", "a2", 1200, 1210),
        ];
        assert!(double_activations(&h).is_empty());
    }

    #[test]
    fn issue16_interleaved_activations_are_found_with_their_overlap() {
        let h = vec![
            req("n1", "g", "n1", "a1", 0, 10),
            req("n3", "g", "n3", "a2", 100, 110),
            req("n1", "g", "n1", "a1", 200, 210),
            req("n3", "g", "n3", "a2", 300, 310),
            // Another grain, alone: nothing.
            req("n1", "h", "n1", "b1", 0, 10),
            req("n1", "h", "n1", "b1", 400, 410),
        ];
        let d = double_activations(&h);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].grain, "g");
        // a1 spans 0..210, a2 100..310: they overlap 100..210.
        assert_eq!(
            (d[0].from_ms, d[0].to_ms, d[0].overlap_ms()),
            (100, 210, 110)
        );
    }

    #[test]
    fn issue16_unavailability_counts_from_the_fault_until_the_next_answer() {
        let ends = [100, 200, 300, 2_300, 2_400];
        // Fault at 250, healed at 1000: one more answer at 300, then none
        // until 2300.
        assert_eq!(unavailable_ms(&ends, 250, 1_000, 5_000), 2_000);
        // Fault at 320: counted from the fault, not from the last answer.
        assert_eq!(unavailable_ms(&ends, 320, 1_000, 5_000), 1_980);
        // Never answered again: until the end of the run.
        assert_eq!(unavailable_ms(&[100], 250, 1_000, 5_000), 4_750);
        // Answers all along: the longest gap inside.
        assert_eq!(unavailable_ms(&[0, 100, 250, 300, 400], 120, 300, 500), 130);
    }

    #[test]
    fn issue16_convergence_waits_for_every_node_after_the_heal() {
        let all = ["a", "b", "c"];
        let nodes: Vec<String> = all.iter().map(|s| (*s).to_owned()).collect();
        let o = [
            // Before the heal: agreeing, but too early.
            obs("a", 900, "h1", &all),
            obs("b", 900, "h1", &all),
            obs("c", 900, "h1", &all),
            obs("a", 1_100, "h1", &all),
            obs("b", 1_200, "h2", &["a", "b"]),
            obs("c", 1_300, "h1", &all),
            obs("b", 1_500, "h1", &all),
        ];
        let o: Vec<&Observation> = o.iter().collect();
        assert_eq!(convergence_ms(&o, &nodes, 1_000, 10_000), Some(500));
        assert_eq!(convergence_ms(&o, &nodes, 1_000, 1_400), None);
        // Agreeing from 1500 until the window ends: accepted.
        assert_eq!(convergence_ms(&o, &nodes, 1_000, 2_000), Some(500));
        // A relapse 400 ms after agreeing: the convergence is the second,
        // lasting agreement.
        let mut r = vec![
            obs("a", 1_100, "h1", &all),
            obs("b", 1_100, "h1", &all),
            obs("c", 1_100, "h1", &all),
            obs("a", 1_500, "h2", &["a", "b"]),
            obs("a", 2_500, "h1", &all),
        ];
        for t in (2_600..7_000).step_by(500) {
            r.push(obs("a", t, "h1", &all));
            r.push(obs("b", t, "h1", &all));
            r.push(obs("c", t, "h1", &all));
        }
        let r: Vec<&Observation> = r.iter().collect();
        assert_eq!(convergence_ms(&r, &nodes, 1_000, 10_000), Some(1_500));
    }

    #[test]
    fn issue16_verdict_applies_the_bounds_per_fault_and_outside() {
        let nodes: Vec<String> = ["a", "b"].iter().map(|s| (*s).to_owned()).collect();
        let mut requests = Vec::new();
        // Grain g answers every 100 ms from a1, except 1000..3000 (a kill
        // of its owner), then from a2.
        for t in (0..1_000).step_by(100) {
            requests.push(req("b", "g", "a", "a1", t, t + 5));
        }
        requests.push(fail("b", "g", "placement.timeout", 1_000, 2_000));
        for t in (3_000..6_000).step_by(100) {
            requests.push(req("b", "g", "b", "a2", t, t + 5));
        }
        // A double activation outside any fault (5000..).
        requests.push(req("a", "g", "a", "a3", 5_000, 5_005));
        requests.push(req("a", "g", "a", "a3", 5_500, 5_505));
        let observations = vec![
            obs("a", 3_500, "h", &["a", "b"]),
            obs("b", 3_600, "h", &["a", "b"]),
        ];
        let faults = vec![Fault {
            index: 0,
            kind: FaultKind::Kill,
            targets: vec!["a".into()],
            start_ms: 1_000,
            heal_ms: 3_000,
        }];
        let input = Input {
            requests: &requests,
            observations: &observations,
            faults: &faults,
            nodes: &nodes,
            end_ms: 6_000,
            settle_ms: 1_000,
        };
        let t = Timing {
            failure_timeout_ms: 1_000,
            lease_ttl_ms: 4_000,
            fault_ms: 5_000,
            ring: None,
        };
        let v = check(input, &|f| bounds_for(f.kind, t, f.heal_ms - f.start_ms));
        let f = &v.faults[0];
        assert_eq!(f.unavailable, Some(("g".to_owned(), 2_005)));
        assert_eq!(f.convergence_ms, Some(600));
        assert_eq!(f.errors.get("placement.timeout"), Some(&1));
        assert_eq!(f.new_activations, 2);
        // 2005 ms > 1500 ms: the unavailability bound is exceeded.
        assert_eq!(f.violations.len(), 1, "{:?}", f.violations);
        assert_eq!(v.doubles_outside.len(), 1);
        assert_eq!(v.violations.len(), 2, "{:?}", v.violations);
        assert!(!v.pass());
        assert_eq!(v.errors.get("placement.timeout"), Some(&1));
    }

    #[test]
    fn issue16_a_double_activation_before_reconvergence_is_the_faults() {
        let nodes: Vec<String> = ["a", "b"].iter().map(|s| (*s).to_owned()).collect();
        let mut requests = Vec::new();
        for t in (0..10_000).step_by(100) {
            requests.push(req("b", "g", "b", "b1", t, t + 5));
        }
        // A pause healed at 2000; the members agree again only at 6000;
        // the resumed node serves a second activation from 4000 to 5000.
        requests.push(req("a", "g", "a", "a1", 4_000, 4_005));
        requests.push(req("a", "g", "a", "a1", 5_000, 5_005));
        let observations = vec![
            obs("a", 6_000, "h", &["a", "b"]),
            obs("b", 6_000, "h", &["a", "b"]),
        ];
        let faults = vec![Fault {
            index: 0,
            kind: FaultKind::Pause,
            targets: vec!["a".into()],
            start_ms: 1_000,
            heal_ms: 2_000,
        }];
        let input = Input {
            requests: &requests,
            observations: &observations,
            faults: &faults,
            nodes: &nodes,
            end_ms: 10_000,
            settle_ms: 500,
        };
        let t = Timing {
            failure_timeout_ms: 1_000,
            lease_ttl_ms: 4_000,
            fault_ms: 1_000,
            ring: None,
        };
        let v = check(input, &|f| bounds_for(f.kind, t, f.heal_ms - f.start_ms));
        assert_eq!(v.faults[0].convergence_ms, Some(4_000));
        assert_eq!(v.faults[0].doubles.len(), 1);
        assert_eq!(v.faults[0].longest_double_ms(), 1_005);
        assert!(v.doubles_outside.is_empty());
        assert!(v.pass(), "{:?}", v.violations);
    }

    #[test]
    fn issue16_bounds_allow_double_activations_only_where_views_split() {
        let t = Timing {
            failure_timeout_ms: 1_000,
            lease_ttl_ms: 4_000,
            fault_ms: 8_000,
            ring: None,
        };
        for k in FaultKind::ALL {
            let b = bounds_for(k, t, 6_000);
            assert_eq!(b.double_activation_ms > 0, k.splits_views(), "{k:?}");
            let fs1 = if k == FaultKind::Pause {
                FS1_RESUMED_NODE_QUARANTINES_PEERS_MS
            } else {
                0
            };
            assert_eq!(b.convergence_ms, CONVERGENCE_MS + fs1);
            if k.splits_views() {
                assert_eq!(b.double_activation_ms, 6_000 + CONVERGENCE_MS + fs1);
            }
        }
        assert_eq!(bounds_for(FaultKind::Kill, t, 3_000).unavailable_ms, 1_500);
        assert_eq!(
            bounds_for(FaultKind::EtcdCut, t, 3_000).unavailable_ms,
            5_500
        );
    }

    #[test]
    fn i17_ring_bounds_are_three_rounds_plus_t_min_and_drop_the_fs1_allowance() {
        // The suite's ring settings: I = 200 ms, alpha = 0.33.
        assert_eq!(t_min_ms(200, 0.33, 3), 67);
        assert_eq!(t_min_ms(200, 0.33, 5), 67);
        // 1,000 nodes: 0.33 * 3 * 1 s = 990 ms (the design's "1 s").
        assert_eq!(t_min_ms(1_000, 0.33, 1_000), 990);
        let all = Timing {
            failure_timeout_ms: 1_000,
            lease_ttl_ms: 4_000,
            fault_ms: 8_000,
            ring: None,
        };
        let ring = Timing {
            ring: Some(RingTiming {
                probe_interval_ms: 200,
                t_min_ms: 67,
            }),
            ..all
        };
        assert_eq!(detection_ms(all), 1_500);
        assert_eq!(detection_ms(ring), 3 * 200 + 67 + 500);
        for k in FaultKind::ALL {
            let (a, r) = (bounds_for(k, all, 6_000), bounds_for(k, ring, 6_000));
            // Ring mode never loosens a bound: same after-heal and
            // convergence except the pause's FS-1 allowance, which goes.
            assert_eq!(r.convergence_ms, CONVERGENCE_MS, "{k:?}");
            assert_eq!(r.after_heal_ms, 5_000, "{k:?}");
            assert!(r.unavailable_ms < a.unavailable_ms, "{k:?}");
            assert_eq!(r.double_activation_ms > 0, k.splits_views(), "{k:?}");
            if k == FaultKind::Pause {
                assert_eq!(
                    a.convergence_ms,
                    CONVERGENCE_MS + FS1_RESUMED_NODE_QUARANTINES_PEERS_MS
                );
            }
        }
        assert_eq!(
            bounds_for(FaultKind::EtcdCut, ring, 3_000).unavailable_ms,
            4_000 + 1_167
        );
        // A run.json written before the option reads as all-to-all.
        let old: Timing = serde_json::from_str(
            r#"{"failure_timeout_ms":1000,"lease_ttl_ms":4000,"fault_ms":6000}"#,
        )
        .unwrap();
        assert_eq!(old.ring, None);
    }
}
