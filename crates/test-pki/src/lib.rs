//! Certificates for TLS tests, generated fresh by each test with rcgen
//! (ring; no aws-lc, no OpenSSL), and the rustls server configurations the
//! fake backends serve with.
//!
//! [`TestPki::generate`] writes into a directory:
//!
//! | file | what |
//! |---|---|
//! | `ca.pem` | the test CA |
//! | `server.pem`, `server-key.pem` | a server certificate for `localhost` and `127.0.0.1`, signed by the CA |
//! | `client.pem`, `client-key.pem` | a client certificate (CN `node`), signed by the CA |
//! | `expired.pem`, `expired-key.pem` | a server certificate for the same names, signed by the CA, valid only in 2000 |
//! | `wrong-name.pem`, `wrong-name-key.pem` | a server certificate signed by the CA for `other.example` only |
//! | `other-ca.pem` | another CA |
//! | `other-server.pem`, `other-server-key.pem` | a server certificate for the right names from the other CA |
//! | `other-client.pem`, `other-client-key.pem` | a client certificate from the other CA |
//!
//! Every rustls configuration here is built with the `ring` provider
//! explicitly, so a test binary that links another provider never panics
//! on an ambiguous process default.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    SanType,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

mod nodes;
pub use nodes::{NodeCert, NodePki};

/// A certificate and its key, as PEM files.
#[derive(Clone, Debug)]
pub struct Pair {
    /// The certificate (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM, PKCS#8).
    pub key: PathBuf,
}

/// The files of one test PKI; see the [crate docs](crate).
#[derive(Clone, Debug)]
pub struct TestPki {
    /// The directory holding the files.
    pub dir: PathBuf,
    /// The CA certificate (PEM).
    pub ca: PathBuf,
    /// Server certificate for `localhost` and `127.0.0.1`.
    pub server: Pair,
    /// Client certificate signed by the CA.
    pub client: Pair,
    /// Server certificate signed by the CA that expired long ago.
    pub expired: Pair,
    /// Server certificate signed by the CA for `other.example` only.
    pub wrong_name: Pair,
    /// Another CA's certificate (PEM).
    pub other_ca: PathBuf,
    /// Server certificate for the right names, from the other CA.
    pub other_server: Pair,
    /// Client certificate from the other CA.
    pub other_client: Pair,
}

/// An error of this test helper (I/O or certificate generation).
pub type Error = Box<dyn std::error::Error + Send + Sync>;

struct Ca {
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Result<(Self, String), Error> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key)?;
        Ok((
            Self {
                issuer: Issuer::new(params, key),
            },
            cert.pem(),
        ))
    }

    fn server(&self, names: &[&str], expired: bool) -> Result<(String, String), Error> {
        let key = KeyPair::generate()?;
        let mut params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())?;
        if names.contains(&"localhost") {
            params
                .subject_alt_names
                .push(SanType::IpAddress(Ipv4Addr::LOCALHOST.into()));
        }
        params.distinguished_name.push(DnType::CommonName, names[0]);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        if expired {
            params.not_before = rcgen::date_time_ymd(2000, 1, 1);
            params.not_after = rcgen::date_time_ymd(2000, 12, 31);
        }
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok((cert.pem(), key.serialize_pem()))
    }

    fn client(&self, cn: &str) -> Result<(String, String), Error> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}

impl TestPki {
    /// Generates every certificate into `dir` (created if missing).
    pub fn generate(dir: &Path) -> Result<Self, Error> {
        std::fs::create_dir_all(dir)?;
        let write = |name: &str, pem: &str| -> Result<PathBuf, Error> {
            let p = dir.join(name);
            std::fs::write(&p, pem)?;
            Ok(p)
        };
        let pair = |name: &str, (cert, key): (String, String)| -> Result<Pair, Error> {
            Ok(Pair {
                cert: write(&format!("{name}.pem"), &cert)?,
                key: write(&format!("{name}-key.pem"), &key)?,
            })
        };
        let (ca, ca_pem) = Ca::new("test-pki CA")?;
        let (other, other_pem) = Ca::new("test-pki other CA")?;
        let names = ["localhost"];
        Ok(Self {
            dir: dir.to_owned(),
            ca: write("ca.pem", &ca_pem)?,
            server: pair("server", ca.server(&names, false)?)?,
            client: pair("client", ca.client("node")?)?,
            expired: pair("expired", ca.server(&names, true)?)?,
            wrong_name: pair("wrong-name", ca.server(&["other.example"], false)?)?,
            other_ca: write("other-ca.pem", &other_pem)?,
            other_server: pair("other-server", other.server(&names, false)?)?,
            other_client: pair("other-client", other.client("intruder")?)?,
        })
    }

    /// A rustls server configuration presenting `server`, requiring a
    /// client certificate signed by [`ca`](Self::ca) when
    /// `require_client_cert`.
    pub fn server_config(
        &self,
        server: &Pair,
        require_client_cert: bool,
    ) -> Result<Arc<rustls::ServerConfig>, Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?;
        let builder = if require_client_cert {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(&self.ca)? {
                roots.add(c?)?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()?;
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let chain = CertificateDer::pem_file_iter(&server.cert)?.collect::<Result<Vec<_>, _>>()?;
        let key = PrivateKeyDer::from_pem_file(&server.key)?;
        let mut config = builder.with_single_cert(chain, key)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_every_file_and_a_server_config() -> Result<(), Error> {
        let dir = std::env::temp_dir().join(format!("test-pki-{}", std::process::id()));
        let pki = TestPki::generate(&dir)?;
        for p in [
            &pki.ca,
            &pki.other_ca,
            &pki.expired.cert,
            &pki.other_client.key,
        ] {
            assert!(
                std::fs::read_to_string(p)?.starts_with("-----BEGIN"),
                "{p:?}"
            );
        }
        pki.server_config(&pki.server, true)?;
        pki.server_config(&pki.expired, false)?;
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }
}
