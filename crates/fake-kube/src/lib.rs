//! A fake Kubernetes API server for tests: pods list / watch / patch over HTTP on loopback. Not Kubernetes.
//!
//! Work in progress.
