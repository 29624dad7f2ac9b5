//! The HTTP side: one `reqwest` client (rustls with the `ring` provider), the
//! token header, timeouts, and the mapping of transport failures.

use std::sync::Arc;
use std::time::Duration;

use cluster_core::ProviderError;
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode, Url};

use crate::config::{ConsulConfig, config};

/// Largest answer body read from the agent (a health answer for thousands
/// of instances is a few MiB).
pub(crate) const MAX_BODY: usize = 32 * 1024 * 1024;

/// A transport failure, before it is given a [`ProviderError`] variant by
/// the caller.
#[derive(Debug)]
pub(crate) enum CallError {
    /// Could not connect, or no answer in time.
    Unreachable(String),
    /// The exchange broke after it started (connection closed, body cut).
    Broken(String),
    /// The TLS handshake failed: reported as `provider.connectivity` with
    /// the `tls.*` reason in the message.
    Tls(String),
}

impl CallError {
    pub(crate) fn message(&self) -> &str {
        match self {
            Self::Unreachable(m) | Self::Broken(m) | Self::Tls(m) => m,
        }
    }

    /// As registration and deregistration report it: an agent that cannot
    /// be reached is `provider.connectivity` (failover's business, not a
    /// validation failure that counts towards suppression), a broken
    /// exchange is `provider.registration`.
    pub(crate) fn into_registration_error(self) -> ProviderError {
        match self {
            Self::Unreachable(m) | Self::Tls(m) => ProviderError::Connectivity(m),
            Self::Broken(m) => ProviderError::Registration(m),
        }
    }

    /// As the watch reports it.
    pub(crate) fn into_watch_error(self) -> ProviderError {
        match self {
            Self::Unreachable(m) | Self::Tls(m) => ProviderError::Connectivity(m),
            Self::Broken(m) => ProviderError::Stream(m),
        }
    }
}

/// An answer: status, headers, body.
pub(crate) struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    /// The body as text for error messages (bounded).
    pub fn text(&self) -> String {
        let s = String::from_utf8_lossy(&self.body);
        let s = s.trim();
        if s.len() > 300 {
            let mut end = 300;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            format!("{}...", &s[..end])
        } else {
            s.to_owned()
        }
    }
}

/// A configured client for one agent. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Http {
    client: reqwest::Client,
    base: Url,
    token: Option<HeaderValue>,
    pub request_timeout: Duration,
    /// The TLS configuration of an `https` agent, for [`diagnose`](Self::diagnose).
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl std::fmt::Debug for Http {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http")
            .field("base", &self.base.as_str())
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

fn describe(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(x) = src {
        s.push_str(": ");
        s.push_str(&x.to_string());
        src = x.source();
    }
    s
}

/// The setting names of this kind's TLS files.
const TLS_FIELDS: provider_tls::Fields = provider_tls::Fields {
    ca: "ca_file",
    cert: "client_cert",
    key: "client_key",
    server_name: "tls_server_name",
};

fn tls_config(c: &ConsulConfig) -> Result<rustls::ClientConfig, ProviderError> {
    if c.address.scheme() != "https" {
        // Plain http: the TLS configuration is never used, its files are
        // not read.
        return rustls::ClientConfig::builder_with_provider(provider_tls::ring_provider())
            .with_safe_default_protocol_versions()
            .map(|b| {
                b.with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth()
            })
            .map_err(|e| config("address", format!("TLS setup: {e}")));
    }
    let files = provider_tls::ClientFiles {
        ca: c.tls.ca_file.as_deref(),
        identity: c
            .tls
            .client_cert
            .as_deref()
            .zip(c.tls.client_key.as_deref()),
        server_name: c.tls.server_name.as_deref(),
    };
    provider_tls::client_config(files, TLS_FIELDS, |provider| {
        let verifier = rustls_platform_verifier::Verifier::new(provider)
            .map_err(|e| config("ca_file", format!("platform trust store: {e}")))?;
        Ok(Arc::new(verifier) as Arc<dyn rustls::client::danger::ServerCertVerifier>)
    })
}

impl Http {
    pub fn new(c: &ConsulConfig) -> Result<Self, ProviderError> {
        let tls = Arc::new(tls_config(c)?);
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured((*tls).clone())
            .connect_timeout(c.request_timeout)
            .no_proxy()
            .user_agent(concat!("provider-consul/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| config("address", format!("HTTP client: {}", describe(&e))))?;
        let base = c.address.clone();
        let token = match &c.token {
            None => None,
            Some(t) => {
                let mut v = HeaderValue::from_str(t.expose())
                    .map_err(|_| config("token", "contains characters not allowed in a header"))?;
                v.set_sensitive(true);
                Some(v)
            }
        };
        Ok(Self {
            client,
            base,
            token,
            request_timeout: c.request_timeout,
            tls: (c.address.scheme() == "https").then_some(tls),
        })
    }

    /// The agent's base URL (no secret in it).
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// `base` + path segments, each escaped.
    pub fn url(&self, segments: &[&str]) -> Url {
        let mut u = self.base.clone();
        if let Ok(mut p) = u.path_segments_mut() {
            p.pop_if_empty();
            p.extend(segments);
        }
        u
    }

    /// A failed exchange with an `https` agent whose reason the HTTP client
    /// lost (a Go server refusing the client certificate just closes the
    /// connection) gets it from one handshake of our own (issue 14).
    async fn diagnose(&self, e: CallError) -> CallError {
        let (Some(config), CallError::Unreachable(m) | CallError::Broken(m)) = (&self.tls, &e)
        else {
            return e;
        };
        let (Some(host), Some(port)) = (self.base.host_str(), self.base.port_or_known_default())
        else {
            return e;
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let Ok(name) = provider_tls::ServerName::try_from(host.to_owned()) else {
            return e;
        };
        let bound = self.request_timeout.min(Duration::from_secs(2));
        match provider_tls::probe(&format!("{host}:{port}"), name, config.clone(), bound).await {
            Some(f) => CallError::Tls(provider_tls::message(f, self.base.as_str(), m)),
            None => e,
        }
    }

    /// One exchange, bounded by `timeout`.
    pub async fn call(
        &self,
        method: Method,
        url: Url,
        body: Option<Vec<u8>>,
        timeout: Duration,
    ) -> Result<Answer, CallError> {
        let what = format!("{method} {}", url.path());
        let mut req = self.client.request(method, url).timeout(timeout);
        if let Some(t) = &self.token {
            req = req.header("X-Consul-Token", t.clone());
        }
        if let Some(b) = body {
            req = req.header("Content-Type", "application/json").body(b);
        }
        let classify = |e: reqwest::Error| {
            // A refused handshake is reported as such (issue 14): the
            // reason says which certificate check failed. With TLS 1.3 a
            // refused client certificate only shows on the first read, so
            // this comes before the connect/exchange split.
            if let Some(f) = provider_tls::TlsFailure::of(&e) {
                return CallError::Tls(provider_tls::message(
                    f,
                    self.base.as_str(),
                    &format!("{what}: {}", describe(&e)),
                ));
            }
            if e.is_timeout() {
                CallError::Unreachable(format!(
                    "{what}: no answer from {} within {timeout:?}",
                    self.base
                ))
            } else if e.is_connect() {
                CallError::Unreachable(format!(
                    "{what}: cannot connect to {}: {}",
                    self.base,
                    describe(&e)
                ))
            } else {
                CallError::Broken(format!("{what}: {}", describe(&e)))
            }
        };
        let mut resp = match req.send().await {
            Ok(r) => r,
            Err(e) => return Err(self.diagnose(classify(e)).await),
        };
        let status = resp.status();
        let headers = resp.headers().clone();
        // Read the body chunk by chunk so that a runaway answer is cut off
        // at MAX_BODY instead of filling memory.
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(classify)? {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(CallError::Broken(format!(
                    "{what}: answer larger than {MAX_BODY} bytes"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Answer {
            status,
            headers,
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn https(f: impl FnOnce(&mut ConsulConfig)) -> Result<Http, ProviderError> {
        let mut c = ConsulConfig::new(
            Url::parse("https://consul.example:8501").expect("url"),
            "svc",
        );
        f(&mut c);
        Http::new(&c)
    }

    fn field(r: Result<Http, ProviderError>) -> String {
        match r {
            Err(ProviderError::Config { field, .. }) => field,
            Err(other) => panic!("not a config error: {other}"),
            Ok(_) => panic!("accepted"),
        }
    }

    #[test]
    fn p2_tls_files_are_checked_when_the_client_is_built() {
        let dir = std::env::temp_dir().join(format!("provider-consul-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").expect("write");
        assert_eq!(
            field(https(|c| c.tls.ca_file = Some(dir.join("missing.pem")))),
            "ca_file"
        );
        assert_eq!(
            field(https(|c| c.tls.ca_file = Some(empty.clone()))),
            "ca_file"
        );
        assert_eq!(
            field(https(|c| {
                c.tls.client_cert = Some(dir.join("missing-cert.pem"));
                c.tls.client_key = Some(dir.join("missing-key.pem"));
            })),
            "client_cert"
        );
        // Plain http never reads TLS files.
        let mut c = ConsulConfig::new(Url::parse("http://127.0.0.1:8500").expect("url"), "svc");
        c.tls.ca_file = Some(dir.join("missing.pem"));
        assert!(Http::new(&c).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn urls_escape_segments_and_debug_hides_the_token() {
        let mut c = ConsulConfig::new(Url::parse("http://127.0.0.1:8500").expect("url"), "svc");
        c.token = Some(crate::Token::new("s3cr3t"));
        let h = Http::new(&c).expect("client");
        assert_eq!(
            h.url(&["v1", "agent", "service", "deregister", "n/x:1-2"])
                .as_str(),
            "http://127.0.0.1:8500/v1/agent/service/deregister/n%2Fx:1-2"
        );
        assert!(!format!("{h:?}").contains("s3cr3t"));
    }
}
