//! The Consul membership provider (P2), speaking Consul's HTTP API.
//!
//! # What it does
//!
//! - **Registers** the local member as an instance of the service named by
//!   the `service` (or `cluster`) setting: service ID
//!   `<node_id>-<incarnation>`, `Address` and `Port` from the member's
//!   address, `Meta` with `node_id`, `incarnation`, `roles` and one
//!   `label_<key>` per label, and a **TTL check** (`ttl_s`, default 10 s,
//!   registered `passing`) with `DeregisterCriticalServiceAfter`
//!   (`deregister_after_s`, default 60 s). A background task passes the
//!   check every TTL/3; when the agent answers that it does not know the
//!   check (it restarted, or reaped us), the task registers again; it also
//!   starts when the agent is unreachable at registration, so the node
//!   joins once the agent is back.
//!   `deregister` (graceful leave, drain) stops the task and deregisters.
//! - **Watches** passing instances with blocking queries on
//!   `/v1/health/service/<service>?passing&index=…&wait=…`. Each answer
//!   yields a full [`Snapshot`](cluster_core::Snapshot), changed or not, so
//!   `wait` (default 5 s) is also the keepalive that keeps the provider
//!   `Healthy` under the supervisor's 15 s silence timeout. The index only
//!   moves forward; it is reset to 0 when it goes backwards and to 1 when
//!   the agent answers 0; an answer without a new index that comes back
//!   sooner than `min_query_interval_ms` is followed by a pause (no
//!   spinning). Failures are yielded as `Err` items, with a jittered
//!   exponential pause (`retry_min_ms` doubling to `retry_max_ms`). An
//!   entry that does not decode as a member is skipped and counted
//!   ([`ProviderStats::skipped_entries`]).
//! - **Checks connectivity** (R1.4) before acceptance: `GET /v1/agent/self`
//!   (reachable, token accepted: `agent:read`) and a read of the service's
//!   health (`service:read`, `node:read`).
//!
//! Errors: unreachable or timed out → `provider.connectivity`; 401/403 →
//! `provider.auth`, the message naming the ACL permission needed;
//! malformed JSON, no `X-Consul-Index`, unexpected status →
//! `provider.protocol`; 5xx and broken exchanges mid-watch →
//! `provider.stream`; a refused registration → `provider.registration`.
//! A failed TLS handshake is `provider.connectivity` with a reason in the
//! message: `[tls.unknown_ca]`, `[tls.expired]`, `[tls.wrong_name]`,
//! `[tls.client_cert_refused]` or `[tls.handshake]` (see the
//! `provider-tls` crate); a missing or wrong TLS file is `provider.config`
//! naming the setting, when the provider is built.
//! The token travels only in the `X-Consul-Token` header (marked
//! sensitive) and never appears in `Debug` output or logs.
//!
//! HTTP: `reqwest` without default features, TLS by rustls with the `ring`
//! provider (no OpenSSL, no aws-lc), every call bounded by a timeout
//! (blocking ones by `wait + wait/16 + request_timeout_ms`).
//!
//! # Settings of a `consul` descriptor
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `service` (or `cluster`) | required | Consul service name of the cluster: 1–63 of `A-Za-z0-9-_` |
//! | `address` | `CONSUL_HTTP_ADDR`, else `127.0.0.1:8500` | agent address, `host:port` or `http(s)://host:port` |
//! | `ssl` | `CONSUL_HTTP_SSL`, else false | `https` for a scheme-less address |
//! | `token` | `CONSUL_HTTP_TOKEN` | ACL token (never logged) |
//! | `token_file` | `CONSUL_HTTP_TOKEN_FILE` | file holding the token (when `token` is unset) |
//! | `ca_file` | `CONSUL_CACERT` | PEM CA bundle verifying the agent (else the platform trust store) |
//! | `client_cert`, `client_key` | `CONSUL_CLIENT_CERT`, `CONSUL_CLIENT_KEY` | PEM client certificate and key (mutual TLS), together |
//! | `tls_server_name` | `CONSUL_TLS_SERVER_NAME` | name the agent's certificate must carry instead of the address's host (e.g. `server.dc1.consul`) |
//! | `datacenter` | the agent's | `?dc=` of health queries |
//! | `tags` | none | comma-separated tags of the registration |
//! | `ttl_s` | 10 | TTL of the check, 1..=3600; passed every TTL/3 |
//! | `deregister_after_s` | 60 | DeregisterCriticalServiceAfter, 1..=86400 (Consul rounds up to 60) |
//! | `wait_ms` | 5000 | wait of each blocking query, 10..=600000; the keepalive: keep it well below the failover silence timeout (15 s) |
//! | `request_timeout_ms` | 5000 | bound of non-blocking calls; margin of blocking ones |
//! | `min_query_interval_ms` | 200 | least time between queries that return without a new index (10 to 60000: never 0, which would let a misbehaving agent spin the watch) |
//! | `retry_min_ms`, `retry_max_ms` | 2000, 30000 | retry pause after errors: doubling, jittered |
//!
//! A setting the table does not list is refused (a typo would otherwise be
//! silently ignored). See `docs/providers/consul.md` for the ACL policy and
//! the reasoning behind the timings.
//!
//! # Example
//!
//! ```no_run
//! use cluster_core::ProviderDescriptor;
//! use provider_consul::ConsulKind;
//! use provisioning_actors::ProviderKinds;
//!
//! let kinds = ProviderKinds::new().with(ConsulKind::new());
//! let consul = ProviderDescriptor::new(cluster_core::ProviderId::new("consul")?, "consul", 0)
//!     .with_setting("service", "my-cluster")
//!     .with_setting("address", "https://consul.internal:8501")
//!     .with_setting("ca_file", "/etc/consul/ca.pem");
//! // ProvisioningSupervisor::spawn(&system, config, kinds, vec![consul]).await?
//! # let _ = (kinds, consul);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod client;
mod config;
mod kind;
pub mod member;
mod provider;
pub mod watch;

pub use config::{ConsulConfig, TlsFiles, Token};
pub use kind::ConsulKind;
pub use provider::{ConsulProvider, ProviderStats};
