//! `[diagnostics]`: opt-in tools for testing a running cluster from
//! outside (issue 16). Off by default.
//!
//! ```toml
//! [diagnostics]
//! probe_counter = true   # hosts the `probe-counter` grain kind and serves
//!                        # POST /grains/probe-counter/{id} on the admin port
//! ```
//!
//! See [`crate::probe`].

use serde::{Deserialize, Serialize};

/// `[diagnostics]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiagnosticsSection {
    /// Host the built-in `probe-counter` grain kind and serve
    /// `POST /grains/probe-counter/{id}` (default false).
    #[serde(default)]
    pub probe_counter: bool,
}
