//! The [`EventStream`]: typed publish/subscribe between actors.
//!
//! # Guarantees
//!
//! - **Typed**: subscribers register for one event type `E` and receive it
//!   converted into their message type (`M: From<E>`).
//! - **Order**: each subscriber sees the events of one publisher in publish
//!   order (a publish is a sequence of `tell`s, each into one FIFO mailbox).
//!   Events of different publishers interleave in no fixed order.
//! - **No loss while alive**: an actor subscriber with an unbounded mailbox
//!   (the default) receives every event published between its `subscribe`
//!   returning and its termination, including while it restarts (the mailbox
//!   is kept).
//! - **No blocking**: a publish never waits for a subscriber; a slow
//!   subscriber's backlog grows in its own mailbox.
//! - **Clean up**: a subscriber that terminates is removed by the runtime;
//!   a closed mailbox met during a publish is removed too.
//!
//! # Memory policy
//!
//! Events are cloned once per subscriber; make them cheap to clone (put large
//! payloads behind an `Arc`). A slow subscriber with an unbounded mailbox
//! holds every event it has not handled yet: memory is bounded only by how far
//! it falls behind (watch `actor_mailbox_depth`). A subscriber that chose a
//! bounded mailbox trades memory for loss: when its mailbox is full the event
//! is **dropped for that subscriber only** and counted in
//! `event_stream_dropped_total{event}` and [`EventStream::dropped_total`].
//! Nothing else drops events.
//!
//! ```
//! use actor_runtime::{Actor, ActorSystem, Context, HandlerResult};
//!
//! #[derive(Clone, Debug)]
//! struct Joined(u32);
//!
//! struct Listener { seen: Vec<u32> }
//! impl Actor for Listener {
//!     type Msg = Joined;
//!     async fn handle(&mut self, Joined(n): Joined, _: &mut Context<Self>) -> HandlerResult {
//!         self.seen.push(n);
//!         Ok(())
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let system = ActorSystem::new("doc");
//! let listener = system.spawn("listener", || Listener { seen: vec![] }).unwrap();
//! system.event_stream().subscribe::<Joined, _>(&listener);
//! assert_eq!(system.event_stream().publish(Joined(1)), 1);
//! # system.shutdown().await; }
//! ```

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use metrics::{Counter, counter};

use crate::actor_ref::{ActorId, ActorRef, TellError};
use crate::registry::SubscriptionRegistry;

/// Who is subscribed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SubscriberId {
    /// An actor.
    Actor(ActorId),
    /// A callback registered with [`EventStream::subscribe_fn`].
    Callback(u64),
}

enum Delivery {
    Delivered,
    Full,
    Closed,
}

trait Deliver<E>: Send + Sync {
    fn deliver(&self, event: &E) -> Delivery;
}

struct ToActor<M>(ActorRef<M>);

impl<E, M> Deliver<E> for ToActor<M>
where
    E: Clone,
    M: From<E> + Send + 'static,
{
    #[inline]
    fn deliver(&self, event: &E) -> Delivery {
        match self.0.tell(M::from(event.clone())) {
            Ok(()) => Delivery::Delivered,
            Err(TellError::Full(_)) => Delivery::Full,
            Err(TellError::Closed(_)) => Delivery::Closed,
        }
    }
}

struct ToFn<F>(F);

impl<E, F: Fn(&E) + Send + Sync> Deliver<E> for ToFn<F> {
    fn deliver(&self, event: &E) -> Delivery {
        (self.0)(event);
        Delivery::Delivered
    }
}

type Subscribers<E> = SubscriptionRegistry<SubscriberId, Arc<dyn Deliver<E>>>;

struct Topic<E> {
    subscribers: Subscribers<E>,
    published: Counter,
    dropped: Counter,
}

trait ErasedTopic: Send + Sync {
    fn remove(&self, id: SubscriberId) -> bool;
    fn as_any(&self) -> &dyn Any;
}

impl<E: 'static> ErasedTopic for Topic<E> {
    fn remove(&self, id: SubscriberId) -> bool {
        self.subscribers.remove(&id)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[derive(Default)]
struct Inner {
    /// The `node` label of its metrics: the system's name, empty when
    /// standalone.
    node: Arc<str>,
    topics: RwLock<HashMap<TypeId, Arc<dyn ErasedTopic>>>,
    next_callback: AtomicU64,
    dropped: AtomicU64,
}

/// Typed publish/subscribe; one per [`ActorSystem`](crate::ActorSystem), or
/// standalone. Cheap to clone (all clones share one registry).
#[derive(Clone, Default)]
pub struct EventStream {
    inner: Arc<Inner>,
}

impl fmt::Debug for EventStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventStream").finish_non_exhaustive()
    }
}

/// A callback subscription; [`Subscription::cancel`] ends it. Dropping it
/// does not.
#[derive(Debug)]
pub struct Subscription {
    stream: EventStream,
    topic: TypeId,
    id: SubscriberId,
}

impl Subscription {
    /// Ends the subscription; `true` if it was still active.
    pub fn cancel(self) -> bool {
        self.stream.remove(self.topic, self.id)
    }
}

impl EventStream {
    /// A standalone stream (an `ActorSystem` makes its own). Its metrics
    /// carry `node=""`.
    pub fn new() -> Self {
        Self::default()
    }

    /// The stream of the system called `node` (its metrics' `node` label).
    pub(crate) fn for_node(node: Arc<str>) -> Self {
        Self {
            inner: Arc::new(Inner {
                node,
                ..Inner::default()
            }),
        }
    }

    fn topic<E: Send + Sync + 'static>(&self, create: bool) -> Option<Arc<dyn ErasedTopic>> {
        let key = TypeId::of::<E>();
        if let Some(t) = self
            .inner
            .topics
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&key)
        {
            return Some(t.clone());
        }
        if !create {
            return None;
        }
        let mut map = self
            .inner
            .topics
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let t = map.entry(key).or_insert_with(|| {
            let name = std::any::type_name::<E>();
            Arc::new(Topic::<E> {
                subscribers: SubscriptionRegistry::new(),
                published: counter!(crate::metrics::EVENTS_PUBLISHED, "node" => self.inner.node.clone(), "event" => name),
                dropped: counter!(crate::metrics::EVENTS_DROPPED, "node" => self.inner.node.clone(), "event" => name),
            })
        });
        Some(t.clone())
    }

    fn add<E: Send + Sync + 'static>(&self, id: SubscriberId, d: Arc<dyn Deliver<E>>) -> bool {
        let Some(topic) = self.topic::<E>(true) else {
            return false;
        };
        match topic.as_any().downcast_ref::<Topic<E>>() {
            Some(t) => t.subscribers.add(id, d),
            None => false,
        }
    }

    fn remove(&self, topic: TypeId, id: SubscriberId) -> bool {
        let t = self
            .inner
            .topics
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&topic)
            .cloned();
        t.is_some_and(|t| t.remove(id))
    }

    /// Subscribes `subscriber` to events of type `E`; `false` if it already
    /// was. It receives each event converted with `M::from`.
    pub fn subscribe<E, M>(&self, subscriber: &ActorRef<M>) -> bool
    where
        E: Clone + Send + Sync + 'static,
        M: From<E> + Send + 'static,
    {
        if subscriber.is_closed() {
            return false;
        }
        let id = SubscriberId::Actor(subscriber.id());
        let added = self.add::<E>(id, Arc::new(ToActor(subscriber.clone())));
        // The actor may have terminated (and been unsubscribed) between the
        // check and the add: do not keep its reference alive.
        if added && subscriber.is_closed() {
            self.remove(TypeId::of::<E>(), id);
            return false;
        }
        added
    }

    /// Subscribes a callback, run on the publisher's task for each event of
    /// type `E`. Keep it short and non-blocking.
    pub fn subscribe_fn<E>(&self, f: impl Fn(&E) + Send + Sync + 'static) -> Subscription
    where
        E: Send + Sync + 'static,
    {
        let id = SubscriberId::Callback(self.inner.next_callback.fetch_add(1, Ordering::Relaxed));
        self.add::<E>(id, Arc::new(ToFn(f)));
        Subscription {
            stream: self.clone(),
            topic: TypeId::of::<E>(),
            id,
        }
    }

    /// Unsubscribes actor `id` from `E`; `true` if it was subscribed.
    pub fn unsubscribe<E: 'static>(&self, id: ActorId) -> bool {
        self.remove(TypeId::of::<E>(), SubscriberId::Actor(id))
    }

    /// Unsubscribes actor `id` from every event type (done by the runtime
    /// when the actor terminates).
    pub fn unsubscribe_actor(&self, id: ActorId) {
        let topics: Vec<_> = self
            .inner
            .topics
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        for t in topics {
            t.remove(SubscriberId::Actor(id));
        }
    }

    /// Publishes `event` to every subscriber of `E`; returns how many
    /// received it (a full bounded mailbox does not count; see the memory
    /// policy in the module docs).
    pub fn publish<E: Clone + Send + Sync + 'static>(&self, event: E) -> usize {
        let Some(topic) = self.topic::<E>(false) else {
            return 0;
        };
        let Some(topic) = topic.as_any().downcast_ref::<Topic<E>>() else {
            return 0;
        };
        topic.published.increment(1);
        let subscribers = topic.subscribers.snapshot();
        let mut delivered = 0;
        for (id, s) in subscribers.iter() {
            match s.deliver(&event) {
                Delivery::Delivered => delivered += 1,
                Delivery::Full => {
                    topic.dropped.increment(1);
                    self.inner.dropped.fetch_add(1, Ordering::Relaxed);
                }
                Delivery::Closed => {
                    topic.subscribers.remove(id);
                }
            }
        }
        delivered
    }

    /// Number of subscribers of `E`.
    pub fn subscriber_count<E: Send + Sync + 'static>(&self) -> usize {
        self.topic::<E>(false)
            .and_then(|t| {
                t.as_any()
                    .downcast_ref::<Topic<E>>()
                    .map(|t| t.subscribers.len())
            })
            .unwrap_or(0)
    }

    /// Deliveries dropped so far because a bounded mailbox was full.
    pub fn dropped_total(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }
}
