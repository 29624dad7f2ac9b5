//! [`ConsulConfig`]: what a Consul provider needs, from descriptor settings
//! and the usual `CONSUL_*` environment variables.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use cluster_core::ProviderError;
use cluster_core::settings::Settings;
use reqwest::Url;

/// An ACL token. Its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// TLS material for an `https` agent address.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM CA bundle that verifies the agent (`CONSUL_CACERT`); without it
    /// the platform's trust store is used.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate chain (`CONSUL_CLIENT_CERT`).
    pub client_cert: Option<PathBuf>,
    /// PEM client private key (`CONSUL_CLIENT_KEY`).
    pub client_key: Option<PathBuf>,
    /// The name the agent's certificate must carry instead of the
    /// address's host (`CONSUL_TLS_SERVER_NAME`), e.g.
    /// `server.dc1.consul` for an agent reached by IP address.
    pub server_name: Option<String>,
}

/// Everything a [`ConsulProvider`](crate::ConsulProvider) needs. Build it
/// with [`ConsulConfig::new`] and adjust the public fields, or from
/// descriptor settings with [`ConsulConfig::from_settings`].
#[derive(Clone, Debug)]
pub struct ConsulConfig {
    /// The agent's base URL (`http://127.0.0.1:8500`).
    pub address: Url,
    /// ACL token sent as `X-Consul-Token`.
    pub token: Option<Token>,
    /// The Consul service name the cluster's members register under.
    pub service: String,
    /// `?dc=` on health queries (default: the agent's datacenter).
    pub datacenter: Option<String>,
    /// Tags of the registration.
    pub tags: Vec<String>,
    /// TTL of the registration's check; it is passed every `ttl / 3`.
    pub ttl: Duration,
    /// `DeregisterCriticalServiceAfter` of the check.
    pub deregister_after: Duration,
    /// `wait` of each blocking query: also the keepalive period of the watch.
    pub wait: Duration,
    /// Bound of every non-blocking call, and the margin added to `wait` for
    /// blocking ones.
    pub request_timeout: Duration,
    /// A blocking query that returns sooner than this without a new index is
    /// followed by a pause up to this long (no spinning).
    pub min_query_interval: Duration,
    /// First retry delay after an error (doubling, with jitter).
    pub retry_min: Duration,
    /// Largest retry delay.
    pub retry_max: Duration,
    /// TLS material (used when `address` is `https`).
    pub tls: TlsFiles,
}

impl ConsulConfig {
    /// A configuration with the defaults of the settings table.
    pub fn new(address: Url, service: impl Into<String>) -> Self {
        Self {
            address,
            token: None,
            service: service.into(),
            datacenter: None,
            tags: Vec::new(),
            ttl: Duration::from_secs(10),
            deregister_after: Duration::from_secs(60),
            wait: Duration::from_secs(5),
            request_timeout: Duration::from_secs(5),
            min_query_interval: Duration::from_millis(200),
            retry_min: Duration::from_secs(2),
            retry_max: Duration::from_secs(30),
            tls: TlsFiles::default(),
        }
    }

    /// Reads descriptor settings, falling back to `env` for the `CONSUL_*`
    /// variables (pass `|k| std::env::var(k).ok()` for the process
    /// environment). Every bad value is a `ProviderError::Config` naming
    /// the setting.
    pub fn from_settings(
        settings: &BTreeMap<String, String>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ProviderError> {
        let s = Settings::new(settings).with_env(env, ENV);
        s.check_known(KNOWN)?;
        let ssl = s.switch("ssl", false)?;
        let address = parse_address(
            &s.text("address").unwrap_or_else(|| "127.0.0.1:8500".into()),
            ssl,
        )?;
        let service = s
            .text("service")
            .or_else(|| s.text("cluster"))
            .ok_or_else(|| {
                config(
                    "service",
                    "missing: set `service` (or `cluster`) to the Consul service name",
                )
            })?;
        if service.is_empty()
            || service.len() > 63
            || !service
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(config(
                "service",
                format!("{service:?} must be 1 to 63 characters of A-Z, a-z, 0-9, '-', '_'"),
            ));
        }
        let token = match s.text("token") {
            Some(t) => Some(Token::new(t)),
            None => match s.text("token_file") {
                None => None,
                Some(path) => {
                    let t = std::fs::read_to_string(&path)
                        .map_err(|e| config("token_file", format!("cannot read {path:?}: {e}")))?;
                    Some(Token::new(t.trim()))
                }
            },
        };
        let mut c = Self::new(address, service);
        c.token = token;
        c.datacenter = s.text("datacenter");
        c.tags = s.list("tags").unwrap_or_default();
        c.ttl = s.secs("ttl_s", 1..=3600, 10)?;
        c.deregister_after = s.secs("deregister_after_s", 1..=86_400, 60)?;
        c.wait = s.millis("wait_ms", 10..=600_000, 5_000)?;
        c.request_timeout = s.millis("request_timeout_ms", 10..=600_000, 5_000)?;
        c.min_query_interval = s.millis("min_query_interval_ms", 10..=60_000, 200)?;
        c.retry_min = s.millis("retry_min_ms", 1..=600_000, 2_000)?;
        c.retry_max = s.millis("retry_max_ms", 1..=3_600_000, 30_000)?;
        if c.retry_max < c.retry_min {
            return Err(config("retry_max_ms", "must not be below retry_min_ms"));
        }
        c.tls = TlsFiles {
            ca_file: s.text("ca_file").map(PathBuf::from),
            client_cert: s.text("client_cert").map(PathBuf::from),
            client_key: s.text("client_key").map(PathBuf::from),
            server_name: s.text("tls_server_name"),
        };
        if c.tls.client_cert.is_some() != c.tls.client_key.is_some() {
            return Err(config(
                "client_key",
                "client_cert and client_key go together",
            ));
        }
        Ok(c)
    }
}

pub(crate) use cluster_core::settings::invalid as config;

/// The settings a `consul` descriptor may have.
const KNOWN: &[&str] = &[
    "address",
    "ssl",
    "token",
    "token_file",
    "service",
    "cluster",
    "datacenter",
    "tags",
    "ttl_s",
    "deregister_after_s",
    "wait_ms",
    "request_timeout_ms",
    "min_query_interval_ms",
    "retry_min_ms",
    "retry_max_ms",
    "ca_file",
    "client_cert",
    "client_key",
    "tls_server_name",
];

/// The settings that fall back to Consul's own environment variables.
const ENV: &[(&str, &str)] = &[
    ("address", "CONSUL_HTTP_ADDR"),
    ("ssl", "CONSUL_HTTP_SSL"),
    ("token", "CONSUL_HTTP_TOKEN"),
    ("token_file", "CONSUL_HTTP_TOKEN_FILE"),
    ("ca_file", "CONSUL_CACERT"),
    ("client_cert", "CONSUL_CLIENT_CERT"),
    ("client_key", "CONSUL_CLIENT_KEY"),
    ("tls_server_name", "CONSUL_TLS_SERVER_NAME"),
];

/// `host:port` (scheme from `ssl`) or `http(s)://host:port`.
fn parse_address(v: &str, ssl: bool) -> Result<Url, ProviderError> {
    let v = v.trim();
    let with_scheme = if v.contains("://") {
        v.to_owned()
    } else if ssl {
        format!("https://{v}")
    } else {
        format!("http://{v}")
    };
    let url = Url::parse(&with_scheme).map_err(|e| config("address", format!("{v:?}: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(config(
            "address",
            format!("{v:?}: only http and https agents are supported"),
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(config("address", format!("{v:?} has no host")));
    }
    if url.path() != "/" || url.query().is_some() {
        return Err(config(
            "address",
            format!("{v:?} must not carry a path or query"),
        ));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cluster_core::settings::{invalid_field, pairs as settings};

    #[test]
    fn r1_1_bad_settings_name_the_field() {
        let none = |_: &str| None;
        for (kv, field) in [
            (vec![], "service"),
            (vec![("service", "a b")], "service"),
            (vec![("service", "s"), ("ttl_s", "0")], "ttl_s"),
            (vec![("service", "s"), ("wait_ms", "x")], "wait_ms"),
            (vec![("service", "s"), ("address", "ftp://h")], "address"),
            (
                vec![("service", "s"), ("address", "http://h:1/path")],
                "address",
            ),
            (vec![("service", "s"), ("bogus", "1")], "bogus"),
            (vec![("service", "s"), ("client_cert", "/c")], "client_key"),
            (
                vec![
                    ("service", "s"),
                    ("retry_min_ms", "10"),
                    ("retry_max_ms", "5"),
                ],
                "retry_max_ms",
            ),
        ] {
            let e = ConsulConfig::from_settings(&settings(&kv), &none).unwrap_err();
            assert_eq!(e.code(), "provider.config");
            assert_eq!(invalid_field(&e), Some(field), "{kv:?}");
        }
    }

    #[test]
    fn p2_env_fills_address_token_and_ssl_settings_win() {
        let env = |k: &str| match k {
            "CONSUL_HTTP_ADDR" => Some("consul.example:8501".to_owned()),
            "CONSUL_HTTP_SSL" => Some("true".to_owned()),
            "CONSUL_HTTP_TOKEN" => Some("s3cret".to_owned()),
            _ => None,
        };
        let c = ConsulConfig::from_settings(&settings(&[("cluster", "lab")]), &env).unwrap();
        assert_eq!(c.address.as_str(), "https://consul.example:8501/");
        assert_eq!(c.service, "lab");
        assert_eq!(c.token.as_ref().map(Token::expose), Some("s3cret"));
        assert!(
            !format!("{c:?}").contains("s3cret"),
            "token redacted in Debug"
        );
        let c = ConsulConfig::from_settings(
            &settings(&[
                ("service", "svc"),
                ("address", "http://127.0.0.1:1"),
                ("token", "t2"),
            ]),
            &env,
        )
        .unwrap();
        assert_eq!(c.address.as_str(), "http://127.0.0.1:1/");
        assert_eq!(c.token.as_ref().map(Token::expose), Some("t2"));
        let c = ConsulConfig::from_settings(&settings(&[("service", "svc")]), &|_| None).unwrap();
        assert_eq!(c.address.as_str(), "http://127.0.0.1:8500/");
        assert_eq!(
            (c.ttl, c.deregister_after, c.wait),
            (
                Duration::from_secs(10),
                Duration::from_secs(60),
                Duration::from_secs(5)
            )
        );
    }
}
