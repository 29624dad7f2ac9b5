//! [`EtcdConfig`]: the settings of one etcd provider, parsed and validated
//! from a descriptor's `settings` map.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use cluster_core::ProviderError;
use cluster_core::settings::Settings;

/// Default key prefix.
pub const DEFAULT_PREFIX: &str = "/cluster-provisioning";
/// Default lease TTL: a node that dies without deregistering disappears from
/// everyone's topology after at most this long.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(10);
/// Default keepalive: an unchanged snapshot is re-sent after this long, well
/// below the supervisor's 15 s silence timeout.
pub const DEFAULT_KEEPALIVE: Duration = Duration::from_millis(5_000);
/// Default bound of a TCP (and TLS) connection attempt.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_millis(3_000);
/// Default bound of one request (get, put, grant, keep-alive answer). It
/// must stay below a third of the lease TTL (see
/// [`EtcdConfig::validate`]): with the default 10 s lease, a keep-alive
/// that hangs for two request timeouts after its TTL/3 wait is noticed
/// 3.3 + 2 × 2 = 7.3 s after the last renewal, before the lease expires.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_millis(2_000);
/// Default bound of a whole first registration (connect, lease grant,
/// put): below the supervisor's default `register_timeout` (5 s), so the
/// provider answers with its own error rather than the supervisor's
/// timeout.
pub const DEFAULT_REGISTER_TIMEOUT: Duration = Duration::from_millis(4_000);
/// Default first delay before reconnecting after an error.
pub const DEFAULT_RETRY_INITIAL: Duration = Duration::from_millis(500);
/// Default longest delay between reconnection attempts.
pub const DEFAULT_RETRY_MAX: Duration = Duration::from_millis(10_000);

/// A user name and password for etcd's authentication. `Debug` never shows
/// the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The etcd user.
    pub user: String,
    /// Its password.
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// PEM files for TLS: the CA that signed etcd's certificate, and optionally
/// a client certificate and key (mutual TLS).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct TlsFiles {
    /// The CA certificate (PEM).
    pub ca: PathBuf,
    /// The client certificate (PEM), with `key`.
    pub cert: Option<PathBuf>,
    /// The client key (PEM), with `cert`.
    pub key: Option<PathBuf>,
    /// The name etcd's certificate must carry instead of the endpoint's
    /// host (`tls_server_name`).
    pub server_name: Option<String>,
}

/// The settings of one etcd provider. Build it with
/// [`from_settings`](Self::from_settings) (what the `etcd` kind does) or
/// with [`new`](Self::new) and the public fields.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct EtcdConfig {
    /// A name for logs and metric labels (the kind sets the provider id).
    pub name: String,
    /// etcd client URLs: `http://host:port`, `https://host:port` or
    /// `host:port`.
    pub endpoints: Vec<String>,
    /// Key prefix, starting with `/`, without a trailing `/`.
    pub prefix: String,
    /// The cluster name: members live under `<prefix>/<cluster>/members/`.
    pub cluster: String,
    /// TTL of the registration lease; the keep-alive runs every third of it.
    pub lease_ttl: Duration,
    /// Re-send an unchanged snapshot after this long.
    pub keepalive: Duration,
    /// Bound of one connection attempt.
    pub connect_timeout: Duration,
    /// Bound of one request; below a third of `lease_ttl`.
    pub request_timeout: Duration,
    /// Bound of a whole [`register`](cluster_core::ClusterProvider::register)
    /// call (connect, lease grant, put); the background task keeps trying
    /// after it.
    pub register_timeout: Duration,
    /// First delay before reconnecting after an error (doubles, ±20 %
    /// jitter).
    pub retry_initial: Duration,
    /// Longest delay between reconnection attempts.
    pub retry_max: Duration,
    /// etcd authentication, if enabled on the server.
    pub credentials: Option<Credentials>,
    /// TLS, if the server requires it.
    pub tls: Option<TlsFiles>,
}

impl EtcdConfig {
    /// A configuration with the defaults for everything but the endpoints
    /// and the cluster name.
    pub fn new(endpoints: Vec<String>, cluster: impl Into<String>) -> Self {
        Self {
            name: "etcd".into(),
            endpoints,
            prefix: DEFAULT_PREFIX.into(),
            cluster: cluster.into(),
            lease_ttl: DEFAULT_LEASE_TTL,
            keepalive: DEFAULT_KEEPALIVE,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            register_timeout: DEFAULT_REGISTER_TIMEOUT,
            retry_initial: DEFAULT_RETRY_INITIAL,
            retry_max: DEFAULT_RETRY_MAX,
            credentials: None,
            tls: None,
        }
    }

    /// The settings an `etcd` descriptor may have.
    pub const KNOWN_SETTINGS: &'static [&'static str] = &[
        "endpoints",
        "cluster",
        "prefix",
        "lease_ttl_s",
        "keepalive_ms",
        "connect_timeout_ms",
        "request_timeout_ms",
        "register_timeout_ms",
        "retry_initial_ms",
        "retry_max_ms",
        "user",
        "password",
        "tls_ca",
        "tls_cert",
        "tls_key",
        "tls_server_name",
    ];

    /// Parses the settings of an `etcd` descriptor (see the crate docs for
    /// the table). `default_cluster` is used when `cluster` is not set. A bad
    /// or missing setting, or one not in [`KNOWN_SETTINGS`](Self::KNOWN_SETTINGS)
    /// (a typo such as `passwd` would otherwise give an unauthenticated
    /// client), is `ProviderError::Config` naming the key.
    pub fn from_settings(
        settings: &BTreeMap<String, String>,
        default_cluster: Option<&str>,
    ) -> Result<Self, ProviderError> {
        let s = Settings::new(settings);
        s.check_known(Self::KNOWN_SETTINGS)?;
        let endpoints = s
            .list("endpoints")
            .ok_or_else(|| config("endpoints", "missing: comma-separated etcd client URLs"))?;
        let cluster = s
            .text("cluster")
            .or_else(|| default_cluster.map(str::to_owned))
            .ok_or_else(|| config("cluster", "missing: the cluster name"))?;
        let mut c = Self::new(endpoints, cluster);
        if let Some(p) = s.text("prefix") {
            c.prefix = p;
        }
        // The defaults are those of `new`, in the unit of each key.
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        c.lease_ttl = s.secs("lease_ttl_s", 2..=3_600, c.lease_ttl.as_secs())?;
        c.keepalive = s.millis("keepalive_ms", 100..=60_000, ms(c.keepalive))?;
        c.connect_timeout = s.millis("connect_timeout_ms", 10..=600_000, ms(c.connect_timeout))?;
        c.request_timeout = s.millis("request_timeout_ms", 10..=600_000, ms(c.request_timeout))?;
        c.register_timeout =
            s.millis("register_timeout_ms", 10..=600_000, ms(c.register_timeout))?;
        c.retry_initial = s.millis("retry_initial_ms", 1..=600_000, ms(c.retry_initial))?;
        c.retry_max = s.millis("retry_max_ms", 1..=600_000, ms(c.retry_max))?;
        // Exactly as written: white space may belong to a password.
        let get = |k: &str| s.raw(k);
        c.credentials = match (get("user"), get("password")) {
            (None, None) => None,
            (Some(user), Some(password)) => Some(Credentials {
                user: user.to_owned(),
                password: password.to_owned(),
            }),
            (Some(_), None) => return Err(config("password", "missing: `user` is set")),
            (None, Some(_)) => return Err(config("user", "missing: `password` is set")),
        };
        c.tls = match (
            s.text("tls_ca"),
            s.text("tls_cert"),
            s.text("tls_key"),
            s.text("tls_server_name"),
        ) {
            (None, None, None, None) => None,
            (None, _, _, _) => {
                return Err(config(
                    "tls_ca",
                    "missing: the CA certificate is required with tls_cert / tls_key / tls_server_name",
                ));
            }
            (Some(ca), cert, key, server_name) => Some(TlsFiles {
                ca: ca.into(),
                cert: cert.map(PathBuf::from),
                key: key.map(PathBuf::from),
                server_name,
            }),
        };
        c.validate()?;
        Ok(c)
    }

    /// Checks the fields; the error names the setting.
    pub fn validate(&self) -> Result<(), ProviderError> {
        if self.endpoints.is_empty() {
            return Err(config(
                "endpoints",
                "at least one etcd client URL is needed",
            ));
        }
        for e in &self.endpoints {
            let rest = e
                .strip_prefix("http://")
                .or_else(|| e.strip_prefix("https://"))
                .unwrap_or(e);
            if rest.is_empty() || rest.contains('/') || rest.chars().any(char::is_whitespace) {
                return Err(config(
                    "endpoints",
                    format!("{e:?} is not host:port, http://host:port or https://host:port"),
                ));
            }
            if e.starts_with("https://") && self.tls.is_none() {
                return Err(config(
                    "tls_ca",
                    format!("missing: endpoint {e:?} uses https"),
                ));
            }
            if e.starts_with("http://") && self.tls.is_some() {
                return Err(config(
                    "endpoints",
                    format!("{e:?} uses http but TLS is configured: use https:// or host:port"),
                ));
            }
        }
        if !self.prefix.starts_with('/')
            || self.prefix.ends_with('/')
            || self.prefix.contains("//")
            || self.prefix.chars().any(char::is_whitespace)
        {
            return Err(config(
                "prefix",
                format!(
                    "{:?} must start with '/', not end with '/', and contain no empty segment or space",
                    self.prefix
                ),
            ));
        }
        let cluster_ok = !self.cluster.is_empty()
            && self.cluster.len() <= 128
            && self
                .cluster
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !cluster_ok {
            return Err(config(
                "cluster",
                format!(
                    "{:?} must be 1 to 128 characters of A-Z a-z 0-9 . _ -",
                    self.cluster
                ),
            ));
        }
        if self.lease_ttl < Duration::from_secs(2) {
            return Err(config("lease_ttl_s", "must be at least 2 seconds"));
        }
        // A keep-alive is sent TTL/3 after the last renewal, and its send
        // and its answer may each take a request timeout before the failure
        // is noticed: TTL/3 + 2 × request_timeout must stay below the TTL.
        if self.request_timeout.saturating_mul(3) >= self.lease_ttl {
            return Err(config(
                "request_timeout_ms",
                format!(
                    "{} ms must be below a third of lease_ttl_s ({} ms), so that a hung \
                     keep-alive is noticed before the lease expires",
                    self.request_timeout.as_millis(),
                    (self.lease_ttl / 3).as_millis()
                ),
            ));
        }
        if self.retry_max < self.retry_initial {
            return Err(config(
                "retry_max_ms",
                "must not be smaller than retry_initial_ms",
            ));
        }
        if let Some(c) = &self.credentials
            && c.user.is_empty()
        {
            return Err(config("user", "must not be empty"));
        }
        if let Some(t) = &self.tls
            && t.cert.is_some() != t.key.is_some()
        {
            let missing = if t.cert.is_none() {
                "tls_cert"
            } else {
                "tls_key"
            };
            return Err(config(
                missing,
                "missing: a client certificate needs both tls_cert and tls_key",
            ));
        }
        Ok(())
    }

    /// The interval of the lease keep-alive: a third of the TTL, so that two
    /// keep-alives may be lost before the lease expires.
    pub fn lease_keepalive_interval(&self) -> Duration {
        self.lease_ttl / 3
    }
}

pub(crate) use cluster_core::settings::invalid as config;

#[cfg(test)]
mod tests {
    use super::*;
    use cluster_core::settings::{invalid_field, pairs as settings};

    #[test]
    fn r1_1_defaults_apply_and_every_bad_setting_names_its_key() {
        let c = EtcdConfig::from_settings(
            &settings(&[("endpoints", "127.0.0.1:2379, http://127.0.0.1:2380")]),
            Some("lab"),
        )
        .unwrap();
        assert_eq!(c.endpoints, ["127.0.0.1:2379", "http://127.0.0.1:2380"]);
        assert_eq!(c.prefix, DEFAULT_PREFIX);
        assert_eq!(c.cluster, "lab");
        assert_eq!(c.lease_ttl, DEFAULT_LEASE_TTL);
        assert_eq!(c.keepalive, DEFAULT_KEEPALIVE);
        assert_eq!(c.lease_keepalive_interval(), Duration::from_secs(10) / 3);

        let ep = ("endpoints", "127.0.0.1:2379");
        let cl = ("cluster", "lab");
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[cl], "endpoints"),
            (&[("endpoints", " , "), cl], "endpoints"),
            (&[("endpoints", "http://a:1/x"), cl], "endpoints"),
            (&[ep], "cluster"),
            (&[ep, ("cluster", "a/b")], "cluster"),
            (&[ep, cl, ("prefix", "no-slash")], "prefix"),
            (&[ep, cl, ("prefix", "/trailing/")], "prefix"),
            (&[ep, cl, ("lease_ttl_s", "1")], "lease_ttl_s"),
            (&[ep, cl, ("lease_ttl_s", "ten")], "lease_ttl_s"),
            (&[ep, cl, ("keepalive_ms", "0")], "keepalive_ms"),
            (
                &[ep, cl, ("connect_timeout_ms", "-1")],
                "connect_timeout_ms",
            ),
            (&[ep, cl, ("request_timeout_ms", "")], "request_timeout_ms"),
            (&[ep, cl, ("retry_initial_ms", "x")], "retry_initial_ms"),
            (
                &[ep, cl, ("retry_initial_ms", "100"), ("retry_max_ms", "50")],
                "retry_max_ms",
            ),
            (&[ep, cl, ("user", "u")], "password"),
            (&[ep, cl, ("password", "p")], "user"),
            (&[ep, cl, ("tls_cert", "c.pem")], "tls_ca"),
            (
                &[ep, cl, ("tls_ca", "ca.pem"), ("tls_cert", "c.pem")],
                "tls_key",
            ),
            (&[("endpoints", "https://a:1"), cl], "tls_ca"),
            (
                &[("endpoints", "http://a:1"), cl, ("tls_ca", "ca.pem")],
                "endpoints",
            ),
            (
                &[ep, cl, ("register_timeout_ms", "0")],
                "register_timeout_ms",
            ),
            // A third of the default 10 s TTL is 3333 ms.
            (
                &[ep, cl, ("request_timeout_ms", "3334")],
                "request_timeout_ms",
            ),
            (
                &[ep, cl, ("lease_ttl_s", "3"), ("request_timeout_ms", "1000")],
                "request_timeout_ms",
            ),
        ];
        for (pairs, field) in cases {
            let e = EtcdConfig::from_settings(&settings(pairs), None).unwrap_err();
            assert_eq!(e.code(), "provider.config");
            assert_eq!(invalid_field(&e), Some(*field), "{pairs:?}");
        }
    }

    #[test]
    fn r1_1_unknown_settings_are_refused_naming_the_key() {
        // A typo of `password` must not give an unauthenticated client.
        let e = EtcdConfig::from_settings(
            &settings(&[
                ("endpoints", "127.0.0.1:2379"),
                ("cluster", "lab"),
                ("user", "svc"),
                ("passwd", "hunter2-secret"),
            ]),
            None,
        )
        .unwrap_err();
        assert_eq!(e.code(), "provider.config");
        assert!(e.to_string().contains("unknown setting"), "{e}");
        assert!(!e.to_string().contains("hunter2-secret"), "{e}");
        assert_eq!(invalid_field(&e), Some("passwd"));
        // Every documented setting is known.
        let all: Vec<(&str, &str)> = EtcdConfig::KNOWN_SETTINGS
            .iter()
            .map(|k| match *k {
                "endpoints" => (*k, "https://127.0.0.1:2379"),
                "cluster" => (*k, "lab"),
                "prefix" => (*k, "/p"),
                "lease_ttl_s" => (*k, "30"),
                "user" | "password" => (*k, "x"),
                "tls_ca" | "tls_cert" | "tls_key" => (*k, "f.pem"),
                "tls_server_name" => (*k, "etcd.example"),
                _ => (*k, "1000"),
            })
            .collect();
        let c = EtcdConfig::from_settings(&settings(&all), None).unwrap();
        assert_eq!(c.register_timeout, Duration::from_millis(1000));
    }

    #[test]
    fn p5_the_defaults_keep_a_hung_keep_alive_within_the_lease() {
        let c = EtcdConfig::new(vec!["127.0.0.1:2379".into()], "lab");
        c.validate().unwrap();
        // TTL/3 + 2 × request_timeout: the longest a failed keep-alive
        // goes unnoticed.
        assert!(c.lease_keepalive_interval() + c.request_timeout * 2 < c.lease_ttl);
        // The whole first registration answers before the supervisor's
        // default register_timeout (5 s).
        assert!(c.register_timeout < Duration::from_secs(5));
    }

    #[test]
    fn the_password_never_shows_in_debug_output() {
        let c = EtcdConfig::from_settings(
            &settings(&[
                ("endpoints", "127.0.0.1:2379"),
                ("cluster", "lab"),
                ("user", "svc"),
                ("password", "hunter2-secret"),
            ]),
            None,
        )
        .unwrap();
        let shown = format!("{c:?} {c:#?}");
        assert!(shown.contains("svc"), "{shown}");
        assert!(!shown.contains("hunter2-secret"), "{shown}");
        assert!(shown.contains("<redacted>"));
    }
}
