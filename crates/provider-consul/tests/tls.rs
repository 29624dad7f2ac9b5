//! The Consul provider over TLS (issue 14, item 4): the fake agent serves
//! HTTPS with certificates generated here and requires a client
//! certificate (`verify_incoming`). The right CA and client certificate
//! work; another CA, an expired certificate, a wrong name and a refused
//! client certificate each fail with `provider.connectivity` and their
//! `tls.*` reason; bad files are `provider.config` errors naming the
//! setting.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "support/harness.rs"]
mod harness;

use std::path::Path;
use std::sync::Arc;

use cluster_core::ProviderFactory;
use cluster_core::{ClusterProvider, ProviderDescriptor, ProviderError, ProvisioningError};
use fake_consul::FakeConsul;
use harness::*;
use provider_consul::ConsulKind;
use test_pki::{Pair, TestPki};

fn pki(name: &str) -> TestPki {
    let dir = std::env::temp_dir().join(format!("provider-consul-{name}-{}", std::process::id()));
    TestPki::generate(&dir).unwrap()
}

/// A fake agent presenting `server`, requiring client certificates of the
/// test CA.
async fn agent(pki: &TestPki, server: &Pair) -> FakeConsul {
    FakeConsul::builder()
        .tls(pki.server_config(server, true).unwrap())
        .min_deregister_after(std::time::Duration::ZERO)
        .start()
        .await
        .unwrap()
}

fn path(p: &Path) -> String {
    p.to_str().unwrap().to_owned()
}

/// The test descriptor with the CA and, if given, a client certificate.
fn descriptor(agent: &FakeConsul, ca: &Path, client: Option<&Pair>) -> ProviderDescriptor {
    let mut d = consul("consul", 0, agent).with_setting("ca_file", path(ca));
    if let Some(c) = client {
        d = d
            .with_setting("client_cert", path(&c.cert))
            .with_setting("client_key", path(&c.key));
    }
    d
}

fn build(d: &ProviderDescriptor) -> Result<Arc<dyn ClusterProvider>, ProviderError> {
    ConsulKind::without_env().create(d)
}

/// The connectivity check's error: `provider.connectivity` with `reason`.
async fn refused(d: &ProviderDescriptor, reason: &str) {
    let p = build(d).unwrap();
    let e = tokio::time::timeout(BOUND, p.check_connectivity())
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(e.code(), "provider.connectivity", "{e}");
    assert!(
        e.to_string().contains(&format!("[{reason}]")),
        "{reason}: {e}"
    );
    // Registration says the same (not counted towards suppression).
    let e = p.register(&member("x", 4009)).await.unwrap_err();
    assert_eq!(e.code(), "provider.connectivity", "{e}");
    assert!(
        e.to_string().contains(&format!("[{reason}]")),
        "{reason}: {e}"
    );
}

/// Issue 14 / P2: with the right CA and a client certificate, two nodes
/// register and see each other over HTTPS, through descriptor settings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i14_p2_consul_over_tls_with_a_client_certificate() {
    let pki = pki("ok");
    let agent = agent(&pki, &pki.server).await;
    assert!(agent.url().starts_with("https://"));
    let d = descriptor(&agent, &pki.ca, Some(&pki.client));
    let a = node_with(member("a", 4001), vec![d.clone()], &[])
        .await
        .unwrap();
    let b = node_with(member("b", 4002), vec![d], &[]).await.unwrap();
    a.wait_topology("a sees b", |t| Node::has(t, "a") && Node::has(t, "b"))
        .await;
    b.wait_topology("b sees a", |t| Node::has(t, "a") && Node::has(t, "b"))
        .await;
    assert_eq!(agent.request_count(fake_consul::TLS_HANDSHAKE_FAILED), 0);
    a.shutdown().await;
    b.shutdown().await;
    let _ = std::fs::remove_dir_all(&pki.dir);
}

/// Issue 14: each handshake failure has its reason, and a node refuses to
/// start on it naming the provider.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i14_p2_consul_refuses_bad_certificates_with_their_reason() {
    let pki = pki("refused");
    // A server certificate from another CA.
    let other = agent(&pki, &pki.other_server).await;
    refused(
        &descriptor(&other, &pki.ca, Some(&pki.client)),
        "tls.unknown_ca",
    )
    .await;
    // An expired server certificate.
    let expired = agent(&pki, &pki.expired).await;
    refused(
        &descriptor(&expired, &pki.ca, Some(&pki.client)),
        "tls.expired",
    )
    .await;
    // A certificate for another name: refused, unless tls_server_name says
    // that name is expected.
    let wrong = agent(&pki, &pki.wrong_name).await;
    let d = descriptor(&wrong, &pki.ca, Some(&pki.client));
    refused(&d, "tls.wrong_name").await;
    let named = d.clone().with_setting("tls_server_name", "other.example");
    build(&named).unwrap().check_connectivity().await.unwrap();
    // The right server, a client certificate from another CA, or none.
    let good = agent(&pki, &pki.server).await;
    refused(
        &descriptor(&good, &pki.ca, Some(&pki.other_client)),
        "tls.client_cert_refused",
    )
    .await;
    refused(&descriptor(&good, &pki.ca, None), "tls.client_cert_refused").await;
    // https to a plaintext agent.
    let plain = fake().await;
    let d = consul("consul", 0, &plain)
        .with_setting("address", plain.url().replace("http://", "https://"))
        .with_setting("ca_file", path(&pki.ca));
    refused(&d, "tls.handshake").await;

    // A node does not start on it, and the error names the provider.
    let e = node_with(
        member("a", 4001),
        vec![descriptor(&other, &pki.ca, Some(&pki.client))],
        &[],
    )
    .await
    .err()
    .expect("refused");
    match &e {
        ProvisioningError::Provider { provider, source } => {
            assert_eq!(provider.as_str(), "consul");
            assert!(source.to_string().contains("[tls.unknown_ca]"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    let _ = std::fs::remove_dir_all(&pki.dir);
}

/// R1.1 / issue 14: a missing or wrong TLS file is a config error naming
/// the setting when the provider is built (before any connection); the
/// node refuses the descriptor naming `settings.<field>`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i14_r1_1_bad_tls_files_are_config_errors_naming_the_setting() {
    let pki = pki("files");
    let agent = agent(&pki, &pki.server).await;
    let missing = pki.dir.join("missing.pem");
    let field = |d: ProviderDescriptor| match build(&d).err() {
        Some(ProviderError::Config { field, .. }) => field,
        other => panic!("{other:?}"),
    };
    let good = Some(&pki.client);
    assert_eq!(field(descriptor(&agent, &missing, good)), "ca_file");
    assert_eq!(field(descriptor(&agent, &pki.client.key, good)), "ca_file");
    let swapped = Pair {
        cert: pki.client.key.clone(),
        key: pki.client.cert.clone(),
    };
    assert_eq!(
        field(descriptor(&agent, &pki.ca, Some(&swapped))),
        "client_cert"
    );
    let mismatched = Pair {
        cert: pki.client.cert.clone(),
        key: pki.other_client.key.clone(),
    };
    assert_eq!(
        field(descriptor(&agent, &pki.ca, Some(&mismatched))),
        "client_key"
    );
    let d = descriptor(&agent, &pki.ca, good).with_setting("tls_server_name", "bad name");
    assert_eq!(field(d), "tls_server_name");
    let e = node_with(
        member("a", 4001),
        vec![descriptor(&agent, &missing, good)],
        &[],
    )
    .await
    .err()
    .expect("refused");
    assert_eq!(e.code(), "validation.invalid_field", "{e}");
    assert!(e.to_string().contains("settings.ca_file"), "{e}");
    let _ = std::fs::remove_dir_all(&pki.dir);
}

/// Issue 14: an agent that ends the connection right after the handshake,
/// as a Go agent does when it refuses the client certificate, leaves the
/// HTTP client with a closed connection only; the provider's own
/// handshake names the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i14_p2_a_connection_closed_after_the_handshake_is_diagnosed() {
    let pki = pki("closed");
    let config = pki.server_config(&pki.server, false).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        while let Ok((tcp, _)) = listener.accept().await {
            // Handshake, then drop the connection without a word.
            let _ = acceptor.accept(tcp).await;
        }
    });
    let d = ProviderDescriptor::new(pid("consul"), "consul", 0)
        .with_setting("address", url)
        .with_setting("service", "lab")
        .with_setting("request_timeout_ms", "1000")
        .with_setting("ca_file", path(&pki.ca))
        .with_setting("client_cert", path(&pki.client.cert))
        .with_setting("client_key", path(&pki.client.key));
    refused(&d, "tls.client_cert_refused").await;
    server.abort();
    let _ = std::fs::remove_dir_all(&pki.dir);
}
