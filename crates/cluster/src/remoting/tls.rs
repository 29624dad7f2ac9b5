//! Mutual TLS for Remoting (issue 14): every association is encrypted and
//! both ends are authenticated by certificate before the handshake of
//! [`crate::wire`] runs inside the TLS stream.
//!
//! # The identity rule
//!
//! The cluster has its own certificate authority (`ca_file`: one or more
//! PEM certificates). Every node presents a certificate chained to it
//! (`cert_file`, with any intermediates after the leaf; `key_file`, PKCS#8,
//! PKCS#1 or SEC1 PEM), valid now, whose extended key usages (if it has
//! the extension) include `serverAuth` and `clientAuth` (a node dials and
//! accepts), and with the
//! **URI subject alternative name**
//!
//! ```text
//! cluster://<cluster>/<node-id>
//! ```
//!
//! (see [`identity_uri`]). Host names and IP addresses in the certificate
//! are not looked at: a node is named by its id, not by where it runs, so a
//! certificate survives a rescheduled pod with a new IP. The checks, after
//! the TLS handshake and before the membership check:
//!
//! - the **acceptor** refuses a connector whose certificate does not carry
//!   the identity of the node id its `Hello` claims, in this cluster
//!   (`remoting.tls.identity`, sent to the connector in the `Reject`);
//! - the **connector** refuses an acceptor whose certificate does not carry
//!   the identity of the node it meant to dial (`remoting.tls.identity`).
//!
//! So a certificate for `node-a` cannot be used to speak as `node-b`, nor in
//! another cluster signed by the same CA. The membership check (not a
//! member, quarantined, another incarnation) runs after, unchanged; a shared
//! secret, when also configured, is proven inside the TLS stream as before.
//!
//! # Rotation
//!
//! The three files are read at start (a bad file refuses the start with
//! `remoting.tls.config`) and looked at again every
//! [`reload_check`](TlsConfig::reload_check) (default 10 s), and on
//! [`RemotingHandle::reload_tls`](super::RemotingHandle::reload_tls) (what a
//! node's SIGHUP calls). When one changed (size or modification time), they
//! are read again as a whole: new associations use the new certificate and
//! CA at once; open associations keep working until they reconnect. A
//! rewrite that cannot be read (a half-written file, a key that does not
//! match the certificate) is logged with `remoting.tls.config` and the old
//! material stays in use. Write the files and rename them into place (what
//! Kubernetes does for a mounted Secret) to avoid reading a half-written
//! one.
//!
//! The leaf certificate's expiry is the gauge
//! `remoting_tls_certificate_expiry_timestamp_seconds`, and a WARN line is
//! logged at start, at each reload and then hourly while it is less than
//! [`expiry_warning`](TlsConfig::expiry_warning) (default 14 days) away.
//!
//! # Errors
//!
//! A failed TLS handshake is refused with a `remoting.tls.*` code (see
//! `docs/error-codes.md`), logged at WARN on the side that detected it and,
//! through the TLS alert it sends, on the other side too:
//!
//! | code | cause |
//! |---|---|
//! | `remoting.tls.unknown_ca` | the peer's certificate is not issued by our CA, or the peer does not trust ours (a rotated CA) |
//! | `remoting.tls.expired` | a certificate is expired or not valid yet |
//! | `remoting.tls.identity` | the certificate does not name the peer's node id in this cluster |
//! | `remoting.tls.handshake` | anything else in the TLS handshake: a plaintext peer on a TLS port, no certificate, a protocol error |
//! | `remoting.tls.required` | a node without TLS dialed a node that speaks TLS (or the reverse) |
//! | `remoting.tls.config` | the certificate, key or CA file cannot be read or do not fit |
//!
//! A peer that stops mid-handshake is cut off by the handshake timeout
//! (`remoting.tls.handshake`; the TLS and the remoting handshake share one
//! deadline). There is no session resumption: a resumed handshake would
//! not check the peer's certificate again. TLS failures never report a
//! member for quarantine, and count as a sign of life of the peer: a certificate problem is an operator's (most often a
//! rotation in progress, cluster-wide), and quarantining on it would turn a
//! rotation mistake into every grain moving.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    AlertDescription, CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore,
    ServerConfig, SignatureScheme,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::wire::WireError;

/// The peer's certificate is not issued by our CA, or it does not trust
/// ours.
pub const TLS_UNKNOWN_CA: &str = "remoting.tls.unknown_ca";
/// A certificate is expired (or not valid yet).
pub const TLS_EXPIRED: &str = "remoting.tls.expired";
/// The certificate does not name the peer's node id in this cluster.
pub const TLS_IDENTITY: &str = "remoting.tls.identity";
/// Any other failure of the TLS handshake.
pub const TLS_HANDSHAKE: &str = "remoting.tls.handshake";
/// One side speaks TLS, the other does not.
pub const TLS_REQUIRED: &str = "remoting.tls.required";
/// The certificate, key or CA file cannot be read or do not fit.
pub const TLS_CONFIG: &str = "remoting.tls.config";

pub(crate) const M_TLS_EXPIRY: &str = "remoting_tls_certificate_expiry_timestamp_seconds";
pub(crate) const M_TLS_RELOADS: &str = "remoting_tls_reloads_total";

/// The identity a node's certificate must carry as a URI subject
/// alternative name: `cluster://<cluster>/<node-id>`.
pub fn identity_uri(cluster: &str, node_id: &str) -> String {
    format!("cluster://{cluster}/{node_id}")
}

/// Where Remoting's TLS material is and how it is watched. Paths, not
/// bytes: the files are re-read when they change (see the
/// [module documentation](self#rotation)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsConfig {
    /// This node's certificate chain (PEM, leaf first).
    pub cert_file: PathBuf,
    /// This node's private key (PEM).
    pub key_file: PathBuf,
    /// The cluster's CA certificates (PEM); peers must chain to one.
    pub ca_file: PathBuf,
    /// How often the files are checked for a change (default 10 s).
    pub reload_check: Duration,
    /// Warn this long before the certificate expires (default 14 days).
    pub expiry_warning: Duration,
}

impl TlsConfig {
    /// The files, with the default reload check (10 s) and expiry warning
    /// (14 days).
    pub fn new(
        cert_file: impl Into<PathBuf>,
        key_file: impl Into<PathBuf>,
        ca_file: impl Into<PathBuf>,
    ) -> Self {
        Self {
            cert_file: cert_file.into(),
            key_file: key_file.into(),
            ca_file: ca_file.into(),
            reload_check: Duration::from_secs(10),
            expiry_warning: Duration::from_secs(14 * 24 * 3600),
        }
    }

    /// Sets how often the files are checked for a change.
    pub fn with_reload_check(mut self, every: Duration) -> Self {
        self.reload_check = every;
        self
    }

    /// Sets how long before expiry a warning is logged.
    pub fn with_expiry_warning(mut self, ahead: Duration) -> Self {
        self.expiry_warning = ahead;
        self
    }

    /// Reads and checks the files (what a start does): the error names the
    /// file and why, with the code `remoting.tls.config`.
    pub fn check(&self) -> Result<(), TlsConfigError> {
        Material::load(self).map(|_| ())
    }

    /// [`check`](Self::check), and that the certificate carries the
    /// identity of `node_id` in `cluster` ([`identity_uri`]): what a node's
    /// `check-config` runs. The error names the certificate file.
    pub fn check_for(&self, cluster: &str, node_id: &str) -> Result<(), TlsConfigError> {
        let material = Material::load(self)?;
        check_identity(&material.identities, cluster, node_id)
            .map_err(|reason| TlsConfigError::new(&self.cert_file, reason))
    }
}

/// The TLS files could not be used (`remoting.tls.config`).
#[derive(Debug, thiserror::Error)]
#[error("{reason}")]
pub struct TlsConfigError {
    /// The file at fault.
    pub path: PathBuf,
    /// Why, naming the file.
    pub reason: String,
}

impl TlsConfigError {
    fn new(path: &Path, reason: impl fmt::Display) -> Self {
        Self {
            path: path.to_owned(),
            reason: format!("{}: {reason}", path.display()),
        }
    }

    /// A file error of the PEM readers the backends use too
    /// (`provider_tls`): their reasons already name the file.
    fn of_file(path: &Path, e: cluster_core::ProviderError) -> Self {
        let reason = match e {
            cluster_core::ProviderError::Config { reason, .. } => reason,
            other => format!("{}: {other}", path.display()),
        };
        Self {
            path: path.to_owned(),
            reason,
        }
    }

    /// `remoting.tls.config`.
    pub fn code(&self) -> &'static str {
        TLS_CONFIG
    }
}

/// The loaded material: the rustls configurations of both roles.
pub(crate) struct Material {
    pub(crate) server: Arc<ServerConfig>,
    pub(crate) client: Arc<ClientConfig>,
    /// The leaf certificate's notAfter.
    pub(crate) not_after: SystemTime,
    /// The leaf certificate's URI SANs.
    identities: Vec<String>,
    stamp: Stamp,
}

/// Size and modification time of the three files: a change is a reload.
type Stamp = [(u64, Option<SystemTime>); 3];

fn stamp(config: &TlsConfig) -> Stamp {
    let one = |p: &Path| std::fs::metadata(p).map_or((0, None), |m| (m.len(), m.modified().ok()));
    [
        one(&config.cert_file),
        one(&config.key_file),
        one(&config.ca_file),
    ]
}

impl Material {
    fn load(config: &TlsConfig) -> Result<Self, TlsConfigError> {
        // The stamp first: a file rewritten while it is read is read again
        // at the next check.
        let stamp = stamp(config);
        // The same PEM readers as the backends' TLS (`provider_tls`).
        let chain = provider_tls::read_chain("cert_file", &config.cert_file)
            .map_err(|e| TlsConfigError::of_file(&config.cert_file, e))?;
        let Some(leaf) = chain.first() else {
            return Err(TlsConfigError::new(
                &config.cert_file,
                "no certificate in the file",
            ));
        };
        let not_after = not_after(leaf).map_err(|e| TlsConfigError::new(&config.cert_file, e))?;
        let identities = webpki::EndEntityCert::try_from(leaf)
            .map(|c| c.valid_uri_names().map(str::to_owned).collect())
            .map_err(|e| {
                TlsConfigError::new(&config.cert_file, format!("unusable certificate: {e}"))
            })?;
        let key = provider_tls::read_key("key_file", &config.key_file)
            .map_err(|e| TlsConfigError::of_file(&config.key_file, e))?;
        let roots = provider_tls::read_roots("ca_file", &config.ca_file)
            .map_err(|e| TlsConfigError::of_file(&config.ca_file, e))?;
        let roots = Arc::new(roots);
        let provider = provider_tls::ring_provider();

        let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(|e| TlsConfigError::new(&config.ca_file, e))?;
        let mut server = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsConfigError::new(&config.cert_file, e))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(|e| {
                TlsConfigError::new(
                    &config.key_file,
                    format!("does not fit the certificate: {e}"),
                )
            })?;
        let mut client = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsConfigError::new(&config.cert_file, e))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(CaVerifier {
                roots,
                algorithms: provider.signature_verification_algorithms,
            }))
            .with_client_auth_cert(chain, key)
            .map_err(|e| {
                TlsConfigError::new(
                    &config.key_file,
                    format!("does not fit the certificate: {e}"),
                )
            })?;
        // No session resumption, either way: a resumed handshake reuses the
        // peer's certificate from an earlier one without checking it again,
        // so an expired certificate, or a CA removed by a rotation, would
        // keep opening associations until the ticket ran out. Every
        // association pays a full handshake instead (it is opened once).
        server.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        server.send_tls13_tickets = 0;
        client.resumption = rustls::client::Resumption::disabled();
        Ok(Self {
            server: Arc::new(server),
            client: Arc::new(client),
            not_after,
            identities,
            stamp,
        })
    }
}

/// The notAfter of a DER certificate.
fn not_after(der: &CertificateDer<'_>) -> Result<SystemTime, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref())
        .map_err(|e| format!("not an X.509 certificate: {e}"))?;
    let secs = cert.validity().not_after.timestamp();
    Ok(if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs.unsigned_abs())
    } else {
        UNIX_EPOCH
    })
}

/// Verifies a server certificate against our CA, its validity period and
/// usage, but not a host name: the identity is the URI SAN, checked after
/// the handshake against the node dialed (see the module documentation).
#[derive(Debug)]
struct CaVerifier {
    roots: Arc<RootCertStore>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for CaVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let cert = rustls::server::ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &cert,
            &self.roots,
            intermediates,
            now,
            self.algorithms.all,
        )?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Remoting's TLS state: the configuration and the material in use.
pub(crate) struct Tls {
    pub(crate) config: TlsConfig,
    material: RwLock<Arc<Material>>,
    /// When the last expiry warning was logged.
    warned: std::sync::Mutex<Option<std::time::Instant>>,
    /// One load at a time (the watcher and a forced reload), and the stamp
    /// of the files whose load last failed (warned about once).
    loading: std::sync::Mutex<Option<Stamp>>,
    node: Arc<str>,
    /// The identity this node's certificate must carry
    /// ([`identity_uri`]), when known: a certificate without it is a WARN
    /// at every load (every peer would refuse it).
    expected: Option<String>,
}

impl Tls {
    /// Loads the files (a start). `expected`: the identity this node's
    /// certificate must carry, if known.
    pub(crate) fn load(
        config: TlsConfig,
        node: Arc<str>,
        expected: Option<String>,
    ) -> Result<Self, TlsConfigError> {
        let material = Material::load(&config)?;
        let tls = Self {
            config,
            material: RwLock::new(Arc::new(material)),
            warned: std::sync::Mutex::new(None),
            loading: std::sync::Mutex::new(None),
            node,
            expected,
        };
        tls.after_load(true);
        Ok(tls)
    }

    pub(crate) fn current(&self) -> Arc<Material> {
        self.material
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Re-reads the files when they changed (`force`: in any case).
    /// `Ok(true)`: new material is in use.
    pub(crate) fn reload(&self, force: bool) -> Result<bool, TlsConfigError> {
        let mut failed = self
            .loading
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = stamp(&self.config);
        if !force && (now == self.current().stamp || failed.as_ref() == Some(&now)) {
            self.warn_expiry(false);
            return Ok(false);
        }
        match Material::load(&self.config) {
            Ok(m) => {
                *self
                    .material
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(m);
                *failed = None;
                metrics::counter!(M_TLS_RELOADS, "node" => self.node.clone(), "result" => "ok")
                    .increment(1);
                tracing::info!(
                    cert = %self.config.cert_file.display(),
                    "remoting TLS certificate, key and CA reloaded: new associations use them"
                );
                self.after_load(true);
                Ok(true)
            }
            Err(e) => {
                metrics::counter!(M_TLS_RELOADS, "node" => self.node.clone(), "result" => "error")
                    .increment(1);
                // Once per change of the files (and at every forced reload).
                if force || failed.as_ref() != Some(&now) {
                    tracing::warn!(code = TLS_CONFIG, error = %e, "remoting TLS files changed but cannot be used: the previous ones stay in use");
                }
                *failed = Some(now);
                Err(e)
            }
        }
    }

    fn after_load(&self, force_warning: bool) {
        let material = self.current();
        if let Some(wanted) = &self.expected
            && !material.identities.iter().any(|i| i == wanted)
        {
            tracing::warn!(
                code = TLS_IDENTITY,
                cert = %self.config.cert_file.display(),
                wanted = %wanted,
                names = %material.identities.join(", "),
                "this node's TLS certificate does not carry its identity: every peer will refuse it"
            );
        }
        let not_after = material.not_after;
        let secs = not_after
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        metrics::gauge!(M_TLS_EXPIRY, "node" => self.node.clone()).set(secs);
        self.warn_expiry(force_warning);
    }

    /// A WARN when the certificate expires within the warning time: at a
    /// load, then at most hourly.
    fn warn_expiry(&self, force: bool) {
        let not_after = self.current().not_after;
        let left = not_after
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO);
        if left > self.config.expiry_warning {
            return;
        }
        let mut warned = self
            .warned
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let due = force || warned.is_none_or(|at| at.elapsed() >= Duration::from_secs(3600));
        if due {
            *warned = Some(std::time::Instant::now());
            if left.is_zero() {
                tracing::warn!(code = TLS_EXPIRED, cert = %self.config.cert_file.display(), "remoting TLS certificate has expired: peers refuse new associations");
            } else {
                tracing::warn!(cert = %self.config.cert_file.display(), expires_in = %humanize(left), "remoting TLS certificate expires soon: rotate it");
            }
        }
    }
}

fn humanize(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=3599 => format!("{}m", s / 60),
        3600..=86_399 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

/// A connection: plain TCP or TLS over TCP.
pub(crate) enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::TlsStream<TcpStream>>),
}

impl Stream {
    /// The URI SANs of the peer's certificate (empty without TLS).
    pub(crate) fn peer_identities(&self) -> Vec<String> {
        let Self::Tls(tls) = self else {
            return Vec::new();
        };
        let certs = match tls.as_ref() {
            tokio_rustls::TlsStream::Client(c) => c.get_ref().1.peer_certificates(),
            tokio_rustls::TlsStream::Server(s) => s.get_ref().1.peer_certificates(),
        };
        let Some(leaf) = certs.and_then(|c| c.first()) else {
            return Vec::new();
        };
        webpki::EndEntityCert::try_from(leaf).map_or_else(
            |_| Vec::new(),
            |cert| cert.valid_uri_names().map(str::to_owned).collect(),
        )
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Plain(s) => s.is_write_vectored(),
            Self::Tls(s) => s.is_write_vectored(),
        }
    }
}

/// The TLS handshake as a server (the accept side).
pub(crate) async fn accept(tls: &Tls, tcp: TcpStream) -> Result<Stream, WireError> {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.current().server.clone());
    acceptor
        .accept(tcp)
        .await
        .map(|s| Stream::Tls(Box::new(tokio_rustls::TlsStream::Server(s))))
        .map_err(classify)
}

/// The TLS handshake as a client (the dial side), to `host`.
pub(crate) async fn connect(tls: &Tls, host: &str, tcp: TcpStream) -> Result<Stream, WireError> {
    let connector = tokio_rustls::TlsConnector::from(tls.current().client.clone());
    // The name is not verified (the identity is the URI SAN): an IP sends
    // no SNI, a host name is sent as usual.
    let name = ServerName::try_from(host.to_owned())
        .unwrap_or_else(|_| ServerName::try_from("remoting.invalid").expect("a valid DNS name"));
    connector
        .connect(name, tcp)
        .await
        .map(|s| Stream::Tls(Box::new(tokio_rustls::TlsStream::Client(s))))
        .map_err(classify)
}

/// Whether the peer's certificate names `node` of `cluster`; the refusal
/// reason otherwise.
pub(crate) fn check_identity(
    identities: &[String],
    cluster: &str,
    node: &str,
) -> Result<(), String> {
    let wanted = identity_uri(cluster, node);
    if identities.contains(&wanted) {
        return Ok(());
    }
    Err(if identities.is_empty() {
        format!("the certificate has no URI SAN; node {node} needs {wanted}")
    } else {
        format!(
            "the certificate names {}, not {wanted}",
            identities.join(", ")
        )
    })
}

/// A failed TLS handshake as a `remoting.tls.*` error.
pub(crate) fn classify(e: io::Error) -> WireError {
    let Some(tls) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    else {
        return WireError::Io(e);
    };
    let (code, reason) = match tls {
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer | CertificateError::BadSignature => (
                TLS_UNKNOWN_CA,
                "the peer's certificate is not issued by this cluster's CA".to_owned(),
            ),
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. } => (
                TLS_EXPIRED,
                format!("the peer's certificate is not valid now: {c}"),
            ),
            other => (
                TLS_HANDSHAKE,
                format!("the peer's certificate is refused: {other}"),
            ),
        },
        rustls::Error::AlertReceived(alert) => match alert {
            AlertDescription::UnknownCA => (
                TLS_UNKNOWN_CA,
                "the peer does not trust this node's certificate (alert UnknownCA)".to_owned(),
            ),
            AlertDescription::BadCertificate | AlertDescription::UnsupportedCertificate => (
                TLS_HANDSHAKE,
                format!("the peer refuses this node's certificate (alert {alert:?})"),
            ),
            AlertDescription::CertificateExpired => (
                TLS_EXPIRED,
                "the peer says this node's certificate is expired or not valid yet".to_owned(),
            ),
            AlertDescription::CertificateRequired => (
                TLS_HANDSHAKE,
                "the peer requires a client certificate".to_owned(),
            ),
            other => (TLS_HANDSHAKE, format!("the peer sent the alert {other:?}")),
        },
        rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType) => (
            TLS_REQUIRED,
            "the peer does not speak TLS (a plaintext peer on a TLS connection)".to_owned(),
        ),
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => (
            TLS_HANDSHAKE,
            format!("the peer broke the TLS protocol: {tls}"),
        ),
        rustls::Error::NoCertificatesPresented => (
            TLS_HANDSHAKE,
            "the peer presented no certificate".to_owned(),
        ),
        other => (TLS_HANDSHAKE, other.to_string()),
    };
    WireError::Tls { code, reason }
}

/// Whether a plaintext read's frame header is the start of a TLS record
/// (an alert or a handshake): the peer speaks TLS.
fn looks_like_tls(len: u64) -> bool {
    // A TLS record: type 0x15 (alert) or 0x16 (handshake), then version
    // 0x03 0x0?; read as a big-endian u32 length.
    matches!(len >> 16, 0x1503 | 0x1603)
}

/// A plaintext frame header that is the start of a TLS record: the peer
/// speaks TLS and we do not (`remoting.tls.required`).
pub(crate) fn tls_hint(e: WireError, we_speak_tls: bool) -> WireError {
    match e {
        // With TLS 1.3 a dialer's handshake is done before the acceptor has
        // checked its certificate: the acceptor's alert arrives at the
        // first read, as an I/O error carrying the rustls error.
        WireError::Io(io) if we_speak_tls => classify(io),
        WireError::Oversized { len, .. } if !we_speak_tls && looks_like_tls(len) => {
            WireError::Tls {
                code: TLS_REQUIRED,
                reason: "the peer speaks TLS and this node has no TLS configured".to_owned(),
            }
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 14: the identity rule compares the whole URI, so neither a
    /// prefix, another cluster nor another node passes.
    #[test]
    fn i14_identity_is_the_exact_uri_of_this_cluster_and_node() {
        let names = vec![identity_uri("shop", "a-1"), "cluster://other/b".to_owned()];
        assert!(check_identity(&names, "shop", "a-1").is_ok());
        for (cluster, node) in [
            ("shop", "a"),
            ("shop", "a-10"),
            ("other", "a-1"),
            ("shop", "b"),
        ] {
            let why = check_identity(&names, cluster, node).unwrap_err();
            assert!(why.contains(&identity_uri(cluster, node)), "{why}");
        }
        let why = check_identity(&[], "shop", "a-1").unwrap_err();
        assert!(why.contains("no URI SAN"), "{why}");
    }

    /// Issue 14: a plaintext reader that meets a TLS record (an alert or a
    /// ClientHello) says `remoting.tls.required`; an ordinary oversized
    /// frame stays `wire.oversized`, and a TLS node keeps the error.
    #[test]
    fn i14_a_tls_record_read_as_plaintext_is_tls_required() {
        let oversized = |len| WireError::Oversized { len, max: 1 << 20 };
        for record in [0x1503_0300_u64, 0x1603_0100] {
            assert_eq!(tls_hint(oversized(record), false).code(), TLS_REQUIRED);
            assert_eq!(tls_hint(oversized(record), true).code(), "wire.oversized");
        }
        assert_eq!(
            tls_hint(oversized(0x0200_0000), false).code(),
            "wire.oversized"
        );
        let io = WireError::Io(io::Error::other("reset"));
        assert_eq!(tls_hint(io, false).code(), "wire.io");
        // A rustls alert carried by an I/O error on a TLS connection.
        let alert = io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::AlertReceived(AlertDescription::UnknownCA),
        );
        assert_eq!(tls_hint(WireError::Io(alert), true).code(), TLS_UNKNOWN_CA);
    }
}
