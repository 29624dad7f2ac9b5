//! [`Connection`]: one lazily connected etcd client shared by registration
//! and watch, every call bounded by a timeout, and the mapping of etcd
//! errors to the stable [`ProviderError`] codes.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use cluster_core::ProviderError;
use etcd_client::{Certificate, Client, ConnectOptions, Identity, TlsOptions};
use tokio::sync::Mutex;

use crate::config::{self as settings, EtcdConfig};

/// The setting names of this kind's TLS files.
const TLS_FIELDS: provider_tls::Fields = provider_tls::Fields {
    ca: "tls_ca",
    cert: "tls_cert",
    key: "tls_key",
    server_name: "tls_server_name",
};

/// What a call was doing: decides the error class of failures that are not
/// connectivity or authorization.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Op {
    /// Connecting and authenticating.
    Connect,
    /// A read (connectivity check, snapshot get).
    Read,
    /// The watch stream.
    Watch,
    /// Lease grant, put, keep-alive.
    Register,
    /// Delete, revoke.
    Deregister,
}

/// A client connected on first use. The etcd client reconnects by itself
/// (it keeps a balanced gRPC channel over the endpoints), so one client
/// serves the provider's whole life.
pub(crate) struct Connection {
    pub(crate) config: Arc<EtcdConfig>,
    tls: Option<TlsOptions>,
    /// The same TLS setup as rustls sees it, for [`diagnose`](Self::diagnose).
    probe: Option<Arc<provider_tls::rustls::ClientConfig>>,
    client: Mutex<Option<Client>>,
}

impl Connection {
    /// Reads the TLS files now, so a missing file is a setting error at
    /// acceptance rather than a connection error later.
    pub(crate) fn new(config: Arc<EtcdConfig>) -> Result<Self, ProviderError> {
        let mut probe = None;
        let tls = match &config.tls {
            None => None,
            Some(files) => {
                // Parsed once with rustls (ring) so that a file without a
                // certificate, a key that does not go with its certificate
                // or a bad server name is a setting error naming the key
                // now, not an opaque handshake failure later.
                let checked = provider_tls::client_config(
                    provider_tls::ClientFiles {
                        ca: Some(&files.ca),
                        identity: files.cert.as_deref().zip(files.key.as_deref()),
                        server_name: files.server_name.as_deref(),
                    },
                    TLS_FIELDS,
                    |_| Err(settings::config("tls_ca", "missing")),
                )?;
                probe = Some(Arc::new(checked));
                let read = |field: &str, path: &std::path::Path| {
                    std::fs::read(path).map_err(|e| {
                        settings::config(field, format!("cannot read {}: {e}", path.display()))
                    })
                };
                let mut tls = TlsOptions::new()
                    .ca_certificate(Certificate::from_pem(read("tls_ca", &files.ca)?));
                if let (Some(cert), Some(key)) = (&files.cert, &files.key) {
                    tls = tls.identity(Identity::from_pem(
                        read("tls_cert", cert)?,
                        read("tls_key", key)?,
                    ));
                }
                if let Some(name) = &files.server_name {
                    tls = tls.domain_name(name.clone());
                }
                Some(tls)
            }
        };
        Ok(Self {
            config,
            tls,
            probe,
            client: Mutex::new(None),
        })
    }

    fn options(&self) -> ConnectOptions {
        let c = &self.config;
        let mut o = ConnectOptions::new()
            .with_connect_timeout(c.connect_timeout)
            // HTTP/2 pings find a connection that died silently under the
            // watch or lease streams. etcd refuses pings more often than
            // every 5 s, and pings without an open stream.
            .with_keep_alive(Duration::from_secs(10), c.request_timeout)
            .with_keep_alive_while_idle(false);
        if let Some(cred) = &c.credentials {
            o = o
                .with_user(cred.user.clone(), cred.password.clone())
                .with_auto_token_refresh(true);
        }
        if let Some(tls) = &self.tls {
            o = o.with_tls(tls.clone());
        }
        o
    }

    /// The client, connecting (and authenticating) on first use.
    pub(crate) async fn client(&self) -> Result<Client, ProviderError> {
        let mut slot = self.client.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let bound = self.config.connect_timeout + self.config.request_timeout;
        let connect = Client::connect(self.config.endpoints.clone(), Some(self.options()));
        let client = match tokio::time::timeout(bound, connect).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return Err(self.diagnose(classify(&e, Op::Connect)).await),
            Err(_) => {
                return Err(ProviderError::Connectivity(format!(
                    "no answer from {} within {bound:?}",
                    self.config.endpoints.join(",")
                )));
            }
        };
        *slot = Some(client.clone());
        Ok(client)
    }

    /// Runs one request on the client, bounded by the request timeout (the
    /// client waits for a reachable endpoint without limit by itself).
    pub(crate) async fn call<T, F, Fut>(&self, op: Op, f: F) -> Result<T, ProviderError>
    where
        F: FnOnce(Client) -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let client = self.client().await?;
        let bound = self.config.request_timeout;
        match tokio::time::timeout(bound, f(client)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(self.diagnose(classify(&e, op)).await),
            Err(_) => Err(timed_out(&self.config, bound)),
        }
    }

    /// A connectivity error over TLS whose reason the gRPC client lost (a
    /// Go server refusing the client certificate only closes the
    /// connection) gets it from one handshake of our own with the first
    /// endpoint (issue 14): `[tls.client_cert_refused]` and the like.
    pub(crate) async fn diagnose(&self, e: ProviderError) -> ProviderError {
        let (Some(config), ProviderError::Connectivity(msg)) = (&self.probe, &e) else {
            return e;
        };
        if msg.contains("[tls.") {
            return e;
        }
        let Some(endpoint) = self.config.endpoints.first() else {
            return e;
        };
        let addr = endpoint
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .to_owned();
        let host = match &self.config.tls.as_ref().and_then(|t| t.server_name.clone()) {
            Some(name) => name.clone(),
            None => match addr.rsplit_once(':') {
                Some((h, _)) => h.trim_start_matches('[').trim_end_matches(']').to_owned(),
                None => addr.clone(),
            },
        };
        let Ok(name) = provider_tls::ServerName::try_from(host) else {
            return e;
        };
        let bound = self.config.connect_timeout.min(Duration::from_secs(2));
        match provider_tls::probe(&addr, name, config.clone(), bound).await {
            Some(f) => ProviderError::Connectivity(provider_tls::message(f, endpoint, msg)),
            None => e,
        }
    }
}

pub(crate) fn timed_out(config: &EtcdConfig, bound: Duration) -> ProviderError {
    ProviderError::Connectivity(format!(
        "no answer from {} within {bound:?}",
        config.endpoints.join(",")
    ))
}

/// Maps an etcd client error to the stable codes: unreachable →
/// `provider.connectivity`, refused credentials or permissions →
/// `provider.auth`, anything else by what was being done.
pub(crate) fn classify(e: &etcd_client::Error, op: Op) -> ProviderError {
    use etcd_client::Error as E;
    use tonic::Code;
    // A refused TLS handshake, wherever the client put it (a transport
    // error, or an `Unavailable` status carrying it), says why (issue 14).
    if let Some(f) = provider_tls::TlsFailure::of(e) {
        let detail = provider_tls::chain_text(e);
        return ProviderError::Connectivity(provider_tls::message(f, "etcd", &detail));
    }
    let other = |msg: String| match op {
        Op::Connect | Op::Read => ProviderError::Protocol(msg),
        Op::Watch => ProviderError::Stream(msg),
        Op::Register | Op::Deregister => ProviderError::Registration(msg),
    };
    match e {
        E::GRpcStatus(s) => {
            let msg = s.message();
            let auth_words = ["authentication failed", "invalid auth token", "user name"]
                .iter()
                .any(|w| msg.contains(w));
            match s.code() {
                Code::Unauthenticated => {
                    ProviderError::Auth(format!("etcd refused the credentials: {msg}"))
                }
                Code::PermissionDenied => ProviderError::Auth(format!(
                    "the etcd user lacks a permission on the prefix ({msg}); see docs/providers/etcd.md, RBAC"
                )),
                _ if auth_words => {
                    ProviderError::Auth(format!("etcd refused the credentials: {msg}"))
                }
                Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled => {
                    ProviderError::Connectivity(format!("etcd unavailable: {msg}"))
                }
                Code::Unknown if msg.contains("transport") || msg.contains("connect") => {
                    ProviderError::Connectivity(format!("etcd unavailable: {msg}"))
                }
                code => other(format!("etcd answered {code:?}: {msg}")),
            }
        }
        E::TransportError(t) => ProviderError::Connectivity(format!("etcd transport: {t}")),
        E::IoError(io) => ProviderError::Connectivity(format!("etcd io: {io}")),
        E::EndpointError(m) => ProviderError::Connectivity(format!("etcd endpoint: {m}")),
        E::InvalidArgs(m) => settings::config("endpoints", m.clone()),
        E::InvalidUri(u) => settings::config("endpoints", u.to_string()),
        e => other(e.to_string()),
    }
}

/// Whether `e` says the lease is gone (expired, revoked, or a new etcd).
pub(crate) fn is_lease_not_found(e: &etcd_client::Error) -> bool {
    matches!(e, etcd_client::Error::GRpcStatus(s) if s.message().contains("requested lease not found"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: tonic::Code, msg: &str) -> etcd_client::Error {
        etcd_client::Error::GRpcStatus(tonic::Status::new(code, msg))
    }

    #[test]
    fn r5_5_etcd_errors_map_to_the_stable_codes() {
        use tonic::Code;
        let cases = [
            (
                status(Code::Unavailable, "connection refused"),
                Op::Read,
                "provider.connectivity",
            ),
            (
                status(Code::DeadlineExceeded, "x"),
                Op::Register,
                "provider.connectivity",
            ),
            (
                status(Code::Unauthenticated, "x"),
                Op::Read,
                "provider.auth",
            ),
            (
                status(Code::PermissionDenied, "etcdserver: permission denied"),
                Op::Watch,
                "provider.auth",
            ),
            (
                status(
                    Code::InvalidArgument,
                    "etcdserver: authentication failed, invalid user ID or password",
                ),
                Op::Connect,
                "provider.auth",
            ),
            (
                status(Code::OutOfRange, "required revision has been compacted"),
                Op::Watch,
                "provider.stream",
            ),
            (
                status(Code::NotFound, "etcdserver: requested lease not found"),
                Op::Register,
                "provider.registration",
            ),
            (
                status(Code::InvalidArgument, "bad"),
                Op::Read,
                "provider.protocol",
            ),
            (
                etcd_client::Error::InvalidArgs("empty endpoints".into()),
                Op::Connect,
                "provider.config",
            ),
            (
                etcd_client::Error::WatchError("closed".into()),
                Op::Watch,
                "provider.stream",
            ),
        ];
        for (e, op, code) in cases {
            assert_eq!(classify(&e, op).code(), code, "{e} during {op:?}");
        }
        assert!(is_lease_not_found(&status(
            Code::NotFound,
            "etcdserver: requested lease not found"
        )));
        assert!(!is_lease_not_found(&status(Code::Unavailable, "x")));
    }
}
