//! Node certificates for Remoting's mutual TLS (issue 14): each carries
//! the URI SAN `cluster://<cluster>/<node-id>` (the identity rule of
//! `cluster::remoting::tls`) and both `serverAuth` and `clientAuth`, since
//! a node dials and accepts.

use std::path::{Path, PathBuf};

use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair, SanType};

use crate::{Ca, Error, Pair};

/// Which certificate [`NodePki::node`] writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeCert {
    /// Signed by the CA, valid now.
    Valid,
    /// Signed by the CA, valid only in 2000.
    Expired,
    /// Valid now, signed by the other CA.
    OtherCa,
    /// Signed by the CA, valid from an hour ago until this long from now.
    ExpiresIn(std::time::Duration),
}

/// A CA for node certificates and another CA, in a directory.
pub struct NodePki {
    dir: PathBuf,
    /// The CA's certificate (PEM).
    pub ca: PathBuf,
    /// The other CA's certificate (PEM).
    pub other_ca: PathBuf,
    issuer: Ca,
    other: Ca,
}

impl std::fmt::Debug for NodePki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodePki").field("dir", &self.dir).finish()
    }
}

impl NodePki {
    /// Two fresh CAs, written to `dir` (created if missing) as `node-ca.pem`
    /// and `node-other-ca.pem`.
    pub fn generate(dir: &Path) -> Result<Self, Error> {
        std::fs::create_dir_all(dir)?;
        let (issuer, pem) = Ca::new("test-pki node CA")?;
        let (other, other_pem) = Ca::new("test-pki other node CA")?;
        let ca = dir.join("node-ca.pem");
        let other_ca = dir.join("node-other-ca.pem");
        std::fs::write(&ca, pem)?;
        std::fs::write(&other_ca, other_pem)?;
        Ok(Self {
            dir: dir.to_owned(),
            ca,
            other_ca,
            issuer,
            other,
        })
    }

    /// Writes a certificate naming `uri` (for a node: `cluster://<cluster>/<node-id>`)
    /// and its key as `<stem>.pem` and `<stem>-key.pem`.
    pub fn node(&self, stem: &str, uri: &str, which: NodeCert) -> Result<Pair, Error> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, stem);
        params.subject_alt_names.push(SanType::URI(uri.try_into()?));
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        if which == NodeCert::Expired {
            params.not_before = rcgen::date_time_ymd(2000, 1, 1);
            params.not_after = rcgen::date_time_ymd(2000, 12, 31);
        }
        if let NodeCert::ExpiresIn(left) = which {
            let now = time::OffsetDateTime::now_utc();
            params.not_before = now - time::Duration::hours(1);
            params.not_after = now + left;
        }
        let issuer = if which == NodeCert::OtherCa {
            &self.other.issuer
        } else {
            &self.issuer.issuer
        };
        let cert = params.signed_by(&key, issuer)?;
        let pair = Pair {
            cert: self.dir.join(format!("{stem}.pem")),
            key: self.dir.join(format!("{stem}-key.pem")),
        };
        std::fs::write(&pair.cert, cert.pem())?;
        std::fs::write(&pair.key, key.serialize_pem())?;
        Ok(pair)
    }
}
