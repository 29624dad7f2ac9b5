//! Issue 14, item 4, through the node's configuration file: the TLS
//! settings of the Consul, etcd and Kubernetes providers are checked by
//! `cluster-node check-config` with real certificate files, and a missing
//! or mismatched file is refused (exit 2) naming the provider and the key.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::Path;
use std::process::Command;

use test_pki::TestPki;

const BIN: &str = env!("CARGO_BIN_EXE_cluster-node");

fn config(settings: &str, kind: &str) -> String {
    format!(
        "cluster = \"shop\"\nnode_id = \"n1\"\nbind = \"127.0.0.1:4000\"\n\n[[providers]]\nid = \"backend\"\nkind = \"{kind}\"\n[providers.settings]\n{settings}\n"
    )
}

/// `check-config` on `text`: the exit code and stderr.
fn check(dir: &Path, text: &str) -> (Option<i32>, String) {
    let file = dir.join("node.toml");
    std::fs::write(&file, text).unwrap();
    let out = Command::new(BIN)
        .arg("check-config")
        .arg(&file)
        .env_remove("CONSUL_HTTP_ADDR")
        .env_remove("CONSUL_CACERT")
        .env_remove("ETCDCTL_ENDPOINTS")
        .env_remove("ETCDCTL_CACERT")
        .env("POD_NAMESPACE", "default")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn i14_backend_tls_settings_are_checked_naming_the_provider_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(&dir.path().join("pki")).unwrap();
    let p = |p: &Path| p.display().to_string();
    let (ca, cert, key) = (p(&pki.ca), p(&pki.client.cert), p(&pki.client.key));
    let missing = p(&dir.path().join("missing.pem"));
    let other_key = p(&pki.other_client.key);
    let consul = |ca: &str, key: &str| {
        config(
            &format!(
                "address = \"https://127.0.0.1:8501\"\nca_file = \"{ca}\"\nclient_cert = \"{cert}\"\nclient_key = \"{key}\"\ntls_server_name = \"localhost\""
            ),
            "consul",
        )
    };
    let etcd = |ca: &str, key: &str| {
        config(
            &format!(
                "endpoints = [\"https://127.0.0.1:2379\"]\ntls_ca = \"{ca}\"\ntls_cert = \"{cert}\"\ntls_key = \"{key}\"\ntls_server_name = \"localhost\""
            ),
            "etcd",
        )
    };
    let k8s = |ca: &str, key: &str| {
        config(
            &format!(
                "server = \"https://127.0.0.1:6443\"\nca_file = \"{ca}\"\nclient_cert = \"{cert}\"\nclient_key = \"{key}\"\ntls_server_name = \"localhost\""
            ),
            "kubernetes",
        )
    };
    for (kind, make, ca_key, key_key) in [
        (
            "consul",
            &consul as &dyn Fn(&str, &str) -> String,
            "ca_file",
            "client_key",
        ),
        ("etcd", &etcd, "tls_ca", "tls_key"),
        ("kubernetes", &k8s, "ca_file", "client_key"),
    ] {
        let (code, err) = check(dir.path(), &make(&ca, &key));
        assert_eq!(code, Some(0), "{kind}: {err}");
        let (code, err) = check(dir.path(), &make(&missing, &key));
        assert_eq!(code, Some(2), "{kind}: {err}");
        assert!(
            err.contains(&format!("providers[backend].settings.{ca_key}")),
            "{kind}: {err}"
        );
        let (code, err) = check(dir.path(), &make(&ca, &other_key));
        assert_eq!(code, Some(2), "{kind}: {err}");
        assert!(
            err.contains(&format!("providers[backend].settings.{key_key}")),
            "{kind}: {err}"
        );
        // The key's content never shows, only its path.
        let body = std::fs::read_to_string(&pki.other_client.key).unwrap();
        assert!(!err.contains(body.lines().nth(1).unwrap()), "{kind}: {err}");
    }
}
