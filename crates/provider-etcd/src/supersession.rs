//! [`Supersession`]: whether the local member was superseded by a newer
//! incarnation of its node id, shared by the registration task and the
//! watch streams of one provider.
//!
//! Incarnations of one node id are ordered, a greater one is a newer
//! process ([`Member::incarnation`]). The provider learns that the local
//! process is superseded in three places:
//!
//! | where | told through |
//! |---|---|
//! | the first put of a `register` call finds a newer incarnation | that call's `Err(ProviderError::Superseded)` |
//! | a re-registration (after a lost lease) finds one, or the first put does after `register` stopped waiting | every watch stream: one `Err(ProviderError::Superseded)` item |
//! | a watch snapshot lists a newer incarnation of the registered local member | the same |
//!
//! ```text
//!            registered(node, inc)               report(e) / snapshot lists node with > inc
//!   Idle ─────────────────────────► Registered ─────────────────────────────────────────► Superseded(e)
//!    ▲ forget() (register / deregister)  ▲ registered() (the key was absent again: put)     │
//!    └───────────────────────────────────┴──────────────────────────────────────────────────┘
//! ```
//!
//! A stream yields each supersession at most once (it remembers the last
//! error it yielded), and only once it knows it: a supersession reported
//! before the stream was opened is yielded as its first item, since the
//! process is still superseded. A `register` call that returned
//! `Superseded` itself is not reported again through the streams.

use std::sync::Mutex;

use cluster_core::{Member, NodeId, ProviderError};
use tokio::sync::watch;

/// See the [module documentation](self).
pub(crate) struct Supersession {
    /// The local member's node id and incarnation once a put succeeded.
    registered: Mutex<Option<(NodeId, u64)>>,
    /// The supersession error, if superseded.
    superseded: watch::Sender<Option<ProviderError>>,
}

impl Default for Supersession {
    fn default() -> Self {
        Self {
            registered: Mutex::new(None),
            superseded: watch::Sender::new(None),
        }
    }
}

impl Supersession {
    fn registered_slot(&self) -> std::sync::MutexGuard<'_, Option<(NodeId, u64)>> {
        self.registered
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A new `register` call, or a `deregister`: forget the previous
    /// member and supersession.
    pub(crate) fn forget(&self) {
        *self.registered_slot() = None;
        self.superseded.send_if_modified(|s| s.take().is_some());
    }

    /// A put of `node` at `incarnation` succeeded: it is the key's owner
    /// (again).
    pub(crate) fn registered(&self, node: &NodeId, incarnation: u64) {
        *self.registered_slot() = Some((node.clone(), incarnation));
        self.superseded.send_if_modified(|s| s.take().is_some());
    }

    /// Reports a supersession to the watch streams (the first report of a
    /// registration counts; later ones change nothing).
    pub(crate) fn report(&self, e: ProviderError) {
        self.superseded.send_if_modified(|s| {
            if s.is_none() {
                *s = Some(e);
                true
            } else {
                false
            }
        });
    }

    /// Reports a supersession when `members` lists a newer incarnation of
    /// the registered local member.
    pub(crate) fn check(&self, members: &[Member]) {
        let Some((node, ours)) = self.registered_slot().clone() else {
            return;
        };
        if let Some(newer) = newer_than(members, &node, ours) {
            self.report(ProviderError::Superseded {
                node,
                incarnation: ours,
                newer,
            });
        }
    }

    /// A receiver for a new watch stream.
    pub(crate) fn subscribe(&self) -> watch::Receiver<Option<ProviderError>> {
        let mut rx = self.superseded.subscribe();
        if rx.borrow().is_some() {
            rx.mark_changed();
        }
        rx
    }
}

/// The incarnation of `node` in `members` if it is newer than `ours`.
fn newer_than(members: &[Member], node: &NodeId, ours: u64) -> Option<u64> {
    members
        .iter()
        .find(|m| &m.node_id == node)
        .map(|m| m.incarnation)
        .filter(|theirs| *theirs > ours)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cluster_core::MemberAddress;

    fn member(id: &str, incarnation: u64) -> Member {
        Member::new(
            NodeId::new(id).unwrap(),
            MemberAddress::new("127.0.0.1", 4000).unwrap(),
            incarnation,
        )
    }

    fn superseded(rx: &mut watch::Receiver<Option<ProviderError>>) -> Option<ProviderError> {
        if rx.has_changed().unwrap() {
            rx.borrow_and_update().clone()
        } else {
            None
        }
    }

    #[test]
    fn i13_only_a_newer_incarnation_of_the_registered_node_supersedes_it() {
        let b = NodeId::new("b").unwrap();
        let others = [member("a", 9), member("c", 1)];
        assert_eq!(newer_than(&others, &b, 5), None);
        for (theirs, newer) in [(4, None), (5, None), (6, Some(6))] {
            let mut ms = others.to_vec();
            ms.push(member("b", theirs));
            assert_eq!(newer_than(&ms, &b, 5), newer, "{theirs}");
        }
    }

    #[test]
    fn i13_a_supersession_is_told_once_per_stream_until_registered_again() {
        let s = Supersession::default();
        let mut early = s.subscribe();
        // Nothing registered: a snapshot with b at 7 supersedes nobody.
        s.check(&[member("b", 7)]);
        assert_eq!(superseded(&mut early), None);

        s.registered(&NodeId::new("b").unwrap(), 5);
        s.check(&[member("b", 5)]);
        assert_eq!(superseded(&mut early), None);
        s.check(&[member("b", 7)]);
        let e = superseded(&mut early).expect("told");
        assert_eq!(e.code(), "provider.superseded");
        assert_eq!(
            e,
            ProviderError::Superseded {
                node: NodeId::new("b").unwrap(),
                incarnation: 5,
                newer: 7
            }
        );
        // Seen again, or reported by the registration task: no new item.
        s.check(&[member("b", 8)]);
        s.report(ProviderError::Superseded {
            node: NodeId::new("b").unwrap(),
            incarnation: 5,
            newer: 9,
        });
        assert_eq!(superseded(&mut early), None);
        // A stream opened later learns it at once.
        let mut late = s.subscribe();
        assert_eq!(superseded(&mut late), Some(e));

        // Registered again (the key was absent): no longer superseded.
        s.registered(&NodeId::new("b").unwrap(), 5);
        assert_eq!(superseded(&mut early), None);
        assert_eq!(s.subscribe().borrow().clone(), None);
        s.forget();
        s.check(&[member("b", 8)]);
        assert_eq!(superseded(&mut early), None, "not registered");
    }
}
