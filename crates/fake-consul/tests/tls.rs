//! The fake agent over TLS (issue 14, item 4): HTTPS with a client
//! certificate works; a plaintext client and a client without a
//! certificate are refused and counted.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use fake_consul::{FakeConsul, TLS_HANDSHAKE_FAILED};
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use test_pki::TestPki;
use tokio::net::TcpStream;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

fn client_config(pki: &TestPki, with_cert: bool) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(&pki.ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let b = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    Arc::new(if with_cert {
        let chain = CertificateDer::pem_file_iter(&pki.client.cert)
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        b.with_client_auth_cert(
            chain,
            PrivateKeyDer::from_pem_file(&pki.client.key).unwrap(),
        )
        .unwrap()
    } else {
        b.with_no_client_auth()
    })
}

/// GET /v1/agent/self over TLS; the status, or the error text.
async fn get_self(consul: &FakeConsul, config: Arc<rustls::ClientConfig>) -> Result<u16, String> {
    let tcp = TcpStream::connect(consul.addr()).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .map_err(|e| e.to_string())?;
    let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let req = Request::get("/v1/agent/self")
        .header("host", "localhost")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = tx.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let _ = resp.into_body().collect().await;
    Ok(status)
}

#[tokio::test]
async fn i14_the_fake_agent_serves_tls_with_client_certificates() {
    let dir = tempdir();
    let pki = TestPki::generate(&dir).unwrap();
    let consul = FakeConsul::builder()
        .tls(pki.server_config(&pki.server, true).unwrap())
        .start()
        .await
        .unwrap();
    assert!(
        consul.url().starts_with("https://127.0.0.1:"),
        "{}",
        consul.url()
    );
    assert_eq!(get_self(&consul, client_config(&pki, true)).await, Ok(200));

    // Without a client certificate: refused (TLS 1.3 reports it on the
    // first read, so the request fails).
    let e = get_self(&consul, client_config(&pki, false))
        .await
        .unwrap_err();
    assert!(!e.is_empty());

    // A plaintext client gets no HTTP answer.
    let mut tcp = TcpStream::connect(consul.addr()).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    tcp.write_all(b"GET /v1/agent/self HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut buf)).await;
    assert!(
        !String::from_utf8_lossy(&buf).contains("HTTP/1.1 200"),
        "{buf:?}"
    );

    // Both refusals are counted once the server has seen them.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while consul.request_count(TLS_HANDSHAKE_FAILED) < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{:?}",
            consul.requests()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // A joined agent serves TLS too.
    let second = consul.join("node-2").await.unwrap();
    assert!(second.url().starts_with("https://"));
    assert_eq!(get_self(&second, client_config(&pki, true)).await, Ok(200));
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempdir() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("fake-consul-tls-{}", std::process::id()))
}
