//! [`EtcdProvider`]: the [`ClusterProvider`] over etcd.

use std::fmt;
use std::sync::Arc;

use cluster_core::{Capabilities, ClusterProvider, Member, ProviderError, Snapshot};
use etcd_client::{Compare, CompareOp, GetOptions, Txn, TxnOp};
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use tokio::sync::Mutex;

use crate::config::EtcdConfig;
use crate::connection::{Connection, Op, timed_out};
use crate::layout::KeyLayout;
use crate::registration::{Registration, Shared};
use crate::stats::{EtcdStats, Stats};
use crate::supersession::Supersession;
use crate::watch::Watch;

/// A membership provider over etcd (P5). See the [crate docs](crate) for
/// the key layout, leases and timing.
///
/// Registration runs in a background task owned by the provider: it keeps
/// the lease alive and registers again when the lease is lost. Dropping the
/// provider stops it (the key then expires with its lease);
/// [`deregister`](ClusterProvider::deregister) stops it and deletes the key
/// at once.
///
/// Every put of the member key is guarded by the incarnation order: a
/// newer incarnation of the node id in the key is never overwritten, and
/// this process is told it is superseded with `ProviderError::Superseded`
/// (`provider.superseded`), from `register` or as one item of every watch
/// stream (see the [crate docs](crate)).
pub struct EtcdProvider {
    conn: Arc<Connection>,
    layout: Arc<KeyLayout>,
    stats: Arc<Stats>,
    supersession: Arc<Supersession>,
    registration: Mutex<Option<Registration>>,
}

impl fmt::Debug for EtcdProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The config's Debug redacts the password.
        f.debug_struct("EtcdProvider")
            .field("config", &self.conn.config)
            .field("members_prefix", &self.layout.members_prefix())
            .finish_non_exhaustive()
    }
}

impl EtcdProvider {
    /// A provider for `config`. It connects on first use; TLS files are
    /// read now (a missing file is `ProviderError::Config`).
    pub fn new(config: EtcdConfig) -> Result<Self, ProviderError> {
        config.validate()?;
        let layout = Arc::new(KeyLayout::new(&config.prefix, &config.cluster));
        let conn = Arc::new(Connection::new(Arc::new(config))?);
        Ok(Self {
            conn,
            layout,
            stats: Arc::new(Stats::default()),
            supersession: Arc::new(Supersession::default()),
            registration: Mutex::new(None),
        })
    }

    /// The provider's configuration.
    pub fn config(&self) -> &EtcdConfig {
        &self.conn.config
    }

    /// Where members live.
    pub fn layout(&self) -> &KeyLayout {
        &self.layout
    }

    /// Counters since the provider was built.
    pub fn stats(&self) -> EtcdStats {
        self.stats.snapshot()
    }

    async fn register_now(&self, local: &Member) -> Result<(), ProviderError> {
        self.stats.set_node(local.node_id.as_str());
        let mut slot = self.registration.lock().await;
        let previous = match slot.take() {
            Some(r) => r.stop().await,
            None => None,
        };
        self.supersession.forget();
        let (reg, first) = Registration::start(self.shared(), local.clone(), previous);
        *slot = Some(reg);
        drop(slot);
        // The whole first attempt (connect, grant, put) is bounded, below
        // the supervisor's own register timeout; the task keeps trying
        // after a failure or after this bound.
        let bound = self.conn.config.register_timeout;
        match tokio::time::timeout(bound, first).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(ProviderError::Registration(
                "the registration task ended before its first attempt".into(),
            )),
            Err(_) => Err(timed_out(&self.conn.config, bound)),
        }
    }

    fn shared(&self) -> Shared {
        Shared {
            conn: self.conn.clone(),
            stats: self.stats.clone(),
            layout: self.layout.clone(),
            supersession: self.supersession.clone(),
        }
    }

    async fn deregister_now(&self, local: &Member) -> Result<(), ProviderError> {
        let lease = match self.registration.lock().await.take() {
            Some(r) => r.stop().await,
            None => None,
        };
        // No longer registered: a newer incarnation registering after this
        // one left (a drained node replaced) is no supersession to report.
        self.supersession.forget();
        let key = self.layout.key_of(&local.node_id);
        // Delete the key only if it still holds this incarnation (a newer
        // process of the same node may have registered since).
        let current = self
            .conn
            .call(Op::Deregister, |mut c| {
                let key = key.clone();
                async move { c.get(key, Some(GetOptions::new())).await }
            })
            .await?;
        if let Some(kv) = current.kvs().first() {
            let ours = self
                .layout
                .decode(kv.key(), kv.value())
                .is_ok_and(|m| m.incarnation == local.incarnation);
            if ours {
                let revision = kv.mod_revision();
                self.conn
                    .call(Op::Deregister, |mut c| {
                        let txn = Txn::new()
                            .when([Compare::mod_revision(
                                key.clone(),
                                CompareOp::Equal,
                                revision,
                            )])
                            .and_then([TxnOp::delete(key.clone(), None)]);
                        async move { c.txn(txn).await }
                    })
                    .await?;
            }
        }
        if let Some(lease) = lease {
            // The lease holds nothing now; revoking it only saves etcd the
            // wait for its expiry.
            let revoked = self
                .conn
                .call(Op::Deregister, |mut c| async move {
                    c.lease_revoke(lease).await
                })
                .await;
            if let Err(e) = revoked {
                tracing::debug!(provider = %self.conn.config.name, error = %e, "lease revoke after deregister failed");
            }
        }
        Ok(())
    }

    async fn check(&self) -> Result<(), ProviderError> {
        // Connects, authenticates, and reads the prefix: proves reachability
        // and the read permission the watch needs.
        let prefix = self.layout.members_prefix().to_owned();
        self.conn
            .call(Op::Read, |mut c| async move {
                c.get(
                    prefix,
                    Some(GetOptions::new().with_prefix().with_count_only()),
                )
                .await
            })
            .await
            .map(drop)
    }
}

impl ClusterProvider for EtcdProvider {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            watch: true,
            register: true,
            external: true,
        }
    }

    fn check_connectivity(&self) -> BoxFuture<'_, Result<(), ProviderError>> {
        Box::pin(self.check())
    }

    fn register(&self, local: &Member) -> BoxFuture<'_, Result<(), ProviderError>> {
        let local = local.clone();
        Box::pin(async move { self.register_now(&local).await })
    }

    fn deregister(&self, local: &Member) -> BoxFuture<'_, Result<(), ProviderError>> {
        let local = local.clone();
        Box::pin(async move { self.deregister_now(&local).await })
    }

    fn watch(&self) -> BoxStream<'static, Result<Snapshot, ProviderError>> {
        Watch::stream(self.shared())
    }
}
