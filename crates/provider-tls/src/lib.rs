//! TLS to a provider's backend (Consul agent, etcd, Kubernetes API server)
//! with a custom CA and a client certificate (issue 14, item 4).
//!
//! - **Files** ([`read_roots`], [`read_chain`], [`read_key`]): PEM files
//!   read into rustls types. A missing, unreadable or empty file, or one
//!   without the expected PEM section, is a `provider.config` error naming
//!   the setting (`ca_file`, `client_key`...), so the registry refuses the
//!   descriptor with the provider id and the field. Key material never
//!   appears in an error or a log line: only the path does.
//! - **Crypto provider**: every configuration is built with the `ring`
//!   provider explicitly ([`ring_provider`]); [`install_ring_default`]
//!   installs it as the process default for libraries that build their own
//!   configurations with `ClientConfig::builder()` (kube-rs does), so that
//!   a binary which links another provider too never panics on an
//!   ambiguous default. No aws-lc, no OpenSSL.
//! - **Server name** ([`client_config`]): an optional name the server's
//!   certificate must carry instead of the address's host (an agent reached
//!   by IP address whose certificate names `server.dc1.consul`).
//! - **Handshake failures** ([`TlsFailure::of`]): the error chain of a
//!   failed connection is searched for the rustls error (or its text, when
//!   a library kept only the message), and classified into a stable reason
//!   that the provider puts in its `provider.connectivity` message
//!   ([`connectivity`]):
//!
//! | reason | meaning |
//! |---|---|
//! | `tls.unknown_ca` | the server's certificate is not signed by the configured CA |
//! | `tls.expired` | the server's certificate is expired (or not valid yet) |
//! | `tls.wrong_name` | the server's certificate does not name the address (or `tls_server_name`) |
//! | `tls.client_cert_refused` | the server refused our client certificate, or wanted one and got none |
//! | `tls.handshake` | any other handshake failure (a plaintext server on the address, no common cipher...) |
//!
//! Some clients lose the reason: a gRPC channel to a Go server that
//! refuses the client certificate only sees its connection closed. For
//! those, [`probe`] runs one handshake of its own with the same
//! configuration and reads the server's alert.

use std::error::Error as StdError;
use std::path::Path;
use std::sync::Arc;

use cluster_core::ProviderError;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{AlertDescription, CertificateError, DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime};

pub use rustls;
pub use rustls_pki_types::ServerName;

/// The `ring` crypto provider.
pub fn ring_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Installs the `ring` provider as the process default, if no default is
/// installed yet (then the existing one stays: an application's choice
/// wins). Idempotent.
pub fn install_ring_default() {
    if CryptoProvider::get_default().is_none() {
        // Losing a race with another thread is fine: a default exists.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

fn config_error(field: &str, reason: String) -> ProviderError {
    ProviderError::Config {
        field: field.to_owned(),
        reason,
    }
}

fn read_file(field: &str, path: &Path) -> Result<Vec<u8>, ProviderError> {
    std::fs::read(path)
        .map_err(|e| config_error(field, format!("cannot read {}: {e}", path.display())))
}

/// The certificates of the PEM file `path` (a CA bundle) as a root store;
/// errors name `field`.
pub fn read_roots(field: &str, path: &Path) -> Result<rustls::RootCertStore, ProviderError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in read_chain(field, path)? {
        roots.add(cert).map_err(|e| {
            config_error(
                field,
                format!("{}: not a usable CA certificate: {e}", path.display()),
            )
        })?;
    }
    Ok(roots)
}

/// The certificates of the PEM file `path`, at least one; errors name
/// `field`.
pub fn read_chain(field: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, ProviderError> {
    let pem = read_file(field, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| config_error(field, format!("{}: bad PEM: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(config_error(
            field,
            format!("{}: no CERTIFICATE in the file", path.display()),
        ));
    }
    Ok(certs)
}

/// The private key of the PEM file `path` (PKCS#8, PKCS#1 or SEC1); errors
/// name `field` and the path, never the content.
pub fn read_key(field: &str, path: &Path) -> Result<PrivateKeyDer<'static>, ProviderError> {
    let pem = read_file(field, path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
        let why = match e {
            rustls_pki_types::pem::Error::NoItemsFound => "no PRIVATE KEY in the file".to_owned(),
            other => format!("bad PEM: {other}"),
        };
        config_error(field, format!("{}: {why}", path.display()))
    })
}

/// The setting names a provider kind uses for its TLS files.
#[derive(Clone, Copy, Debug)]
pub struct Fields {
    /// The CA bundle (`ca_file`).
    pub ca: &'static str,
    /// The client certificate (`client_cert`).
    pub cert: &'static str,
    /// The client key (`client_key`).
    pub key: &'static str,
    /// The server-name override (`tls_server_name`).
    pub server_name: &'static str,
}

/// What a TLS client needs: all optional.
#[derive(Clone, Copy, Debug, Default)]
pub struct ClientFiles<'a> {
    /// The CA bundle; `None`: the platform's trust store (`platform`).
    pub ca: Option<&'a Path>,
    /// Client certificate and key (mutual TLS).
    pub identity: Option<(&'a Path, &'a Path)>,
    /// The name the server's certificate must carry instead of the host.
    pub server_name: Option<&'a str>,
}

/// A rustls client configuration (ring) for `files`; `platform` builds the
/// verifier used without a CA file. Every file problem is a
/// `provider.config` error naming its setting in `fields`.
pub fn client_config(
    files: ClientFiles<'_>,
    fields: Fields,
    platform: impl FnOnce(Arc<CryptoProvider>) -> Result<Arc<dyn ServerCertVerifier>, ProviderError>,
) -> Result<rustls::ClientConfig, ProviderError> {
    let provider = ring_provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| config_error(fields.ca, format!("TLS setup: {e}")))?;
    let verifier: Arc<dyn ServerCertVerifier> = match files.ca {
        Some(ca) => {
            let roots = read_roots(fields.ca, ca)?;
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|e| config_error(fields.ca, format!("{}: {e}", ca.display())))?
        }
        None => platform(provider)?,
    };
    let verifier = match files.server_name {
        None => verifier,
        Some(name) => {
            let name = ServerName::try_from(name.to_owned()).map_err(|e| {
                config_error(
                    fields.server_name,
                    format!("{name:?} is not a DNS name or IP address: {e}"),
                )
            })?;
            Arc::new(NamedVerifier {
                inner: verifier,
                name,
            })
        }
    };
    let builder = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    match files.identity {
        None => Ok(builder.with_no_client_auth()),
        Some((cert, key)) => {
            let chain = read_chain(fields.cert, cert)?;
            let key_der = read_key(fields.key, key)?;
            builder.with_client_auth_cert(chain, key_der).map_err(|e| {
                config_error(
                    fields.key,
                    format!("{} does not go with {}: {e}", key.display(), cert.display()),
                )
            })
        }
    }
}

/// Checks `files` the way [`client_config`] reads them, for a client that
/// builds its own configuration from the files (kube-rs, tonic): the same
/// `provider.config` errors naming the setting. Without a CA file only the
/// client certificate, key and server name are checked.
pub fn check_files(files: ClientFiles<'_>, fields: Fields) -> Result<(), ProviderError> {
    // Never used to connect: a verifier that trusts nothing does.
    client_config(files, fields, |provider| {
        Ok(Arc::new(RefuseAll(provider)) as Arc<dyn ServerCertVerifier>)
    })
    .map(drop)
}

/// A verifier that trusts nothing (for [`check_files`]).
#[derive(Debug)]
struct RefuseAll(Arc<CryptoProvider>);

impl ServerCertVerifier for RefuseAll {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Err(rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer,
        ))
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer,
        ))
    }

    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer,
        ))
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Verifies the server's certificate against a fixed name instead of the
/// host the client connected to (the chain is checked all the same).
#[derive(Debug)]
struct NamedVerifier {
    inner: Arc<dyn ServerCertVerifier>,
    name: ServerName<'static>,
}

impl ServerCertVerifier for NamedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, &self.name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Why a TLS handshake failed; see the [crate docs](crate).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsFailure {
    /// The server's certificate is not signed by a trusted CA.
    UnknownCa,
    /// The server's certificate is outside its validity period.
    Expired,
    /// The server's certificate does not carry the expected name.
    WrongName,
    /// The server refused our client certificate (or its absence).
    ClientCertRefused,
    /// Any other handshake failure.
    Handshake,
}

impl TlsFailure {
    /// The stable reason (`tls.unknown_ca`...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UnknownCa => "tls.unknown_ca",
            Self::Expired => "tls.expired",
            Self::WrongName => "tls.wrong_name",
            Self::ClientCertRefused => "tls.client_cert_refused",
            Self::Handshake => "tls.handshake",
        }
    }

    /// What an operator should check.
    pub fn hint(self) -> &'static str {
        match self {
            Self::UnknownCa => "the server's certificate is not signed by the configured CA",
            Self::Expired => "the server's certificate is expired or not valid yet",
            Self::WrongName => {
                "the server's certificate does not name the address (see tls_server_name)"
            }
            Self::ClientCertRefused => {
                "the server refused the client certificate (missing, or from a CA it does not trust)"
            }
            Self::Handshake => "TLS handshake failed (is the server speaking TLS on this port?)",
        }
    }

    /// Classifies a rustls error; `None` for errors that are not about the
    /// handshake.
    pub fn of_rustls(e: &rustls::Error) -> Option<Self> {
        use rustls::Error as E;
        Some(match e {
            E::InvalidCertificate(c) => match c {
                CertificateError::UnknownIssuer | CertificateError::BadSignature => Self::UnknownCa,
                CertificateError::Expired
                | CertificateError::ExpiredContext { .. }
                | CertificateError::NotValidYet
                | CertificateError::NotValidYetContext { .. } => Self::Expired,
                CertificateError::NotValidForName
                | CertificateError::NotValidForNameContext { .. } => Self::WrongName,
                _ => Self::Handshake,
            },
            E::AlertReceived(
                AlertDescription::CertificateRequired
                | AlertDescription::BadCertificate
                | AlertDescription::UnknownCA
                | AlertDescription::CertificateUnknown
                | AlertDescription::UnsupportedCertificate
                | AlertDescription::CertificateExpired
                | AlertDescription::AccessDenied,
            ) => Self::ClientCertRefused,
            E::NoCertificatesPresented
            | E::AlertReceived(_)
            | E::InvalidMessage(_)
            | E::InappropriateMessage { .. }
            | E::InappropriateHandshakeMessage { .. }
            | E::PeerIncompatible(_)
            | E::PeerMisbehaved(_)
            | E::DecryptError
            | E::HandshakeNotComplete => Self::Handshake,
            _ => return None,
        })
    }

    /// Classifies the text of an error (for libraries that keep only the
    /// message of the rustls error).
    pub fn of_text(text: &str) -> Option<Self> {
        let has = |words: &[&str]| words.iter().any(|w| text.contains(w));
        if has(&["UnknownIssuer", "BadSignature"]) {
            Some(Self::UnknownCa)
        } else if has(&[
            "certificate expired",
            "certificate not valid yet",
            "Expired",
            "NotValidYet",
        ]) {
            Some(Self::Expired)
        } else if has(&["not valid for name", "NotValidForName"]) {
            Some(Self::WrongName)
        } else if has(&[
            "alert: CertificateRequired",
            "alert: BadCertificate",
            "alert: UnknownCA",
            "alert: CertificateUnknown",
            "alert: AccessDenied",
        ]) {
            Some(Self::ClientCertRefused)
        } else if has(&[
            "received corrupt message",
            "received fatal alert",
            "received unexpected message",
            "peer is incompatible",
            "peer misbehaved",
            "InvalidContentType",
        ]) {
            Some(Self::Handshake)
        } else {
            None
        }
    }

    /// Searches the chain of `e` for a handshake failure: a `rustls::Error`
    /// (also inside an `io::Error`), else its text.
    pub fn of(e: &(dyn StdError + 'static)) -> Option<Self> {
        let mut cur: Option<&(dyn StdError + 'static)> = Some(e);
        while let Some(x) = cur {
            if let Some(r) = x.downcast_ref::<rustls::Error>() {
                return Self::of_rustls(r);
            }
            if let Some(io) = x.downcast_ref::<std::io::Error>()
                && let Some(inner) = io.get_ref()
                && let Some(r) = inner.downcast_ref::<rustls::Error>()
            {
                return Self::of_rustls(r);
            }
            cur = x.source();
        }
        Self::of_text(&chain_text(e))
    }
}

/// `e` and its sources, joined by `: ` (each message once).
pub fn chain_text(e: &(dyn StdError + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(x) = cur {
        let m = x.to_string();
        if !out.contains(&m) {
            out.push_str(": ");
            out.push_str(&m);
        }
        cur = x.source();
    }
    out
}

/// A `provider.connectivity` error for a failed handshake with `target`,
/// with [`message`].
pub fn connectivity(failure: TlsFailure, target: &str, detail: &str) -> ProviderError {
    ProviderError::Connectivity(message(failure, target, detail))
}

/// `TLS handshake with <target> failed [tls.unknown_ca]: <hint>: <detail>`.
pub fn message(failure: TlsFailure, target: &str, detail: &str) -> String {
    format!(
        "TLS handshake with {target} failed [{}]: {}: {detail}",
        failure.as_str(),
        failure.hint()
    )
}

/// One TLS handshake with `addr` (`host:port`) as `config` would make it,
/// then a short read for the server's verdict on our certificate (with TLS
/// 1.3 a refused client certificate arrives after the handshake): the
/// failure, or `None` when the server accepted us, could not be reached
/// (not a TLS problem), or did not answer within `bound`. A server that
/// ends the connection right after the handshake without an alert is taken
/// for one refusing the client certificate: that is what Go servers (etcd,
/// Consul, the Kubernetes API server) do, and the caller only probes after
/// a request on such a connection failed.
pub async fn probe(
    addr: &str,
    name: ServerName<'static>,
    config: Arc<rustls::ClientConfig>,
    bound: std::time::Duration,
) -> Option<TlsFailure> {
    use tokio::io::AsyncReadExt;
    let run = async {
        let tcp = tokio::net::TcpStream::connect(addr).await.ok()?;
        let mut tls = match tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
        {
            Ok(s) => s,
            Err(e) => return Some(TlsFailure::of(&e).unwrap_or(TlsFailure::Handshake)),
        };
        let mut byte = [0u8; 1];
        match tokio::time::timeout(bound / 2, tls.read(&mut byte)).await {
            // Silence or data: the server accepted the handshake.
            Err(_) | Ok(Ok(1..)) => None,
            Ok(Err(e)) => TlsFailure::of(&e).or(Some(TlsFailure::ClientCertRefused)),
            // Closed right after the handshake without a word: a server
            // that refused our certificate (or its absence).
            Ok(Ok(0)) => Some(TlsFailure::ClientCertRefused),
        }
    };
    tokio::time::timeout(bound, run).await.ok().flatten()
}

#[cfg(test)]
mod tests;
