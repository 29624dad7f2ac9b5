//! [`ConsulProvider`]: registration with a TTL check kept alive by a
//! background task, and the watch.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use cluster_core::{Capabilities, ClusterProvider, Member, ProviderError, Snapshot};
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use reqwest::{Method, StatusCode};
use tokio::task::JoinHandle;

use crate::client::{Answer, Http};
use crate::config::ConsulConfig;
use crate::member;
use crate::watch::{self, read_status_error};

/// The live counters (atomics shared with the tasks).
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub queries: AtomicU64,
    pub errors: AtomicU64,
    pub skipped_entries: AtomicU64,
    pub index_resets: AtomicU64,
    pub ttl_passes: AtomicU64,
    pub ttl_failures: AtomicU64,
    pub reregistrations: AtomicU64,
}

/// Counters of one provider, read at one moment (tests, metrics, the
/// benchmark).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProviderStats {
    /// Health queries sent.
    pub queries: u64,
    /// Watch failures (each yielded as an `Err`).
    pub errors: u64,
    /// Health entries that did not decode as a member and were skipped.
    pub skipped_entries: u64,
    /// Times the index went backwards (or to 0) and was reset.
    pub index_resets: u64,
    /// TTL passes that succeeded.
    pub ttl_passes: u64,
    /// TTL passes that failed (the check may lapse).
    pub ttl_failures: u64,
    /// Registrations made again because the agent had forgotten the check.
    pub reregistrations: u64,
}

impl Stats {
    fn read(&self) -> ProviderStats {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ProviderStats {
            queries: r(&self.queries),
            errors: r(&self.errors),
            skipped_entries: r(&self.skipped_entries),
            index_resets: r(&self.index_resets),
            ttl_passes: r(&self.ttl_passes),
            ttl_failures: r(&self.ttl_failures),
            reregistrations: r(&self.reregistrations),
        }
    }
}

struct Heartbeat {
    service_id: String,
    task: JoinHandle<()>,
}

pub(crate) struct Inner {
    http: Http,
    config: Arc<ConsulConfig>,
    stats: Arc<Stats>,
    heartbeat: Mutex<Option<Heartbeat>>,
    /// Bumped by every deregistration (under the `heartbeat` lock): a
    /// registration that started before one must not install its
    /// heartbeat, or it would bring the node back after it left.
    epoch: AtomicU64,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(h) = self
            .heartbeat
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            h.task.abort();
        }
    }
}

/// The Consul membership provider (P2). Cheap to clone; clones share the
/// registration and counters. See the [crate docs](crate).
#[derive(Clone)]
pub struct ConsulProvider {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ConsulProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsulProvider")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// Whether an answer to a TTL update says the agent does not know the
/// check (it restarted, or reaped the service): 404 `Unknown check ID` on
/// current agents, 500 `... does not have associated TTL` on older ones.
fn check_unknown(a: &Answer) -> bool {
    let t = a.text();
    a.status == StatusCode::NOT_FOUND
        || t.contains("Unknown check")
        || t.contains("does not have associated TTL")
}

/// A failed registration, and whether trying again later may succeed (the
/// agent was unreachable or answered 5xx).
struct RegisterFailure {
    error: ProviderError,
    retryable: bool,
}

async fn put_registration(http: &Http, body: &[u8], service: &str) -> Result<(), RegisterFailure> {
    let a = http
        .call(
            Method::PUT,
            http.url(&["v1", "agent", "service", "register"]),
            Some(body.to_vec()),
            http.request_timeout,
        )
        .await
        .map_err(|e| RegisterFailure {
            error: e.into_registration_error(),
            retryable: true,
        })?;
    match a.status.as_u16() {
        200..=299 => Ok(()),
        401 | 403 => Err(RegisterFailure {
            error: ProviderError::Auth(format!(
                "PUT /v1/agent/service/register: {} {} (the token needs service:write on {service:?})",
                a.status,
                a.text()
            )),
            retryable: false,
        }),
        s => Err(RegisterFailure {
            error: ProviderError::Registration(format!(
                "PUT /v1/agent/service/register: the agent answered {}: {}",
                a.status,
                a.text()
            )),
            retryable: s >= 500,
        }),
    }
}

async fn heartbeat(
    http: Http,
    period: Duration,
    check_id: String,
    body: Vec<u8>,
    service: String,
    stats: Arc<Stats>,
) {
    let url = http.url(&["v1", "agent", "check", "pass", &check_id]);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match http
            .call(Method::PUT, url.clone(), None, http.request_timeout)
            .await
        {
            Ok(a) if a.status.is_success() => {
                stats.ttl_passes.fetch_add(1, Ordering::Relaxed);
            }
            Ok(a) if check_unknown(&a) => {
                tracing::info!(
                    check_id,
                    "consul: the agent forgot our check; registering again"
                );
                match put_registration(&http, &body, &service).await {
                    Ok(()) => {
                        stats.reregistrations.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(f) => {
                        stats.ttl_failures.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(code = f.error.code(), error = %f.error, "consul: registering again failed");
                    }
                }
            }
            Ok(a) => {
                stats.ttl_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(status = %a.status, body = %a.text(), check_id, "consul: TTL pass refused");
            }
            Err(e) => {
                stats.ttl_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = e.message(), check_id, "consul: TTL pass failed");
            }
        }
    }
}

impl ConsulProvider {
    /// A provider for `config` (builds the HTTP client; TLS files are read
    /// here, so a bad one is a `ProviderError::Config`).
    pub fn new(config: ConsulConfig) -> Result<Self, ProviderError> {
        let http = Http::new(&config)?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                config: Arc::new(config),
                stats: Arc::default(),
                heartbeat: Mutex::new(None),
                epoch: AtomicU64::new(0),
            }),
        })
    }

    pub(crate) fn from_inner(inner: Arc<Inner>) -> Self {
        Self { inner }
    }

    pub(crate) fn downgrade(&self) -> std::sync::Weak<Inner> {
        Arc::downgrade(&self.inner)
    }

    /// The configuration.
    pub fn config(&self) -> &ConsulConfig {
        &self.inner.config
    }

    /// The counters, now.
    pub fn stats(&self) -> ProviderStats {
        self.inner.stats.read()
    }

    /// The service ID registered by this provider and kept alive, if any.
    pub fn registered_service_id(&self) -> Option<String> {
        self.lock_heartbeat().as_ref().map(|h| h.service_id.clone())
    }

    fn lock_heartbeat(&self) -> std::sync::MutexGuard<'_, Option<Heartbeat>> {
        self.inner
            .heartbeat
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    async fn do_register(&self, local: Member) -> Result<(), ProviderError> {
        let c = &self.inner.config;
        let body = member::registration(&local, &c.service, &c.tags, c.ttl, c.deregister_after)
            .map_err(|why| ProviderError::Registration(format!("{}: {why}", local.node_id)))?;
        let body = serde_json::to_vec(&body)
            .map_err(|e| ProviderError::Registration(format!("encoding the registration: {e}")))?;
        let epoch = self.inner.epoch.load(Ordering::SeqCst);
        let result = put_registration(&self.inner.http, &body, &c.service).await;
        if let Err(f) = &result
            && !f.retryable
        {
            return result.map_err(|f| f.error);
        }
        // Registered, or the agent is unreachable for now: either way the
        // heartbeat runs; its first pass finds the check unknown and
        // registers then (a node that starts while its agent is down joins
        // once the agent is back).
        let period = (c.ttl / 3).max(Duration::from_millis(10));
        let task = tokio::spawn(heartbeat(
            self.inner.http.clone(),
            period,
            member::check_id(&local),
            body,
            c.service.clone(),
            self.inner.stats.clone(),
        ));
        let old = {
            let mut guard = self.lock_heartbeat();
            if self.inner.epoch.load(Ordering::SeqCst) != epoch {
                // Deregistered while this registration was in flight: its
                // PUT may have landed after the deregistration. Undo it.
                drop(guard);
                task.abort();
                tracing::info!(id = %member::service_id(&local), "consul: deregistered while registering; registration withdrawn");
                let _ = self.do_deregister(local).await;
                return Err(ProviderError::Registration(
                    "deregistered while the registration was in flight".into(),
                ));
            }
            guard.replace(Heartbeat {
                service_id: member::service_id(&local),
                task,
            })
        };
        if let Some(old) = old {
            old.task.abort();
        }
        if let Err(f) = result {
            tracing::warn!(code = f.error.code(), error = %f.error, "consul: registration failed; the heartbeat will retry");
            return Err(f.error);
        }
        tracing::info!(service = %c.service, id = %member::service_id(&local), "consul: registered");
        Ok(())
    }

    async fn do_deregister(&self, local: Member) -> Result<(), ProviderError> {
        let id = member::service_id(&local);
        let hb = {
            let mut guard = self.lock_heartbeat();
            self.inner.epoch.fetch_add(1, Ordering::SeqCst);
            if guard.as_ref().is_some_and(|h| h.service_id == id) {
                guard.take()
            } else {
                None
            }
        };
        if let Some(h) = hb {
            h.task.abort();
        }
        let http = &self.inner.http;
        let a = http
            .call(
                Method::PUT,
                http.url(&["v1", "agent", "service", "deregister", &id]),
                None,
                http.request_timeout,
            )
            .await
            .map_err(|e| e.into_registration_error())?;
        match a.status.as_u16() {
            // 404: already gone (reaped, or the agent restarted).
            200..=299 | 404 => {
                tracing::info!(id, "consul: deregistered");
                Ok(())
            }
            401 | 403 => Err(ProviderError::Auth(format!(
                "PUT /v1/agent/service/deregister: {} {} (the token needs service:write on {:?})",
                a.status,
                a.text(),
                self.inner.config.service
            ))),
            _ => Err(ProviderError::Registration(format!(
                "PUT /v1/agent/service/deregister: the agent answered {}: {}",
                a.status,
                a.text()
            ))),
        }
    }

    async fn do_check(&self) -> Result<(), ProviderError> {
        let http = &self.inner.http;
        let t = http.request_timeout;
        let a = http
            .call(Method::GET, http.url(&["v1", "agent", "self"]), None, t)
            .await
            .map_err(|e| ProviderError::Connectivity(e.message().to_owned()))?;
        match a.status.as_u16() {
            200..=299 => {}
            401 | 403 => {
                return Err(ProviderError::Auth(format!(
                    "GET /v1/agent/self: {} {} (the token needs agent:read on the agent's node; see docs/providers/consul.md)",
                    a.status,
                    a.text()
                )));
            }
            _ => {
                return Err(ProviderError::Protocol(format!(
                    "GET /v1/agent/self: unexpected answer {}: {} (is {} a Consul agent?)",
                    a.status,
                    a.text(),
                    http.base()
                )));
            }
        }
        let service = &self.inner.config.service;
        let mut url = http.url(&["v1", "health", "service", service]);
        url.query_pairs_mut().append_pair("passing", "true");
        let a = http
            .call(Method::GET, url, None, t)
            .await
            .map_err(|e| ProviderError::Connectivity(e.message().to_owned()))?;
        if !a.status.is_success() {
            return Err(read_status_error(
                a.status,
                a.text(),
                &format!(
                    "GET /v1/health/service/{service} (the token needs service:read on {service:?} and node:read)"
                ),
            ));
        }
        if let Some(e) = watch::acl_filtered(&a.headers, service) {
            return Err(e);
        }
        watch::decode_members(&a.body, &self.inner.stats).map(|_| ())
    }
}

impl ClusterProvider for ConsulProvider {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            watch: true,
            register: true,
            external: true,
        }
    }

    fn check_connectivity(&self) -> BoxFuture<'_, Result<(), ProviderError>> {
        Box::pin(self.do_check())
    }

    fn register(&self, local: &Member) -> BoxFuture<'_, Result<(), ProviderError>> {
        Box::pin(self.do_register(local.clone()))
    }

    fn deregister(&self, local: &Member) -> BoxFuture<'_, Result<(), ProviderError>> {
        Box::pin(self.do_deregister(local.clone()))
    }

    fn watch(&self) -> BoxStream<'static, Result<Snapshot, ProviderError>> {
        watch::watch(
            self.inner.http.clone(),
            self.inner.config.clone(),
            self.inner.stats.clone(),
        )
    }
}
