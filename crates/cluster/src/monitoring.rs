//! Failure detection at constant cost per node (issue 17, item 1;
//! design: `docs/monitoring-design.md`).
//!
//! The pure pieces of the design (stages 1 and 2), driven by the
//! simulation (`crates/cluster-sim`) and by Remoting in ring mode
//! (`RemotingConfig::with_monitoring`, `[remoting.monitoring] mode =
//! "ring"`; the default is still all-to-all heartbeats).
//!
//! - [`ring`]: who monitors whom. Members are placed on a ring by a stable
//!   hash of their node id; each member is monitored by the
//!   `k_eff = min(k, N − 1)` members that follow it ([`Ring`]); and the
//!   broadcast trees a verdict travels along ([`tree_children`]).
//! - [`config`]: [`MonitoringConfig`], the design's parameters (§2.8) with
//!   their defaults, [`MonitoringConfig::validate`] (error code
//!   `remoting.monitoring_config`), and the derived values
//!   ([`k_eff`], [`q_eff`], [`MonitoringConfig::t_min`]).
//! - [`Monitoring`] (in `core.rs`): one node's state machine, below.
//! - [`health`]: the local health score.
//! - [`message`]: what cores send each other ([`MonitorMsg`]) and what a
//!   step outputs ([`MonitorReady`], [`MonitorReport`]).
//!
//! # The state machine of one monitored node
//!
//! One target per member this node monitors (≤ k), bound to an
//! incarnation. `h = 1 + s` multiplies every interval and timeout (`s` the
//! local health score).
//!
//! ```text
//!                   probe due (the pair's phase, every I×h)
//!    Idle ─────────────────────────────────────────────► Direct{seq}
//!     ▲  ▲                                                  │ no frame from X by probe_timeout×h
//!     │  │ any frame from X (an ack, a vote, a request…)    ▼ (phi mode: and φ ≥ threshold)
//!     │  └────────────────────────────────────────── Indirect{seq}: PingReq to r helpers
//!     │      or a helper's PingReqAnswer{reached}           │ round end (sent + I×h), no ack
//!     │                                                     ▼
//!     │   suspicion ends, votes retracted ◄──────── Suspect{since}: votes to co-monitors and X
//!     │                                                     │ q_eff live votes (own included)
//!     │                                                     │ and since ≥ T_min×h, or all k_eff voted
//!     │                                                     ▼
//!     └─────────── (new incarnation / topology) ───── Reported: report + Verdict trees
//! ```
//!
//! A suspect keeps being probed every round; any frame from it ends the
//! suspicion (refutation by evidence: a target that receives a vote about
//! itself raises its score and probes each of its monitors at once).
//!
//! | input | effect |
//! |---|---|
//! | `tick(now)` | rounds: direct → indirect (PingReq to r random co-monitors), indirect → failed (suspicion starts; missed nack: `s + 1`), idle → a new probe; votes sent once `s < vote_limit`, refreshed every `vote_ttl / 2`; quorum checked |
//! | `Probe{seq}` | `Ack{seq}` back |
//! | any message or `on_sign_of_life` from X | X's round succeeds (direct: `s − 1`), its suspicion ends and its votes are retracted; helpers probing X answer `reached: true` |
//! | `PingReq{seq, X, inc}` | X a member at `inc`, fewer than k(k − 1) pending: `Probe` to X, answered `reached` on X's frame or a nack at `probe_timeout×h`; otherwise a nack at once |
//! | `PingReqAnswer{seq, X, reached}` | counted in X's indirect round; `reached` saves it |
//! | `Vote{X, inc, suspect}` from a member | recorded (or withdrawn) for a target at `inc`; may complete the quorum. About this node: `s + 1` and a `Probe` to each monitor |
//! | `Verdict{X, inc, voters, span, backward}` | at least q_eff voters are members: reported once if X is a member at `inc` (`Relayed`), relayed to this node's children in that tree. About this node: not applied, `s = S` |
//! | `on_unsendable(child, Verdict)` | the child's interval is sent to the child's own children |
//! | `on_view` / `on_topology` | ring recomputed; targets added or dropped (votes withdrawn when the ring moved); state about departed or re-incarnated members dropped |
//! | `on_quarantined(X, inc)` | X is done: no more probes, votes or reports about it |
//! | any input more than I after the armed deadline | a stall (FS-1): `s = S`, rounds in flight start over, pending helps dropped |
//!
//! Laws checked by the tests (design §3.1): no single witness (3), quorum
//! (4), at most once (5), liveness (6), refutation (7), local health (8),
//! constant cost (9), topology (10), determinism (11).
//!
//! Two rules beyond the design's first draft: a target never heard from
//! (no frame, no refusal) fails no round, so a joining node whose view lags
//! is not suspected (§2.9); and a helper nacks within the requester's round
//! (`min(probe_timeout, 0.8 · (I − probe_timeout))`), so a nack is never
//! mistaken for silence.
//!
//! Not here: the reachable verdicts of quarantined nodes (R4.4 stays with
//! the association core's reachability probe, which Remoting keeps for a
//! `Failed` association in ring mode too).

pub mod config;
mod core;
pub mod health;
pub mod message;
pub mod ring;

#[cfg(test)]
mod core_tests;

pub use self::core::{MonitorStats, Monitoring};
pub use config::{
    MonitoringConfig, MonitoringConfigError, MonitoringDetector, MonitoringMode, k_eff, q_eff,
};
pub use message::{MonitorMsg, MonitorReady, MonitorReport, ReportSource, Verdict};
pub use ring::{RING_HASH_DOMAIN, Ring, ring_position, tree_children};
