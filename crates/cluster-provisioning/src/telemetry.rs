//! Logs and metrics for a node (N3, N2).
//!
//! - [`init_logs`]: `tracing-subscriber` with an `EnvFilter` (`RUST_LOG`
//!   wins over the configured level) and text or JSON lines on stderr. At
//!   the default level a quiet, healthy node logs nothing after its start;
//!   provider health changes, failovers, status changes, quarantines,
//!   suppressions, authorisation failures and refused handshakes are one
//!   line each.
//! - [`prometheus`]: installs the process-wide Prometheus recorder once
//!   and describes every metric with its unit; `GET /metrics` renders it.
//!   Every series carries a `node` label, so several nodes in one process
//!   keep apart.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

/// Installs the global `tracing` subscriber for `config`, unless one is
/// already installed (an application that set up its own keeps it).
/// Returns whether this call installed it.
pub fn init_logs(config: &LogConfig) -> bool {
    use std::io::IsTerminal;
    let mut bad_rust_log = None;
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) => match EnvFilter::try_new(&v) {
            Ok(f) => Some(f),
            Err(e) => {
                bad_rust_log = Some(format!(
                    "RUST_LOG={v:?} is not a filter ({e}); using [log] level"
                ));
                None
            }
        },
        Err(_) => None,
    }
    .unwrap_or_else(|| {
        EnvFilter::try_new(&config.level).unwrap_or_else(|_| EnvFilter::new("info"))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours only for a person at a terminal, not for `kubectl logs`
        // or journald.
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(true);
    let installed = match config.format {
        LogFormat::Text => builder.try_init().is_ok(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init()
            .is_ok(),
    };
    if let Some(warning) = bad_rust_log {
        tracing::warn!("{warning}");
    }
    installed
}

static PROMETHEUS: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The process-wide Prometheus recorder: installed on the first call,
/// shared by every node of the process afterwards. `None` when another
/// recorder was installed first (the application's own): `/metrics` then
/// answers 404 and the application exports metrics its own way.
pub fn prometheus() -> Option<PrometheusHandle> {
    PROMETHEUS
        .get_or_init(|| {
            let handle = PrometheusBuilder::new().install_recorder().ok()?;
            describe_all();
            Some(handle)
        })
        .clone()
}

/// Describes every metric of the workspace (name, unit, help) on the
/// installed recorder.
pub fn describe_all() {
    actor_runtime::metrics::describe();
    provisioning_actors::metrics::describe();
    cluster::metrics::describe();
    #[cfg(feature = "file")]
    provider_file::describe();
    #[cfg(feature = "etcd")]
    provider_etcd::describe();
    #[cfg(feature = "seed")]
    provider_seed::describe();
}
