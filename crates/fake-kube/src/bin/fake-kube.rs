//! Runs a fake Kubernetes API server (pods only) by hand and prints a
//! kubeconfig for it, so that `kubectl` or any client can talk to it.
//!
//! ```text
//! fake-kube [--port N] [--namespace NS] [--demo-pods N] [--cluster NAME] [--kubeconfig PATH] [--tls-dir DIR]
//! ```
//!
//! `--tls-dir DIR` serves HTTPS with certificates generated into `DIR` (a
//! test CA, a server certificate for `localhost` / `127.0.0.1`, a client
//! certificate; see the `test-pki` crate) and requires the client
//! certificate; the printed kubeconfig names the CA and client files, so
//! `kubectl` talks mutual TLS to it.
//!
//! `--demo-pods N` creates N ready pods labelled
//! `cluster-provisioning.io/cluster=<NAME>` (default `demo`) and annotated
//! with a node id and port, the way the Kubernetes provider expects its
//! members. Stops on Ctrl-C.

use std::net::SocketAddr;
use std::process::ExitCode;

use fake_kube::{FakeKube, FakeKubeConfig, FakePod};

struct Args {
    port: u16,
    namespace: String,
    demo_pods: usize,
    cluster: String,
    kubeconfig: Option<String>,
    tls_dir: Option<std::path::PathBuf>,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        port: 0,
        namespace: "default".into(),
        demo_pods: 0,
        cluster: "demo".into(),
        kubeconfig: None,
        tls_dir: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--port" => a.port = value()?.parse().map_err(|e| format!("--port: {e}"))?,
            "--namespace" => a.namespace = value()?,
            "--demo-pods" => {
                a.demo_pods = value()?.parse().map_err(|e| format!("--demo-pods: {e}"))?
            }
            "--cluster" => a.cluster = value()?,
            "--kubeconfig" => a.kubeconfig = Some(value()?),
            "--tls-dir" => a.tls_dir = Some(value()?.into()),
            "-h" | "--help" => {
                return Err(
                    "usage: fake-kube [--port N] [--namespace NS] [--demo-pods N] [--cluster NAME] [--kubeconfig PATH] [--tls-dir DIR]"
                        .into(),
                );
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    Ok(a)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let pki = match &args.tls_dir {
        None => None,
        Some(dir) => match test_pki::TestPki::generate(dir) {
            Ok(p) => Some(p),
            Err(e) => {
                eprintln!("fake-kube: certificates in {}: {e}", dir.display());
                return ExitCode::FAILURE;
            }
        },
    };
    let tls = match &pki {
        None => None,
        Some(p) => match p.server_config(&p.server, true) {
            Ok(c) => Some(c),
            Err(e) => {
                eprintln!("fake-kube: TLS configuration: {e}");
                return ExitCode::FAILURE;
            }
        },
    };
    let config = FakeKubeConfig {
        addr: SocketAddr::from(([127, 0, 0, 1], args.port)),
        tls,
        ..FakeKubeConfig::default()
    };
    let kube = match FakeKube::start_with(config).await {
        Ok(k) => k,
        Err(e) => {
            eprintln!("fake-kube: cannot listen: {e}");
            return ExitCode::FAILURE;
        }
    };
    for i in 0..args.demo_pods {
        let pod = FakePod::new(&args.namespace, format!("{}-{i}", args.cluster))
            .label("cluster-provisioning.io/cluster", &args.cluster)
            .annotation(
                "cluster-provisioning.io/node-id",
                format!("{}-{i}", args.cluster),
            )
            .annotation("cluster-provisioning.io/port", "4000")
            .annotation("cluster-provisioning.io/incarnation", "1")
            .ip(format!("10.0.{}.{}", i / 250, i % 250 + 1))
            .ready(true);
        if let Err(e) = kube.create_pod(pod) {
            eprintln!("fake-kube: demo pod {i}: {e}");
            return ExitCode::FAILURE;
        }
    }
    let config = match &pki {
        None => kube.kubeconfig(&args.namespace),
        Some(p) => kube.kubeconfig_tls(&args.namespace, &p.ca, &p.client.cert, &p.client.key),
    };
    if let Some(path) = &args.kubeconfig {
        if let Err(e) = std::fs::write(path, &config) {
            eprintln!("fake-kube: writing {path}: {e}");
            return ExitCode::FAILURE;
        }
        eprintln!("fake-kube: kubeconfig written to {path}");
    }
    eprintln!(
        "fake-kube: a FAKE Kubernetes API server (pods only) at {}; Ctrl-C stops it",
        kube.url()
    );
    println!("{config}");
    let _ = tokio::signal::ctrl_c().await;
    kube.shutdown().await;
    ExitCode::SUCCESS
}
