//! The contact-point core: a pure state machine from probe results to a
//! member list (no IO, no clock: `now` is an input).
//!
//! # Inputs and outputs
//!
//! Every round the driver resolves the contact points (a static seed list
//! or DNS records) to socket addresses, probes each one on its remoting
//! port and calls [`Core::round`] with `now` and one [`Probe`] per contact
//! address. The answer is an [`Output`]: `members: None` while the node is
//! still bootstrapping (the provider then emits no snapshot), or the full
//! member list once it has joined or formed a cluster, plus [`Event`]s to
//! log.
//!
//! # State machine
//!
//! ```text
//!                       a contact answers joined = true
//!  Bootstrapping ────────────────────────────────────────────► Joined
//!    │   ▲                                                      ▲
//!    │   │ the discovered or the answering set changed,          │
//!    │   │ fewer than required_contacts answer,                  │
//!    │   │ not the lowest address, form_new_cluster = false      │
//!    │   └──────────── (stay; the driver retries with backoff)   │
//!    │                                                          │
//!    └── form_new_cluster, itself a contact, lowest discovered ──┘ (Formed)
//!        (not refused)
//!        address, ≥ required_contacts answering (itself counted),
//!        none joined, both sets unchanged for stable_margin
//! ```
//!
//! `Joined` is final for the lifetime of the provider (a new provider, e.g.
//! after a restart of the process, starts over in `Bootstrapping` and finds
//! the running cluster by its joined answers).
//!
//! # Rules per contact address
//!
//! - **Answered**: the probe authenticated a node of this cluster. Its
//!   latest answer is kept with the time. A different `(node id,
//!   incarnation)` at the same address replaces the previous one at once
//!   ([`Event::Replaced`]).
//! - **Refused**: something answers at that address but is not a node of
//!   this cluster (another cluster, a wrong secret, another protocol
//!   version, a node id clash). It is never listed, a member previously
//!   known there is dropped at once, and [`Event::Refused`] is emitted once
//!   per address and code (again only after the code changed or the
//!   address answered properly in between).
//! - **Silent**: nothing answers (refused connection, timeout). The last
//!   answer is kept until `unreachable_timeout` has passed since it was
//!   received, then dropped ([`Event::Left`]).
//! - **Itself**: the address is the local node's own; it counts as a
//!   contact that answers (for `required_contacts` and the lowest address),
//!   and is never probed.
//! - An address that is no longer discovered is forgotten at once (a DNS
//!   record removed removes its member at the next round).
//!
//! # Members once joined
//!
//! The local member, plus for every contact whose latest kept answer says
//! `joined = true`, that node (a node still bootstrapping, or draining, is
//! not listed; it will be once it answers joined). Two addresses answering
//! for one node id list it once, with the newest incarnation. The local
//! node id is never listed twice.
//!
//! # Safe first bootstrap
//!
//! A new cluster is formed only by the node with the lowest socket address
//! among **all discovered** contact points (answering or silent; not those
//! refused as another cluster's), so two nodes that discover the same set
//! can never both form; the lowest must itself be up. At least `required_contacts` of them (itself included) must
//! answer, none may answer joined, and both the discovered and the
//! answering set must have stayed the same for `stable_margin`. Any other
//! node waits, and joins as soon as one contact answers `joined = true`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use cluster_core::{Member, MemberAddress, NodeId};

/// The rules of a bootstrap (see the [module documentation](self)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rules {
    /// Whether this node may form a new cluster at all.
    pub form_new_cluster: bool,
    /// How many contact points (itself included) must answer before a new
    /// cluster is formed.
    pub required_contacts: usize,
    /// How long the discovered and answering sets must stay unchanged
    /// before a new cluster is formed.
    pub stable_margin: Duration,
    /// How long a contact that stopped answering stays listed.
    pub unreachable_timeout: Duration,
}

/// A node that answered a probe for this cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    /// Its member record (node id, advertised address, incarnation, roles,
    /// labels).
    pub member: Member,
    /// Whether it has joined a cluster.
    pub joined: bool,
}

/// The result of probing one contact address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Probe {
    /// A node of this cluster answered.
    Answered(Peer),
    /// The address is the local node's own (never probed).
    Itself,
    /// Something that is not a node of this cluster answered; never listed.
    Refused {
        /// A stable code (`wire.cluster`, `wire.auth`, ...).
        code: String,
        /// Why, for the log.
        reason: String,
    },
    /// Nothing answered.
    Silent {
        /// A stable code (`wire.io`, `wire.timeout`, ...).
        code: String,
        /// Why, for the log.
        reason: String,
    },
}

/// Something worth logging that a round found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// An address answered but is not a node of this cluster (once per
    /// address and code).
    Refused {
        /// The contact address.
        contact: SocketAddr,
        /// The code.
        code: String,
        /// Why.
        reason: String,
    },
    /// Another node (or incarnation) now answers at an address.
    Replaced {
        /// The contact address.
        contact: SocketAddr,
        /// The node and incarnation that answered before.
        old: (NodeId, u64),
        /// The one that answers now.
        new: (NodeId, u64),
    },
    /// A contact silent for longer than `unreachable_timeout` was dropped.
    Left {
        /// The contact address.
        contact: SocketAddr,
        /// The node it had answered for.
        node: NodeId,
    },
    /// This node formed a new cluster.
    Formed {
        /// The contacts that answered (itself included).
        contacts: Vec<SocketAddr>,
    },
    /// This node found a joined contact and joins its cluster.
    Joined {
        /// The contact that answered joined.
        via: SocketAddr,
        /// Its node id.
        node: NodeId,
    },
    /// This node is not among the contacts it discovered (its address is
    /// not in the seed list or the records): the others would never probe
    /// it, so it neither forms nor joins (once, until it is).
    NotAContact,
}

/// What a round decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Output {
    /// `None` while bootstrapping; the member list (sorted by node id,
    /// the local member included) once joined.
    pub members: Option<Vec<Member>>,
    /// What to log.
    pub events: Vec<Event>,
}

#[derive(Clone, Debug, Default)]
struct Contact {
    /// The latest answer and when it came.
    last: Option<(Peer, Instant)>,
    /// The code of the refusal already reported for this address.
    refused: Option<String>,
}

/// The refusal code of an address that answered as a node of *another*
/// cluster: the only refusal that takes an address out of the
/// lowest-address rule. Any other refusal (a wrong secret, an expired or
/// foreign certificate, another protocol version) may be a node of this
/// cluster that is misconfigured: its address still counts, so that two
/// sides that refuse each other cannot both form.
const ANOTHER_CLUSTER: &str = "wire.cluster";

#[derive(Clone, Debug, PartialEq, Eq)]
enum Phase {
    Bootstrapping {
        /// The discovered and the answering sets, and since when they have
        /// been unchanged.
        candidate: Option<(BTreeSet<SocketAddr>, BTreeSet<SocketAddr>, Instant)>,
    },
    Joined,
}

/// The contact-point state machine (see the [module documentation](self)).
#[derive(Clone, Debug)]
pub struct Core {
    rules: Rules,
    contacts: BTreeMap<SocketAddr, Contact>,
    phase: Phase,
    /// [`Event::NotAContact`] was reported (until this node is a contact).
    not_a_contact: bool,
}

impl Core {
    /// A core that starts bootstrapping.
    pub fn new(rules: Rules) -> Self {
        Self {
            rules,
            contacts: BTreeMap::new(),
            phase: Phase::Bootstrapping { candidate: None },
            not_a_contact: false,
        }
    }

    /// Whether this node has joined (or formed) a cluster.
    pub fn joined(&self) -> bool {
        self.phase == Phase::Joined
    }

    /// Applies one round of probe results (one per discovered contact
    /// address) at `now`; `local` is this node's own member record.
    pub fn round(
        &mut self,
        now: Instant,
        local: &Member,
        results: impl IntoIterator<Item = (SocketAddr, Probe)>,
    ) -> Output {
        let mut events = Vec::new();
        let results: BTreeMap<SocketAddr, Probe> = results.into_iter().collect();
        // Forget what is no longer discovered.
        self.contacts.retain(|addr, _| results.contains_key(addr));
        let mut itself = BTreeSet::new();
        let mut answering = BTreeSet::new();
        for (addr, probe) in &results {
            let contact = self.contacts.entry(*addr).or_default();
            match probe {
                Probe::Itself => {
                    itself.insert(*addr);
                    contact.last = None;
                }
                Probe::Answered(peer) if peer.member.node_id == local.node_id => {
                    // Our own id at another address: an alias of ourselves
                    // or a clash; never listed.
                    contact.last = None;
                }
                Probe::Answered(peer) => {
                    answering.insert(*addr);
                    contact.refused = None;
                    if let Some((old, _)) = &contact.last {
                        let (o, n) = (&old.member, &peer.member);
                        if (&o.node_id, o.incarnation) != (&n.node_id, n.incarnation) {
                            events.push(Event::Replaced {
                                contact: *addr,
                                old: (o.node_id.clone(), o.incarnation),
                                new: (n.node_id.clone(), n.incarnation),
                            });
                        }
                    }
                    contact.last = Some((peer.clone(), now));
                }
                Probe::Refused { code, reason } => {
                    contact.last = None;
                    if contact.refused.as_deref() != Some(code.as_str()) {
                        contact.refused = Some(code.clone());
                        events.push(Event::Refused {
                            contact: *addr,
                            code: code.clone(),
                            reason: reason.clone(),
                        });
                    }
                }
                Probe::Silent { .. } => {
                    let expired = contact.last.as_ref().is_some_and(|(_, at)| {
                        now.saturating_duration_since(*at) > self.rules.unreachable_timeout
                    });
                    if expired && let Some((peer, _)) = contact.last.take() {
                        events.push(Event::Left {
                            contact: *addr,
                            node: peer.member.node_id,
                        });
                    }
                }
            }
        }

        // Our own node id answering at an address is ourselves too (an
        // alias of our advertised address).
        let is_contact = !itself.is_empty()
            || results.values().any(
                |p| matches!(p, Probe::Answered(peer) if peer.member.node_id == local.node_id),
            );
        if !is_contact && !self.joined() {
            // Not one of the contacts: the others would never probe this
            // node, so joining would give topologies that never agree.
            if !self.not_a_contact {
                self.not_a_contact = true;
                events.push(Event::NotAContact);
            }
        } else if let Phase::Bootstrapping { candidate } = &mut self.phase {
            self.not_a_contact = false;
            let joined_contact = results.iter().find_map(|(addr, p)| match p {
                Probe::Answered(peer) if peer.joined && peer.member.node_id != local.node_id => {
                    Some((*addr, peer.member.node_id.clone()))
                }
                _ => None,
            });
            if let Some((via, node)) = joined_contact {
                events.push(Event::Joined { via, node });
                self.phase = Phase::Joined;
            } else {
                // An address that answered as another cluster is no
                // contact of ours, and must not block the rule; any other
                // refusal still counts (see `ANOTHER_CLUSTER`).
                let discovered: BTreeSet<SocketAddr> = results
                    .iter()
                    .filter(|(_, p)| {
                        !matches!(p, Probe::Refused { code, .. } if code == ANOTHER_CLUSTER)
                    })
                    .map(|(a, _)| *a)
                    .collect();
                let up: BTreeSet<SocketAddr> = answering.union(&itself).copied().collect();
                let same = candidate
                    .as_ref()
                    .is_some_and(|(d, u, _)| *d == discovered && *u == up);
                if !same {
                    *candidate = Some((discovered.clone(), up.clone(), now));
                }
                let since = candidate.as_ref().map_or(now, |(_, _, t)| *t);
                let lowest_is_me = discovered
                    .first()
                    .is_some_and(|lowest| itself.contains(lowest));
                let may_form = self.rules.form_new_cluster
                    && lowest_is_me
                    && up.len() >= self.rules.required_contacts.max(1)
                    && now.saturating_duration_since(since) >= self.rules.stable_margin;
                if may_form {
                    events.push(Event::Formed {
                        contacts: up.into_iter().collect(),
                    });
                    self.phase = Phase::Joined;
                }
            }
        }

        let members = self.joined().then(|| self.members(local));
        Output { members, events }
    }

    /// The local member plus every joined contact, one entry per node id
    /// (the newest incarnation), sorted by node id.
    fn members(&self, local: &Member) -> Vec<Member> {
        let mut by_id: BTreeMap<NodeId, Member> = BTreeMap::new();
        for (peer, _) in self.contacts.values().filter_map(|c| c.last.as_ref()) {
            if !peer.joined || peer.member.node_id == local.node_id {
                continue;
            }
            let m = &peer.member;
            match by_id.get(&m.node_id) {
                Some(have) if have.incarnation >= m.incarnation => {}
                _ => {
                    by_id.insert(m.node_id.clone(), m.clone());
                }
            }
        }
        by_id.insert(local.node_id.clone(), local.clone());
        by_id.into_values().collect()
    }
}

/// Parses an advertised `host:port` (an IPv6 host in brackets) into a
/// [`MemberAddress`]; `None` when it is not one.
pub fn parse_member_address(s: &str) -> Option<MemberAddress> {
    let (host, port) = s.rsplit_once(':')?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let port: u16 = port.parse().ok()?;
    MemberAddress::new(host, port).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn member(id: &str, port: u16, inc: u64) -> Member {
        Member::new(
            NodeId::new(id).unwrap(),
            MemberAddress::new("127.0.0.1", port).unwrap(),
            inc,
        )
    }

    fn answered(id: &str, port: u16, inc: u64, joined: bool) -> Probe {
        Probe::Answered(Peer {
            member: member(id, port, inc),
            joined,
        })
    }

    fn silent() -> Probe {
        Probe::Silent {
            code: "wire.io".into(),
            reason: "connection refused".into(),
        }
    }

    fn refused(code: &str) -> Probe {
        Probe::Refused {
            code: code.into(),
            reason: "another cluster".into(),
        }
    }

    fn rules(required: usize) -> Rules {
        Rules {
            form_new_cluster: true,
            required_contacts: required,
            stable_margin: Duration::from_secs(2),
            unreachable_timeout: Duration::from_secs(5),
        }
    }

    fn ids(out: &Output) -> Option<Vec<String>> {
        out.members.as_ref().map(|m| {
            m.iter()
                .map(|m| format!("{}@{}", m.node_id, m.incarnation))
                .collect()
        })
    }

    /// P4/P6 safe bootstrap: the lowest discovered address forms, only
    /// after the sets were stable for the margin with enough contacts up.
    #[test]
    fn p4_the_lowest_contact_forms_after_the_stable_margin() {
        let t0 = Instant::now();
        let me = member("a", 1, 1);
        let mut core = Core::new(rules(2));
        let round = |core: &mut Core, t: u64, b: Probe| {
            core.round(
                t0 + Duration::from_secs(t),
                &me,
                [(addr(1), Probe::Itself), (addr(2), b)],
            )
        };
        // Alone: fewer than required.
        assert_eq!(round(&mut core, 0, silent()).members, None);
        assert_eq!(round(&mut core, 10, silent()).members, None);
        // b answers (not joined): the sets changed, the margin starts now.
        assert_eq!(
            round(&mut core, 11, answered("b", 2, 1, false)).members,
            None
        );
        assert_eq!(
            round(&mut core, 12, answered("b", 2, 1, false)).members,
            None
        );
        let out = round(&mut core, 13, answered("b", 2, 1, false));
        assert!(matches!(&out.events[..], [Event::Formed { contacts }] if contacts.len() == 2));
        // b has not joined yet: only a is listed.
        assert_eq!(ids(&out), Some(vec!["a@1".into()]));
        // b joins (answers joined): listed.
        let out = round(&mut core, 14, answered("b", 2, 1, true));
        assert_eq!(ids(&out), Some(vec!["a@1".into(), "b@1".into()]));
    }

    #[test]
    fn p4_a_higher_contact_never_forms_and_joins_when_one_answers_joined() {
        let t0 = Instant::now();
        let me = member("b", 2, 1);
        let mut core = Core::new(rules(1));
        for t in 0..100 {
            let out = core.round(
                t0 + Duration::from_secs(t),
                &me,
                [
                    (addr(1), answered("a", 1, 1, false)),
                    (addr(2), Probe::Itself),
                ],
            );
            assert_eq!(out.members, None, "b is not the lowest: it must wait");
        }
        // Even when the lowest is down.
        let out = core.round(
            t0 + Duration::from_secs(200),
            &me,
            [(addr(1), silent()), (addr(2), Probe::Itself)],
        );
        assert_eq!(out.members, None);
        let out = core.round(
            t0 + Duration::from_secs(201),
            &me,
            [
                (addr(1), answered("a", 1, 1, true)),
                (addr(2), Probe::Itself),
            ],
        );
        assert!(matches!(&out.events[..], [Event::Joined { via, .. }] if *via == addr(1)));
        assert_eq!(ids(&out), Some(vec!["a@1".into(), "b@1".into()]));
    }

    /// A restarted first seed (the lowest address) finds a joined peer and
    /// joins; it never forms its own cluster.
    #[test]
    fn p4_a_restarted_first_seed_joins_the_running_cluster() {
        let t0 = Instant::now();
        let me = member("a", 1, 2);
        let mut core = Core::new(Rules {
            stable_margin: Duration::ZERO,
            ..rules(1)
        });
        let out = core.round(
            t0,
            &me,
            [
                (addr(1), Probe::Itself),
                (addr(2), answered("b", 2, 1, true)),
            ],
        );
        assert!(
            matches!(&out.events[..], [Event::Joined { .. }]),
            "{:?}",
            out.events
        );
    }

    #[test]
    fn form_new_cluster_false_or_not_a_contact_never_forms() {
        let t0 = Instant::now();
        let me = member("a", 1, 1);
        let mut core = Core::new(Rules {
            form_new_cluster: false,
            stable_margin: Duration::ZERO,
            ..rules(1)
        });
        for t in 0..10 {
            let out = core.round(t0 + Duration::from_secs(t), &me, [(addr(1), Probe::Itself)]);
            assert_eq!(out.members, None);
        }
        // Not among the contacts: never the lowest.
        let mut core = Core::new(Rules {
            stable_margin: Duration::ZERO,
            ..rules(1)
        });
        for t in 0..10 {
            let out = core.round(t0 + Duration::from_secs(t), &me, [(addr(2), silent())]);
            assert_eq!(out.members, None);
        }
    }

    #[test]
    fn p4_p6_refused_addresses_are_never_listed_and_reported_once() {
        let t0 = Instant::now();
        let me = member("a", 1, 1);
        let mut core = Core::new(Rules {
            stable_margin: Duration::ZERO,
            ..rules(1)
        });
        let mut reported = 0;
        for t in 0..5 {
            let out = core.round(
                t0 + Duration::from_secs(t),
                &me,
                [(addr(1), Probe::Itself), (addr(9), refused("wire.cluster"))],
            );
            reported += out
                .events
                .iter()
                .filter(|e| matches!(e, Event::Refused { .. }))
                .count();
            assert_eq!(ids(&out), Some(vec!["a@1".into()]));
        }
        assert_eq!(reported, 1);
        // Another code at the same address is reported again.
        let out = core.round(
            t0 + Duration::from_secs(9),
            &me,
            [(addr(1), Probe::Itself), (addr(9), refused("wire.auth"))],
        );
        assert!(matches!(&out.events[..], [Event::Refused { code, .. }] if code == "wire.auth"));
        // A member whose address is taken by another cluster's process is
        // dropped at once.
        let _ = core.round(
            t0 + Duration::from_secs(10),
            &me,
            [
                (addr(1), Probe::Itself),
                (addr(2), answered("b", 2, 1, true)),
            ],
        );
        let out = core.round(
            t0 + Duration::from_secs(11),
            &me,
            [(addr(1), Probe::Itself), (addr(2), refused("wire.cluster"))],
        );
        assert_eq!(ids(&out), Some(vec!["a@1".into()]));
    }

    /// B1: a lower address refused for anything but another cluster (a
    /// wrong secret, an expired or foreign certificate) blocks forming: it
    /// may be this cluster's lowest seed, misconfigured, which would form
    /// alone while the others formed too.
    #[test]
    fn b1_a_lower_address_refused_for_a_bad_proof_blocks_forming() {
        let t0 = Instant::now();
        let me = member("b", 2, 1);
        for code in [
            "wire.auth",
            "remoting.tls.expired",
            "remoting.tls.unknown_ca",
        ] {
            let mut core = Core::new(Rules {
                stable_margin: Duration::ZERO,
                ..rules(1)
            });
            for t in 0..3 {
                let out = core.round(
                    t0 + Duration::from_secs(t),
                    &me,
                    [(addr(1), refused(code)), (addr(2), Probe::Itself)],
                );
                assert_eq!(out.members, None, "{code}");
            }
        }
    }

    /// B1: a node that is not among its own contacts neither forms nor
    /// joins (the others would never list it), and says so once.
    #[test]
    fn b1_a_node_that_is_not_a_contact_waits_and_says_so_once() {
        let t0 = Instant::now();
        let me = member("c", 9, 1);
        let mut core = Core::new(Rules {
            stable_margin: Duration::ZERO,
            ..rules(1)
        });
        let round = |core: &mut Core, t: u64| {
            core.round(
                t0 + Duration::from_secs(t),
                &me,
                [(addr(1), answered("a", 1, 1, true))],
            )
        };
        let out = round(&mut core, 0);
        assert_eq!(out.members, None);
        assert_eq!(out.events, vec![Event::NotAContact]);
        let out = round(&mut core, 1);
        assert_eq!(out.members, None);
        assert!(out.events.is_empty());
        // Its record appears: it joins.
        let out = core.round(
            t0 + Duration::from_secs(2),
            &me,
            [
                (addr(1), answered("a", 1, 1, true)),
                (addr(9), Probe::Itself),
            ],
        );
        assert!(core.joined());
        assert!(out.members.is_some());
    }

    #[test]
    fn p4_a_lower_address_of_another_cluster_does_not_block_forming() {
        let t0 = Instant::now();
        let me = member("b", 2, 1);
        let mut core = Core::new(Rules {
            stable_margin: Duration::ZERO,
            ..rules(1)
        });
        let out = core.round(
            t0,
            &me,
            [(addr(1), refused("wire.cluster")), (addr(2), Probe::Itself)],
        );
        assert_eq!(ids(&out), Some(vec!["b@1".into()]));
        // A silent lower address does block: it may be ours, down.
        let mut core = Core::new(Rules {
            stable_margin: Duration::ZERO,
            ..rules(1)
        });
        let out = core.round(t0, &me, [(addr(1), silent()), (addr(2), Probe::Itself)]);
        assert_eq!(out.members, None);
    }

    #[test]
    fn p4_p6_silent_contacts_leave_after_the_unreachable_timeout() {
        let t0 = Instant::now();
        let me = member("a", 1, 1);
        let mut core = Core::new(Rules {
            stable_margin: Duration::ZERO,
            ..rules(1)
        });
        let at = |s: u64| t0 + Duration::from_secs(s);
        let both = |b: Probe| [(addr(1), Probe::Itself), (addr(2), b)];
        let _ = core.round(at(0), &me, both(answered("b", 2, 1, true)));
        let out = core.round(at(5), &me, both(silent()));
        assert_eq!(ids(&out), Some(vec!["a@1".into(), "b@1".into()]));
        let out = core.round(at(6), &me, both(silent()));
        assert_eq!(ids(&out), Some(vec!["a@1".into()]));
        assert!(matches!(&out.events[..], [Event::Left { .. }]));
        // Back: listed again.
        let out = core.round(at(7), &me, both(answered("b", 2, 1, true)));
        assert_eq!(ids(&out), Some(vec!["a@1".into(), "b@1".into()]));
        // A record removed: forgotten at once.
        let out = core.round(at(8), &me, [(addr(1), Probe::Itself)]);
        assert_eq!(ids(&out), Some(vec!["a@1".into()]));
    }

    /// R4.4 holds: a new incarnation at the same address replaces the old
    /// one (listed once it has joined).
    #[test]
    fn p4_p6_a_new_incarnation_replaces_the_old_one() {
        let t0 = Instant::now();
        let me = member("a", 1, 1);
        let mut core = Core::new(Rules {
            stable_margin: Duration::ZERO,
            ..rules(1)
        });
        let at = |s: u64| t0 + Duration::from_secs(s);
        let both = |b: Probe| [(addr(1), Probe::Itself), (addr(2), b)];
        let _ = core.round(at(0), &me, both(answered("b", 2, 1, true)));
        let out = core.round(at(1), &me, both(answered("b", 2, 7, false)));
        assert!(
            matches!(&out.events[..], [Event::Replaced { old, new, .. }] if old.1 == 1 && new.1 == 7)
        );
        assert_eq!(ids(&out), Some(vec!["a@1".into()]));
        let out = core.round(at(2), &me, both(answered("b", 2, 7, true)));
        assert_eq!(ids(&out), Some(vec!["a@1".into(), "b@7".into()]));
    }

    #[test]
    fn one_node_at_two_addresses_is_listed_once_and_our_own_id_never_twice() {
        let t0 = Instant::now();
        let me = member("a", 1, 1);
        let mut core = Core::new(Rules {
            stable_margin: Duration::ZERO,
            ..rules(1)
        });
        let out = core.round(
            t0,
            &me,
            [
                (addr(1), Probe::Itself),
                (addr(2), answered("b", 2, 3, true)),
                (addr(3), answered("b", 2, 4, true)),
                (addr(4), answered("a", 1, 9, true)),
            ],
        );
        assert_eq!(ids(&out), Some(vec!["a@1".into(), "b@4".into()]));
    }

    #[test]
    fn member_addresses_parse_with_ipv6_brackets() {
        assert_eq!(
            parse_member_address("[::1]:80"),
            Some(MemberAddress::new("::1", 80).unwrap())
        );
        assert_eq!(
            parse_member_address("h:1"),
            Some(MemberAddress::new("h", 1).unwrap())
        );
        for bad in ["h", "h:0", ":1", "h:x", "h:70000"] {
            assert_eq!(parse_member_address(bad), None, "{bad}");
        }
    }

    /// A simulated cluster of `n` nodes that all discover the same `n`
    /// addresses, one round per second; `reach[t][i][j]` says whether i
    /// reaches j in round t. Returns the cores and how many formed.
    fn simulate(n: usize, required: usize, reach: &[Vec<Vec<bool>>]) -> (Vec<Core>, usize) {
        simulate_refusing(n, required, reach, &BTreeSet::new())
    }

    /// [`simulate`], where the pairs in `refused_pairs` (smaller index
    /// first) refuse each other's proof in every round.
    fn simulate_refusing(
        n: usize,
        required: usize,
        reach: &[Vec<Vec<bool>>],
        refused_pairs: &BTreeSet<(usize, usize)>,
    ) -> (Vec<Core>, usize) {
        let t0 = Instant::now();
        let locals: Vec<Member> = (0..n)
            .map(|i| member(&format!("n{i}"), 10 + i as u16, 1))
            .collect();
        let mut cores: Vec<Core> = (0..n).map(|_| Core::new(rules(required))).collect();
        let mut formed = 0;
        for (t, up) in reach.iter().enumerate() {
            let joined: Vec<bool> = cores.iter().map(Core::joined).collect();
            for i in 0..n {
                let results: Vec<(SocketAddr, Probe)> = (0..n)
                    .map(|j| {
                        let p = if i == j {
                            Probe::Itself
                        } else if refused_pairs.contains(&(i.min(j), i.max(j))) {
                            // A bad proof, seen from both sides.
                            refused("wire.auth")
                        } else if up[i][j] {
                            Probe::Answered(Peer {
                                member: locals[j].clone(),
                                joined: joined[j],
                            })
                        } else {
                            silent()
                        };
                        (addr(10 + j as u16), p)
                    })
                    .collect();
                let out = cores[i].round(t0 + Duration::from_secs(t as u64), &locals[i], results);
                formed += out
                    .events
                    .iter()
                    .filter(|e| matches!(e, Event::Formed { .. }))
                    .count();
            }
        }
        (cores, formed)
    }

    #[test]
    fn p4_five_nodes_at_once_with_three_required_form_exactly_one_cluster() {
        let all = vec![vec![vec![true; 5]; 5]; 20];
        let (cores, formed) = simulate(5, 3, &all);
        assert_eq!(formed, 1);
        assert!(cores.iter().all(Core::joined));
    }

    proptest! {
        /// Whatever the reachability in each round (nodes and links up and
        /// down at random), at most one node ever forms a cluster: all
        /// discover the same addresses and only the lowest may form.
        #[test]
        fn p4_p6_never_two_clusters(
            n in 2usize..6,
            required in 1usize..4,
            reach in proptest::collection::vec(
                proptest::collection::vec(proptest::collection::vec(any::<bool>(), 6), 6),
                1..30,
            ),
        ) {
            let reach: Vec<Vec<Vec<bool>>> = reach
                .into_iter()
                .map(|m| m.into_iter().take(n).map(|r| r.into_iter().take(n).collect()).collect())
                .collect();
            prop_assert!(simulate(n, required, &reach).1 <= 1);
        }

        /// B1: the same when some pairs refuse each other's proof (a wrong
        /// secret, an expired certificate) for the whole run: still at
        /// most one formation.
        #[test]
        fn b1_never_two_clusters_when_some_nodes_refuse_each_other(
            n in 2usize..6,
            required in 1usize..4,
            pairs in proptest::collection::btree_set((0usize..6, 0usize..6), 0..6),
            reach in proptest::collection::vec(
                proptest::collection::vec(proptest::collection::vec(any::<bool>(), 6), 6),
                1..30,
            ),
        ) {
            let reach: Vec<Vec<Vec<bool>>> = reach
                .into_iter()
                .map(|m| m.into_iter().take(n).map(|r| r.into_iter().take(n).collect()).collect())
                .collect();
            let pairs: BTreeSet<(usize, usize)> = pairs
                .into_iter()
                .filter(|(i, j)| i < j && *j < n)
                .collect();
            prop_assert!(simulate_refusing(n, required, &reach, &pairs).1 <= 1);
        }

        /// Once every node reaches every other for long enough, all have
        /// joined (liveness), when enough contacts exist.
        #[test]
        fn p4_p6_full_reachability_converges(n in 1usize..6, required in 1usize..4, noise in proptest::collection::vec(
                proptest::collection::vec(proptest::collection::vec(any::<bool>(), 6), 6), 0..10)) {
            let mut reach: Vec<Vec<Vec<bool>>> = noise
                .into_iter()
                .map(|m| m.into_iter().take(n).map(|r| r.into_iter().take(n).collect()).collect())
                .collect();
            reach.extend(std::iter::repeat_n(vec![vec![true; n]; n], 10));
            let (cores, _) = simulate(n, required, &reach);
            if n >= required {
                prop_assert!(cores.iter().all(Core::joined));
            } else {
                prop_assert!(cores.iter().all(|c| !c.joined()));
            }
        }
    }
}
