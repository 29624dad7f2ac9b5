//! `fake-consul`: runs the fake Consul agent (NOT Consul) in the foreground
//! so that `curl` or the `consul` CLI can talk to it.
//!
//! ```text
//! fake-consul [--addr 127.0.0.1:8500] [--node NAME] [--token SECRET[:agent|:read|:write]]...
//!             [--reap-interval 30s] [--min-deregister-after 1m] [--tls-dir DIR]
//! ```
//!
//! `--tls-dir DIR` serves HTTPS with certificates generated into `DIR`
//! (`ca.pem`, `server.pem`, `client.pem`, `client-key.pem`...; see the
//! `test-pki` crate) and requires a client certificate, like an agent with
//! `verify_incoming`: `curl --cacert DIR/ca.pem --cert DIR/client.pem --key
//! DIR/client-key.pem https://localhost:8500/v1/agent/self`.

use std::time::Duration;

use fake_consul::{Access, FakeConsul};

fn usage() -> ! {
    eprintln!(
        "usage: fake-consul [--addr 127.0.0.1:8500] [--node NAME] [--token SECRET[:agent|:read|:write]]... \
         [--reap-interval 30s] [--min-deregister-after 1m] [--tls-dir DIR]"
    );
    std::process::exit(2)
}

fn duration(v: &str) -> Duration {
    humantime::parse_duration(v).unwrap_or_else(|_| usage())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let mut b = FakeConsul::builder().bind(([127, 0, 0, 1], 8500).into());
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--addr" => b = b.bind(value().parse().unwrap_or_else(|_| usage())),
            "--node" => b = b.node(value()),
            "--token" => {
                let v = value();
                let (t, access) = match v.rsplit_once(':') {
                    Some((t, "agent")) => (t.to_owned(), Access::AgentRead),
                    Some((t, "read")) => (t.to_owned(), Access::Read),
                    Some((t, "write")) => (t.to_owned(), Access::Write),
                    _ => (v, Access::Write),
                };
                b = b.token(t, access);
            }
            "--reap-interval" => b = b.reap_interval(duration(&value())),
            "--min-deregister-after" => b = b.min_deregister_after(duration(&value())),
            "--tls-dir" => {
                let dir = std::path::PathBuf::from(value());
                let tls = test_pki::TestPki::generate(&dir)
                    .and_then(|p| p.server_config(&p.server, true))
                    .map_err(|e| {
                        std::io::Error::other(format!("certificates in {}: {e}", dir.display()))
                    })?;
                b = b.tls(tls);
            }
            _ => usage(),
        }
    }
    let consul = b.start().await?;
    println!(
        "fake-consul (a test fake, NOT Consul) agent {} listening on {}",
        consul.node(),
        consul.url()
    );
    tokio::signal::ctrl_c().await?;
    consul.shutdown().await;
    Ok(())
}
