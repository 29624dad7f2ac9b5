//! Shared test support.
pub mod logs;
pub mod nodes;
