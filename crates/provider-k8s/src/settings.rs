//! The settings of a `kubernetes` descriptor, parsed and validated (pure:
//! the environment is passed in).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use cluster_core::ProviderError;
use cluster_core::settings::{Settings, invalid as cfg};

use crate::member::AnnotationKeys;

/// Where the service-account namespace of an in-cluster pod is.
pub const SERVICE_ACCOUNT_NAMESPACE_FILE: &str =
    "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/// The default label whose value names the cluster.
pub const DEFAULT_CLUSTER_LABEL: &str = "cluster-provisioning.io/cluster";

/// The slack of [`KubernetesSettings::answer_timeout`] over the watch
/// timeout, in seconds.
const ANSWER_GRACE_S: u64 = 3;

/// The settings keys, for the unknown-key check.
const KEYS: &[&str] = &[
    "cluster",
    "cluster_label",
    "label_selector",
    "namespace",
    "pod_name",
    "node_id_annotation",
    "port_annotation",
    "incarnation_annotation",
    "roles_annotation",
    "keepalive_ms",
    "kubeconfig",
    "context",
    "backoff_initial_ms",
    "backoff_max_ms",
    "watch_timeout_s",
    "page_size",
    "server",
    "ca_file",
    "client_cert",
    "client_key",
    "tls_server_name",
];

/// The validated settings of one provider (see the crate docs' table).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KubernetesSettings {
    /// The cluster name: the value of `cluster_label` on member pods.
    pub cluster: String,
    /// The label key whose value is the cluster name.
    pub cluster_label: String,
    /// An extra label selector ANDed with `cluster_label=cluster`.
    pub label_selector: Option<String>,
    /// The namespace watched (and of the local pod).
    pub namespace: String,
    /// The local pod, for self-registration; `None`: no registration.
    pub pod_name: Option<String>,
    /// Annotation keys of member pods.
    pub keys: AnnotationKeys,
    /// Re-send the snapshot after this long without a change.
    pub keepalive: Duration,
    /// A kubeconfig file instead of the in-cluster / default config.
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context (default: its current context).
    pub context: Option<String>,
    /// First delay before retrying a failed list or watch.
    pub backoff_initial: Duration,
    /// Largest delay between retries.
    pub backoff_max: Duration,
    /// `timeoutSeconds` of each watch request; the client's read timeout is
    /// this plus 15 s, and the API is taken for silent (no keepalive, an
    /// error) after [`answer_timeout`](Self::answer_timeout) without an
    /// answer.
    pub watch_timeout_s: u32,
    /// Page size (`limit`) of the (re)lists.
    pub page_size: u32,
    /// The API server's URL instead of the in-cluster / kubeconfig one.
    pub server: Option<String>,
    /// TLS files and server name set explicitly (over what the kubeconfig
    /// or the service account says).
    pub tls: TlsSettings,
}

/// TLS to the API server set in the descriptor: each one, when set,
/// replaces what the kubeconfig or the in-cluster configuration says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsSettings {
    /// PEM CA bundle verifying the API server (`ca_file`).
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate (`client_cert`), with `client_key`.
    pub client_cert: Option<PathBuf>,
    /// PEM client key (`client_key`), with `client_cert`. Only its path is
    /// ever shown.
    pub client_key: Option<PathBuf>,
    /// The name the API server's certificate must carry instead of the
    /// URL's host (`tls_server_name`).
    pub server_name: Option<String>,
}

impl TlsSettings {
    /// Whether anything is set.
    pub fn is_set(&self) -> bool {
        self.ca_file.is_some()
            || self.client_cert.is_some()
            || self.client_key.is_some()
            || self.server_name.is_some()
    }
}

impl KubernetesSettings {
    /// The label selector of member pods.
    pub fn selector(&self) -> String {
        match &self.label_selector {
            Some(extra) => format!("{}={},{extra}", self.cluster_label, self.cluster),
            None => format!("{}={}", self.cluster_label, self.cluster),
        }
    }

    /// How long the API server may stay silent before the provider stops
    /// its keepalives and reports a `Connectivity` error: `watch_timeout_s`
    /// plus 3 s (an idle watch is answered at least every
    /// `watch_timeout_s`: the server ends it, the next one is accepted).
    pub fn answer_timeout(&self) -> Duration {
        Duration::from_secs(u64::from(self.watch_timeout_s) + ANSWER_GRACE_S)
    }

    /// Parses `settings`. `env` reads an environment variable
    /// (`POD_NAME`, `POD_NAMESPACE`); `sa_namespace` is the content of the
    /// service-account namespace file, if readable.
    pub fn parse(
        settings: &BTreeMap<String, String>,
        env: impl Fn(&str) -> Option<String>,
        sa_namespace: Option<String>,
    ) -> Result<Self, ProviderError> {
        let env: &dyn Fn(&str) -> Option<String> = &env;
        let s = Settings::new(settings).with_env(env, &[("pod_name", "POD_NAME")]);
        s.check_known(KEYS)?;
        let cluster = s.required("cluster", "the cluster name (a label value)")?;
        check_label_value(&cluster).map_err(|r| cfg("cluster", r))?;
        let cluster_label = s
            .text("cluster_label")
            .unwrap_or_else(|| DEFAULT_CLUSTER_LABEL.to_owned());
        check_key(&cluster_label).map_err(|r| cfg("cluster_label", r))?;
        let label_selector = s.text("label_selector");
        if let Some(sel) = &label_selector
            && sel.chars().any(|c| c.is_control())
        {
            return Err(cfg("label_selector", "must not contain control characters"));
        }
        let namespace = match s.text("namespace") {
            Some(ns) => ns,
            None => match sa_namespace
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .or_else(|| env("POD_NAMESPACE").filter(|s| !s.is_empty()))
            {
                Some(ns) => ns,
                None => {
                    return Err(cfg(
                        "namespace",
                        format!(
                            "missing: not set, {SERVICE_ACCOUNT_NAMESPACE_FILE} not readable and POD_NAMESPACE not set"
                        ),
                    ));
                }
            },
        };
        check_dns_label(&namespace).map_err(|r| cfg("namespace", r))?;
        let pod_name = s.text("pod_name");
        if let Some(p) = &pod_name {
            check_dns_subdomain(p).map_err(|r| cfg("pod_name", r))?;
        }
        let defaults = AnnotationKeys::default();
        let key = |k: &str, d: String| -> Result<String, ProviderError> {
            let v = s.text(k).unwrap_or(d);
            check_key(&v).map_err(|r| cfg(k, r))?;
            Ok(v)
        };
        let keys = AnnotationKeys {
            node_id: key("node_id_annotation", defaults.node_id)?,
            port: key("port_annotation", defaults.port)?,
            incarnation: key("incarnation_annotation", defaults.incarnation)?,
            roles: key("roles_annotation", defaults.roles)?,
        };
        let keepalive = s.millis("keepalive_ms", 10..=60_000, 5_000)?;
        let backoff_initial = s.millis("backoff_initial_ms", 1..=60_000, 800)?;
        let backoff_max = s.millis("backoff_max_ms", 1..=600_000, 30_000)?;
        if backoff_max < backoff_initial {
            return Err(cfg("backoff_max_ms", "must be at least backoff_initial_ms"));
        }
        let watch_timeout_s = s.u32("watch_timeout_s", 1..=3_600, 10)?;
        let page_size = s.u32("page_size", 1..=10_000, 500)?;
        let kubeconfig = s.text("kubeconfig").map(PathBuf::from);
        let context = s.text("context");
        if context.is_some() && kubeconfig.is_none() {
            return Err(cfg("context", "only meaningful with `kubeconfig`"));
        }
        let server = s.text("server");
        if let Some(url) = &server {
            if kubeconfig.is_some() {
                return Err(cfg(
                    "server",
                    "give either `server` or `kubeconfig` (its context names the server)",
                ));
            }
            let rest = url
                .strip_prefix("https://")
                .or_else(|| url.strip_prefix("http://"))
                .ok_or_else(|| cfg("server", format!("{url:?} is not an http(s):// URL")))?;
            if rest.is_empty() || rest.contains(char::is_whitespace) {
                return Err(cfg("server", format!("{url:?} has no host")));
            }
        }
        let tls = TlsSettings {
            ca_file: s.text("ca_file").map(PathBuf::from),
            client_cert: s.text("client_cert").map(PathBuf::from),
            client_key: s.text("client_key").map(PathBuf::from),
            server_name: s.text("tls_server_name"),
        };
        if tls.client_cert.is_some() != tls.client_key.is_some() {
            let missing = if tls.client_cert.is_none() {
                "client_cert"
            } else {
                "client_key"
            };
            return Err(cfg(missing, "client_cert and client_key go together"));
        }
        if let Some(url) = &server
            && url.starts_with("http://")
            && tls.is_set()
        {
            return Err(cfg("server", "TLS settings need an https:// server"));
        }
        Ok(Self {
            cluster,
            cluster_label,
            label_selector,
            namespace,
            pod_name,
            keys,
            keepalive,
            kubeconfig,
            context,
            backoff_initial,
            backoff_max,
            watch_timeout_s,
            page_size,
            server,
            tls,
        })
    }
}

fn name_part_ok(s: &str, max: usize) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= max
        && b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.last().is_some_and(u8::is_ascii_alphanumeric)
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

fn check_label_value(v: &str) -> Result<(), String> {
    if name_part_ok(v, 63) {
        Ok(())
    } else {
        Err(format!(
            "{v:?} is not a label value: 1 to 63 characters of A-Z a-z 0-9 - _ ., starting and ending alphanumeric"
        ))
    }
}

fn check_dns_label(v: &str) -> Result<(), String> {
    let ok = !v.is_empty()
        && v.len() <= 63
        && v.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        && !v.starts_with('-')
        && !v.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{v:?} is not a DNS label: 1 to 63 characters of a-z 0-9 -"
        ))
    }
}

fn check_dns_subdomain(v: &str) -> Result<(), String> {
    if v.len() <= 253 && v.split('.').all(|l| check_dns_label(l).is_ok()) {
        Ok(())
    } else {
        Err(format!("{v:?} is not a DNS subdomain (a pod name)"))
    }
}

/// A label or annotation key: `[prefix/]name`.
fn check_key(k: &str) -> Result<(), String> {
    let (prefix, name) = match k.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    if let Some(p) = prefix
        && check_dns_subdomain(p).is_err()
    {
        return Err(format!("{k:?}: the prefix must be a DNS subdomain"));
    }
    if !name_part_ok(name, 63) {
        return Err(format!(
            "{k:?}: the name must be 1 to 63 characters of A-Z a-z 0-9 - _ ., starting and ending alphanumeric"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use cluster_core::settings::{invalid_field, pairs};

    fn parse(kv: &[(&str, &str)]) -> Result<KubernetesSettings, ProviderError> {
        KubernetesSettings::parse(&pairs(kv), |_| None, None)
    }

    /// R1.1: defaults, and every bad setting names its field.
    #[test]
    fn r1_1_settings_are_validated_per_field() {
        let s = parse(&[("cluster", "demo"), ("namespace", "apps")]).unwrap();
        assert_eq!(s.selector(), "cluster-provisioning.io/cluster=demo");
        assert_eq!(s.keepalive, Duration::from_millis(5_000));
        assert_eq!(s.pod_name, None);
        let bad: &[(&[(&str, &str)], &str)] = &[
            (&[("namespace", "apps")], "cluster"),
            (&[("cluster", "has space"), ("namespace", "a")], "cluster"),
            (&[("cluster", "c")], "namespace"),
            (&[("cluster", "c"), ("namespace", "Apps")], "namespace"),
            (
                &[("cluster", "c"), ("namespace", "a"), ("keepalive_ms", "0")],
                "keepalive_ms",
            ),
            (
                &[("cluster", "c"), ("namespace", "a"), ("keepalive_ms", "x")],
                "keepalive_ms",
            ),
            (
                &[
                    ("cluster", "c"),
                    ("namespace", "a"),
                    ("port_annotation", "bad key!"),
                ],
                "port_annotation",
            ),
            (
                &[("cluster", "c"), ("namespace", "a"), ("pod_name", "Pod_1")],
                "pod_name",
            ),
            (
                &[("cluster", "c"), ("namespace", "a"), ("keeplive_ms", "1")],
                "keeplive_ms",
            ),
            (
                &[("cluster", "c"), ("namespace", "a"), ("context", "x")],
                "context",
            ),
            (
                &[
                    ("cluster", "c"),
                    ("namespace", "a"),
                    ("client_cert", "c.pem"),
                ],
                "client_key",
            ),
            (
                &[
                    ("cluster", "c"),
                    ("namespace", "a"),
                    ("client_key", "k.pem"),
                ],
                "client_cert",
            ),
            (
                &[("cluster", "c"), ("namespace", "a"), ("server", "ftp://x")],
                "server",
            ),
            (
                &[
                    ("cluster", "c"),
                    ("namespace", "a"),
                    ("server", "https://x"),
                    ("kubeconfig", "k"),
                ],
                "server",
            ),
            (
                &[
                    ("cluster", "c"),
                    ("namespace", "a"),
                    ("server", "http://x"),
                    ("ca_file", "ca.pem"),
                ],
                "server",
            ),
            (
                &[
                    ("cluster", "c"),
                    ("namespace", "a"),
                    ("backoff_initial_ms", "100"),
                    ("backoff_max_ms", "10"),
                ],
                "backoff_max_ms",
            ),
        ];
        for (pairs, f) in bad {
            assert_eq!(
                invalid_field(&parse(pairs).unwrap_err()),
                Some(*f),
                "{pairs:?}"
            );
        }
    }

    /// The namespace comes from the setting, else the service-account file,
    /// else POD_NAMESPACE; the pod name from the setting, else POD_NAME.
    #[test]
    fn namespace_and_pod_name_fall_back_to_the_pod_environment() {
        let m: BTreeMap<String, String> = [("cluster".to_owned(), "c".to_owned())].into();
        let env = |k: &str| match k {
            "POD_NAME" => Some("node-0".to_owned()),
            "POD_NAMESPACE" => Some("from-env".to_owned()),
            _ => None,
        };
        let s = KubernetesSettings::parse(&m, env, Some("from-sa\n".into())).unwrap();
        assert_eq!(s.namespace, "from-sa");
        assert_eq!(s.pod_name.as_deref(), Some("node-0"));
        let s = KubernetesSettings::parse(&m, env, None).unwrap();
        assert_eq!(s.namespace, "from-env");
        let s = parse(&[
            ("cluster", "c"),
            ("namespace", "a"),
            ("label_selector", "app=web"),
        ])
        .unwrap();
        assert_eq!(s.selector(), "cluster-provisioning.io/cluster=c,app=web");
    }
}
