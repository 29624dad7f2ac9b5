//! `cluster-node`: run a cluster node from a configuration file, check a
//! configuration, or look at a running node.
//!
//! ```text
//! cluster-node run --config node.toml     start a node; SIGTERM leaves gracefully, exit 0
//! cluster-node check-config node.toml     print the effective configuration (secrets
//!                                         redacted); exit 0, or 2 with one line naming
//!                                         the file, the provider and the field
//! cluster-node status [--watch] [--admin URL]
//!                                         members, providers, quarantines, failovers
//! ```
//!
//! Everything here is a thin shell over `cluster_provisioning::Node`: an
//! application gets the same node runtime with one call.

mod status;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use cluster_provisioning::{Node, NodeConfig, NodeError};

/// A node of an actor cluster: membership providers, remoting, grains.
#[derive(Parser, Debug)]
#[command(name = "cluster-node", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Starts a node and runs it until SIGTERM or SIGINT (graceful leave).
    Run {
        /// The node's configuration file (TOML); `CLUSTER_*` variables
        /// override it.
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
    },
    /// Validates a configuration and prints it as it would run, secrets
    /// redacted. Exit 0 when valid, 2 otherwise.
    CheckConfig {
        /// The configuration file.
        #[arg(value_name = "FILE")]
        config: PathBuf,
    },
    /// Shows a running node's view: members, providers, quarantines,
    /// failovers.
    Status {
        /// Refresh in place until Ctrl-C.
        #[arg(long)]
        watch: bool,
        /// The node's admin address.
        #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:8558")]
        admin: String,
        /// Refresh interval with --watch, e.g. 1s or 500ms.
        #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
        interval: Duration,
    },
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let ms = s
        .strip_suffix("ms")
        .map(|n| n.parse::<u64>().map(Duration::from_millis))
        .or_else(|| {
            s.strip_suffix('s')
                .map(|n| n.parse::<u64>().map(Duration::from_secs))
        });
    match ms {
        Some(Ok(d)) if !d.is_zero() => Ok(d),
        _ => Err(format!("{s:?} is not a duration such as 1s or 500ms")),
    }
}

/// Exit code of an unusable configuration.
const EXIT_CONFIG: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { config } => check_config(&config),
        Command::Run { config } => run(&config),
        Command::Status {
            watch,
            admin,
            interval,
        } => status::command(&admin, watch, interval),
    }
}

fn check_config(path: &std::path::Path) -> ExitCode {
    let config = match NodeConfig::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if let Err(e) = cluster_provisioning::validate(&config, &cluster_provisioning::built_in_kinds())
    {
        eprintln!("{e}");
        return ExitCode::from(EXIT_CONFIG);
    }
    print!("{}", config.to_redacted_toml());
    ExitCode::SUCCESS
}

fn run(path: &std::path::Path) -> ExitCode {
    let config = match NodeConfig::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("cluster-node")
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let node = match Node::builder(config).start().await {
            Ok(n) => n,
            Err(e) => {
                eprintln!("{}", chain(&e));
                return match e {
                    NodeError::Config(_) | NodeError::Unsafe(_) => ExitCode::from(EXIT_CONFIG),
                    _ => ExitCode::FAILURE,
                };
            }
        };
        node.run_until_signal().await;
        ExitCode::SUCCESS
    })
}

/// An error and its sources on one line (`a: b: c`).
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !out.contains(&s_text) {
            out.push_str(": ");
            out.push_str(&s_text);
        }
        source = s.source();
    }
    out
}
