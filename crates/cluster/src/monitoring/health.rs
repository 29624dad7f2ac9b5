//! The local health score (`docs/monitoring-design.md` §2.5, Lifeguard's
//! local health multiplier): a saturating counter `s ∈ [0, S]`.
//!
//! | event | change |
//! |---|---|
//! | a direct probe answered in time | −1 ([`Health::succeeded`]) |
//! | an indirect round in which no helper answered at all | +1 ([`Health::raise`]) |
//! | a vote about this node received | +1 ([`Health::raise`]) |
//! | this process stalled (a tick more than one interval late) | S ([`Health::saturate`]) |
//!
//! Effects, applied by the core: every interval and timeout is multiplied
//! by `1 + s` ([`Health::multiplier`]), and from `s ≥ vote_limit` the node
//! sends no vote and reports nothing of its own quorum (a relayed verdict,
//! checked against its view, still applies).

/// A saturating score in `0..=max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Health {
    score: u32,
    max: u32,
}

impl Health {
    /// A healthy score (0) with ceiling `max` (at least 1).
    pub fn new(max: u32) -> Self {
        Self {
            score: 0,
            max: max.max(1),
        }
    }

    /// The score, `0..=max`.
    pub fn score(self) -> u32 {
        self.score
    }

    /// The multiplier of every interval and timeout: `1 + s`.
    pub fn multiplier(self) -> u32 {
        1 + self.score
    }

    /// A successful direct round: −1, not below 0.
    pub fn succeeded(&mut self) {
        self.score = self.score.saturating_sub(1);
    }

    /// A sign of local trouble: +1, not above the ceiling.
    pub fn raise(&mut self) {
        self.score = (self.score + 1).min(self.max);
    }

    /// This process stalled: the ceiling at once.
    pub fn saturate(&mut self) {
        self.score = self.max;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn i17_health_saturates_at_both_ends() {
        let mut h = Health::new(3);
        h.succeeded();
        assert_eq!(h.score(), 0);
        for _ in 0..5 {
            h.raise();
        }
        assert_eq!(h.score(), 3);
        assert_eq!(h.multiplier(), 4);
        h.succeeded();
        assert_eq!(h.score(), 2);
        h.saturate();
        assert_eq!(h.score(), 3);
        assert_eq!(
            Health::new(0).multiplier(),
            1,
            "a ceiling of 0 is read as 1"
        );
        let mut one = Health::new(0);
        one.raise();
        assert_eq!(one.score(), 1);
    }
}
