//! The nemesis's schedule: which faults, on which targets, for how long.
//! Pure and seeded (the same seed gives the same schedule); the scenario
//! runner applies it ([`crate::scenario`]).

use serde::Serialize;

use crate::history::FaultKind;

/// One fault to apply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Step {
    /// What.
    pub kind: FaultKind,
    /// The nodes it hits (`etcd` for an etcd restart; the minority for a
    /// partition; every node, in order, for a rolling restart).
    pub targets: Vec<String>,
    /// How long the fault holds before it heals (ms).
    pub hold_ms: u64,
}

/// The targets of `kind` among `nodes`.
pub fn targets(kind: FaultKind, nodes: &[String], rng: &mut fastrand::Rng) -> Vec<String> {
    let pick = |rng: &mut fastrand::Rng| nodes[rng.usize(..nodes.len())].clone();
    match kind {
        FaultKind::Kill | FaultKind::Pause | FaultKind::OneWay | FaultKind::EtcdCut => {
            vec![pick(rng)]
        }
        FaultKind::Partition => {
            let mut shuffled = nodes.to_vec();
            rng.shuffle(&mut shuffled);
            shuffled.truncate((nodes.len() - 1) / 2);
            shuffled.sort();
            shuffled
        }
        FaultKind::EtcdRestart => vec!["etcd".to_owned()],
        FaultKind::Rolling => nodes.to_vec(),
    }
}

/// How long `kind` holds, for a cut or pause of `fault_ms`.
pub fn hold_ms(kind: FaultKind, fault_ms: u64) -> u64 {
    match kind {
        FaultKind::Kill => fault_ms / 2,
        FaultKind::EtcdRestart => 2_000,
        FaultKind::Rolling => 0,
        _ => fault_ms,
    }
}

/// Every kind of `kinds` once, in order, targets from `seed`.
pub fn every_fault_once(
    seed: u64,
    nodes: &[String],
    kinds: &[FaultKind],
    fault_ms: u64,
) -> Vec<Step> {
    let mut rng = fastrand::Rng::with_seed(seed);
    kinds
        .iter()
        .map(|&kind| Step {
            kind,
            targets: targets(kind, nodes, &mut rng),
            hold_ms: hold_ms(kind, fault_ms),
        })
        .collect()
}

/// A random schedule from `kinds` filling about `budget_ms`, counting
/// `per_fault_ms` of recovery after each fault (and a rolling restart as
/// one fault per node).
pub fn random(
    seed: u64,
    nodes: &[String],
    kinds: &[FaultKind],
    fault_ms: u64,
    per_fault_ms: u64,
    budget_ms: u64,
) -> Vec<Step> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut out = Vec::new();
    let mut used = 0;
    if kinds.is_empty() {
        return out;
    }
    loop {
        let kind = kinds[rng.usize(..kinds.len())];
        let hold = hold_ms(kind, fault_ms);
        let hold = if matches!(
            kind,
            FaultKind::Kill | FaultKind::Rolling | FaultKind::EtcdRestart
        ) {
            hold
        } else {
            // Vary cuts and pauses between half and the whole.
            rng.u64(hold / 2..=hold)
        };
        let cost = hold
            + per_fault_ms
                * if kind == FaultKind::Rolling {
                    nodes.len() as u64
                } else {
                    1
                };
        if used + cost > budget_ms {
            return out;
        }
        used += cost;
        out.push(Step {
            kind,
            targets: targets(kind, nodes, &mut rng),
            hold_ms: hold,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("n{i}")).collect()
    }

    #[test]
    fn issue16_schedules_are_seeded() {
        let a = random(7, &nodes(5), &FaultKind::ALL, 8_000, 15_000, 1_800_000);
        let b = random(7, &nodes(5), &FaultKind::ALL, 8_000, 15_000, 1_800_000);
        let c = random(8, &nodes(5), &FaultKind::ALL, 8_000, 15_000, 1_800_000);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.len() > 20, "{}", a.len());
    }

    #[test]
    fn issue16_partitions_cut_a_minority_and_every_fault_runs_once() {
        let s = every_fault_once(1, &nodes(3), &FaultKind::ALL, 8_000);
        assert_eq!(s.len(), FaultKind::ALL.len());
        for step in &s {
            match step.kind {
                FaultKind::Partition => assert_eq!(step.targets.len(), 1),
                FaultKind::Rolling => assert_eq!(step.targets, nodes(3)),
                FaultKind::EtcdRestart => assert_eq!(step.targets, ["etcd"]),
                _ => assert_eq!(step.targets.len(), 1),
            }
        }
        for _ in 0..50 {
            let mut rng = fastrand::Rng::with_seed(fastrand::u64(..));
            assert_eq!(targets(FaultKind::Partition, &nodes(5), &mut rng).len(), 2);
        }
    }
}
