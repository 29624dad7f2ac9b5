//! The multi-host fault suite (issue 16): real `cluster-node` processes,
//! each in its own network namespace, a real etcd in another, a workload
//! that records a history, a seeded nemesis, a pure checker and a report.
//!
//! - [`hosts`]: namespaces, a bridge, partitions (a guard removes all);
//! - [`workload`]: the client agent next to each node;
//! - [`nemesis`]: the seeded fault schedule;
//! - [`scenario`]: runs a schedule against a cluster;
//! - [`checker`]: figures and the verdict from the history;
//! - [`logs`]: who quarantined whom and why, from the node logs;
//! - [`report`]: `report.md` and `timeline.png`.
//!
//! The CI scenario is `tests/ci.rs`; the long run is
//! `cargo run -p fault-suite -- run --nodes 5 --minutes 30`.

pub mod checker;
pub mod history;
pub mod hosts;
pub mod logs;
pub mod nemesis;
pub mod report;
pub mod scenario;
pub mod workload;
