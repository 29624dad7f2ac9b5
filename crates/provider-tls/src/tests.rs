//! The files, the server-name override and the classification, over real
//! rustls handshakes in memory (no sockets).

use std::sync::Arc;

use super::*;
use test_pki::{Pair, TestPki};

const FIELDS: Fields = Fields {
    ca: "ca_file",
    cert: "client_cert",
    key: "client_key",
    server_name: "tls_server_name",
};

fn pki(name: &str) -> TestPki {
    let dir = std::env::temp_dir().join(format!("provider-tls-{name}-{}", std::process::id()));
    TestPki::generate(&dir).expect("certificates")
}

fn no_platform(_: Arc<CryptoProvider>) -> Result<Arc<dyn ServerCertVerifier>, ProviderError> {
    Err(config_error("ca_file", "no platform store in tests".into()))
}

fn field(r: Result<rustls::ClientConfig, ProviderError>) -> (String, String) {
    match r {
        Err(ProviderError::Config { field, reason }) => (field, reason),
        Err(other) => panic!("not a config error: {other}"),
        Ok(_) => panic!("accepted"),
    }
}

/// Runs a handshake between a client for `host` and `server` in memory;
/// the client's error if it fails.
fn handshake(
    client: rustls::ClientConfig,
    host: &str,
    server: Arc<rustls::ServerConfig>,
) -> Result<(), rustls::Error> {
    let name = ServerName::try_from(host.to_owned()).expect("name");
    let mut c = rustls::ClientConnection::new(Arc::new(client), name)?;
    let mut s = rustls::ServerConnection::new(server)?;
    for _ in 0..20 {
        let mut buf = Vec::new();
        while c.wants_write() {
            c.write_tls(&mut buf).expect("write to memory");
        }
        if !buf.is_empty() {
            let mut rd = &buf[..];
            while !rd.is_empty() {
                s.read_tls(&mut rd).expect("read from memory");
            }
            if s.process_new_packets().is_err() {
                // Let the server's alert reach the client.
                let mut alert = Vec::new();
                while s.wants_write() {
                    s.write_tls(&mut alert).expect("write to memory");
                }
                let mut rd = &alert[..];
                while !rd.is_empty() {
                    c.read_tls(&mut rd).expect("read from memory");
                }
                c.process_new_packets()?;
                return Err(rustls::Error::HandshakeNotComplete);
            }
        }
        let mut buf = Vec::new();
        while s.wants_write() {
            s.write_tls(&mut buf).expect("write to memory");
        }
        if !buf.is_empty() {
            let mut rd = &buf[..];
            while !rd.is_empty() {
                c.read_tls(&mut rd).expect("read from memory");
            }
            c.process_new_packets()?;
        }
        if !c.is_handshaking() && !s.is_handshaking() {
            // TLS 1.3: the server checks the client's certificate after
            // the client is done; one more flight settles it.
            let mut buf = Vec::new();
            while c.wants_write() {
                c.write_tls(&mut buf).expect("write to memory");
            }
            let mut rd = &buf[..];
            while !rd.is_empty() {
                s.read_tls(&mut rd).expect("read from memory");
            }
            if s.process_new_packets().is_ok() {
                return Ok(());
            }
            // The server's alert, as the client reads it.
            let mut alert = Vec::new();
            while s.wants_write() {
                s.write_tls(&mut alert).expect("write to memory");
            }
            let mut rd = &alert[..];
            while !rd.is_empty() {
                c.read_tls(&mut rd).expect("read from memory");
            }
            c.process_new_packets()?;
            return Err(rustls::Error::HandshakeNotComplete);
        }
    }
    Err(rustls::Error::HandshakeNotComplete)
}

fn client(p: &TestPki, ca: &Path, id: Option<&Pair>, name: Option<&str>) -> rustls::ClientConfig {
    client_config(
        ClientFiles {
            ca: Some(ca),
            identity: id.map(|i| (i.cert.as_path(), i.key.as_path())),
            server_name: name,
        },
        FIELDS,
        no_platform,
    )
    .unwrap_or_else(|e| panic!("client config for {:?}: {e}", p.dir))
}

fn failure(r: Result<(), rustls::Error>) -> TlsFailure {
    let e = r.expect_err("the handshake must fail");
    let f = TlsFailure::of(&e).unwrap_or_else(|| panic!("unclassified: {e}"));
    // The text alone gives the same answer (libraries that keep only it).
    assert_eq!(TlsFailure::of_text(&e.to_string()), Some(f), "{e}");
    f
}

/// Issue 14 (item 4): the right CA and client certificate work; another
/// CA, an expired certificate, a wrong name and a refused client
/// certificate each fail with their own reason.
#[test]
fn i14_handshake_failures_are_classified() {
    let p = pki("classify");
    let mtls = p.server_config(&p.server, true).expect("server config");
    assert_eq!(
        handshake(
            client(&p, &p.ca, Some(&p.client), None),
            "localhost",
            mtls.clone()
        ),
        Ok(())
    );
    assert_eq!(
        handshake(
            client(&p, &p.ca, Some(&p.client), None),
            "127.0.0.1",
            mtls.clone()
        ),
        Ok(())
    );
    let other_server = p.server_config(&p.other_server, false).expect("config");
    assert_eq!(
        failure(handshake(
            client(&p, &p.ca, None, None),
            "localhost",
            other_server
        )),
        TlsFailure::UnknownCa
    );
    let expired = p.server_config(&p.expired, false).expect("config");
    assert_eq!(
        failure(handshake(
            client(&p, &p.ca, None, None),
            "localhost",
            expired
        )),
        TlsFailure::Expired
    );
    let wrong = p.server_config(&p.wrong_name, false).expect("config");
    assert_eq!(
        failure(handshake(
            client(&p, &p.ca, None, None),
            "127.0.0.1",
            wrong.clone()
        )),
        TlsFailure::WrongName
    );
    // The override makes the same server acceptable, and a wrong override
    // refuses the right server.
    assert_eq!(
        handshake(
            client(&p, &p.ca, None, Some("other.example")),
            "127.0.0.1",
            wrong
        ),
        Ok(())
    );
    let plain = p.server_config(&p.server, false).expect("config");
    assert_eq!(
        failure(handshake(
            client(&p, &p.ca, None, Some("other.example")),
            "localhost",
            plain
        )),
        TlsFailure::WrongName
    );
    // A client certificate from another CA is refused by the server.
    let refused = handshake(
        client(&p, &p.ca, Some(&p.other_client), None),
        "localhost",
        mtls,
    );
    assert_eq!(failure(refused), TlsFailure::ClientCertRefused);
    let _ = std::fs::remove_dir_all(&p.dir);
}

#[test]
fn i14_errors_are_found_in_io_wrapped_chains_and_texts() {
    let io = std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
    );
    assert_eq!(TlsFailure::of(&io), Some(TlsFailure::UnknownCa));
    assert_eq!(
        TlsFailure::of_text("transport error: invalid peer certificate: UnknownIssuer"),
        Some(TlsFailure::UnknownCa)
    );
    assert_eq!(
        TlsFailure::of_text("received fatal alert: CertificateRequired"),
        Some(TlsFailure::ClientCertRefused)
    );
    assert_eq!(TlsFailure::of_text("connection refused"), None);
    let e = connectivity(TlsFailure::Expired, "https://127.0.0.1:1", "detail");
    assert_eq!(e.code(), "provider.connectivity");
    assert!(e.to_string().contains("[tls.expired]"), "{e}");
}

/// R1.1: a missing, unreadable or wrong file is a config error naming the
/// setting; the key's content never shows.
#[test]
fn r1_1_bad_tls_files_name_their_setting() {
    let p = pki("files");
    let dir = &p.dir;
    let junk = dir.join("junk.pem");
    std::fs::write(&junk, "not a certificate\n").expect("write");
    let cfg = |ca: Option<&Path>, id: Option<(&Path, &Path)>, name: Option<&str>| {
        client_config(
            ClientFiles {
                ca,
                identity: id,
                server_name: name,
            },
            FIELDS,
            no_platform,
        )
    };
    let missing = dir.join("missing.pem");
    assert_eq!(field(cfg(Some(&missing), None, None)).0, "ca_file");
    assert_eq!(field(cfg(Some(&junk), None, None)).0, "ca_file");
    // A key is not a CA bundle.
    assert_eq!(field(cfg(Some(&p.client.key), None, None)).0, "ca_file");
    assert_eq!(
        field(cfg(Some(&p.ca), Some((&missing, &p.client.key)), None)).0,
        "client_cert"
    );
    assert_eq!(
        field(cfg(Some(&p.ca), Some((&p.client.cert, &junk)), None)).0,
        "client_key"
    );
    // A certificate where the key belongs: no key in the file.
    let (f, reason) = field(cfg(
        Some(&p.ca),
        Some((&p.client.cert, &p.client.cert)),
        None,
    ));
    assert_eq!(f, "client_key");
    assert!(reason.contains("no PRIVATE KEY"), "{reason}");
    // The key of another certificate.
    let (f, reason) = field(cfg(
        Some(&p.ca),
        Some((&p.client.cert, &p.other_client.key)),
        None,
    ));
    assert_eq!(f, "client_key");
    let key_text = std::fs::read_to_string(&p.other_client.key).expect("key");
    let body = key_text.lines().nth(1).expect("a base64 line");
    assert!(!reason.contains(body), "{reason}");
    assert_eq!(
        field(cfg(Some(&p.ca), None, Some("not a name!"))).0,
        "tls_server_name"
    );
    assert!(
        cfg(
            Some(&p.ca),
            Some((&p.client.cert, &p.client.key)),
            Some("x.example")
        )
        .is_ok()
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn installing_the_ring_default_is_idempotent() {
    install_ring_default();
    install_ring_default();
    assert!(CryptoProvider::get_default().is_some());
}

/// The probe reads the verdict of a server that refuses client
/// certificates after the handshake, and finds nothing wrong with a
/// server that accepts ours.
#[tokio::test]
async fn i14_the_probe_reads_the_servers_verdict() {
    let p = pki("probe");
    let server = p.server_config(&p.server, true).expect("server config");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    tokio::spawn(async move {
        let acceptor = tokio_rustls::TlsAcceptor::from(server);
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut s) = acceptor.accept(tcp).await {
                    use tokio::io::AsyncWriteExt;
                    let _ = s.write_all(b"hello").await;
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
            });
        }
    });
    let bound = std::time::Duration::from_secs(2);
    let name = || ServerName::try_from("localhost").expect("name");
    let with = |id: Option<&Pair>| Arc::new(client(&p, &p.ca, id, None));
    assert_eq!(
        probe(&addr, name(), with(Some(&p.client)), bound).await,
        None
    );
    assert_eq!(
        probe(&addr, name(), with(Some(&p.other_client)), bound).await,
        Some(TlsFailure::ClientCertRefused)
    );
    assert_eq!(
        probe(&addr, name(), with(None), bound).await,
        Some(TlsFailure::ClientCertRefused)
    );
    let other = Arc::new(client(&p, &p.other_ca, None, None));
    assert_eq!(
        probe(&addr, name(), other, bound).await,
        Some(TlsFailure::UnknownCa)
    );
    // Nobody listening: not a TLS problem.
    assert_eq!(probe("127.0.0.1:1", name(), with(None), bound).await, None);
    let _ = std::fs::remove_dir_all(&p.dir);
}
