//! Shared test support.
/// The tracing capture of the provisioning-actors tests, shared rather than
/// copied.
#[path = "../../../provisioning-actors/tests/support/logs.rs"]
pub mod logs;
pub mod nodes;
