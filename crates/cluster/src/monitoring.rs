//! Failure detection at constant cost per node (issue 17, item 1;
//! design: `docs/monitoring-design.md`).
//!
//! **Stage 1 of the design only**: the pure building blocks that have no
//! state over time, not yet used by Remoting (no behaviour change):
//!
//! - [`ring`]: who monitors whom. Members are placed on a ring by a stable
//!   hash of their node id; each member is monitored by the
//!   `k_eff = min(k, N − 1)` members that follow it ([`Ring`]); and the
//!   broadcast trees a verdict travels along ([`tree_children`]).
//! - [`config`]: [`MonitoringConfig`], the design's parameters (§2.8) with
//!   their defaults, [`MonitoringConfig::validate`] (error code
//!   `remoting.monitoring_config`), and the derived values
//!   ([`k_eff`], [`q_eff`], [`MonitoringConfig::t_min`]).
//!
//! The per-target state machine (probes, indirect probes, votes, quorum,
//! local health) is stage 2; it will live in this module, with the state
//! machine in this doc, driven by Remoting and by the simulation alike.

pub mod config;
pub mod ring;

pub use config::{
    MonitoringConfig, MonitoringConfigError, MonitoringDetector, MonitoringMode, k_eff, q_eff,
};
pub use ring::{RING_HASH_DOMAIN, Ring, ring_position, tree_children};
