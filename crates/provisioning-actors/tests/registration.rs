//! A failed registration of the local member is retried with backoff (1 s
//! doubling to 30 s) until it succeeds (it used to wait for the provider
//! actor to restart), and a connectivity failure at registration does not
//! count towards R5.2's suppression (six of them in a row would pass the
//! threshold of five).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "support/harness.rs"]
mod harness;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use actor_runtime::ActorSystem;
use cluster_core::{
    Capabilities, ClusterProvider, Member, ProviderDescriptor, ProviderError, Snapshot,
};
use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use harness::*;
use provider_memory::{MembershipTable, MemoryProvider};
use provisioning_actors::{ProviderFactory, ProviderKinds, ProvisioningSupervisor};

/// A memory provider whose first `fails` registrations fail with `error`.
struct Flaky {
    inner: MemoryProvider,
    fails: Arc<AtomicU32>,
    error: fn() -> ProviderError,
}

impl ClusterProvider for Flaky {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    fn check_connectivity(&self) -> BoxFuture<'_, Result<(), ProviderError>> {
        self.inner.check_connectivity()
    }
    fn register(&self, local: &Member) -> BoxFuture<'_, Result<(), ProviderError>> {
        let left = self.fails.load(Ordering::SeqCst);
        if left > 0 {
            self.fails.store(left - 1, Ordering::SeqCst);
            let e = (self.error)();
            return Box::pin(async move { Err(e) });
        }
        self.inner.register(local)
    }
    fn deregister(&self, local: &Member) -> BoxFuture<'_, Result<(), ProviderError>> {
        self.inner.deregister(local)
    }
    /// Like a backend that is down: nothing to read until registration
    /// works again (so no snapshot resets R5.2's count meanwhile).
    fn watch(&self) -> BoxStream<'static, Result<Snapshot, ProviderError>> {
        let fails = self.fails.clone();
        let inner = self.inner.watch();
        let up = async move {
            while fails.load(Ordering::SeqCst) > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        };
        futures::stream::once(up)
            .flat_map(move |()| futures::stream::empty())
            .chain(inner)
            .boxed()
    }
}

struct FlakyKind {
    table: MembershipTable,
    fails: Arc<AtomicU32>,
    error: fn() -> ProviderError,
}

impl ProviderFactory for FlakyKind {
    fn kind(&self) -> &str {
        "flaky"
    }
    fn create(&self, _d: &ProviderDescriptor) -> Result<Arc<dyn ClusterProvider>, ProviderError> {
        Ok(Arc::new(Flaky {
            inner: MemoryProvider::new(self.table.clone())
                .with_keepalive(std::time::Duration::from_secs(1)),
            fails: self.fails.clone(),
            error: self.error,
        }))
    }
}

async fn node(fails: u32, error: fn() -> ProviderError) -> (ActorSystem, MembershipTable, Events) {
    let table = MembershipTable::new();
    let system = ActorSystem::new("node");
    let events = Events::record(&system);
    let kind = FlakyKind {
        table: table.clone(),
        fails: Arc::new(AtomicU32::new(fails)),
        error,
    };
    ProvisioningSupervisor::spawn(
        &system,
        test_config(Some(member("local", 1))),
        ProviderKinds::new().with(kind),
        vec![ProviderDescriptor::new(pid("p"), "flaky", 0)],
    )
    .await
    .unwrap();
    (system, table, events)
}

async fn wait_registered(table: &MembershipTable) {
    for _ in 0..12_000 {
        if table.get(&nid("local")).is_some() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("never registered");
}

#[tokio::test(start_paused = true)]
async fn a_failed_registration_is_retried_until_it_succeeds() {
    let (system, table, events) = node(3, || ProviderError::Registration("busy".into())).await;
    wait_registered(&table).await;
    // Three failures were below the R5.2 threshold (5): nothing suppressed.
    assert!(events.suppressed().is_empty());
    system.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn r5_2_connectivity_failures_at_registration_do_not_suppress() {
    let (system, table, events) =
        node(6, || ProviderError::Connectivity("agent down".into())).await;
    wait_registered(&table).await;
    assert!(events.suppressed().is_empty(), "{:?}", events.suppressed());
    system.shutdown().await;
}
