//! A whole node in one TOML file, overridable by environment variables
//! (N1).
//!
//! ```toml
//! cluster = "shop"
//! node_id = "node-a"
//! bind = "127.0.0.1:4000"          # where Remoting listens
//! secret_file = "/run/secrets/cluster"
//!
//! [admin]
//! bind = "127.0.0.1:8558"
//!
//! [[providers]]                     # in priority order: the first is preferred
//! id = "shared-dir"
//! kind = "file"
//! settings = { dir = "/tmp/shop-members", poll = "200ms" }
//! ```
//!
//! # Loading
//!
//! [`NodeConfig::load`] reads the file, then the environment: a variable
//! `CLUSTER_<KEY>` overrides a top-level key (`CLUSTER_NODE_ID=node-b`,
//! `CLUSTER_ADVERTISE_HOST=10.0.0.7`) and `__` separates nested keys
//! (`CLUSTER_ADMIN__BIND=0.0.0.0:8558`). Only variables whose first key is
//! one of the file's top-level keys are read, so an unrelated `CLUSTER_...`
//! variable in the environment does not break a start. Providers' own
//! conventions (`CONSUL_HTTP_ADDR`, `ETCDCTL_ENDPOINTS`, kubeconfig) fill
//! what a provider's settings leave out ([`providers`]).
//!
//! Every section and every provider kind's settings are typed structs with
//! `deny_unknown_fields`: a typo is an error, never a silently ignored key.
//! Durations are strings (`"5s"`, `"250ms"`), numbers are numbers. Secrets
//! (the cluster secret, the admin token, backend tokens and passwords) can
//! come from files (`*_file`), are held in [`Secret`] and never reach a log,
//! `Debug` or the effective configuration.
//!
//! # Errors
//!
//! A [`ConfigError`] is one line naming the file, the provider and the
//! field: `node.toml: providers[consul-main].settings.wait: "5x" is not a
//! duration (...)`. Its [`code`](ConfigError::code) is `config.invalid`.

pub mod diagnostics;
pub mod duration;
pub mod monitoring;
pub mod providers;
mod secret;
pub mod storage;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cluster_core::{NodeId, ProviderDescriptor, ProviderId};
use figment::Figment;
use figment::providers::{Format, Toml};
use figment::value::Value;
use serde::{Deserialize, Serialize};

pub use diagnostics::DiagnosticsSection;
pub use monitoring::{MonitoringConfig, MonitoringDetector, MonitoringMode};
pub use providers::ProviderSettings;
pub use secret::Secret;
pub use storage::StorageConfig;

/// The prefix of the environment variables that override the file.
pub const ENV_PREFIX: &str = "CLUSTER_";

/// A configuration that cannot be used: where, which field, why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{source_name}: {field}{sep}{reason}", sep = if field.is_empty() { "" } else { ": " })]
#[non_exhaustive]
pub struct ConfigError {
    /// The file (or `environment`, or `configuration` when built in code).
    pub source_name: String,
    /// The field path, e.g. `providers[consul-main].settings.wait`; empty
    /// when the whole file is at fault (missing, syntax error).
    pub field: String,
    /// Why.
    pub reason: String,
}

impl ConfigError {
    fn new(source: impl Into<String>, field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            source_name: source.into(),
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The stable code: `config.invalid`.
    pub fn code(&self) -> &'static str {
        "config.invalid"
    }
}

/// Log output of the node runtime.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One human-readable line per event (default).
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `[log]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `text` or `json`.
    #[serde(default)]
    pub format: LogFormat,
    /// An `EnvFilter` directive (default `info`); `RUST_LOG` wins when set.
    #[serde(default = "default_level")]
    pub level: String,
}

fn default_level() -> String {
    "info".to_owned()
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: default_level(),
        }
    }
}

/// `[admin]`: the admin HTTP surface (probes, members, providers,
/// metrics, leave and reload).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Serve it at all (default true).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Where (default `127.0.0.1:8558`; port 0 picks a free one).
    #[serde(default = "default_admin_bind")]
    pub bind: String,
    /// Bearer token for `POST /cluster/leave` and `/cluster/reload`;
    /// required when `bind` is not a loopback address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<Secret>,
    /// A file holding the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
}

fn yes() -> bool {
    true
}

fn default_admin_bind() -> String {
    "127.0.0.1:8558".to_owned()
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            bind: default_admin_bind(),
            token: None,
            token_file: None,
        }
    }
}

/// The merge policy of provisioning.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MergeSetting {
    /// The active provider's members (default).
    #[default]
    Priority,
    /// Every healthy provider's members.
    Union,
}

/// `[failover]`: provider health and failover timing (defaults: the
/// mission's starting points).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailoverSection {
    /// No snapshot for this long makes a provider Degraded (15s).
    #[serde(with = "duration", default = "d15s")]
    pub silence_timeout: Duration,
    /// Consecutive errors that make a provider Degraded (3).
    #[serde(default = "three")]
    pub error_threshold: u32,
    /// A better provider must be healthy this long before fail-back (10s).
    #[serde(with = "duration", default = "d10s")]
    pub stability_window: Duration,
    /// `priority` or `union`.
    #[serde(default)]
    pub merge: MergeSetting,
    /// How long a provider's snapshot that no longer lists this node (or
    /// drops more than half of the members) is held while the node
    /// registers again: a backend that lost its data is not "everyone
    /// left" (15s; "0s" turns the rule off). See docs/provisioning.md.
    #[serde(with = "duration", default = "d15s")]
    pub suspect_hold: Duration,
}

fn d15s() -> Duration {
    Duration::from_secs(15)
}
fn d10s() -> Duration {
    Duration::from_secs(10)
}
fn d5s() -> Duration {
    Duration::from_secs(5)
}
fn d1s() -> Duration {
    Duration::from_secs(1)
}
fn d20s() -> Duration {
    Duration::from_secs(20)
}
fn three() -> u32 {
    3
}

impl Default for FailoverSection {
    fn default() -> Self {
        Self {
            silence_timeout: d15s(),
            error_threshold: 3,
            stability_window: d10s(),
            merge: MergeSetting::Priority,
            suspect_hold: d15s(),
        }
    }
}

/// `[remoting]`: heartbeats and failure detection.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemotingSection {
    /// Interval between heartbeats (1s).
    #[serde(with = "duration", default = "d1s")]
    pub heartbeat_interval: Duration,
    /// A peer silent this long is reported unreachable (5s).
    #[serde(with = "duration", default = "d5s")]
    pub failure_timeout: Duration,
    /// `[remoting.tls]`: mutual TLS on every association (see
    /// `cluster::remoting::tls` for the identity rule and rotation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSection>,
    /// `[remoting.monitoring]`: all-to-all heartbeats (default) or ring
    /// monitoring with votes and a quorum (issue 17; see [`monitoring`]).
    /// Checked with [`MonitoringConfig::validate`] when the file is loaded
    /// and by [`crate::validate`].
    #[serde(default, with = "monitoring::Section")]
    pub monitoring: MonitoringConfig,
}

impl Default for RemotingSection {
    fn default() -> Self {
        Self {
            heartbeat_interval: d1s(),
            failure_timeout: d5s(),
            tls: None,
            monitoring: MonitoringConfig::default(),
        }
    }
}

/// `[remoting.tls]`: this node's certificate and key, and the cluster's CA
/// (PEM files, re-read when they change). The certificate must carry the
/// URI SAN `cluster://<cluster>/<node_id>` and both `serverAuth` and
/// `clientAuth` usages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// This node's certificate chain (PEM, leaf first).
    pub cert_file: PathBuf,
    /// This node's private key (PEM).
    pub key_file: PathBuf,
    /// The cluster's CA certificates (PEM).
    pub ca_file: PathBuf,
    /// How often the files are checked for a change (10s).
    #[serde(with = "duration", default = "d10s")]
    pub reload_check: Duration,
    /// Warn this long before the certificate expires (14days).
    #[serde(with = "duration", default = "d14days")]
    pub expiry_warning: Duration,
}

impl TlsSection {
    /// Remoting's TLS configuration from this section.
    pub fn to_tls_config(&self) -> cluster::remoting::TlsConfig {
        cluster::remoting::TlsConfig::new(&self.cert_file, &self.key_file, &self.ca_file)
            .with_reload_check(self.reload_check)
            .with_expiry_warning(self.expiry_warning)
    }
}

fn d14days() -> Duration {
    Duration::from_secs(14 * 24 * 3600)
}

/// `[placement]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlacementSection {
    /// Bound of one grain request, retries included (5s).
    #[serde(with = "duration", default = "d5s")]
    pub request_timeout: Duration,
}

impl Default for PlacementSection {
    fn default() -> Self {
        Self {
            request_timeout: d5s(),
        }
    }
}

/// `[leave]`: the graceful leave on SIGTERM / SIGINT or `POST
/// /cluster/leave`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaveSection {
    /// The whole leave (hand-off, deregistration, goodbye) is bounded by
    /// this (20s); keep Kubernetes' `terminationGracePeriodSeconds` above it.
    #[serde(with = "duration", default = "d20s")]
    pub deadline: Duration,
}

impl Default for LeaveSection {
    fn default() -> Self {
        Self { deadline: d20s() }
    }
}

/// One `[[providers]]` entry.
#[derive(Clone, Debug, Serialize)]
pub struct ProviderConfig {
    /// Unique name.
    pub id: ProviderId,
    /// The kind (`memory`, `file`, `consul`, `kubernetes`, `etcd`, or one
    /// the application registered).
    pub kind: String,
    /// Lower is preferred; default: the position in the list.
    pub priority: u32,
    /// Disabled providers are kept but not run.
    pub enabled: bool,
    /// The kind's typed settings.
    pub settings: ProviderSettings,
}

/// A node's whole configuration. Build it with [`NodeConfig::load`] (a
/// file and the environment), [`NodeConfig::from_toml`], or in code.
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub struct NodeConfig {
    /// The cluster's name: only nodes with the same name form a cluster.
    pub cluster: String,
    /// This node's id, unique in the cluster and stable across restarts
    /// (a StatefulSet pod name, a host name).
    pub node_id: NodeId,
    /// Where Remoting listens (`host:port`, default `127.0.0.1:4000`).
    pub bind: String,
    /// The host other members dial (default: the bound IP; required when
    /// binding `0.0.0.0`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advertise_host: Option<String>,
    /// Roles of the local member.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// Labels of the local member.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// The cluster secret of the Remoting handshake (from `secret` or
    /// `secret_file`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<Secret>,
    /// Where `secret` was read from, if from a file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_file: Option<PathBuf>,
    /// Allow Remoting on a non-loopback address without a secret (a
    /// warning at every start). Default false: such a start is refused.
    pub insecure: bool,
    /// A directory for provisioning's store (definitions and the last
    /// topology). The configuration is the source of truth: stored
    /// definitions that differ are replaced, and the difference is logged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store_dir: Option<PathBuf>,
    /// `[admin]`.
    pub admin: AdminConfig,
    /// `[log]`.
    pub log: LogConfig,
    /// `[failover]`.
    pub failover: FailoverSection,
    /// `[remoting]`.
    pub remoting: RemotingSection,
    /// `[placement]`.
    pub placement: PlacementSection,
    /// `[leave]`.
    pub leave: LeaveSection,
    /// `[storage]`: where stateful grains keep their state.
    pub storage: StorageConfig,
    /// `[diagnostics]`: opt-in test tools (the probe grain).
    pub diagnostics: DiagnosticsSection,
    /// Providers, in priority order.
    pub providers: Vec<ProviderConfig>,
    /// The file it was loaded from (or the name given to
    /// [`from_toml`](Self::from_toml)); a reload reads it again.
    #[serde(skip)]
    pub path: Option<PathBuf>,
}

/// The file's shape before the providers' settings are typed by kind.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    cluster: String,
    node_id: String,
    #[serde(default = "default_bind")]
    bind: String,
    #[serde(default)]
    advertise_host: Option<String>,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    secret: Option<Secret>,
    #[serde(default)]
    secret_file: Option<PathBuf>,
    #[serde(default)]
    insecure: bool,
    #[serde(default)]
    store_dir: Option<PathBuf>,
    #[serde(default)]
    admin: AdminConfig,
    #[serde(default)]
    log: LogConfig,
    #[serde(default)]
    failover: FailoverSection,
    #[serde(default)]
    remoting: RemotingSection,
    #[serde(default)]
    placement: PlacementSection,
    #[serde(default)]
    leave: LeaveSection,
    #[serde(default)]
    storage: StorageConfig,
    #[serde(default)]
    diagnostics: DiagnosticsSection,
    #[serde(default)]
    providers: Vec<RawProvider>,
}

/// The top-level keys (environment overrides are read for these only).
const TOP_LEVEL: &[&str] = &[
    "cluster",
    "node_id",
    "bind",
    "advertise_host",
    "roles",
    "labels",
    "secret",
    "secret_file",
    "insecure",
    "store_dir",
    "admin",
    "log",
    "failover",
    "remoting",
    "placement",
    "leave",
    "storage",
    "diagnostics",
];

fn default_bind() -> String {
    "127.0.0.1:4000".to_owned()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProvider {
    id: String,
    kind: String,
    #[serde(default)]
    priority: Option<u32>,
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default)]
    settings: Option<Value>,
}

/// Reads a secret file: its content without the trailing newline; an
/// unreadable or empty file is an error naming the path.
pub fn read_secret_file(path: &Path) -> Result<Secret, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let value = text.trim_end_matches(['\n', '\r']);
    if value.is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    Ok(Secret::new(value))
}

impl NodeConfig {
    /// Loads `path`, then the `CLUSTER_*` environment overrides and the
    /// providers' own environment variables of this process.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        Self::load_with_env(path, &env)
    }

    /// [`load`](Self::load) with the environment given (tests, or an
    /// application that keeps its own).
    pub fn load_with_env(
        path: impl AsRef<Path>,
        env: &[(String, String)],
    ) -> Result<Self, ConfigError> {
        // Absolute, so that a reload reads the same file whatever the
        // working directory is by then.
        let path = std::path::absolute(path.as_ref()).unwrap_or_else(|_| path.as_ref().to_owned());
        let path = path.as_path();
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new(&name, "", format!("cannot read the file: {e}")))?;
        Self::from_toml_with_env(&name, &text, env)
    }

    /// Parses a whole configuration from TOML text, without the
    /// environment. `name` names it in errors.
    pub fn from_toml(name: &str, text: &str) -> Result<Self, ConfigError> {
        Self::from_toml_with_env(name, text, &[])
    }

    /// Parses `text`, then applies `env` (see the [module
    /// documentation](self)).
    pub fn from_toml_with_env(
        name: &str,
        text: &str,
        env: &[(String, String)],
    ) -> Result<Self, ConfigError> {
        // Syntax first: toml's message and the position, but never its
        // excerpt of the line (the line may hold a secret).
        let table = match text.parse::<toml::Table>() {
            Ok(t) => t,
            Err(e) => {
                let at = e.span().map_or_else(String::new, |span| {
                    let before = &text[..span.start.min(text.len())];
                    let line = before.matches('\n').count() + 1;
                    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                    format!(" at line {line}, column {column}")
                });
                return Err(ConfigError::new(
                    name,
                    "",
                    format!("not valid TOML{at}: {}", e.message().trim()),
                ));
            }
        };
        let overrides: Vec<(String, String)> = env
            .iter()
            .filter_map(|(k, v)| {
                let rest = k.strip_prefix(ENV_PREFIX)?;
                let key = rest.to_ascii_lowercase();
                let top = key.split("__").next().unwrap_or_default();
                TOP_LEVEL.contains(&top).then(|| (key, v.clone()))
            })
            .collect();
        let figment = Figment::from(Toml::string(text)).merge(env_provider(&overrides));
        let raw: RawConfig = figment
            .extract()
            .map_err(|e| figment_error(name, &table, e))?;
        let env_fn = |k: &str| env.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
        let mut config = Self::from_raw(name, raw, &env_fn)?;
        config.path = Some(PathBuf::from(name));
        Ok(config)
    }

    fn from_raw(name: &str, raw: RawConfig, env: providers::Env<'_>) -> Result<Self, ConfigError> {
        let err = |field: &str, reason: String| ConfigError::new(name, field, reason);
        if raw.cluster.is_empty() || raw.cluster.len() > 64 {
            return Err(err("cluster", "must be 1 to 64 characters".into()));
        }
        let node_id = NodeId::new(&raw.node_id).map_err(|e| err("node_id", reason_of(&e)))?;
        check_host_port(&raw.bind).map_err(|r| err("bind", r))?;
        match &raw.advertise_host {
            Some(h) if h.trim().is_empty() => {
                return Err(err("advertise_host", "must not be empty".into()));
            }
            None if binds_unspecified(&raw.bind) => {
                return Err(err(
                    "advertise_host",
                    format!(
                        "required when binding {} (the address other members dial; e.g. the pod IP)",
                        raw.bind
                    ),
                ));
            }
            _ => {}
        }
        let secret = match (raw.secret, &raw.secret_file) {
            (Some(_), Some(_)) => {
                return Err(err(
                    "secret_file",
                    "give either secret or secret_file".into(),
                ));
            }
            (Some(s), None) => Some(s),
            (None, Some(f)) => Some(read_secret_file(f).map_err(|r| err("secret_file", r))?),
            (None, None) => None,
        };
        let mut admin = raw.admin;
        check_host_port(&admin.bind).map_err(|r| err("admin.bind", r))?;
        if admin.token.is_some() && admin.token_file.is_some() {
            return Err(err(
                "admin.token_file",
                "give either token or token_file".into(),
            ));
        }
        if let Some(f) = &admin.token_file {
            admin.token = Some(read_secret_file(f).map_err(|r| err("admin.token_file", r))?);
        }
        tracing_subscriber::EnvFilter::try_new(&raw.log.level).map_err(|e| {
            err(
                "log.level",
                format!("{:?} is not a filter: {e}", raw.log.level),
            )
        })?;
        let in_range = |field: &str, d: Duration, lo: Duration, hi: Duration| {
            if d < lo || d > hi {
                Err(err(
                    field,
                    format!(
                        "{} is out of range {}..={}",
                        humantime::format_duration(d),
                        humantime::format_duration(lo),
                        humantime::format_duration(hi)
                    ),
                ))
            } else {
                Ok(())
            }
        };
        let ms = Duration::from_millis;
        let s = Duration::from_secs;
        in_range(
            "failover.silence_timeout",
            raw.failover.silence_timeout,
            ms(100),
            s(3600),
        )?;
        in_range(
            "failover.suspect_hold",
            raw.failover.suspect_hold,
            ms(0),
            s(3600),
        )?;
        in_range(
            "failover.stability_window",
            raw.failover.stability_window,
            ms(0),
            s(3600),
        )?;
        if raw.failover.error_threshold == 0 || raw.failover.error_threshold > 1000 {
            return Err(err("failover.error_threshold", "must be 1 to 1000".into()));
        }
        in_range(
            "remoting.heartbeat_interval",
            raw.remoting.heartbeat_interval,
            ms(10),
            s(60),
        )?;
        in_range(
            "remoting.failure_timeout",
            raw.remoting.failure_timeout,
            ms(50),
            s(600),
        )?;
        if raw.remoting.failure_timeout <= raw.remoting.heartbeat_interval {
            return Err(err(
                "remoting.failure_timeout",
                "must be longer than remoting.heartbeat_interval".into(),
            ));
        }
        check_monitoring(name, &raw.remoting.monitoring)?;
        in_range(
            "placement.request_timeout",
            raw.placement.request_timeout,
            ms(10),
            s(600),
        )?;
        in_range("leave.deadline", raw.leave.deadline, ms(100), s(3600))?;
        raw.storage
            .check()
            .map_err(|(field, reason)| err(&field, reason))?;

        let mut providers: Vec<ProviderConfig> = Vec::new();
        for (i, p) in raw.providers.into_iter().enumerate() {
            let label = if p.id.is_empty() {
                format!("providers[{i}]")
            } else {
                format!("providers[{}]", p.id)
            };
            let id =
                ProviderId::new(&p.id).map_err(|e| err(&format!("{label}.id"), reason_of(&e)))?;
            if providers.iter().any(|q| q.id == id) {
                return Err(err(
                    &format!("{label}.id"),
                    format!("two providers have the id {:?}", p.id),
                ));
            }
            let settings_value = p
                .settings
                .unwrap_or_else(|| Value::from(BTreeMap::<String, Value>::new()));
            let mut settings = ProviderSettings::parse(&p.kind, settings_value).map_err(|e| {
                let field = if e.field.is_empty() {
                    format!("{label}.settings")
                } else {
                    format!("{label}.settings.{}", e.field)
                };
                err(&field, e.reason)
            })?;
            settings.apply_env(env);
            providers.push(ProviderConfig {
                id,
                kind: p.kind,
                priority: p.priority.unwrap_or(u32::try_from(i).unwrap_or(u32::MAX)),
                enabled: p.enabled,
                settings,
            });
        }
        if providers.is_empty() {
            return Err(err(
                "providers",
                "at least one [[providers]] entry is needed (e.g. kind = \"memory\" for one node)"
                    .into(),
            ));
        }
        let roles = raw.roles;
        Ok(Self {
            cluster: raw.cluster,
            node_id,
            bind: raw.bind,
            advertise_host: raw.advertise_host,
            roles,
            labels: raw.labels,
            secret,
            secret_file: raw.secret_file,
            insecure: raw.insecure,
            store_dir: raw.store_dir,
            admin,
            log: raw.log,
            failover: raw.failover,
            remoting: raw.remoting,
            placement: raw.placement,
            leave: raw.leave,
            storage: raw.storage,
            diagnostics: raw.diagnostics,
            providers,
            path: None,
        })
    }

    /// The name errors give for this configuration: its file, or
    /// `configuration`.
    pub fn source_name(&self) -> String {
        self.path
            .as_ref()
            .map_or_else(|| "configuration".to_owned(), |p| p.display().to_string())
    }

    /// The provider descriptors this configuration defines, in priority
    /// order: the typed settings lowered to the registry's form. An error
    /// names the provider and the setting.
    pub fn descriptors(&self) -> Result<Vec<ProviderDescriptor>, ConfigError> {
        let name = self.source_name();
        self.providers
            .iter()
            .map(|p| {
                let settings = p.settings.lower(&self.cluster).map_err(|e| {
                    ConfigError::new(
                        &name,
                        format!("providers[{}].settings.{}", p.id, e.field),
                        e.reason,
                    )
                })?;
                Ok(ProviderDescriptor {
                    id: p.id.clone(),
                    kind: p.kind.clone(),
                    priority: p.priority,
                    enabled: p.enabled,
                    settings,
                })
            })
            .collect()
    }

    /// The effective configuration as TOML, secrets redacted (what
    /// `cluster-node check-config` prints).
    pub fn to_redacted_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }

    /// Whether Remoting binds only a loopback address.
    pub fn binds_loopback(&self) -> bool {
        is_loopback(&self.bind)
    }

    /// Remoting's configuration from this one: `[remoting]`'s timings,
    /// `[remoting.monitoring]` ([`RemotingConfig::with_monitoring`]),
    /// `[remoting.tls]` and the cluster secret. The listen address is not
    /// in it: [`Cluster::builder`](cluster::Cluster::builder)'s `bind`
    /// sets it (as [`Node`](crate::Node) does from `bind`). What the node
    /// runtime gives the bootstrap; for an application that runs the bare
    /// builder with its own file.
    ///
    /// [`RemotingConfig::with_monitoring`]: cluster::remoting::RemotingConfig::with_monitoring
    pub fn remoting_config(&self) -> cluster::remoting::RemotingConfig {
        let mut remoting = cluster::remoting::RemotingConfig::new(&self.cluster)
            .with_heartbeat_interval(self.remoting.heartbeat_interval)
            .with_failure_timeout(self.remoting.failure_timeout)
            .with_monitoring(self.remoting.monitoring.clone());
        if let Some(secret) = &self.secret {
            remoting = remoting.with_secret(secret.expose().as_bytes().to_vec());
        }
        if let Some(tls) = &self.remoting.tls {
            remoting = remoting.with_tls(tls.to_tls_config());
        }
        remoting
    }

    /// Checks `[remoting.monitoring]` (done when a file is loaded; again
    /// by [`crate::validate`] for a configuration changed in code): a value
    /// out of range is a `config.invalid` naming
    /// `remoting.monitoring.<field>`.
    pub fn check_monitoring(&self) -> Result<(), ConfigError> {
        check_monitoring(&self.source_name(), &self.remoting.monitoring)
    }
}

/// [`MonitoringConfig::validate`] as a [`ConfigError`]: the file, the
/// field's path, and the reason (which names the range). The library's own
/// code, `remoting.monitoring_config`, is what `RemotingConfig` reports for
/// the same value given in code without this check.
fn check_monitoring(name: &str, monitoring: &MonitoringConfig) -> Result<(), ConfigError> {
    monitoring
        .validate()
        .map_err(|e| ConfigError::new(name, format!("remoting.monitoring.{}", e.field), e.reason))
}

/// Whether `host:port` names a loopback address (`127.0.0.0/8`, `::1`,
/// `localhost`).
pub fn is_loopback(host_port: &str) -> bool {
    if let Ok(a) = host_port.parse::<SocketAddr>() {
        return a.ip().is_loopback();
    }
    host_port
        .rsplit_once(':')
        .is_some_and(|(h, _)| h == "localhost")
}

fn binds_unspecified(host_port: &str) -> bool {
    host_port
        .parse::<SocketAddr>()
        .is_ok_and(|a| a.ip().is_unspecified())
}

fn check_host_port(v: &str) -> Result<(), String> {
    if v.parse::<SocketAddr>().is_ok() {
        return Ok(());
    }
    match v.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => Ok(()),
        _ => Err(format!("{v:?} is not host:port")),
    }
}

fn reason_of(e: &cluster_core::ProvisioningError) -> String {
    match e {
        cluster_core::ProvisioningError::Validation { reason, .. } => reason.clone(),
        other => other.to_string(),
    }
}

fn env_provider(
    overrides: &[(String, String)],
) -> figment::providers::Serialized<BTreeMap<String, Value>> {
    // Environment values are kept as strings, except where the key is known
    // to hold a boolean or a list; a node id such as `123` stays a string.
    let mut root: BTreeMap<String, Value> = BTreeMap::new();
    for (key, value) in overrides {
        let parts: Vec<&str> = key.split("__").collect();
        let v = match parts.as_slice() {
            ["insecure"] | ["admin", "enabled"] => match value.parse::<bool>() {
                Ok(b) => Value::from(b),
                Err(_) => Value::from(value.clone()),
            },
            ["roles"] => Value::from(
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| Value::from(s.to_owned()))
                    .collect::<Vec<_>>(),
            ),
            ["failover", "error_threshold"] => match value.parse::<u32>() {
                Ok(n) => Value::from(n),
                Err(_) => Value::from(value.clone()),
            },
            ["remoting", "monitoring", key] => {
                match monitoring::NUMERIC_KEYS.iter().find(|(k, _)| k == key) {
                    Some((_, true)) => value
                        .parse::<f64>()
                        .map_or_else(|_| Value::from(value.clone()), Value::from),
                    Some((_, false)) => value
                        .parse::<u32>()
                        .map_or_else(|_| Value::from(value.clone()), Value::from),
                    None => Value::from(value.clone()),
                }
            }
            _ => Value::from(value.clone()),
        };
        insert_path(&mut root, &parts, v);
    }
    figment::providers::Serialized::defaults(root)
}

fn insert_path(map: &mut BTreeMap<String, Value>, parts: &[&str], v: Value) {
    match parts {
        [] => {}
        [last] => {
            map.insert((*last).to_owned(), v);
        }
        [first, rest @ ..] => {
            let entry = map
                .entry((*first).to_owned())
                .or_insert_with(|| Value::from(BTreeMap::<String, Value>::new()));
            if let Value::Dict(_, inner) = entry {
                insert_path(inner, rest, v);
            }
        }
    }
}

/// Appends `field` to `path` unless figment's path already ends with it.
fn push_field(path: &mut String, figment_path: &[String], field: &str) {
    if figment_path.last().is_some_and(|l| l == field) {
        return;
    }
    if !path.is_empty() {
        path.push('.');
    }
    path.push_str(field);
}

/// Turns a figment error into one line: the file (or the environment
/// variable), the field path with providers named by id, and the reason.
fn figment_error(name: &str, table: &toml::Table, e: figment::Error) -> ConfigError {
    let e = e
        .into_iter()
        .next()
        .unwrap_or_else(|| figment::Error::from("invalid".to_owned()));
    let mut path = String::new();
    let mut parts = e.path.iter().peekable();
    while let Some(p) = parts.next() {
        if p == "providers"
            && let Some(idx) = parts.peek().and_then(|i| i.parse::<usize>().ok())
        {
            parts.next();
            let id = table
                .get("providers")
                .and_then(|p| p.as_array())
                .and_then(|p| p.get(idx))
                .and_then(|p| p.get("id"))
                .and_then(|id| id.as_str())
                .map_or_else(|| idx.to_string(), str::to_owned);
            path.push_str(&format!("providers[{id}]"));
        } else {
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(p);
        }
    }
    let from_env = e
        .metadata
        .as_ref()
        .is_some_and(|m| !m.name.to_lowercase().contains("toml"));
    let source = if from_env {
        let var = format!("{ENV_PREFIX}{}", e.path.join("__").to_ascii_uppercase());
        format!("environment {var}")
    } else {
        name.to_owned()
    };
    let reason = match &e.kind {
        figment::error::Kind::MissingField(f) => {
            push_field(&mut path, &e.path, f);
            "missing".to_owned()
        }
        figment::error::Kind::UnknownField(f, expected) => {
            push_field(&mut path, &e.path, f);
            format!("unknown key (expected one of: {})", expected.join(", "))
        }
        // A value of the wrong type is quoted by the error: never for a
        // key that holds a secret.
        figment::error::Kind::InvalidType(_, expected)
            if e.path
                .last()
                .is_some_and(|k| cluster_core::is_secret_setting(k)) =>
        {
            format!("invalid type (value not shown: it is a secret): expected {expected}")
        }
        kind => kind.to_string(),
    };
    ConfigError::new(source, path, reason)
}
