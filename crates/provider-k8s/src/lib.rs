//! Kubernetes membership provider (P3) on kube-runtime's watcher.
//!
//! Work in progress.
