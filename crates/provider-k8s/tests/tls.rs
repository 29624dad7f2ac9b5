//! The Kubernetes provider over TLS (issue 14, item 4): the fake API server
//! serves HTTPS with certificates generated here and requires a client
//! certificate. Explicit `server`, `ca_file`, `client_cert`, `client_key`
//! settings work on their own and over a kubeconfig; a kubeconfig carrying
//! the files works; another CA, an expired certificate, a wrong name and a
//! refused client certificate each fail with `provider.connectivity` and
//! their `tls.*` reason; bad files are `provider.config` naming the
//! setting.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "support/rig.rs"]
mod rig;

use std::path::Path;

use cluster_core::{ClusterProvider, ProviderDescriptor, ProviderError};
use fake_kube::{FakeKube, FakeKubeConfig};
use provider_k8s::{KubernetesKind, KubernetesProvider};
use rig::*;
use test_pki::{Pair, TestPki};

async fn api(pki: &TestPki, server: &Pair) -> FakeKube {
    let fake = FakeKube::start_with(FakeKubeConfig {
        tls: Some(pki.server_config(server, true).unwrap()),
        ..FakeKubeConfig::default()
    })
    .await
    .unwrap();
    fake.create_pod(member_pod("p-0", "n0", "10.0.0.1", true))
        .unwrap();
    fake
}

fn path(p: &Path) -> String {
    p.to_str().unwrap().to_owned()
}

/// A descriptor for `fake` by explicit settings: server, CA, client pair.
fn explicit(fake: &FakeKube, ca: &Path, client: Option<&Pair>) -> ProviderDescriptor {
    let mut d = ProviderDescriptor::new(pid("k8s"), "kubernetes", 0)
        .with_setting("cluster", CLUSTER)
        .with_setting("namespace", NS)
        .with_setting("server", fake.url())
        .with_setting("ca_file", path(ca))
        .with_setting("keepalive_ms", "200")
        .with_setting("backoff_initial_ms", "50")
        .with_setting("backoff_max_ms", "200");
    if let Some(c) = client {
        d = d
            .with_setting("client_cert", path(&c.cert))
            .with_setting("client_key", path(&c.key));
    }
    d
}

fn build(d: &ProviderDescriptor) -> Result<KubernetesProvider, ProviderError> {
    KubernetesKind::new()
        .with_namespace_file("/nonexistent")
        .build(d)
}

async fn refused(d: &ProviderDescriptor, reason: &str) {
    let p = build(d).unwrap();
    let e = tokio::time::timeout(WAIT, p.check_connectivity())
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(e.code(), "provider.connectivity", "{e}");
    assert!(
        e.to_string().contains(&format!("[{reason}]")),
        "{reason}: {e}"
    );
}

/// Issue 14 / P3: explicit settings alone, explicit settings over a
/// kubeconfig that has none, and a kubeconfig carrying the files each
/// reach the API server over mutual TLS and publish its member.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i14_p3_kubernetes_over_tls_with_a_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(dir.path()).unwrap();
    let fake = api(&pki, &pki.server).await;
    assert!(fake.url().starts_with("https://"));

    let bare = dir.path().join("bare.yaml");
    std::fs::write(&bare, fake.kubeconfig(NS)).unwrap();
    let full = dir.path().join("full.yaml");
    std::fs::write(
        &full,
        fake.kubeconfig_tls(NS, &pki.ca, &pki.client.cert, &pki.client.key),
    )
    .unwrap();
    let over_kubeconfig = {
        let mut d = explicit(&fake, &pki.ca, Some(&pki.client));
        d.settings.remove("server");
        d.with_setting("kubeconfig", path(&bare))
    };
    let from_kubeconfig = {
        let mut d = explicit(&fake, &pki.ca, None);
        d.settings.remove("server");
        d.settings.remove("ca_file");
        d.with_setting("kubeconfig", path(&full))
    };
    for d in [
        explicit(&fake, &pki.ca, Some(&pki.client)),
        over_kubeconfig,
        from_kubeconfig,
    ] {
        let n = node(config(None), vec![d.clone()], None).await;
        n.wait_topology("the pod's member over TLS", |t| ids(t) == set(&["n0"]))
            .await;
        n.shutdown().await;
    }
    assert_eq!(fake.tls_handshake_failures(), 0);

    // Without the explicit files the bare kubeconfig (no CA, no client
    // certificate) is refused: the settings above did the work.
    let mut d = explicit(&fake, &pki.ca, None);
    d.settings.remove("server");
    d.settings.remove("ca_file");
    let d = d.with_setting("kubeconfig", path(&bare));
    let e = build(&d).unwrap().check_connectivity().await.unwrap_err();
    assert_eq!(e.code(), "provider.connectivity", "{e}");
    assert!(e.to_string().contains("[tls."), "{e}");
}

/// Issue 14: each refused handshake has its reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i14_p3_kubernetes_refuses_bad_certificates_with_their_reason() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(dir.path()).unwrap();
    let other = api(&pki, &pki.other_server).await;
    refused(
        &explicit(&other, &pki.ca, Some(&pki.client)),
        "tls.unknown_ca",
    )
    .await;
    let expired = api(&pki, &pki.expired).await;
    refused(
        &explicit(&expired, &pki.ca, Some(&pki.client)),
        "tls.expired",
    )
    .await;
    let wrong = api(&pki, &pki.wrong_name).await;
    let d = explicit(&wrong, &pki.ca, Some(&pki.client));
    refused(&d, "tls.wrong_name").await;
    let named = d.with_setting("tls_server_name", "other.example");
    build(&named).unwrap().check_connectivity().await.unwrap();
    let good = api(&pki, &pki.server).await;
    refused(
        &explicit(&good, &pki.ca, Some(&pki.other_client)),
        "tls.client_cert_refused",
    )
    .await;
    refused(&explicit(&good, &pki.ca, None), "tls.client_cert_refused").await;
}

/// R1.1 / issue 14: a missing or wrong TLS file is a config error naming
/// the setting when the provider is built.
#[test]
fn i14_r1_1_bad_tls_files_are_config_errors_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(dir.path()).unwrap();
    let field = |d: ProviderDescriptor| match build(&d) {
        Err(ProviderError::Config { field, .. }) => field,
        Err(other) => panic!("{other}"),
        Ok(_) => panic!("accepted"),
    };
    let d = |ca: &Path, cert: &Path, key: &Path| {
        ProviderDescriptor::new(pid("k8s"), "kubernetes", 0)
            .with_setting("cluster", CLUSTER)
            .with_setting("namespace", NS)
            .with_setting("server", "https://127.0.0.1:1")
            .with_setting("ca_file", path(ca))
            .with_setting("client_cert", path(cert))
            .with_setting("client_key", path(key))
    };
    let missing = dir.path().join("missing.pem");
    let (ca, cert, key) = (&pki.ca, &pki.client.cert, &pki.client.key);
    assert_eq!(field(d(&missing, cert, key)), "ca_file");
    assert_eq!(field(d(key, cert, key)), "ca_file");
    assert_eq!(field(d(ca, &missing, key)), "client_cert");
    assert_eq!(field(d(ca, cert, cert)), "client_key");
    assert_eq!(field(d(ca, cert, &pki.other_client.key)), "client_key");
    assert_eq!(
        field(d(ca, cert, key).with_setting("tls_server_name", "bad name")),
        "tls_server_name"
    );
    assert!(build(&d(ca, cert, key)).is_ok());
}

/// Issue 14: a server that ends the connection right after the handshake,
/// as a Go API server does when it refuses the client certificate, leaves
/// the HTTP client with a closed connection only; the provider's own
/// handshake names the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i14_p3_a_connection_closed_after_the_handshake_is_diagnosed() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(dir.path()).unwrap();
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
    let d = ProviderDescriptor::new(pid("k8s"), "kubernetes", 0)
        .with_setting("cluster", CLUSTER)
        .with_setting("namespace", NS)
        .with_setting("server", url)
        .with_setting("ca_file", path(&pki.ca))
        .with_setting("client_cert", path(&pki.client.cert))
        .with_setting("client_key", path(&pki.client.key));
    refused(&d, "tls.client_cert_refused").await;
    server.abort();
}
