//! A fake Consul agent for tests: an HTTP server on loopback implementing a documented subset of Consul's API. Not Consul.
//!
//! Work in progress.
