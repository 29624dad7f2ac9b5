//! Shared test support.
pub mod nodes;
