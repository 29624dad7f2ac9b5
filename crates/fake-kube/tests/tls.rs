//! The fake API server over TLS (issue 14, item 4): kube's client and, when
//! installed, `kubectl` list pods through a kubeconfig with a CA and a
//! client certificate; a client without a certificate is refused.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use fake_kube::{FakeKube, FakeKubeConfig, FakePod};
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};
use test_pki::TestPki;

const NS: &str = "apps";
const WAIT: Duration = Duration::from_secs(10);

async fn client(yaml: &str) -> Client {
    let kc = Kubeconfig::from_yaml(yaml).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .unwrap();
    Client::try_from(config).unwrap()
}

#[tokio::test]
async fn i14_kube_and_kubectl_list_pods_over_tls_with_a_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(dir.path()).unwrap();
    let fake = FakeKube::start_with(FakeKubeConfig {
        tls: Some(pki.server_config(&pki.server, true).unwrap()),
        ..FakeKubeConfig::default()
    })
    .await
    .unwrap();
    assert!(fake.url().starts_with("https://127.0.0.1:"));
    fake.create_pod(FakePod::new(NS, "p-0").ready(true))
        .unwrap();

    let yaml = fake.kubeconfig_tls(NS, &pki.ca, &pki.client.cert, &pki.client.key);
    let pods: Api<Pod> = Api::namespaced(client(&yaml).await, NS);
    let list = tokio::time::timeout(WAIT, pods.list(&ListParams::default()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(list.items.len(), 1);

    // Without the client certificate the server refuses the handshake.
    let anonymous = fake.kubeconfig(NS).replace(
        "    server: https",
        &format!(
            "    certificate-authority: {}\n    server: https",
            pki.ca.display()
        ),
    );
    let pods: Api<Pod> = Api::namespaced(client(&anonymous).await, NS);
    let e = tokio::time::timeout(WAIT, pods.list(&ListParams::default()))
        .await
        .unwrap()
        .unwrap_err();
    assert!(!matches!(e, kube::Error::Api(_)), "{e}");
    let deadline = tokio::time::Instant::now() + WAIT;
    while fake.tls_handshake_failures() == 0 {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // kubectl, when installed, through the same kubeconfig.
    let Ok(out) = std::process::Command::new("kubectl")
        .args(["version", "--client"])
        .output()
    else {
        assert!(
            std::env::var("CI_REQUIRE_KUBECTL").as_deref() != Ok("1"),
            "CI_REQUIRE_KUBECTL=1 but kubectl is not installed"
        );
        eprintln!("kubectl not installed: skipping the kubectl-over-TLS check");
        return;
    };
    assert!(out.status.success());
    let kc = dir.path().join("config");
    std::fs::write(&kc, &yaml).unwrap();
    let out = tokio::time::timeout(
        WAIT,
        tokio::process::Command::new("kubectl")
            .env("KUBECONFIG", &kc)
            .arg("--cache-dir")
            .arg(dir.path().join("cache"))
            .args(["get", "pods", "-o", "name"])
            .output(),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(
        out.status.success(),
        "kubectl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "pod/p-0");
}
