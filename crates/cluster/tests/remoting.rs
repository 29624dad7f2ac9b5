//! Remoting scenarios (R4.1–R4.4, remote tell, bad input) over real TCP on
//! 127.0.0.1. Each node is an `ActorSystem` with a ProvisioningSupervisor
//! over the in-memory provider (one shared table, re-sent every 100 ms) and
//! a Remoting with a 100 ms heartbeat and a 500 ms failure timeout. Every
//! wait is bounded.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use AssociationState::{Failed, Up};
use actor_runtime::{Actor, ActorSystem, Context, HandlerResult};
use cluster::remoting::{
    AssociationState, Remoting, RemotingConfig, RemotingError, RemotingHandle,
};
use cluster::wire::{Frame, HandshakeConfig, Hello, WireError, connect_handshake, read_frame};
use cluster_core::events::RemoteNodeQuarantined;
use cluster_core::{
    Member, MemberAddress, NodeId, ProviderDescriptor, ProviderId, ProvisioningStatus, Topology,
};
use provider_memory::MembershipTable;
use provider_memory::MemoryKind;
use provisioning_actors::failover::FailoverConfig;
use provisioning_actors::{
    ProviderKinds, ProvisioningConfig, ProvisioningHandle, ProvisioningSupervisor,
};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

const CLUSTER: &str = "test";
const WAIT: Duration = Duration::from_secs(5);

fn nid(s: &str) -> NodeId {
    NodeId::new(s).unwrap()
}

fn remoting_config() -> RemotingConfig {
    RemotingConfig::new(CLUSTER)
        .with_heartbeat_interval(Duration::from_millis(100))
        .with_failure_timeout(Duration::from_millis(500))
        .with_handshake_timeout(Duration::from_millis(500))
}

struct Node {
    id: NodeId,
    member: Member,
    addr: SocketAddr,
    system: ActorSystem,
    provisioning: ProvisioningHandle,
    kind: MemoryKind,
    listener: Option<TcpListener>,
    remoting: Option<RemotingHandle>,
}

async fn bind() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.unwrap()
}

/// A node registered in `table` under the address of its own listener.
async fn node(name: &str, table: &MembershipTable) -> Node {
    let listener = bind().await;
    let addr = listener.local_addr().unwrap();
    node_advertising(name, table, listener, addr).await
}

/// A node listening on `listener` but registered under `advertised`.
async fn node_advertising(
    name: &str,
    table: &MembershipTable,
    listener: TcpListener,
    advertised: SocketAddr,
) -> Node {
    let id = nid(name);
    let addr = listener.local_addr().unwrap();
    let member = Member::new(
        id.clone(),
        MemberAddress::new("127.0.0.1", advertised.port()).unwrap(),
        1,
    );
    let system = ActorSystem::builder(name)
        .shutdown_timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    let kind = MemoryKind::new().with_table("t", table.clone());
    let config = ProvisioningConfig {
        local: Some(member.clone()),
        failover: FailoverConfig {
            silence_timeout: Duration::from_millis(600),
            error_threshold: 3,
            stability_window: Duration::from_secs(1),
            max_snapshot_lag: Duration::from_secs(30),
            startup_grace: Duration::ZERO,
        },
        ..ProvisioningConfig::default()
    };
    let definition = ProviderDescriptor::new(ProviderId::new("p").unwrap(), "memory", 0)
        .with_setting("table", "t")
        .with_setting("keepalive_ms", "100");
    let provisioning = ProvisioningSupervisor::spawn(
        &system,
        config,
        ProviderKinds::new().with(kind.clone()),
        vec![definition],
    )
    .await
    .unwrap();
    Node {
        id,
        member,
        addr,
        system,
        provisioning,
        kind,
        listener: Some(listener),
        remoting: None,
    }
}

impl Node {
    fn start_remoting(&mut self) {
        let listener = self.listener.take().expect("remoting not started yet");
        let handle = Remoting::spawn_with_listener(
            &self.system,
            remoting_config(),
            self.member.clone(),
            self.provisioning.clone(),
            listener,
        )
        .unwrap();
        assert_eq!(handle.local_addr(), self.addr);
        self.remoting = Some(handle);
    }

    fn remoting(&self) -> &RemotingHandle {
        self.remoting.as_ref().expect("remoting started")
    }

    fn state_of(&self, other: &Node) -> Option<AssociationState> {
        self.remoting().association(&other.id)
    }

    async fn topology(&self) -> Arc<Topology> {
        self.provisioning.topology().await.unwrap()
    }

    async fn shutdown(self) {
        self.system.shutdown().await;
    }
}

/// Polls `f` every 20 ms until it holds; panics after `within`.
async fn wait_until(what: &str, within: Duration, mut f: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out after {within:?} waiting for: {what}");
}

/// Waits until every node's topology is Active with exactly `ids`.
async fn wait_members(nodes: &[&Node], ids: &[&str]) {
    for n in nodes {
        wait_until(
            &format!("{} sees members {ids:?}", n.id),
            WAIT,
            async || {
                let t = n.topology().await;
                let got: Vec<&str> = t.members.iter().map(|m| m.node_id.as_str()).collect();
                t.status == ProvisioningStatus::Active && got == ids
            },
        )
        .await;
    }
}

/// Waits until every pair of `nodes` has an association Up on both sides.
async fn wait_all_up(nodes: &[&Node]) {
    wait_until("every pair associated", WAIT, async || {
        nodes.iter().all(|a| {
            nodes
                .iter()
                .all(|b| a.id == b.id || a.state_of(b) == Some(Up))
        })
    })
    .await;
}

/// Opens a raw connection to `addr` and shakes hands as `hello`.
async fn handshake_as(addr: SocketAddr, hello: &Hello) -> Result<Hello, WireError> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    connect_handshake(&mut stream, &HandshakeConfig::new(CLUSTER), hello).await
}

fn refusal_code(r: Result<Hello, WireError>) -> String {
    match r {
        Err(WireError::Refused { code, .. }) => code,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// R4.1: a member that joins gets an association with every other node (one
/// TCP stream per pair); one that leaves the topology loses them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r4_1_associations_open_for_joined_members_and_close_for_a_member_that_left() {
    let table = MembershipTable::new();
    let mut a = node("a", &table).await;
    let mut b = node("b", &table).await;
    wait_members(&[&a, &b], &["a", "b"]).await;
    a.start_remoting();
    b.start_remoting();
    wait_all_up(&[&a, &b]).await;

    // c joins: both open an association to it.
    let mut c = node("c", &table).await;
    c.start_remoting();
    wait_members(&[&a, &b, &c], &["a", "b", "c"]).await;
    wait_all_up(&[&a, &b, &c]).await;
    let ids = |n: &Node| -> Vec<String> {
        n.remoting()
            .associations()
            .into_iter()
            .map(|(id, incarnation, _)| {
                assert_eq!(incarnation, 1);
                id.to_string()
            })
            .collect()
    };
    assert_eq!(ids(&a), ["b", "c"]);
    assert_eq!(ids(&c), ["a", "b"]);

    // c leaves (drains: deregistered from the table): a and b close their
    // associations with it (with a Goodbye, which c sees). Removing c from
    // the table behind its back would not do: c, still registered, would
    // register again (the self-presence rule of issue 19).
    c.provisioning.drain().await.unwrap();
    wait_until("a and b dropped c", WAIT, async || {
        a.remoting().associations() == [(b.id.clone(), 1, Up)]
            && b.remoting().associations() == [(a.id.clone(), 1, Up)]
    })
    .await;
    wait_until("c saw the goodbyes", WAIT, async || {
        c.state_of(&a) != Some(Up) && c.state_of(&b) != Some(Up)
    })
    .await;
    assert_eq!(
        a.remoting()
            .tell(&c.id, "x", "y", vec![])
            .unwrap_err()
            .code(),
        "remoting.not_associated"
    );

    for n in [a, b, c] {
        n.shutdown().await;
    }
}

/// R4.2: a peer that stops answering (its system killed, its registration
/// left behind) is reported after the failure timeout and appears in the
/// topology's blocked list, with `RemoteNodeQuarantined`; a connection from
/// a node that is not a member is refused with `remoting.not_member`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r4_2_silent_peer_is_quarantined_and_a_non_member_is_refused() {
    let table = MembershipTable::new();
    let mut a = node("a", &table).await;
    let mut b = node("b", &table).await;
    // c runs on a runtime of its own, to be killed like a process.
    let c_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let c_table = table.clone();
    let c = c_runtime
        .spawn(async move {
            let mut c = node("c", &c_table).await;
            c.start_remoting();
            c
        })
        .await
        .unwrap();
    wait_members(&[&a, &b, &c], &["a", "b", "c"]).await;
    let quarantined = Arc::new(Mutex::new(Vec::<RemoteNodeQuarantined>::new()));
    let q = quarantined.clone();
    let _sub = a
        .system
        .event_stream()
        .subscribe_fn(move |e: &RemoteNodeQuarantined| q.lock().unwrap().push(e.clone()));
    a.start_remoting();
    b.start_remoting();
    wait_all_up(&[&a, &b, &c]).await;

    // Kill c: its runtime goes away with every task (no Goodbye, no
    // deregistration: the table still lists it).
    c_runtime.shutdown_background();
    for n in [&a, &b] {
        wait_until(&format!("{} blocks c", n.id), WAIT, async || {
            n.topology().await.is_blocked(&c.id, 1)
        })
        .await;
    }
    let t = a.topology().await;
    assert!(t.member(&c.id).is_none());
    let events = quarantined.lock().unwrap().clone();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].node, c.id);
    assert_eq!(events[0].incarnation, 1);
    assert_eq!(events[0].reason, "heartbeat timeout");
    assert_eq!(a.state_of(&c), Some(Failed));
    assert_eq!(a.state_of(&b), Some(Up));

    // A stranger is refused.
    let stranger = Hello::new(CLUSTER, nid("zz"), 1, "127.0.0.1:1");
    assert_eq!(
        refusal_code(handshake_as(a.addr, &stranger).await),
        "remoting.not_member"
    );
    // So is a member claiming another incarnation.
    let impostor = Hello::new(CLUSTER, b.id.clone(), 9, b.member.address.to_string());
    assert_eq!(
        refusal_code(handshake_as(a.addr, &impostor).await),
        "remoting.not_member"
    );
    assert_eq!(a.state_of(&b), Some(Up));

    a.shutdown().await;
    b.shutdown().await;
}

/// R4.3: while the provisioning status is Degraded, no new association is
/// opened, in either direction, although the (stale) topology lists the
/// members; once Active again they open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r4_3_no_new_association_opens_while_degraded() {
    let table = MembershipTable::new();
    let mut a = node("a", &table).await;
    let mut b = node("b", &table).await;
    let mut c = node("c", &table).await;
    wait_members(&[&a, &b, &c], &["a", "b", "c"]).await;
    a.start_remoting();
    c.start_remoting();
    wait_all_up(&[&a, &c]).await;

    // b's provider goes silent: Degraded, the last members kept.
    let faults = b.kind.faults("p").unwrap();
    faults.silence(true);
    wait_until("b degraded", WAIT, async || {
        b.topology().await.status == ProvisioningStatus::Degraded
    })
    .await;
    assert_eq!(b.topology().await.members.len(), 3);
    b.start_remoting();

    // a (the dialer of b) is refused; b does not dial c.
    let as_a = Hello::for_member(CLUSTER, &a.member);
    assert_eq!(
        refusal_code(handshake_as(b.addr, &as_a).await),
        "remoting.degraded"
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(b.topology().await.status == ProvisioningStatus::Degraded);
    assert_eq!(b.remoting().associations(), []);
    assert_ne!(a.state_of(&b), Some(Up));
    assert_ne!(c.state_of(&b), Some(Up));
    assert_eq!(a.state_of(&c), Some(Up));

    // Healthy again: the associations open.
    faults.silence(false);
    wait_all_up(&[&a, &b, &c]).await;

    for n in [a, b, c] {
        n.shutdown().await;
    }
}

/// A TCP relay that can drop everything one way (client to target) while
/// the other way keeps flowing: a one-sided partition.
struct Proxy {
    addr: SocketAddr,
    frozen: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(target: SocketAddr) -> Self {
        let listener = bind().await;
        let addr = listener.local_addr().unwrap();
        let frozen = Arc::new(AtomicBool::new(false));
        let f = frozen.clone();
        let task = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let Ok(outbound) = TcpStream::connect(target).await else {
                    continue;
                };
                let (in_r, in_w) = inbound.into_split();
                let (out_r, out_w) = outbound.into_split();
                tokio::spawn(pump(in_r, out_w, Some(f.clone())));
                tokio::spawn(pump(out_r, in_w, None));
            }
        });
        Self { addr, frozen, task }
    }

    fn freeze(&self, on: bool) {
        self.frozen.store(on, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, frozen: Option<Arc<AtomicBool>>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => {
                let _ = to.shutdown().await;
                return;
            }
            Ok(n) => {
                if frozen.as_ref().is_some_and(|f| f.load(Ordering::SeqCst)) {
                    continue; // dropped on the floor
                }
                if to.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// R4.4: b stops hearing a (a one-way partition) and quarantines it; the
/// block holds across provider refreshes while a cannot reach b. Once the
/// link heals, a reconnects, b reports it reachable (refusing it until
/// then), the next healthy refresh that still lists a lifts the block and
/// the association comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r4_4_quarantined_node_that_reconnects_is_reported_reachable_and_returns() {
    let table = MembershipTable::new();
    let mut a = node("a", &table).await;
    // a dials b (smaller id) through the proxy, b's registered address.
    let listener = bind().await;
    let proxy = Proxy::start(listener.local_addr().unwrap()).await;
    let mut b = node_advertising("b", &table, listener, proxy.addr).await;
    wait_members(&[&a, &b], &["a", "b"]).await;
    a.start_remoting();
    b.start_remoting();
    wait_all_up(&[&a, &b]).await;

    proxy.freeze(true);
    wait_until("b blocks a", WAIT, async || {
        b.topology().await.is_blocked(&a.id, 1)
    })
    .await;
    assert_eq!(b.state_of(&a), Some(Failed));
    // Refreshes arrive every 100 ms; the block stays while a is unreachable.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(b.topology().await.is_blocked(&a.id, 1));

    proxy.freeze(false);
    wait_until("a back in b's topology and associated", WAIT, async || {
        let t = b.topology().await;
        t.member(&a.id).is_some()
            && !t.is_blocked(&a.id, 1)
            && a.state_of(&b) == Some(Up)
            && b.state_of(&a) == Some(Up)
    })
    .await;
    // a's view of b ends clean too (a may have quarantined b meanwhile).
    wait_until("a sees b unblocked", WAIT, async || {
        let t = a.topology().await;
        t.member(&b.id).is_some() && t.blocked.is_empty()
    })
    .await;

    a.shutdown().await;
    b.shutdown().await;
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Greeting {
    from: String,
    n: u32,
}

/// Forwards what it receives to the test.
struct Inbox(tokio::sync::mpsc::UnboundedSender<Greeting>);

impl Actor for Inbox {
    type Msg = Greeting;
    async fn handle(&mut self, msg: Greeting, _: &mut Context<Self>) -> HandlerResult {
        let _ = self.0.send(msg);
        Ok(())
    }
}

/// Remote tell: a typed message reaches the actor registered for its
/// `(to, type_id)`; an unknown type is dropped; no association, no send.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_tell_delivers_a_typed_message() {
    let table = MembershipTable::new();
    let mut a = node("a", &table).await;
    let mut b = node("b", &table).await;
    wait_members(&[&a, &b], &["a", "b"]).await;
    a.start_remoting();
    b.start_remoting();
    wait_all_up(&[&a, &b]).await;

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let inbox = b
        .system
        .spawn("greeter", move || Inbox(tx.clone()))
        .unwrap();
    b.remoting()
        .register::<Greeting>("greeter", "greeting", inbox);

    let hello = Greeting {
        from: "a".into(),
        n: 7,
    };
    let bytes = rmp_serde::to_vec(&hello).unwrap();
    // Dropped on b: unknown type, and a payload that is not a Greeting.
    a.remoting()
        .tell(&b.id, "greeter", "unknown", bytes.clone())
        .unwrap();
    a.remoting()
        .tell(&b.id, "greeter", "greeting", vec![0xc1])
        .unwrap();
    a.remoting()
        .tell(&b.id, "greeter", "greeting", bytes)
        .unwrap();
    let got = tokio::time::timeout(WAIT, rx.recv()).await.unwrap();
    assert_eq!(got, Some(hello));

    // The other way round, and to nobody.
    let back = Greeting {
        from: "b".into(),
        n: 8,
    };
    let (tx_a, mut rx_a) = tokio::sync::mpsc::unbounded_channel();
    let inbox_a = a
        .system
        .spawn("greeter", move || Inbox(tx_a.clone()))
        .unwrap();
    a.remoting()
        .register::<Greeting>("greeter", "greeting", inbox_a);
    b.remoting()
        .tell(
            &a.id,
            "greeter",
            "greeting",
            rmp_serde::to_vec(&back).unwrap(),
        )
        .unwrap();
    assert_eq!(
        tokio::time::timeout(WAIT, rx_a.recv()).await.unwrap(),
        Some(back)
    );
    assert!(matches!(
        a.remoting()
            .tell(&nid("nobody"), "greeter", "greeting", vec![]),
        Err(RemotingError::NotAssociated(_))
    ));
    assert_eq!(rx.try_recv().ok(), None);

    a.shutdown().await;
    b.shutdown().await;
}

/// Reads one frame, then expects the connection to close.
async fn expect_reject_then_close(stream: &mut TcpStream, code: &str) {
    let frame: Frame = tokio::time::timeout(WAIT, read_frame(stream, 1024))
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(&frame, Frame::Reject { code: c, .. } if c == code),
        "{frame:?}"
    );
    expect_closed(stream).await;
}

async fn expect_closed(stream: &mut TcpStream) {
    let mut rest = Vec::new();
    let n = tokio::time::timeout(WAIT, stream.read_to_end(&mut rest))
        .await
        .expect("the node closes the connection")
        .unwrap();
    assert_eq!(n, 0);
}

/// Garbage, an oversized frame and a stalled handshake each close their
/// connection; the listener keeps serving, and a proper peer associates
/// afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_oversized_and_stalled_connections_are_closed_and_the_listener_keeps_serving() {
    let table = MembershipTable::new();
    let mut a = node("a", &table).await;
    let mut b = node("b", &table).await;
    wait_members(&[&a, &b], &["a", "b"]).await;
    b.start_remoting();

    // A frame of 8 bytes that are not MessagePack.
    let mut garbage = TcpStream::connect(b.addr).await.unwrap();
    garbage.write_all(&[0, 0, 0, 8]).await.unwrap();
    garbage.write_all(&[0xc1; 8]).await.unwrap();
    expect_reject_then_close(&mut garbage, "wire.decode").await;

    // A header claiming 4 GiB: refused before anything is allocated.
    let mut oversized = TcpStream::connect(b.addr).await.unwrap();
    oversized.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
    expect_reject_then_close(&mut oversized, "wire.oversized").await;

    // Silence: closed after the handshake timeout (500 ms).
    let mut stalled = TcpStream::connect(b.addr).await.unwrap();
    expect_closed(&mut stalled).await;

    // Still serving: a associates with b.
    a.start_remoting();
    wait_all_up(&[&a, &b]).await;

    a.shutdown().await;
    b.shutdown().await;
}

/// A6: on `RemoteNodeQuarantined`, Remoting drops the association with that
/// incarnation and refuses it at once, before the `TopologyUpdated` that
/// follows (here none follows: the event is published by the test, and the
/// topology still lists the node unblocked).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a6_remoting_drops_and_refuses_a_quarantined_incarnation_at_once() {
    let table = MembershipTable::new();
    let mut a = node("a", &table).await;
    let mut b = node("b", &table).await;
    wait_members(&[&a, &b], &["a", "b"]).await;
    a.start_remoting();
    b.start_remoting();
    wait_all_up(&[&a, &b]).await;
    let seq_no = a.topology().await.seq_no;
    a.system.event_stream().publish(RemoteNodeQuarantined {
        node: b.id.clone(),
        incarnation: 1,
        reason: "test".into(),
        seq_no: seq_no + 1,
    });
    wait_until("a dropped b", Duration::from_secs(2), async || {
        a.state_of(&b) == Some(Failed)
    })
    .await;
    let t = a.topology().await;
    assert!(
        t.member(&b.id).is_some() && !t.is_blocked(&b.id, 1),
        "no topology blocked b: the event alone did it"
    );
    let hello = Hello::new(CLUSTER, b.id.clone(), 1, b.member.address.to_string());
    assert_eq!(
        refusal_code(handshake_as(a.addr, &hello).await),
        "remoting.quarantined"
    );
    assert_eq!(
        a.remoting()
            .tell(&b.id, "x", "y", vec![])
            .unwrap_err()
            .code(),
        "remoting.not_associated"
    );
    a.shutdown().await;
    b.shutdown().await;
}

/// Remoting reads the status from the topology only (issue 13): a
/// `ProvisioningStatusChanged` does not freeze new associations (no
/// `StaleTopologyWarning`), and a member that joins next is associated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r4_3_remoting_reads_the_status_from_the_topology_only() {
    let table = MembershipTable::new();
    let mut a = node("a", &table).await;
    let mut b = node("b", &table).await;
    wait_members(&[&a, &b], &["a", "b"]).await;
    a.start_remoting();
    b.start_remoting();
    wait_all_up(&[&a, &b]).await;
    let warnings = Arc::new(Mutex::new(
        Vec::<cluster::remoting::StaleTopologyWarning>::new(),
    ));
    let w = warnings.clone();
    let _sub =
        a.system
            .event_stream()
            .subscribe_fn(move |e: &cluster::remoting::StaleTopologyWarning| {
                w.lock().unwrap().push(e.clone())
            });
    let seq_no = a.topology().await.seq_no;
    a.system
        .event_stream()
        .publish(cluster_core::events::ProvisioningStatusChanged {
            previous: ProvisioningStatus::Active,
            status: ProvisioningStatus::Degraded,
            seq_no: seq_no + 1,
        });
    let mut c = node("c", &table).await;
    c.start_remoting();
    wait_members(&[&a, &b, &c], &["a", "b", "c"]).await;
    wait_all_up(&[&a, &b, &c]).await;
    assert!(
        warnings.lock().unwrap().is_empty(),
        "{:?}",
        warnings.lock().unwrap()
    );
    for n in [a, b, c] {
        n.shutdown().await;
    }
}
