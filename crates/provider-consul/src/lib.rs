//! Consul membership provider (P2) over Consul's HTTP API.
//!
//! Work in progress.
