//! The association core (issue 13, item 3): every transition of one
//! association, and the accept check, as network-free functions of the
//! association's state, an input and `now`, in the manner of
//! [`crate::wire::handshake`]. The Remoting actor ([`super::actor`]) owns
//! the sockets, the dial tasks, the failure detectors and the heartbeat
//! counters; it asks this core what to do and executes the [`Effects`].
//!
//! # States and inputs
//!
//! ```text
//!             dial (dialer) / accepted (acceptor)
//!  Idle ─────────────────────► Handshaking ──reached──► Up ──suspected (detector)──► Failed
//!   ▲                               │                   │   quarantine reported          │
//!   │                               │ refused / lost    │ Goodbye, lost, Reject,         │ blocked in a topology,
//!   │                               ▼                   ▼ protocol error                 │ then listed unblocked:
//!   └───── backoff (dialer) ──── Closed ◄───────────────┘                                ▼ starts over (Idle)
//! ```
//!
//! | input | from | to | effects |
//! |---|---|---|---|
//! | topology lists the same incarnation | `Failed`, seen blocked | `Idle` (fresh) | none (R4.4: the supervisor unblocked it after a healthy refresh) |
//! | topology lists another incarnation | any | removed | close silently (R4.1) |
//! | topology blocks the incarnation | not `Failed` | `Failed` | close silently, cancel the dial, next probe after the failure timeout (R4.2) |
//! | topology omits it, status trusted | any | removed | close with `Goodbye` (R4.1) |
//! | topology omits it, `Empty`/`Starting` | any | unchanged | none |
//! | `RemoteNodeQuarantined` for the incarnation | not `Failed` | `Failed` | close silently, cancel the dial (A6) |
//! | dial due (dialer, no dial, backoff over) | `Idle`/`Closed` | `Handshaking` | dial |
//! | dial due | `Failed` | `Failed` | dial = a probe (R4.4) |
//! | dial reached the incarnation | `Handshaking` | `Up` | install the connection |
//! | dial reached the incarnation | `Failed` | `Failed` | report reachable, `Goodbye` on the probe, backoff (R4.4) |
//! | dial refused `remoting.quarantined` | `Failed` | `Failed` | report reachable, backoff (R4.4) |
//! | dial refused `wire.auth`/`wire.cluster`, this node authenticated with someone | not `Failed` | `Failed` | report quarantine (R4.2) |
//! | dial failed otherwise, or answered as another incarnation | any | `Closed` (`Failed` stays) | backoff |
//! | inbound connection passed the check | not `Failed`, same incarnation | `Up` | install it |
//! | connection lost, `Reject`, handshake frame after the handshake | any | `Closed` (`Failed` stays) | close, backoff from the first step |
//! | `Goodbye` | any | `Closed` (`Failed` stays) | close, not watched until up again, backoff |
//! | tick: detector suspects a peer that was up once and did not part | not `Failed` | `Failed` | report quarantine, close silently, cancel the dial (R4.2) |
//!
//! The backoff after `n` failures is `heartbeat_interval · 2^n`, capped at
//! the failure timeout. New associations are opened only while the status
//! is `Active` ([`opens_new`], R4.3). The accept check ([`admit`]) refuses
//! a quarantined incarnation (and reports it reachable, R4.4), a
//! non-member, and a member without an association (R4.3).

use std::time::{Duration, Instant};

use cluster_core::{NodeId, ProvisioningStatus, Topology};

use super::{DEGRADED, NOT_MEMBER, QUARANTINED};
use crate::remoting::AssociationState;
use crate::wire::{Hello, Refusal};

/// The timing an association's transitions use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Timing {
    /// Heartbeat interval: the first re-dial backoff.
    pub(crate) heartbeat: Duration,
    /// Failure timeout: caps the backoff; the first probe of a failed peer.
    pub(crate) failure_timeout: Duration,
}

impl Timing {
    /// `heartbeat · 2^attempts`, capped at the failure timeout.
    pub(crate) fn backoff(self, attempts: u32) -> Duration {
        self.heartbeat
            .saturating_mul(1u32 << attempts.min(16))
            .min(self.failure_timeout)
    }
}

/// How the connection is closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Close {
    /// Dropped.
    Silently,
    /// After a `Goodbye` (the member left).
    WithGoodbye,
}

/// What the driver reports to the ProvisioningSupervisor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Report {
    /// `quarantine(node, incarnation, reason)` (R4.2).
    Quarantine(String),
    /// `reachable(node, incarnation)` (R4.4).
    Reachable,
}

/// What the driver does after a transition, in this order: report, close,
/// cancel the dial, remove or install.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Effects {
    pub(crate) report: Option<Report>,
    pub(crate) close: Option<Close>,
    pub(crate) cancel_dial: bool,
    /// Forget the association (the member left or restarted).
    pub(crate) remove: bool,
    /// Make the new connection the association's.
    pub(crate) install: bool,
    /// Send a `Goodbye` on the probe connection and close it.
    pub(crate) goodbye_probe: bool,
}

/// How the topology lists the association's member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Listing {
    /// A member at the association's incarnation.
    Same,
    /// A member at another incarnation.
    NewIncarnation,
    /// Not a member; the incarnation is blocked.
    Blocked,
    /// Not a member. `trusted`: the status says who left (not `Empty` or
    /// `Starting`).
    Absent {
        /// Whether absence means it left.
        trusted: bool,
    },
}

impl Listing {
    /// How `topology` lists `(node, incarnation)`.
    pub(crate) fn of(topology: &Topology, node: &NodeId, incarnation: u64) -> Self {
        match topology.member(node) {
            Some(m) if m.incarnation == incarnation => Self::Same,
            Some(_) => Self::NewIncarnation,
            None if topology.is_blocked(node, incarnation) => Self::Blocked,
            None => Self::Absent {
                trusted: !matches!(
                    topology.status,
                    ProvisioningStatus::Empty | ProvisioningStatus::Starting
                ),
            },
        }
    }
}

/// How a dial ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dialed {
    /// The handshake reached the association's node and incarnation.
    Reached,
    /// The address answered as another node or incarnation.
    OtherPeer,
    /// The peer refused with `remoting.quarantined`.
    RefusedQuarantined,
    /// The peer refused in a way that says this member cannot be
    /// authenticated with (`conn::quarantine_for_refusal`).
    CannotAuthenticate,
    /// Any other failure (timeout, lost, another refusal, TLS).
    Failed,
}

/// The decision state of one association (see the [module
/// documentation](self)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Association {
    pub(crate) state: AssociationState,
    /// It was `Up` once: from then on its silence is watched.
    pub(crate) ever_up: bool,
    /// It said `Goodbye`: its silence is not a failure.
    pub(crate) parted: bool,
    /// `Failed` and seen blocked in a topology (so an unblocked one lifts
    /// it).
    pub(crate) seen_blocked: bool,
    /// Failed dials or connections since the last `Up`.
    pub(crate) attempts: u32,
    /// No dial before this.
    pub(crate) retry_at: Instant,
}

impl Association {
    /// A new association: `Idle`, dial at once.
    pub(crate) fn new(now: Instant) -> Self {
        Self {
            state: AssociationState::Idle,
            ever_up: false,
            parted: false,
            seen_blocked: false,
            attempts: 0,
            retry_at: now,
        }
    }

    fn is_failed(&self) -> bool {
        self.state == AssociationState::Failed
    }

    /// Turns `Failed`: no connection, the first probe after the failure
    /// timeout.
    fn fail(&mut self, now: Instant, timing: Timing) {
        self.state = AssociationState::Failed;
        self.seen_blocked = false;
        self.attempts = 0;
        self.retry_at = now + timing.failure_timeout;
    }

    /// After a failed dial or a lost connection: `Closed` (unless
    /// `Failed`), next dial after the backoff.
    fn retry_later(&mut self, now: Instant, timing: Timing) {
        if !self.is_failed() {
            self.state = AssociationState::Closed;
        }
        self.retry_at = now + timing.backoff(self.attempts);
        self.attempts = self.attempts.saturating_add(1);
    }

    /// A topology lists the member as `listing` (R4.1, R4.2, R4.4).
    pub(crate) fn on_topology(
        &mut self,
        listing: Listing,
        now: Instant,
        timing: Timing,
    ) -> Effects {
        match listing {
            Listing::Same => {
                if self.is_failed() && self.seen_blocked {
                    *self = Self::new(now);
                }
                Effects::default()
            }
            Listing::NewIncarnation => Effects {
                close: Some(Close::Silently),
                remove: true,
                ..Effects::default()
            },
            Listing::Blocked => {
                let mut fx = Effects::default();
                if !self.is_failed() {
                    fx.close = Some(Close::Silently);
                    fx.cancel_dial = true;
                    self.fail(now, timing);
                }
                self.seen_blocked = true;
                fx
            }
            Listing::Absent { trusted: false } => Effects::default(),
            Listing::Absent { trusted: true } => Effects {
                close: Some(Close::WithGoodbye),
                remove: true,
                ..Effects::default()
            },
        }
    }

    /// `RemoteNodeQuarantined` for this incarnation, ahead of its topology
    /// (A6).
    pub(crate) fn on_quarantined(&mut self, now: Instant, timing: Timing) -> Effects {
        if self.is_failed() {
            return Effects::default();
        }
        self.fail(now, timing);
        Effects {
            close: Some(Close::Silently),
            cancel_dial: true,
            ..Effects::default()
        }
    }

    /// Whether to dial now: this node is the dialer, no dial is in flight,
    /// the backoff is over, and there is no connection (a `Failed` one is
    /// probed, R4.4).
    pub(crate) fn dial_due(&self, dialer: bool, dialing: bool, now: Instant) -> bool {
        dialer
            && !dialing
            && now >= self.retry_at
            && matches!(
                self.state,
                AssociationState::Idle | AssociationState::Closed | AssociationState::Failed
            )
    }

    /// A dial started.
    pub(crate) fn on_dial(&mut self) {
        if !self.is_failed() {
            self.state = AssociationState::Handshaking;
        }
    }

    /// A dial ended (R4.2, R4.4).
    pub(crate) fn on_dialed(&mut self, dialed: Dialed, now: Instant, timing: Timing) -> Effects {
        let failed = self.is_failed();
        match dialed {
            Dialed::Reached if failed => {
                self.retry_later(now, timing);
                Effects {
                    report: Some(Report::Reachable),
                    goodbye_probe: true,
                    ..Effects::default()
                }
            }
            Dialed::Reached => Effects {
                install: true,
                ..Effects::default()
            },
            Dialed::RefusedQuarantined if failed => {
                self.retry_later(now, timing);
                Effects {
                    report: Some(Report::Reachable),
                    ..Effects::default()
                }
            }
            Dialed::CannotAuthenticate if !failed => {
                self.fail(now, timing);
                Effects {
                    report: Some(Report::Quarantine(String::new())),
                    ..Effects::default()
                }
            }
            _ => {
                self.retry_later(now, timing);
                Effects::default()
            }
        }
    }

    /// Whether an inbound connection of `incarnation` (the association's)
    /// is wanted: not while `Failed`.
    pub(crate) fn wants_inbound(&self) -> bool {
        !self.is_failed()
    }

    /// A connection was installed: `Up`.
    pub(crate) fn on_up(&mut self) {
        self.state = AssociationState::Up;
        self.ever_up = true;
        self.parted = false;
        self.attempts = 0;
    }

    /// The connection was lost, rejected by the peer, or broke the
    /// protocol: closed, re-dial from the first backoff step.
    pub(crate) fn on_lost(&mut self, now: Instant, timing: Timing) -> Effects {
        self.attempts = 0;
        self.retry_later(now, timing);
        Effects {
            close: Some(Close::Silently),
            ..Effects::default()
        }
    }

    /// The peer said `Goodbye`: closed, and its silence is not watched until
    /// it is up again.
    pub(crate) fn on_goodbye(&mut self, now: Instant, timing: Timing) -> Effects {
        self.parted = true;
        self.retry_later(now, timing);
        Effects {
            close: Some(Close::Silently),
            ..Effects::default()
        }
    }

    /// A tick: `available` is the failure detector's verdict. A peer that
    /// was up once, did not part and is suspected is reported (R4.2).
    pub(crate) fn on_tick(&mut self, available: bool, now: Instant, timing: Timing) -> Effects {
        if !self.ever_up || self.parted || self.is_failed() || available {
            return Effects::default();
        }
        self.fail(now, timing);
        Effects {
            report: Some(Report::Quarantine("heartbeat timeout".into())),
            close: Some(Close::Silently),
            cancel_dial: true,
            ..Effects::default()
        }
    }
}

/// Whether new associations are opened under `status` (R4.3: only while
/// `Active`; otherwise the member list may be stale).
pub(crate) fn opens_new(status: ProvisioningStatus) -> bool {
    status == ProvisioningStatus::Active
}

/// What the accept check knows about a connecting peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Known {
    /// The incarnation of this node's association with the peer, if any,
    /// and whether it is `Failed`.
    pub(crate) association: Option<(u64, bool)>,
    /// The incarnation is blocked in the topology or quarantined ahead of
    /// it.
    pub(crate) quarantined: bool,
    /// The topology lists the peer at the incarnation it claims.
    pub(crate) member: bool,
    /// Ring mode (issue 17): associations open on demand, so a member
    /// without one is admitted while the status is `Active` (the connector
    /// needs it; this node creates the association as it accepts).
    pub(crate) on_demand: bool,
}

/// The accept check's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Accepted.
    Admit,
    /// Refused; `reachable`: report the peer reachable (R4.4).
    Refuse {
        /// The refusal sent to the peer.
        refusal: Refusal,
        /// Report it reachable.
        reachable: bool,
    },
}

/// The accept side's check on a connector's Hello (R4.2, R4.3, R4.4):
/// a quarantined incarnation (blocked, quarantined ahead of the topology,
/// or whose association failed) is refused and reported reachable; a peer
/// that is not a member at that incarnation is refused; a member this node
/// has no association with (the status is not `Active`, so none was
/// opened) is refused as degraded.
pub(crate) fn admit(
    peer: &Hello,
    known: Known,
    status: ProvisioningStatus,
    seq_no: u64,
) -> Admission {
    let node = &peer.node_id;
    let failed = known
        .association
        .is_some_and(|(inc, failed)| failed && inc == peer.incarnation);
    if failed || known.quarantined {
        return Admission::Refuse {
            refusal: Refusal::new(
                QUARANTINED,
                format!(
                    "node {node} incarnation {} is quarantined",
                    peer.incarnation
                ),
            ),
            reachable: true,
        };
    }
    if !known.member {
        return Admission::Refuse {
            refusal: Refusal::new(
                NOT_MEMBER,
                format!(
                    "node {node} incarnation {} is not a member of the topology (seq_no {seq_no})",
                    peer.incarnation
                ),
            ),
            reachable: false,
        };
    }
    if known
        .association
        .is_none_or(|(inc, _)| inc != peer.incarnation)
        && !(known.on_demand && opens_new(status))
    {
        return Admission::Refuse {
            refusal: Refusal::new(
                DEGRADED,
                format!(
                    "provisioning status is {}: no new association",
                    status.as_str()
                ),
            ),
            reachable: false,
        };
    }
    Admission::Admit
}

#[cfg(test)]
mod tests {
    use super::*;
    use AssociationState::{Closed, Failed, Handshaking, Idle, Up};

    /// (requirement, from, seen blocked, listing, to, effects)
    type TopologyRow = (
        &'static str,
        AssociationState,
        bool,
        Listing,
        AssociationState,
        Effects,
    );
    /// (requirement, from, outcome, to, effects)
    type DialRow = (
        &'static str,
        AssociationState,
        Dialed,
        AssociationState,
        Effects,
    );
    /// (requirement, from, ever up, parted, available, to, effects)
    type TickRow = (
        &'static str,
        AssociationState,
        bool,
        bool,
        bool,
        AssociationState,
        Effects,
    );
    /// (requirement, association, quarantined, member, refusal code, reachable)
    type AcceptRow = (
        &'static str,
        Option<(u64, bool)>,
        bool,
        bool,
        Option<&'static str>,
        bool,
    );

    const T: Timing = Timing {
        heartbeat: Duration::from_millis(100),
        failure_timeout: Duration::from_millis(500),
    };

    fn at(state: AssociationState) -> (Association, Instant) {
        let now = Instant::now();
        let mut a = Association::new(now);
        a.state = state;
        if state == Up {
            a.ever_up = true;
        }
        (a, now)
    }

    fn none() -> Effects {
        Effects::default()
    }

    fn close(c: Close) -> Effects {
        Effects {
            close: Some(c),
            ..Effects::default()
        }
    }

    fn fail_fx() -> Effects {
        Effects {
            close: Some(Close::Silently),
            cancel_dial: true,
            ..Effects::default()
        }
    }

    fn removed(c: Close) -> Effects {
        Effects {
            close: Some(c),
            remove: true,
            ..Effects::default()
        }
    }

    /// R4.1, R4.2, R4.4: how a topology moves an association, from every
    /// state. Rows: (requirement, from, seen blocked, listing, to, effects).
    #[test]
    fn r4_1_r4_2_r4_4_topology_transitions_table() {
        let trusted = Listing::Absent { trusted: true };
        let untrusted = Listing::Absent { trusted: false };
        #[rustfmt::skip]
        let rows: &[TopologyRow] = &[
            ("R4.1 listed", Up, false, Listing::Same, Up, none()),
            ("R4.1 listed", Closed, false, Listing::Same, Closed, none()),
            ("R4.1 restarted", Up, false, Listing::NewIncarnation, Up, removed(Close::Silently)),
            ("R4.1 left", Up, false, trusted, Up, removed(Close::WithGoodbye)),
            ("R4.1 left", Idle, false, trusted, Idle, removed(Close::WithGoodbye)),
            ("R4.1 empty says nothing", Up, false, untrusted, Up, none()),
            ("R4.2 blocked", Up, false, Listing::Blocked, Failed, fail_fx()),
            ("R4.2 blocked", Handshaking, false, Listing::Blocked, Failed, fail_fx()),
            ("R4.2 blocked again", Failed, true, Listing::Blocked, Failed, none()),
            ("R4.2 reported, then blocked", Failed, false, Listing::Blocked, Failed, none()),
            ("R4.4 unblocked after blocked", Failed, true, Listing::Same, Idle, none()),
            ("R4.4 listed but never seen blocked", Failed, false, Listing::Same, Failed, none()),
        ];
        for (req, from, seen, listing, to, fx) in rows {
            let (mut a, now) = at(*from);
            a.seen_blocked = *seen;
            let got = a.on_topology(*listing, now, T);
            assert_eq!((a.state, &got), (*to, fx), "{req}: {from:?} + {listing:?}");
            if *listing == Listing::Blocked {
                assert!(a.seen_blocked, "{req}");
                if *from != Failed {
                    assert_eq!(a.retry_at, now + T.failure_timeout, "{req}: first probe");
                }
            }
        }
    }

    /// R4.2, R4.4: dial outcomes from `Handshaking` and from `Failed` (a
    /// probe). Rows: (requirement, from, outcome, to, effects).
    #[test]
    fn r4_2_r4_4_dial_outcomes_table() {
        let reachable_probe = Effects {
            report: Some(Report::Reachable),
            goodbye_probe: true,
            ..Effects::default()
        };
        let reachable = Effects {
            report: Some(Report::Reachable),
            ..Effects::default()
        };
        let quarantine = Effects {
            report: Some(Report::Quarantine(String::new())),
            ..Effects::default()
        };
        let install = Effects {
            install: true,
            ..Effects::default()
        };
        #[rustfmt::skip]
        let rows: &[DialRow] = &[
            ("R4.1 dial up", Handshaking, Dialed::Reached, Handshaking, install),
            ("R4.1 wrong peer", Handshaking, Dialed::OtherPeer, Closed, none()),
            ("R4.1 dial failed", Handshaking, Dialed::Failed, Closed, none()),
            ("R4.2 cannot authenticate", Handshaking, Dialed::CannotAuthenticate, Failed, quarantine),
            ("R4.4 probe reached", Failed, Dialed::Reached, Failed, reachable_probe),
            ("R4.4 probe refused as quarantined", Failed, Dialed::RefusedQuarantined, Failed, reachable),
            ("R4.4 probe failed", Failed, Dialed::Failed, Failed, none()),
            ("R4.2 already failed: no second report", Failed, Dialed::CannotAuthenticate, Failed, none()),
            ("quarantined refusal of a live association", Handshaking, Dialed::RefusedQuarantined, Closed, none()),
        ];
        for (req, from, outcome, to, fx) in rows {
            let (mut a, now) = at(*from);
            let got = a.on_dialed(*outcome, now, T);
            assert_eq!((a.state, &got), (*to, fx), "{req}: {from:?} + {outcome:?}");
            if got.install {
                a.on_up();
                assert_eq!((a.state, a.ever_up, a.attempts), (Up, true, 0), "{req}");
            }
        }
    }

    /// R4.2: the tick reports a suspected peer once, only if it was up
    /// once and did not part; A6: a quarantine event fails it at once.
    #[test]
    fn r4_2_a6_suspicion_and_quarantine_table() {
        let report = Effects {
            report: Some(Report::Quarantine("heartbeat timeout".into())),
            ..fail_fx()
        };
        // (requirement, from, ever up, parted, available, to, effects)
        #[rustfmt::skip]
        let rows: &[TickRow] = &[
            ("R4.2 suspected", Up, true, false, false, Failed, report.clone()),
            ("R4.2 suspected while reconnecting", Closed, true, false, false, Failed, report),
            ("R4.2 trusted", Up, true, false, true, Up, none()),
            ("R4.2 never up: not watched", Closed, false, false, false, Closed, none()),
            ("R4.2 parted: not watched", Closed, true, true, false, Closed, none()),
            ("R4.2 reported once", Failed, true, false, false, Failed, none()),
        ];
        for (req, from, ever_up, parted, available, to, fx) in rows {
            let (mut a, now) = at(*from);
            a.ever_up = *ever_up;
            a.parted = *parted;
            let got = a.on_tick(*available, now, T);
            assert_eq!((a.state, &got), (*to, fx), "{req}");
        }
        for (from, fx) in [
            (Up, fail_fx()),
            (Idle, fail_fx()),
            (Handshaking, fail_fx()),
            (Closed, fail_fx()),
            (Failed, none()),
        ] {
            let (mut a, now) = at(from);
            assert_eq!(a.on_quarantined(now, T), fx, "A6 from {from:?}");
            assert_eq!(a.state, Failed);
            assert!(!a.wants_inbound(), "A6: refused inbound from {from:?}");
        }
    }

    /// Dials are due only for the dialer, one at a time, after the backoff,
    /// without a connection; the backoff doubles up to the failure timeout;
    /// lost connections restart it, a Goodbye stops the watch.
    #[test]
    fn r4_1_dial_and_backoff_rules() {
        let (mut a, now) = at(Idle);
        assert!(a.dial_due(true, false, now));
        assert!(!a.dial_due(false, false, now), "the acceptor waits");
        assert!(!a.dial_due(true, true, now), "one dial at a time");
        a.on_dial();
        assert_eq!(a.state, Handshaking);
        assert!(!a.dial_due(true, false, now), "no dial while handshaking");
        let mut waits = Vec::new();
        for _ in 0..5 {
            a.on_dialed(Dialed::Failed, now, T);
            waits.push(a.retry_at - now);
            assert!(!a.dial_due(true, false, now));
            assert!(a.dial_due(true, false, a.retry_at));
        }
        let ms = Duration::from_millis;
        assert_eq!(waits, [ms(100), ms(200), ms(400), ms(500), ms(500)]);
        a.on_up();
        assert!(!a.dial_due(true, false, now + ms(10_000)), "up: no dial");
        assert_eq!(a.on_lost(now, T), close(Close::Silently));
        assert_eq!((a.state, a.retry_at - now), (Closed, ms(100)));
        a.on_up();
        a.on_goodbye(now, T);
        assert!(a.parted);
        assert_eq!(a.on_tick(false, now, T), none(), "parted: not suspected");
        let (mut f, now) = at(Failed);
        f.retry_at = now + T.failure_timeout;
        assert!(!f.dial_due(true, false, now));
        assert!(
            f.dial_due(true, false, now + T.failure_timeout),
            "R4.4 probe"
        );
        f.on_dial();
        assert_eq!(f.state, Failed, "a probe does not leave Failed");
    }

    /// R4.2, R4.3, R4.4: the accept check. Rows: (requirement, association,
    /// quarantined, member, answer code, reachable).
    #[test]
    fn r4_2_r4_3_r4_4_accept_check_table() {
        let hello = Hello::new("c", NodeId::new("b").expect("id"), 2, "127.0.0.1:1");
        #[rustfmt::skip]
        let rows: &[AcceptRow] = &[
            ("R4.1 associated member", Some((2, false)), false, true, None, false),
            ("R4.2 blocked or quarantined ahead", Some((2, false)), true, false, Some(QUARANTINED), true),
            ("R4.4 failed association", Some((2, true)), false, true, Some(QUARANTINED), true),
            ("R4.2 failed older incarnation, new one unknown", Some((1, true)), false, true, Some(DEGRADED), false),
            ("R4.2 not a member", None, false, false, Some(NOT_MEMBER), false),
            ("R4.3 member without association", None, false, true, Some(DEGRADED), false),
            ("R4.3 association of another incarnation", Some((1, false)), false, true, Some(DEGRADED), false),
        ];
        // Ring mode (issue 17): a member without an association is admitted
        // while Active (it dials on demand), never while not Active, and the
        // quarantine and membership rules are unchanged.
        for (status, association, quarantined, member, code) in [
            (ProvisioningStatus::Active, None, false, true, None),
            (
                ProvisioningStatus::Active,
                Some((1, false)),
                false,
                true,
                None,
            ),
            (
                ProvisioningStatus::Degraded,
                None,
                false,
                true,
                Some(DEGRADED),
            ),
            (
                ProvisioningStatus::Active,
                None,
                false,
                false,
                Some(NOT_MEMBER),
            ),
            (
                ProvisioningStatus::Active,
                None,
                true,
                false,
                Some(QUARANTINED),
            ),
            (
                ProvisioningStatus::Active,
                Some((2, true)),
                false,
                true,
                Some(QUARANTINED),
            ),
        ] {
            let known = Known {
                association,
                quarantined,
                member,
                on_demand: true,
            };
            let got = admit(&hello, known, status, 7);
            let got_code = match &got {
                Admission::Admit => None,
                Admission::Refuse { refusal, .. } => Some(refusal.code.clone()),
            };
            assert_eq!(
                got_code.as_deref(),
                code,
                "i17 on demand: {status:?} {association:?} {quarantined} {member}"
            );
        }
        for (req, association, quarantined, member, code, reachable) in rows {
            let known = Known {
                association: *association,
                quarantined: *quarantined,
                member: *member,
                on_demand: false,
            };
            let got = admit(&hello, known, ProvisioningStatus::Degraded, 7);
            match (got, code) {
                (Admission::Admit, None) => {}
                (
                    Admission::Refuse {
                        refusal,
                        reachable: r,
                    },
                    Some(code),
                ) => {
                    assert_eq!((refusal.code.as_str(), r), (*code, *reachable), "{req}");
                }
                (other, _) => panic!("{req}: {other:?}"),
            }
        }
        assert!(opens_new(ProvisioningStatus::Active));
        for s in [
            ProvisioningStatus::Degraded,
            ProvisioningStatus::Empty,
            ProvisioningStatus::Unavailable,
            ProvisioningStatus::Starting,
            ProvisioningStatus::Draining,
        ] {
            assert!(!opens_new(s), "R4.3: no new association while {s:?}");
        }
    }

    /// One input of the association, for the property test.
    #[derive(Clone, Debug)]
    enum Input {
        Topology(Listing),
        Quarantined,
        Dial,
        Dialed(Dialed),
        Up,
        Lost,
        Goodbye,
        Tick(bool),
        Wait(u64),
    }

    fn input() -> impl proptest::strategy::Strategy<Value = Input> {
        use proptest::prelude::*;
        let listing = prop_oneof![
            Just(Listing::Same),
            Just(Listing::Blocked),
            Just(Listing::Absent { trusted: false }),
            Just(Listing::Absent { trusted: true }),
            Just(Listing::NewIncarnation),
        ];
        let dialed = prop_oneof![
            Just(Dialed::Reached),
            Just(Dialed::OtherPeer),
            Just(Dialed::RefusedQuarantined),
            Just(Dialed::CannotAuthenticate),
            Just(Dialed::Failed),
        ];
        prop_oneof![
            listing.prop_map(Input::Topology),
            Just(Input::Quarantined),
            Just(Input::Dial),
            dialed.prop_map(Input::Dialed),
            Just(Input::Up),
            Just(Input::Lost),
            Just(Input::Goodbye),
            any::<bool>().prop_map(Input::Tick),
            (0u64..1_000).prop_map(Input::Wait),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(500))]

        /// Laws of the association core over arbitrary input sequences
        /// (R4.2, R4.4, A6): a failed association is never reported for
        /// quarantine again and never installs a connection or accepts one;
        /// it leaves `Failed` only through a topology that listed it after
        /// having blocked it (R4.4); a reachable report comes only from
        /// `Failed`; the next dial is never further away than the failure
        /// timeout.
        #[test]
        fn r4_2_r4_4_association_laws(inputs in proptest::collection::vec(input(), 0..80)) {
            let start = Instant::now();
            let mut now = start;
            let mut a = Association::new(now);
            let mut dialing = false;
            for i in inputs {
                let before = a;
                let failed = before.state == Failed;
                let fx = match i.clone() {
                    Input::Topology(l) => a.on_topology(l, now, T),
                    Input::Quarantined => a.on_quarantined(now, T),
                    Input::Dial => {
                        if a.dial_due(true, dialing, now) {
                            a.on_dial();
                            dialing = true;
                        }
                        Effects::default()
                    }
                    Input::Dialed(d) => {
                        if !dialing {
                            continue;
                        }
                        dialing = false;
                        let fx = a.on_dialed(d, now, T);
                        if fx.install {
                            a.on_up();
                        }
                        fx
                    }
                    Input::Up => {
                        // An inbound connection is installed only if wanted.
                        if a.wants_inbound() {
                            a.on_up();
                        }
                        Effects::default()
                    }
                    Input::Lost => {
                        if a.state != Up {
                            continue;
                        }
                        a.on_lost(now, T)
                    }
                    Input::Goodbye => {
                        if a.state != Up {
                            continue;
                        }
                        a.on_goodbye(now, T)
                    }
                    Input::Tick(available) => a.on_tick(available, now, T),
                    Input::Wait(ms) => {
                        now += Duration::from_millis(ms);
                        Effects::default()
                    }
                };
                if fx.cancel_dial {
                    dialing = false;
                }
                if fx.remove {
                    // R4.1: a new incarnation listed, or the member gone
                    // from a trusted list: the association is closed and
                    // removed, never reported; the actor starts a fresh
                    // one if the member is listed again.
                    proptest::prop_assert!(
                        matches!(
                            i,
                            Input::Topology(Listing::NewIncarnation | Listing::Absent { trusted: true })
                        ),
                        "removed by {i:?}"
                    );
                    proptest::prop_assert!(fx.close.is_some(), "removed without closing");
                    proptest::prop_assert!(fx.report.is_none() && !fx.install, "{fx:?}");
                    a = Association::new(now);
                    dialing = false;
                    continue;
                }
                if failed {
                    proptest::prop_assert!(
                        !matches!(fx.report, Some(Report::Quarantine(_))),
                        "reported twice: {i:?}"
                    );
                    proptest::prop_assert!(!fx.install, "installed while failed: {i:?}");
                    proptest::prop_assert!(a.state != Up, "up while failed: {i:?}");
                    if a.state != Failed {
                        proptest::prop_assert!(
                            matches!(i, Input::Topology(Listing::Same)) && before.seen_blocked,
                            "left Failed by {i:?}"
                        );
                    }
                }
                if fx.report == Some(Report::Reachable) {
                    proptest::prop_assert!(failed, "reachable from {:?}", before.state);
                }
                if matches!(fx.report, Some(Report::Quarantine(_))) {
                    proptest::prop_assert_eq!(a.state, Failed);
                }
                proptest::prop_assert!(
                    a.retry_at <= now + T.failure_timeout,
                    "next dial too far after {i:?}"
                );
            }
        }
    }
}
