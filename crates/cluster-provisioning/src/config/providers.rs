//! Typed settings for each built-in provider kind.
//!
//! In the file, a provider's `settings` table is checked against the struct
//! of its kind: unknown keys are refused (`deny_unknown_fields`), durations
//! are strings such as `"5s"`, numbers are numbers, lists are lists, and
//! secrets are held in [`Secret`]. The typed settings are then *lowered* to
//! the kind-agnostic [`ProviderDescriptor`] that the registry accepts and
//! the store keeps (`wait = "5s"` becomes `wait_ms = "5000"`); the kind's
//! own parser checks ranges, and an error it reports on a lowered key is
//! named by the key of the file again (see [`ProviderSettings::field_name`]).
//!
//! Each kind also honours its ecosystem's environment variables for what the
//! file leaves out, the way its own command-line tools do: `CONSUL_HTTP_ADDR`,
//! `CONSUL_HTTP_TOKEN` / `CONSUL_HTTP_TOKEN_FILE`, `CONSUL_HTTP_SSL`,
//! `CONSUL_CACERT`, `CONSUL_CLIENT_CERT`, `CONSUL_CLIENT_KEY`,
//! `CONSUL_TLS_SERVER_NAME` for Consul;
//! `ETCDCTL_ENDPOINTS`, `ETCDCTL_CACERT`, `ETCDCTL_CERT`, `ETCDCTL_KEY`,
//! `ETCDCTL_USER` (`user` or `user:password`) and `ETCDCTL_PASSWORD` for
//! etcd; Kubernetes uses kubeconfig or the in-cluster service account as
//! kube-rs infers them. A value in the file always wins over the
//! environment.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Secret;
use super::duration;

/// The kinds this crate knows the settings of, whether or not their
/// feature is compiled in.
pub const BUILT_IN_KINDS: &[&str] = &[
    "memory",
    "file",
    "consul",
    "kubernetes",
    "etcd",
    "static",
    "dns",
];

/// Settings of a `memory` provider: a table shared by the nodes of one
/// process (tests, demos, a one-node development setup).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemorySettings {
    /// The table's name; nodes of one process with the same name see each
    /// other. Default `default`.
    #[serde(default = "default_table")]
    pub table: String,
    /// Interval of keepalive snapshots (default 5s).
    #[serde(
        default,
        with = "duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub keepalive: Option<Duration>,
}

fn default_table() -> String {
    "default".to_owned()
}

/// Settings of a `file` provider: one file per member in a shared
/// directory (several processes on one machine, no backend).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSettings {
    /// The shared directory.
    pub dir: PathBuf,
    /// How often the directory is read (default 500ms).
    #[serde(
        default,
        with = "duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub poll: Option<Duration>,
}

/// Settings of a `consul` provider (see `docs/providers/consul.md`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsulSettings {
    /// The agent, `host:port` or a URL (`CONSUL_HTTP_ADDR`, default
    /// `127.0.0.1:8500`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// HTTPS to the agent (`CONSUL_HTTP_SSL`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssl: Option<bool>,
    /// ACL token (`CONSUL_HTTP_TOKEN`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<Secret>,
    /// A file holding the ACL token (`CONSUL_HTTP_TOKEN_FILE`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
    /// The service name (default: the cluster name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// The datacenter to query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datacenter: Option<String>,
    /// Tags of the registered instance.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// TTL of the health check, whole seconds (default 10s).
    #[serde(
        default,
        with = "duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub ttl: Option<Duration>,
    /// Consul removes an instance critical for this long, whole seconds
    /// (default 60s).
    #[serde(
        default,
        with = "duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub deregister_after: Option<Duration>,
    /// Blocking-query wait (default 5s).
    #[serde(
        default,
        with = "duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub wait: Option<Duration>,
    /// Bound of one HTTP call (default 5s).
    #[serde(
        default,
        with = "duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub request_timeout: Option<Duration>,
    /// Minimum interval between two blocking queries (default 200ms).
    #[serde(
        default,
        with = "duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub min_query_interval: Option<Duration>,
    /// First retry pause after an error (default 2s).
    #[serde(
        default,
        with = "duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub retry_min: Option<Duration>,
    /// Longest retry pause (default 30s).
    #[serde(
        default,
        with = "duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub retry_max: Option<Duration>,
    /// CA bundle to verify the agent (`CONSUL_CACERT`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// Client certificate (`CONSUL_CLIENT_CERT`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert: Option<PathBuf>,
    /// Client key (`CONSUL_CLIENT_KEY`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key: Option<PathBuf>,
    /// The name the agent's certificate must carry instead of the
    /// address's host (`CONSUL_TLS_SERVER_NAME`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_server_name: Option<String>,
}

/// Settings of a `kubernetes` provider (see `docs/providers/kubernetes.md`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesSettings {
    /// The label whose value names the cluster (default
    /// `cluster-provisioning.io/cluster`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_label: Option<String>,
    /// An extra label selector for member pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_selector: Option<String>,
    /// The namespace (default: the pod's own, from the service account).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// This pod's name (default: `POD_NAME`, then the host name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_name: Option<String>,
    /// Annotation carrying the node id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_id_annotation: Option<String>,
    /// Annotation carrying the Remoting port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_annotation: Option<String>,
    /// Annotation carrying the incarnation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incarnation_annotation: Option<String>,
    /// Annotation carrying the roles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles_annotation: Option<String>,
    /// Interval of keepalive snapshots while the API answers (default 5s).
    #[serde(
        default,
        with = "duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub keepalive: Option<Duration>,
    /// A kubeconfig file (default: as kube-rs infers it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// First pause after a failed list or watch (default 800ms).
    #[serde(
        default,
        with = "duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub backoff_initial: Option<Duration>,
    /// Longest pause (default 30s).
    #[serde(
        default,
        with = "duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub backoff_max: Option<Duration>,
    /// Server-side timeout of one watch, whole seconds (default 10s).
    #[serde(
        default,
        with = "duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub watch_timeout: Option<Duration>,
    /// Pods per list page (default 500).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_size: Option<u32>,
    /// The API server's `https://` URL (instead of the kubeconfig's or the
    /// in-cluster one; not with `kubeconfig`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// CA bundle verifying the API server (over the kubeconfig's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// Client certificate (mutual TLS), with `client_key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert: Option<PathBuf>,
    /// Client key, with `client_cert`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key: Option<PathBuf>,
    /// The name the API server's certificate must carry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_server_name: Option<String>,
}

/// Settings of an `etcd` provider (see `docs/providers/etcd.md`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EtcdSettings {
    /// Client URLs (`ETCDCTL_ENDPOINTS`, comma-separated there).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<String>,
    /// Key prefix (default `/cluster-provisioning`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Lease TTL, whole seconds (default 10s).
    #[serde(
        default,
        with = "duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub lease_ttl: Option<Duration>,
    /// Keepalive (progress request) interval of the watch.
    #[serde(
        default,
        with = "duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub keepalive: Option<Duration>,
    /// Connect timeout.
    #[serde(
        default,
        with = "duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub connect_timeout: Option<Duration>,
    /// Bound of one request (below a third of the lease TTL).
    #[serde(
        default,
        with = "duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub request_timeout: Option<Duration>,
    /// Bound of the first registration.
    #[serde(
        default,
        with = "duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub register_timeout: Option<Duration>,
    /// First retry pause.
    #[serde(
        default,
        with = "duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub retry_initial: Option<Duration>,
    /// Longest retry pause.
    #[serde(
        default,
        with = "duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub retry_max: Option<Duration>,
    /// User name (`ETCDCTL_USER`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Password (`ETCDCTL_PASSWORD`, or after the colon of `ETCDCTL_USER`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    /// A file holding the password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    /// CA bundle (`ETCDCTL_CACERT`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_ca: Option<PathBuf>,
    /// Client certificate (`ETCDCTL_CERT`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    /// Client key (`ETCDCTL_KEY`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
    /// The name etcd's certificate must carry instead of the endpoint's
    /// host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_server_name: Option<String>,
}

/// The bootstrap settings the `static` and `dns` kinds share (see
/// `docs/providers/seeds-dns.md`).
macro_rules! seed_settings {
    ($(#[$meta:meta])* pub struct $name:ident { $($(#[$fmeta:meta])* pub $field:ident: $ty:ty,)* }) => {
        $(#[$meta])*
        #[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            $($(#[$fmeta])* pub $field: $ty,)*
            /// Whether this node may form a new cluster (default true).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub form_new_cluster: Option<bool>,
            /// Contacts (itself included) that must answer before a new
            /// cluster is formed (default 1).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub required_contacts: Option<u32>,
            /// How long the contact sets must stay unchanged before forming
            /// (default 3s).
            #[serde(default, with = "duration::option", skip_serializing_if = "Option::is_none")]
            pub stable_margin: Option<Duration>,
            /// How long a contact that stopped answering stays listed
            /// (default 10s).
            #[serde(default, with = "duration::option", skip_serializing_if = "Option::is_none")]
            pub unreachable_timeout: Option<Duration>,
            /// Time between probe rounds (default 1s).
            #[serde(default, with = "duration::option", skip_serializing_if = "Option::is_none")]
            pub probe_interval: Option<Duration>,
            /// Bound on one probe (default 2s).
            #[serde(default, with = "duration::option", skip_serializing_if = "Option::is_none")]
            pub probe_timeout: Option<Duration>,
        }
    };
}

seed_settings! {
    /// Settings of a `static` provider: seed addresses probed on their
    /// remoting port (P4).
    pub struct StaticSettings {
        /// `host:port` of each seed (an IPv6 host in brackets); host names
        /// are resolved at every round.
        #[serde(default)]
        pub seeds: Vec<String>,
    }
}

seed_settings! {
    /// Settings of a `dns` provider: A/AAAA records of `name` with `port`,
    /// or SRV records of `srv` (P6; see `docs/providers/dns.md`).
    pub struct DnsSettings {
        /// The name whose A/AAAA records list the nodes.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub name: Option<String>,
        /// The remoting port of those addresses.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub port: Option<u16>,
        /// An SRV name (`_service._proto.domain`) instead of name and port.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub srv: Option<String>,
        /// A nameserver `ip:port` (default: `/etc/resolv.conf`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub nameserver: Option<String>,
        /// Resolve interval (default 5s, at least 1s; longer when the
        /// records' TTL asks, capped at a minute).
        #[serde(default, with = "duration::option", skip_serializing_if = "Option::is_none")]
        pub interval: Option<Duration>,
        /// Bound on one DNS request (default 2s).
        #[serde(default, with = "duration::option", skip_serializing_if = "Option::is_none")]
        pub dns_timeout: Option<Duration>,
    }
}

/// The typed settings of one provider.
#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
#[non_exhaustive]
pub enum ProviderSettings {
    /// `memory`.
    Memory(MemorySettings),
    /// `file`.
    File(FileSettings),
    /// `consul`.
    Consul(Box<ConsulSettings>),
    /// `kubernetes`.
    Kubernetes(Box<KubernetesSettings>),
    /// `etcd`.
    Etcd(Box<EtcdSettings>),
    /// `static`.
    Static(Box<StaticSettings>),
    /// `dns`.
    Dns(Box<DnsSettings>),
    /// A kind the application registered itself: its settings are passed
    /// through as strings, and its factory checks them.
    Custom(CustomSettings),
}

/// The settings of a kind the application registered: strings, with the
/// values of secret keys (`token`, `password`, `secret` in the name) shown
/// as `<redacted>` in `Debug` and in the effective configuration.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct CustomSettings(pub BTreeMap<String, String>);

impl CustomSettings {
    fn redacted(&self) -> BTreeMap<&str, &str> {
        self.0
            .iter()
            .map(|(k, v)| {
                let v = if cluster_core::is_secret_setting(k) {
                    "<redacted>"
                } else {
                    v.as_str()
                };
                (k.as_str(), v)
            })
            .collect()
    }
}

impl std::fmt::Debug for CustomSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.redacted()).finish()
    }
}

impl Serialize for CustomSettings {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.redacted().serialize(s)
    }
}

/// Where a setting's value comes from when the file leaves it out.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// (file key, lowered key, unit) for every duration setting of the built-in
/// kinds: `wait` is lowered to `wait_ms` in milliseconds.
const DURATION_KEYS: &[(&str, &str, Unit)] = &[
    ("keepalive", "keepalive_ms", Unit::Millis),
    ("poll", "poll_ms", Unit::Millis),
    ("ttl", "ttl_s", Unit::Secs),
    ("deregister_after", "deregister_after_s", Unit::Secs),
    ("wait", "wait_ms", Unit::Millis),
    ("request_timeout", "request_timeout_ms", Unit::Millis),
    ("min_query_interval", "min_query_interval_ms", Unit::Millis),
    ("retry_min", "retry_min_ms", Unit::Millis),
    ("retry_max", "retry_max_ms", Unit::Millis),
    ("backoff_initial", "backoff_initial_ms", Unit::Millis),
    ("backoff_max", "backoff_max_ms", Unit::Millis),
    ("watch_timeout", "watch_timeout_s", Unit::Secs),
    ("lease_ttl", "lease_ttl_s", Unit::Secs),
    ("connect_timeout", "connect_timeout_ms", Unit::Millis),
    ("register_timeout", "register_timeout_ms", Unit::Millis),
    ("retry_initial", "retry_initial_ms", Unit::Millis),
    ("stable_margin", "stable_margin_ms", Unit::Millis),
    (
        "unreachable_timeout",
        "unreachable_timeout_ms",
        Unit::Millis,
    ),
    ("probe_interval", "probe_interval_ms", Unit::Millis),
    ("probe_timeout", "probe_timeout_ms", Unit::Millis),
    ("interval", "interval_ms", Unit::Millis),
    ("dns_timeout", "dns_timeout_ms", Unit::Millis),
];

#[derive(Clone, Copy)]
enum Unit {
    Millis,
    Secs,
}

/// A setting the lowering refused: the file key and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingError {
    /// The key in the provider's `settings` table.
    pub field: String,
    /// Why.
    pub reason: String,
}

impl SettingError {
    fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

struct Lowered {
    out: BTreeMap<String, String>,
}

impl Lowered {
    fn new() -> Self {
        Self {
            out: BTreeMap::new(),
        }
    }
    fn put(&mut self, k: &str, v: Option<impl ToString>) {
        if let Some(v) = v {
            self.out.insert(k.to_owned(), v.to_string());
        }
    }
    fn duration(&mut self, field: &str, d: Option<Duration>) -> Result<(), SettingError> {
        let Some(d) = d else { return Ok(()) };
        let (_, key, unit) = DURATION_KEYS
            .iter()
            .find(|(f, _, _)| *f == field)
            .copied()
            .ok_or_else(|| SettingError::new(field, "not a duration setting"))?;
        let v = match unit {
            Unit::Millis => {
                if d.subsec_nanos() % 1_000_000 != 0 {
                    return Err(SettingError::new(
                        field,
                        format!("{d:?} has a fraction of a millisecond"),
                    ));
                }
                d.as_millis()
            }
            Unit::Secs => {
                if d.subsec_nanos() != 0 {
                    return Err(SettingError::new(
                        field,
                        format!(
                            "{} is not a whole number of seconds",
                            humantime::format_duration(d)
                        ),
                    ));
                }
                u128::from(d.as_secs())
            }
        };
        self.out.insert(key.to_owned(), v.to_string());
        Ok(())
    }
    /// The bootstrap settings of `static` and `dns`.
    fn seed_common(
        &mut self,
        form_new_cluster: Option<bool>,
        required_contacts: Option<u32>,
        durations: [(&str, Option<Duration>); 4],
    ) -> Result<(), SettingError> {
        self.put("form_new_cluster", form_new_cluster);
        self.put("required_contacts", required_contacts);
        for (field, d) in durations {
            self.duration(field, d)?;
        }
        Ok(())
    }
    fn path(&mut self, k: &str, p: Option<&PathBuf>) {
        if let Some(p) = p {
            self.out.insert(k.to_owned(), p.display().to_string());
        }
    }
}

impl ProviderSettings {
    /// Reads the settings table of a provider of `kind`. The error carries
    /// the path inside the table (`wait`, `tags[1]`) and the reason.
    pub fn parse(kind: &str, settings: figment::value::Value) -> Result<Self, SettingError> {
        fn typed<T: serde::de::DeserializeOwned>(
            v: figment::value::Value,
        ) -> Result<T, SettingError> {
            serde_path_to_error::deserialize(&v).map_err(|e| {
                let path = e.path().to_string();
                let path = if path == "." { String::new() } else { path };
                let secret = e
                    .path()
                    .iter()
                    .next_back()
                    .is_some_and(|seg| cluster_core::is_secret_setting(&seg.to_string()));
                let reason = match &e.inner().kind {
                    figment::error::Kind::UnknownField(_, expected) => {
                        format!("unknown key (expected one of: {})", expected.join(", "))
                    }
                    figment::error::Kind::InvalidType(_, expected) if secret => format!(
                        "invalid type (value not shown: it is a secret): expected {expected}"
                    ),
                    kind => kind.to_string(),
                };
                SettingError::new(path, reason)
            })
        }
        Ok(match kind {
            "memory" => Self::Memory(typed(settings)?),
            "file" => Self::File(typed(settings)?),
            "consul" => Self::Consul(Box::new(typed(settings)?)),
            "kubernetes" => Self::Kubernetes(Box::new(typed(settings)?)),
            "etcd" => Self::Etcd(Box::new(typed(settings)?)),
            "static" => Self::Static(Box::new(typed(settings)?)),
            "dns" => Self::Dns(Box::new(typed(settings)?)),
            _ => {
                let raw: BTreeMap<String, figment::value::Value> = typed(settings)?;
                let mut out = BTreeMap::new();
                for (k, v) in raw {
                    let s = match v {
                        figment::value::Value::String(_, s) => s,
                        figment::value::Value::Bool(_, b) => b.to_string(),
                        figment::value::Value::Num(_, n) => match n.to_u128() {
                            Some(u) => u.to_string(),
                            None => n
                                .to_f64()
                                .map(|f| f.to_string())
                                .ok_or_else(|| SettingError::new(&k, "not a number"))?,
                        },
                        _ => {
                            return Err(SettingError::new(
                                k,
                                "settings of a custom kind must be strings, numbers or booleans",
                            ));
                        }
                    };
                    out.insert(k, s);
                }
                Self::Custom(CustomSettings(out))
            }
        })
    }

    /// Fills what the file left out from the kind's environment variables
    /// (see the [module documentation](self)).
    pub fn apply_env(&mut self, env: Env<'_>) {
        match self {
            Self::Consul(c) => {
                if c.address.is_none() {
                    c.address = env("CONSUL_HTTP_ADDR");
                }
                if c.ssl.is_none() {
                    c.ssl = env("CONSUL_HTTP_SSL").and_then(|v| match v.as_str() {
                        "1" | "true" | "yes" | "on" => Some(true),
                        "0" | "false" | "no" | "off" => Some(false),
                        _ => None,
                    });
                }
                if c.token.is_none() && c.token_file.is_none() {
                    c.token = env("CONSUL_HTTP_TOKEN").map(Secret::new);
                    if c.token.is_none() {
                        c.token_file = env("CONSUL_HTTP_TOKEN_FILE").map(PathBuf::from);
                    }
                }
                if c.ca_file.is_none() {
                    c.ca_file = env("CONSUL_CACERT").map(PathBuf::from);
                }
                if c.client_cert.is_none() {
                    c.client_cert = env("CONSUL_CLIENT_CERT").map(PathBuf::from);
                }
                if c.client_key.is_none() {
                    c.client_key = env("CONSUL_CLIENT_KEY").map(PathBuf::from);
                }
                if c.tls_server_name.is_none() {
                    c.tls_server_name = env("CONSUL_TLS_SERVER_NAME");
                }
            }
            Self::Etcd(e) => {
                if e.endpoints.is_empty()
                    && let Some(v) = env("ETCDCTL_ENDPOINTS")
                {
                    e.endpoints = v
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect();
                }
                if e.user.is_none()
                    && let Some(u) = env("ETCDCTL_USER")
                {
                    match u.split_once(':') {
                        Some((user, password)) => {
                            e.user = Some(user.to_owned());
                            if e.password.is_none() && e.password_file.is_none() {
                                e.password = Some(Secret::new(password));
                            }
                        }
                        None => e.user = Some(u),
                    }
                }
                if e.user.is_some() && e.password.is_none() && e.password_file.is_none() {
                    e.password = env("ETCDCTL_PASSWORD").map(Secret::new);
                }
                if e.tls_ca.is_none() {
                    e.tls_ca = env("ETCDCTL_CACERT").map(PathBuf::from);
                }
                if e.tls_cert.is_none() {
                    e.tls_cert = env("ETCDCTL_CERT").map(PathBuf::from);
                }
                if e.tls_key.is_none() {
                    e.tls_key = env("ETCDCTL_KEY").map(PathBuf::from);
                }
            }
            _ => {}
        }
    }

    /// The kind-agnostic settings map of the [`ProviderDescriptor`] for
    /// these settings, in the cluster `cluster`. Reads secret files.
    ///
    /// [`ProviderDescriptor`]: cluster_core::ProviderDescriptor
    pub fn lower(&self, cluster: &str) -> Result<BTreeMap<String, String>, SettingError> {
        let mut l = Lowered::new();
        match self {
            Self::Memory(m) => {
                l.put("table", Some(&m.table));
                l.duration("keepalive", m.keepalive)?;
            }
            Self::File(f) => {
                l.path("dir", Some(&f.dir));
                l.duration("poll", f.poll)?;
            }
            Self::Consul(c) => {
                l.put("cluster", Some(cluster));
                l.put("address", c.address.as_ref());
                l.put("ssl", c.ssl);
                l.put("token", c.token.as_ref().map(Secret::expose));
                l.path("token_file", c.token_file.as_ref());
                l.put("service", c.service.as_ref());
                l.put("datacenter", c.datacenter.as_ref());
                if !c.tags.is_empty() {
                    if let Some(i) = c.tags.iter().position(|t| t.contains(',')) {
                        return Err(SettingError::new(
                            format!("tags[{i}]"),
                            "a tag must not contain ','",
                        ));
                    }
                    l.put("tags", Some(c.tags.join(",")));
                }
                l.duration("ttl", c.ttl)?;
                l.duration("deregister_after", c.deregister_after)?;
                l.duration("wait", c.wait)?;
                l.duration("request_timeout", c.request_timeout)?;
                l.duration("min_query_interval", c.min_query_interval)?;
                l.duration("retry_min", c.retry_min)?;
                l.duration("retry_max", c.retry_max)?;
                l.path("ca_file", c.ca_file.as_ref());
                l.path("client_cert", c.client_cert.as_ref());
                l.path("client_key", c.client_key.as_ref());
                l.put("tls_server_name", c.tls_server_name.as_ref());
            }
            Self::Kubernetes(k) => {
                l.put("cluster", Some(cluster));
                l.put("cluster_label", k.cluster_label.as_ref());
                l.put("label_selector", k.label_selector.as_ref());
                l.put("namespace", k.namespace.as_ref());
                l.put("pod_name", k.pod_name.as_ref());
                l.put("node_id_annotation", k.node_id_annotation.as_ref());
                l.put("port_annotation", k.port_annotation.as_ref());
                l.put("incarnation_annotation", k.incarnation_annotation.as_ref());
                l.put("roles_annotation", k.roles_annotation.as_ref());
                l.duration("keepalive", k.keepalive)?;
                l.path("kubeconfig", k.kubeconfig.as_ref());
                l.put("context", k.context.as_ref());
                l.duration("backoff_initial", k.backoff_initial)?;
                l.duration("backoff_max", k.backoff_max)?;
                l.duration("watch_timeout", k.watch_timeout)?;
                l.put("page_size", k.page_size);
                l.put("server", k.server.as_ref());
                l.path("ca_file", k.ca_file.as_ref());
                l.path("client_cert", k.client_cert.as_ref());
                l.path("client_key", k.client_key.as_ref());
                l.put("tls_server_name", k.tls_server_name.as_ref());
            }
            Self::Etcd(e) => {
                l.put("cluster", Some(cluster));
                if e.endpoints.is_empty() {
                    return Err(SettingError::new(
                        "endpoints",
                        "missing: a list of etcd client URLs (or ETCDCTL_ENDPOINTS)",
                    ));
                }
                if let Some(i) = e.endpoints.iter().position(|t| t.contains(',')) {
                    return Err(SettingError::new(
                        format!("endpoints[{i}]"),
                        "one URL per list item",
                    ));
                }
                l.put("endpoints", Some(e.endpoints.join(",")));
                l.put("prefix", e.prefix.as_ref());
                l.duration("lease_ttl", e.lease_ttl)?;
                l.duration("keepalive", e.keepalive)?;
                l.duration("connect_timeout", e.connect_timeout)?;
                l.duration("request_timeout", e.request_timeout)?;
                l.duration("register_timeout", e.register_timeout)?;
                l.duration("retry_initial", e.retry_initial)?;
                l.duration("retry_max", e.retry_max)?;
                l.put("user", e.user.as_ref());
                match (&e.password, &e.password_file) {
                    (Some(_), Some(_)) => {
                        return Err(SettingError::new(
                            "password_file",
                            "give either password or password_file",
                        ));
                    }
                    (Some(p), None) => l.put("password", Some(p.expose())),
                    (None, Some(f)) => {
                        let p = super::read_secret_file(f)
                            .map_err(|r| SettingError::new("password_file", r))?;
                        l.put("password", Some(p.expose()));
                    }
                    (None, None) => {}
                }
                l.path("tls_ca", e.tls_ca.as_ref());
                l.path("tls_cert", e.tls_cert.as_ref());
                l.path("tls_key", e.tls_key.as_ref());
                l.put("tls_server_name", e.tls_server_name.as_ref());
            }
            Self::Static(st) => {
                if st.seeds.is_empty() {
                    return Err(SettingError::new(
                        "seeds",
                        "missing: a list of \"host:port\" seed addresses",
                    ));
                }
                if let Some(i) = st.seeds.iter().position(|t| t.contains(',')) {
                    return Err(SettingError::new(
                        format!("seeds[{i}]"),
                        "one host:port per list item",
                    ));
                }
                l.put("seeds", Some(st.seeds.join(",")));
                l.seed_common(
                    st.form_new_cluster,
                    st.required_contacts,
                    [
                        ("stable_margin", st.stable_margin),
                        ("unreachable_timeout", st.unreachable_timeout),
                        ("probe_interval", st.probe_interval),
                        ("probe_timeout", st.probe_timeout),
                    ],
                )?;
            }
            Self::Dns(d) => {
                l.put("name", d.name.as_ref());
                l.put("port", d.port);
                l.put("srv", d.srv.as_ref());
                l.put("nameserver", d.nameserver.as_ref());
                l.duration("interval", d.interval)?;
                l.duration("dns_timeout", d.dns_timeout)?;
                l.seed_common(
                    d.form_new_cluster,
                    d.required_contacts,
                    [
                        ("stable_margin", d.stable_margin),
                        ("unreachable_timeout", d.unreachable_timeout),
                        ("probe_interval", d.probe_interval),
                        ("probe_timeout", d.probe_timeout),
                    ],
                )?;
            }
            Self::Custom(m) => l.out = m.0.clone(),
        }
        Ok(l.out)
    }

    /// A kind's reason about a lowered duration key, in the file's words:
    /// `"360000000" is not a whole number in 10..=600000` on `wait_ms`
    /// becomes `4days 4h is out of range 10ms..=10m`. Other reasons are kept.
    pub fn reason_in_file_units(lowered_key: &str, reason: &str) -> String {
        let Some((_, _, unit)) = DURATION_KEYS.iter().find(|(_, k, _)| *k == lowered_key) else {
            return reason.to_owned();
        };
        let numbers: Vec<u64> = reason
            .split(|c: char| !c.is_ascii_digit())
            .filter(|n| !n.is_empty())
            .filter_map(|n| n.parse().ok())
            .collect();
        let [value, .., lo, hi] = numbers.as_slice() else {
            return reason.to_owned();
        };
        let d = |n: u64| match unit {
            Unit::Millis => Duration::from_millis(n),
            Unit::Secs => Duration::from_secs(n),
        };
        format!(
            "{} is out of range {}..={}",
            humantime::format_duration(d(*value)),
            humantime::format_duration(d(*lo)),
            humantime::format_duration(d(*hi))
        )
    }

    /// The key of the file for a key of the lowered settings (`wait_ms` →
    /// `wait`), so that a range error reported by the kind names what the
    /// operator wrote.
    pub fn field_name(lowered_key: &str) -> &str {
        DURATION_KEYS
            .iter()
            .find(|(_, k, _)| *k == lowered_key)
            .map_or(lowered_key, |(f, _, _)| f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use figment::providers::Format;
    use figment::value::Value;

    fn value(toml: &str) -> Value {
        let table: BTreeMap<String, Value> =
            figment::Figment::from(figment::providers::Toml::string(toml))
                .extract()
                .expect("test TOML parses");
        Value::from(table)
    }

    #[test]
    fn n1_typed_settings_lower_to_the_descriptor_keys() {
        let s = ProviderSettings::parse(
            "consul",
            value(
                "address = \"http://127.0.0.1:8500\"\nwait = \"5s\"\nttl = \"10s\"\ntags = [\"a\", \"b\"]\ntoken = \"t0k\"",
            ),
        )
        .expect("valid");
        let l = s.lower("shop").expect("lowers");
        assert_eq!(l["wait_ms"], "5000");
        assert_eq!(l["ttl_s"], "10");
        assert_eq!(l["tags"], "a,b");
        assert_eq!(l["token"], "t0k");
        assert_eq!(l["cluster"], "shop");
        assert!(!format!("{s:?}").contains("t0k"));
    }

    #[test]
    fn n1_bad_settings_name_the_key() {
        let err = |kind: &str, t: &str| ProviderSettings::parse(kind, value(t)).unwrap_err();
        let e = err("consul", "wait = \"5x\"");
        assert_eq!(e.field, "wait");
        assert!(
            e.reason.contains("\"5x\" is not a duration"),
            "{}",
            e.reason
        );
        let e = err("consul", "adress = \"x\"");
        assert_eq!(e.field, "adress");
        assert!(
            e.reason
                .starts_with("unknown key (expected one of: address,"),
            "{e:?}"
        );
        let e = err("file", "dir = 5");
        assert_eq!(e.field, "dir");
        let e = err("etcd", "endpoints = [\"a\", 5]");
        assert_eq!(e.field, "endpoints[1]");
        let secs = ProviderSettings::parse("consul", value("ttl = \"1500ms\""))
            .expect("parses")
            .lower("c")
            .unwrap_err();
        assert_eq!(secs.field, "ttl");
        assert_eq!(ProviderSettings::field_name("wait_ms"), "wait");
        assert_eq!(
            ProviderSettings::reason_in_file_units(
                "wait_ms",
                "\"360000000\" is not a whole number in 10..=600000"
            ),
            "4days 4h is out of range 10ms..=10m"
        );
        assert_eq!(
            ProviderSettings::reason_in_file_units("dir", "must exist"),
            "must exist"
        );
        assert_eq!(ProviderSettings::field_name("dir"), "dir");
    }

    /// P4/P6: the static and dns kinds' typed settings lower to their
    /// descriptor keys; a bad key or value is named by its path.
    #[test]
    fn p4_p6_seed_and_dns_settings_lower_and_name_bad_keys() {
        let s = ProviderSettings::parse(
            "static",
            value("seeds = [\"10.0.0.1:4000\", \"n2:4000\"]\nrequired_contacts = 2\nstable_margin = \"5s\"\nform_new_cluster = false"),
        )
        .expect("valid");
        let l = s.lower("c").expect("lowers");
        assert_eq!(l["seeds"], "10.0.0.1:4000,n2:4000");
        assert_eq!(l["required_contacts"], "2");
        assert_eq!(l["stable_margin_ms"], "5000");
        assert_eq!(l["form_new_cluster"], "false");
        let d = ProviderSettings::parse(
            "dns",
            value("srv = \"_r._tcp.nodes\"\nnameserver = \"127.0.0.1:5353\"\ninterval = \"10s\""),
        )
        .expect("valid")
        .lower("c")
        .expect("lowers");
        assert_eq!(d["srv"], "_r._tcp.nodes");
        assert_eq!(d["interval_ms"], "10000");
        assert_eq!(ProviderSettings::field_name("interval_ms"), "interval");
        let err = |kind: &str, t: &str| ProviderSettings::parse(kind, value(t)).unwrap_err();
        assert_eq!(err("static", "seeds = [\"a:1\", 2]").field, "seeds[1]");
        assert_eq!(err("static", "seed = [\"a:1\"]").field, "seed");
        assert_eq!(err("dns", "port = \"x\"").field, "port");
        let missing = ProviderSettings::parse("static", value(""))
            .expect("parses")
            .lower("c")
            .unwrap_err();
        assert_eq!(missing.field, "seeds");
    }

    /// Issue 14 (item 4): the TLS settings of consul, etcd and kubernetes
    /// lower to the keys their kinds read; a misspelt one is refused.
    #[test]
    fn i14_tls_settings_lower_to_the_kind_keys() {
        let l = ProviderSettings::parse(
            "kubernetes",
            value(
                "server = \"https://10.0.0.1:6443\"\nca_file = \"/etc/k8s/ca.pem\"\nclient_cert = \"/etc/k8s/node.pem\"\nclient_key = \"/etc/k8s/node-key.pem\"\ntls_server_name = \"kubernetes.default\"",
            ),
        )
        .expect("valid")
        .lower("c")
        .expect("lowers");
        assert_eq!(l["server"], "https://10.0.0.1:6443");
        assert_eq!(l["ca_file"], "/etc/k8s/ca.pem");
        assert_eq!(l["client_cert"], "/etc/k8s/node.pem");
        assert_eq!(l["client_key"], "/etc/k8s/node-key.pem");
        assert_eq!(l["tls_server_name"], "kubernetes.default");
        let l = ProviderSettings::parse(
            "consul",
            value("ca_file = \"/c/ca.pem\"\ntls_server_name = \"server.dc1.consul\""),
        )
        .expect("valid")
        .lower("c")
        .expect("lowers");
        assert_eq!(l["ca_file"], "/c/ca.pem");
        assert_eq!(l["tls_server_name"], "server.dc1.consul");
        let l = ProviderSettings::parse(
            "etcd",
            value("endpoints = [\"https://e:2379\"]\ntls_ca = \"/e/ca.pem\"\ntls_server_name = \"etcd.internal\""),
        )
        .expect("valid")
        .lower("c")
        .expect("lowers");
        assert_eq!(l["tls_ca"], "/e/ca.pem");
        assert_eq!(l["tls_server_name"], "etcd.internal");
        let e = ProviderSettings::parse("kubernetes", value("ca_fle = \"x\"")).unwrap_err();
        assert_eq!(e.field, "ca_fle");
    }

    #[test]
    fn n1_ecosystem_environment_fills_what_the_file_leaves_out() {
        let env = |k: &str| match k {
            "CONSUL_HTTP_ADDR" => Some("10.0.0.1:8500".to_owned()),
            "CONSUL_HTTP_TOKEN" => Some("from-env".to_owned()),
            "ETCDCTL_ENDPOINTS" => Some("http://a:2379, http://b:2379".to_owned()),
            "ETCDCTL_USER" => Some("root:pw".to_owned()),
            _ => None,
        };
        let mut c =
            ProviderSettings::parse("consul", value("address = \"file:8500\"")).expect("valid");
        c.apply_env(&env);
        let l = c.lower("x").expect("lowers");
        assert_eq!(l["address"], "file:8500", "the file wins");
        assert_eq!(l["token"], "from-env");
        let mut e = ProviderSettings::parse("etcd", value("")).expect("valid");
        e.apply_env(&env);
        let l = e.lower("x").expect("lowers");
        assert_eq!(l["endpoints"], "http://a:2379,http://b:2379");
        assert_eq!((l["user"].as_str(), l["password"].as_str()), ("root", "pw"));
    }
}
